//! `GET /api/events`: every kept reading as a Server-Sent Event.
//!
//! Each stream listens to the feed on its own, and the feed never waits for
//! a stream. A stream sends what arrived as one batch (one write) and then
//! waits [`PACE`] before the next, so a burst of readings costs each stream
//! one write per [`PACE`], not one per reading. A batch holds at most
//! [`BATCH`] readings, the newest; when more arrived (or the feed itself
//! overtook the stream), the stream skips ahead and says so first with
//! `event: gap` (`{"missed":N}`). So a browser sees every reading up to
//! [`BATCH`] per [`PACE`] (1,000 a second), and never slows the sensors.
//! A browser that reconnects sends `Last-Event-ID`; the readings it missed
//! are read from the history (the newest [`RESUME_MAX`], with a gap for the
//! rest).
//!
//! The SSE framing is written here, not with axum's `Sse`, to batch events
//! into one body chunk.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::latest::Item;
use super::routes::error;
use super::AppState;
use crate::services::Kept;

/// How often an idle stream sends a comment line.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The most missed readings a resume sends from the history.
pub const RESUME_MAX: usize = 1_000;

/// The least time between two batches of one stream.
pub const PACE: Duration = Duration::from_millis(250);

/// The most readings in one batch.
pub const BATCH: usize = 250;
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
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream_of(start, feed, permit)),
    )
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
    /// No batch before this.
    next_at: Instant,
    _permit: OwnedSemaphorePermit,
}

/// The chunks of one stream: the gap and backlog of a resume, then batches
/// from the feed, or a keep-alive comment after [`KEEP_ALIVE`] without
/// any. The permit is held for as long as the stream lives.
fn stream_of(
    start: Start,
    feed: broadcast::Receiver<Arc<Kept>>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let state = Follow {
        start,
        feed,
        next_at: Instant::now(),
        _permit: permit,
    };
    stream::unfold(state, |mut s| async move {
        let mut out = String::new();
        if s.start.skipped > 0 || !s.start.backlog.is_empty() {
            if s.start.skipped > 0 {
                gap(&mut out, std::mem::take(&mut s.start.skipped));
            }
            while let Some(kept) = s.start.backlog.pop_front() {
                s.start.last_id = kept.id;
                reading(&mut out, &kept);
            }
            return Some((Ok(Bytes::from(out)), s));
        }
        tokio::time::sleep_until(s.next_at).await;
        let mut batch = VecDeque::new();
        let mut missed = 0u64;
        // Wait for the first, then take whatever else is there.
        match tokio::time::timeout(KEEP_ALIVE, s.feed.recv()).await {
            Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s)),
            Ok(Ok(kept)) => batch.push_back(kept),
            Ok(Err(RecvError::Lagged(n))) => missed += n,
            Ok(Err(RecvError::Closed)) => return None,
        }
        loop {
            match s.feed.try_recv() {
                Ok(kept) => {
                    batch.push_back(kept);
                    if batch.len() > BATCH {
                        batch.pop_front();
                        missed += 1;
                    }
                }
                Err(TryRecvError::Lagged(n)) => missed += n,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if missed > 0 {
            gap(&mut out, missed);
        }
        for kept in batch {
            if kept.id > s.start.last_id {
                s.start.last_id = kept.id;
                reading(&mut out, &kept);
            }
        }
        s.next_at = Instant::now() + PACE;
        Some((Ok(Bytes::from(out)), s))
    })
}

/// Appends `event: reading`, `id:` the row id, the data an `/api/latest`
/// item.
pub fn reading(out: &mut String, kept: &Kept) {
    let data = serde_json::to_string(&Item::from(kept)).unwrap_or_default();
    let _ = write!(out, "event: reading\nid: {}\ndata: {data}\n\n", kept.id);
}

/// Appends `event: gap`: `missed` readings were skipped.
pub fn gap(out: &mut String, missed: u64) {
    let _ = write!(out, "event: gap\ndata: {{\"missed\":{missed}}}\n\n");
}
