//! What the side services share: the history (SQLite), the MQTT bridge and
//! the HTTP side (dashboard, API, metrics).
//!
//! - [`Kept`]: one reading as kept, with its row id and wall-clock time.
//! - [`Feed`]: every kept reading, in order, to whoever listens (the MQTT
//!   bridge without a database, the dashboard's event streams). With history
//!   on, a reading is published once its transaction has committed; with
//!   `--no-db`, once it is in the store. A listener that falls behind skips
//!   ahead and is told how many it missed (tokio's broadcast channel).
//! - [`Status`]: health and counters of the side services, for `/metrics`
//!   and `/healthz`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use envhub_core::{Location, Tenths};
use tokio::sync::broadcast;

/// How many kept readings the feed holds for a listener that is behind.
pub const FEED_CAPACITY: usize = 4096;

/// One reading as kept: a row of the `readings` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Row id in `readings` (arrival order). With `--no-db`, a counter from
    /// 1 for this run of the server.
    pub id: i64,
    /// Server wall clock when received, Unix milliseconds.
    pub ts_ms: i64,
    /// The location, as sent.
    pub location: Location,
    /// °C in tenths, exactly as acknowledged.
    pub temp: Tenths,
    /// % in tenths, exactly as acknowledged.
    pub hum: Tenths,
    /// As sent, if it was.
    pub seq: Option<u32>,
}

/// Every kept reading, in order, to every listener.
#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Arc<Kept>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    /// A feed nobody listens to yet.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(FEED_CAPACITY);
        Feed { tx }
    }

    /// Hands the reading `kept` makes to every listener; never blocks (a
    /// slow listener lags). With no listener (no dashboard stream, no MQTT
    /// bridge) nothing is made: no clock read, no allocation.
    pub fn publish(&self, kept: impl FnOnce() -> Kept) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        // A listener that left since is not an error.
        let _ = self.tx.send(Arc::new(kept()));
    }

    /// A new listener: it sees what is published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Kept>> {
        self.tx.subscribe()
    }
}

/// Health and counters of the side services.
#[derive(Debug, Default)]
pub struct Status {
    /// History is on (`--db`).
    pub history: AtomicBool,
    /// The last write to the database succeeded (true while history is off).
    pub history_healthy: AtomicBool,
    /// Rows in `readings` (kept up to date by the writer).
    pub history_rows: AtomicU64,
    /// The MQTT bridge is on (`--mqtt`).
    pub mqtt: AtomicBool,
    /// The MQTT client is connected to the broker.
    pub mqtt_connected: AtomicBool,
    /// Readings waiting to be published.
    pub mqtt_backlog: AtomicU64,
    /// State messages acknowledged by the broker.
    pub mqtt_published: AtomicU64,
}

impl Status {
    /// Everything off and healthy.
    pub fn new() -> Self {
        let status = Status::default();
        status.history_healthy.store(true, Relaxed);
        status
    }
}

/// What the server hands to its side services.
#[derive(Debug, Default)]
pub struct Services {
    /// Every kept reading.
    pub feed: Feed,
    /// Health and counters.
    pub status: Status,
}

impl Services {
    /// An empty feed; everything off and healthy.
    pub fn new() -> Self {
        Services {
            feed: Feed::new(),
            status: Status::new(),
        }
    }
}

/// The wall clock in Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(id: i64) -> Kept {
        Kept {
            id,
            ts_ms: 1,
            location: Location::new("hall").unwrap(),
            temp: Tenths(215),
            hum: Tenths(400),
            seq: None,
        }
    }

    #[test]
    fn listeners_see_what_is_published_after_they_subscribe() {
        let feed = Feed::new();
        feed.publish(|| kept(1));
        let mut rx = feed.subscribe();
        feed.publish(|| kept(2));
        feed.publish(|| kept(3));
        assert_eq!(rx.try_recv().unwrap().id, 2);
        assert_eq!(rx.try_recv().unwrap().id, 3);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_slow_listener_is_told_how_many_it_missed() {
        let feed = Feed::new();
        let mut rx = feed.subscribe();
        for id in 0..(FEED_CAPACITY as i64 + 10) {
            feed.publish(|| kept(id));
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag, got {other:?}"),
        }
        assert_eq!(rx.try_recv().unwrap().id, 10);
    }

    #[test]
    fn nothing_is_made_without_a_listener() {
        let feed = Feed::new();
        feed.publish(|| panic!("made a reading nobody listens to"));
        let mut rx = feed.subscribe();
        feed.publish(|| kept(7));
        assert_eq!(rx.try_recv().unwrap().id, 7);
    }

    #[test]
    fn status_starts_off_and_healthy() {
        let s = Services::new();
        assert!(!s.status.history.load(Relaxed));
        assert!(s.status.history_healthy.load(Relaxed));
    }
}
