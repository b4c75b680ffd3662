//! `GET /api/events`: every kept reading as a Server-Sent Event.
//!
//! Each stream listens to the feed on its own. The feed never waits for a
//! stream: a stream whose browser reads too slowly falls behind, skips
//! ahead to what the feed still holds and says so with `event: gap`
//! (`{"missed":N}`). A browser that reconnects sends `Last-Event-ID`; the
//! readings it missed are read from the history (the newest
//! [`RESUME_MAX`] of them, with a gap for the rest).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::OwnedSemaphorePermit;

use super::latest::Item;
use super::routes::error;
use super::AppState;
use crate::services::Kept;

/// How often an idle stream sends a comment line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most missed readings a resume sends from the history.
pub const RESUME_MAX: usize = 1_000;

/// `GET /api/events`.
pub async fn events(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Ok(permit) = Arc::clone(&state.streams).try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams (at most {})", state.max_clients),
        );
    };
    // Subscribe first, then read the history: what is committed in between
    // comes twice and is sent once (ids only grow).
    let feed = state.shared.hub.services().feed.subscribe();
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let mut start = Start {
        backlog: VecDeque::new(),
        skipped: 0,
        last_id: last_id.unwrap_or(i64::MIN),
    };
    if let (Some(after), Some(db)) = (last_id, state.db.clone()) {
        match tokio::task::spawn_blocking(move || db.after(after, RESUME_MAX)).await {
            Ok(Ok((rows, skipped))) => {
                start.backlog = rows.into_iter().map(Arc::new).collect();
                start.skipped = skipped;
            }
            Ok(Err(e)) => log::warn!("http: cannot resume an event stream: {e}"),
            Err(e) => log::warn!("http: resume task failed: {e}"),
        }
    }
    Sse::new(stream_of(start, feed, permit))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// Where a stream starts.
struct Start {
    /// Missed readings from the history, oldest first.
    backlog: VecDeque<Arc<Kept>>,
    /// Older missed readings left out of the backlog.
    skipped: u64,
    /// The id the browser has; nothing at or below it is sent again.
    last_id: i64,
}

struct Follow {
    start: Start,
    feed: broadcast::Receiver<Arc<Kept>>,
    _permit: OwnedSemaphorePermit,
}

/// The events of one stream: the gap and backlog of a resume, then the
/// feed. The permit is held for as long as the stream lives.
fn stream_of(
    start: Start,
    feed: broadcast::Receiver<Arc<Kept>>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = Follow {
        start,
        feed,
        _permit: permit,
    };
    stream::unfold(state, |mut s| async move {
        if s.start.skipped > 0 {
            let missed = std::mem::take(&mut s.start.skipped);
            return Some((Ok(gap(missed)), s));
        }
        if let Some(kept) = s.start.backlog.pop_front() {
            s.start.last_id = kept.id;
            return Some((Ok(reading(&kept)), s));
        }
        loop {
            match s.feed.recv().await {
                Ok(kept) if kept.id <= s.start.last_id => continue,
                Ok(kept) => {
                    s.start.last_id = kept.id;
                    return Some((Ok(reading(&kept)), s));
                }
                Err(RecvError::Lagged(n)) => return Some((Ok(gap(n)), s)),
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// `event: reading`, `id:` the row id, the data an `/api/latest` item.
pub fn reading(kept: &Kept) -> Event {
    let data = serde_json::to_string(&Item::from(kept)).unwrap_or_default();
    Event::default()
        .event("reading")
        .id(kept.id.to_string())
        .data(data)
}

/// `event: gap`: `missed` readings were skipped.
pub fn gap(missed: u64) -> Event {
    Event::default()
        .event("gap")
        .data(format!("{{\"missed\":{missed}}}"))
}
