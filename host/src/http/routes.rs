//! The handlers of every endpoint, and the router that joins them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::history::Point;
use super::latest::Item;
use super::metrics::{self, LocationSample, Mqtt, Snapshot};
use super::{assets, events, AppState};
use crate::services::unix_ms;

/// `/api/history`'s `max_points` when none is given.
pub const DEFAULT_POINTS: u32 = 500;
/// The most buckets `/api/history` returns.
pub const MAX_POINTS: u32 = 5_000;
/// `/api/history`'s `from_ms` when none is given: this long before `to_ms`.
pub const DEFAULT_SPAN_MS: i64 = 24 * 3600 * 1000;

/// Every route of the HTTP side.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/api/latest", get(latest))
        .route("/api/history", get(history))
        .route("/api/events", get(events::events))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such page") })
        .with_state(state)
}

/// An error as JSON: `{"error":"…"}` with `status`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (
        status,
        Json(Body {
            error: message.into(),
        }),
    )
        .into_response()
}

#[derive(Serialize)]
struct LatestBody {
    readings: Vec<Item>,
    /// The server's clock, so that a page can count ages on its own.
    now_ms: i64,
    /// Whether `/api/history` can answer.
    history: bool,
}

/// `GET /api/latest`.
async fn latest(State(state): State<Arc<AppState>>) -> Json<LatestBody> {
    Json(LatestBody {
        readings: state.latest.items(),
        now_ms: unix_ms(),
        history: state.db.is_some(),
    })
}

#[derive(Serialize)]
struct HistoryBody {
    location: String,
    points: Vec<Point>,
}

/// `GET /api/history?location=L&from_ms=A&to_ms=B&max_points=N`.
async fn history(
    State(state): State<Arc<AppState>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let Some(db) = state.db.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            "history is off (the server runs with --no-db)",
        );
    };
    let Ok(Query(pairs)) = query else {
        return error(StatusCode::BAD_REQUEST, "the query string does not parse");
    };
    let q = match HistoryQuery::parse(&pairs, unix_ms()) {
        Ok(q) => q,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let known_live = state.latest.contains(&q.location);
    let result = tokio::task::spawn_blocking(move || {
        if !known_live && !db.knows(&q.location)? {
            return Ok(None);
        }
        db.buckets(&q.location, q.from_ms, q.to_ms, q.max_points)
            .map(|points| Some((q.location, points)))
    })
    .await;
    match result {
        Ok(Ok(Some((location, points)))) => Json(HistoryBody { location, points }).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no readings of this location"),
        Ok(Err(e)) => {
            log::warn!("http: history query failed: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("database error: {e}"),
            )
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("query task failed: {e}"),
        ),
    }
}

/// The parameters of `/api/history`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Which location.
    pub location: String,
    /// Start, Unix ms, inclusive.
    pub from_ms: i64,
    /// End, Unix ms, inclusive.
    pub to_ms: i64,
    /// Most buckets.
    pub max_points: u32,
}

impl HistoryQuery {
    /// Checks `pairs` (already percent-decoded) with `now_ms` for the
    /// defaults; the error says which parameter is wrong and why.
    pub fn parse(pairs: &[(String, String)], now_ms: i64) -> Result<HistoryQuery, String> {
        let mut location = None;
        let (mut from_ms, mut to_ms, mut max_points) = (None, None, None);
        for (key, value) in pairs {
            match key.as_str() {
                "location" => location = Some(value.clone()),
                "from_ms" => from_ms = Some(number::<i64>(key, value)?),
                "to_ms" => to_ms = Some(number::<i64>(key, value)?),
                "max_points" => max_points = Some(number::<u32>(key, value)?),
                _ => {} // e.g. a cache buster
            }
        }
        let location = location.ok_or("location is required")?;
        if location.is_empty() {
            return Err("location must not be empty".into());
        }
        let to_ms = to_ms.unwrap_or(now_ms);
        let from_ms = from_ms.unwrap_or_else(|| to_ms.saturating_sub(DEFAULT_SPAN_MS));
        if from_ms > to_ms {
            return Err(format!("from_ms ({from_ms}) is after to_ms ({to_ms})"));
        }
        let max_points = max_points.unwrap_or(DEFAULT_POINTS);
        if !(1..=MAX_POINTS).contains(&max_points) {
            return Err(format!(
                "max_points must be 1 to {MAX_POINTS}, not {max_points}"
            ));
        }
        Ok(HistoryQuery {
            location,
            from_ms,
            to_ms,
            max_points,
        })
    }
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{key} must be a whole number in range, not {value:?}"))
}

/// `GET /metrics`.
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let hub = &state.shared.hub;
    let status = &hub.services().status;
    let now = hub.now_ms();
    let locations = hub
        .entries()
        .into_iter()
        .map(|e| LocationSample {
            location: e.location.as_str().to_owned(),
            temp: f64::from(e.temp.0) / 10.0,
            hum: f64::from(e.hum.0) / 10.0,
            age_secs: now.saturating_sub(e.stored_at) as f64 / 1000.0,
        })
        .collect();
    let snapshot = Snapshot {
        clients: hub.clients(),
        readings: hub.readings(),
        errors: hub.errors(),
        locations,
        history_rows: status.history_rows.load(Relaxed),
        mqtt: status.mqtt.load(Relaxed).then(|| Mqtt {
            connected: status.mqtt_connected.load(Relaxed),
            backlog: status.mqtt_backlog.load(Relaxed),
            published: status.mqtt_published.load(Relaxed),
        }),
    };
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&snapshot),
    )
        .into_response()
}

/// `GET /healthz`: 200 `ok` while the database accepts writes.
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    if state
        .shared
        .hub
        .services()
        .status
        .history_healthy
        .load(Relaxed)
    {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not accept writes\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn history_defaults_and_errors() {
        let q = HistoryQuery::parse(&pairs(&[("location", "a b")]), 100_000_000).unwrap();
        assert_eq!(
            q,
            HistoryQuery {
                location: "a b".into(),
                from_ms: 100_000_000 - DEFAULT_SPAN_MS,
                to_ms: 100_000_000,
                max_points: 500
            }
        );
        let q = HistoryQuery::parse(
            &pairs(&[
                ("location", "x"),
                ("from_ms", "5"),
                ("to_ms", "5"),
                ("max_points", "5000"),
                ("_", "1"),
            ]),
            0,
        )
        .unwrap();
        assert_eq!((q.from_ms, q.to_ms, q.max_points), (5, 5, 5000));
        for (bad, why) in [
            (&[("from_ms", "1")][..], "location is required"),
            (&[("location", "")], "empty"),
            (&[("location", "x"), ("from_ms", "soon")], "from_ms"),
            (&[("location", "x"), ("to_ms", "1e3")], "to_ms"),
            (
                &[("location", "x"), ("to_ms", "99999999999999999999")],
                "to_ms",
            ),
            (
                &[("location", "x"), ("from_ms", "10"), ("to_ms", "9")],
                "after",
            ),
            (&[("location", "x"), ("max_points", "0")], "max_points"),
            (&[("location", "x"), ("max_points", "5001")], "max_points"),
            (&[("location", "x"), ("max_points", "-1")], "max_points"),
        ] {
            let err = HistoryQuery::parse(&pairs(bad), 1_000).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
