//! The state every connection shares: the store behind a mutex, the
//! counters in atomics, the server's clock and, with history on, the
//! database writer that acknowledges readings once they are on disk.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use envhub_core::limits::MAX_LOCATIONS;
use envhub_core::{Counters, Entry, Hub, Location, Outcome, Reading, Store, StoreFull, Ticket};
use log::debug;

use crate::history::restore::Newest;
use crate::history::{History, OpenError, Options};
use crate::services::{unix_ms, Kept, Services};

/// The server's clock starts here rather than at 0, so that a reading
/// restored from the database, received before the server started, still
/// has a `stored_at` (`now - age`) on this clock: ages up to ~34 years.
pub const CLOCK_BASE_MS: u64 = 1 << 40;

/// The newest reading of each location, the count of readings stored, the
/// clock and the side services' feed: what the connections and the history
/// writer both change.
#[derive(Debug)]
pub struct Latest {
    store: Mutex<Store>,
    readings: AtomicU64,
    started: Instant,
    services: Arc<Services>,
}

impl Latest {
    fn new() -> Self {
        Latest {
            store: Mutex::new(Store::new()),
            readings: AtomicU64::new(0),
            started: Instant::now(),
            services: Arc::new(Services::new()),
        }
    }

    /// The server's clock in milliseconds (the core's `now`).
    pub fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        CLOCK_BASE_MS.saturating_add(elapsed)
    }

    /// What the side services share.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // The store is always consistent between calls (the core never
        // panics while holding it), so a poisoned lock is still usable.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Which of `readings` the store can take, in order: a known location,
    /// or a new one while there is room (counting the new ones before it).
    /// Only the history writer adds readings while history is on, so the
    /// answer holds until it calls [`Latest::keep`].
    pub fn admit<'r>(&self, readings: impl Iterator<Item = &'r Reading>) -> Vec<bool> {
        let store = self.lock();
        let mut new: Vec<&Location> = Vec::new();
        readings
            .map(|r| {
                if store.get(&r.location).is_some() || new.contains(&&r.location) {
                    true
                } else if store.len() + new.len() < MAX_LOCATIONS {
                    new.push(&r.location);
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    /// Stores committed readings (reading, received at, row id, row
    /// `ts_ms`), counts them and publishes them on the feed, in order.
    pub fn keep<'r>(&self, rows: impl Iterator<Item = (&'r Reading, u64, i64, i64)>) {
        let mut store = self.lock();
        for (reading, now, id, ts_ms) in rows {
            if store.insert(reading, now).is_err() {
                // Not reached: `admit` made room. Logged, never silent.
                log::error!("history: row {id} committed but the store is full");
            }
            self.readings.fetch_add(1, Relaxed);
            self.services.feed.publish(|| Kept {
                id,
                ts_ms,
                location: reading.location.clone(),
                temp: reading.temp,
                hum: reading.hum,
                seq: reading.seq,
            });
        }
    }

    /// Fills the store with rows read back from the database, each aged
    /// from its `ts_ms` as of the wall clock `unix_now`; how many went in.
    pub fn restore(&self, rows: &[Newest], unix_now: i64) -> usize {
        let now = self.now_ms();
        let mut store = self.lock();
        rows.iter()
            .filter(|row| {
                let age = u64::try_from(unix_now.saturating_sub(row.ts_ms)).unwrap_or(0);
                store.insert(&row.reading, now.saturating_sub(age)).is_ok()
            })
            .count()
    }

    /// Stores a reading at once (history off), counts it and publishes it.
    fn store_now(&self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        let mut store = self.lock();
        store.insert(reading, now)?;
        // Counted under the lock so `stats` sees readings and locations
        // agree; published under it so the feed has the store's order.
        let id = self.readings.fetch_add(1, Relaxed) + 1;
        self.services.feed.publish(|| Kept {
            id: i64::try_from(id).unwrap_or(i64::MAX),
            ts_ms: unix_ms(),
            location: reading.location.clone(),
            temp: reading.temp,
            hum: reading.hum,
            seq: reading.seq,
        });
        Ok(())
    }
}

/// The server-wide state. Connection threads reach it through a
/// [`ClientHub`], which implements the core's [`Hub`].
///
/// The mutex is held for one store operation only (a `latest` over the whole
/// store holds it while one output buffer's worth of entries is rendered),
/// never across I/O.
#[derive(Debug)]
pub struct SharedHub {
    latest: Arc<Latest>,
    last_id: AtomicU64,
    clients: AtomicU64,
    errors: AtomicU64,
    /// With history on: readings are acknowledged once on disk.
    history: Option<History>,
}

impl Default for SharedHub {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedHub {
    /// Empty store, zero counters, clock starting now, history off.
    pub fn new() -> Self {
        SharedHub {
            latest: Arc::new(Latest::new()),
            last_id: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            history: None,
        }
    }

    /// Like [`SharedHub::new`] with history on: opens the database, restores
    /// `latest` from it and starts the writer.
    pub fn with_history(options: &Options) -> Result<Self, OpenError> {
        let mut hub = SharedHub::new();
        hub.history = Some(History::open(options, Arc::clone(&hub.latest))?);
        Ok(hub)
    }

    /// The history, when it is on.
    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    /// How many history transactions ended so far (0 without history): see
    /// [`SharedHub::wait_commit`].
    pub fn commits(&self) -> u64 {
        self.history.as_ref().map_or(0, History::commits)
    }

    /// Waits until a history transaction ends after `seen` were counted by
    /// [`SharedHub::commits`], or `timeout` passes (at once without
    /// history).
    pub fn wait_commit(&self, seen: u64, timeout: Duration) {
        if let Some(history) = &self.history {
            history.wait_commit(seen, timeout);
        }
    }

    /// Waits until the history decided `ticket` (see
    /// [`envhub_core::Connection::awaited_ticket`]), or `timeout` (at once
    /// without history).
    pub fn wait_decided(&self, ticket: Ticket, timeout: Duration) {
        if let Some(history) = &self.history {
            history.wait_decided(ticket, timeout);
        }
    }

    /// Commits what the history has queued and stops its writer.
    pub fn close_history(&self) {
        if let Some(history) = &self.history {
            history.close();
        }
    }

    /// What the side services share (the feed of kept readings, status).
    pub fn services(&self) -> &Arc<Services> {
        self.latest.services()
    }

    /// Errors counted since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// Readings stored since start.
    pub fn readings(&self) -> u64 {
        self.latest.readings.load(Relaxed)
    }

    /// A copy of every entry of the store, in location order.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().after(None).cloned().collect()
    }

    /// The server's clock in milliseconds: the core's `now`. It starts at
    /// [`CLOCK_BASE_MS`], not 0.
    pub fn now_ms(&self) -> u64 {
        self.latest.now_ms()
    }

    /// Counts an accepted connection and returns its id (the first is 1).
    /// Only the accept loop calls this, so the limit check before it holds.
    pub fn open(&self) -> u64 {
        self.clients.fetch_add(1, Relaxed);
        self.last_id.fetch_add(1, Relaxed) + 1
    }

    /// Counts a connection closed.
    pub fn close(&self) {
        // Never below zero, even if close were called too often.
        let _ = self
            .clients
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Connections open now.
    pub fn clients(&self) -> u64 {
        self.clients.load(Relaxed)
    }

    /// A [`Hub`] for connection `client` (0 for the accept loop).
    pub fn for_client(&self, client: u64) -> ClientHub<'_> {
        ClientHub {
            shared: self,
            client,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.latest.lock()
    }
}

/// One connection's view of the [`SharedHub`]: the core's [`Hub`], with the
/// connection id for the debug log of each reading.
#[derive(Debug, Clone, Copy)]
pub struct ClientHub<'a> {
    shared: &'a SharedHub,
    client: u64,
}

impl ClientHub<'_> {
    fn log(&self, reading: &Reading) {
        debug!(
            "client {}: {} temp {} hum {}",
            self.client,
            reading.location.as_str(),
            reading.temp,
            reading.hum
        );
    }
}

impl Hub for ClientHub<'_> {
    fn store(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        self.shared.latest.store_now(reading, now)?;
        self.log(reading);
        Ok(())
    }

    fn submit(&mut self, reading: &Reading, now: u64) -> Outcome {
        let Some(history) = &self.shared.history else {
            return match self.store(reading, now) {
                Ok(()) => Outcome::Kept,
                Err(StoreFull) => Outcome::StoreFull,
            };
        };
        self.log(reading);
        Outcome::Pending(history.submit(reading, now))
    }

    fn outcome(&mut self, ticket: Ticket) -> Outcome {
        match &self.shared.history {
            Some(history) => history.outcome(ticket),
            None => Outcome::StorageError,
        }
    }

    fn get(&mut self, location: &Location) -> Option<Entry> {
        self.shared.lock().get(location).cloned()
    }

    fn visit_after(&mut self, after: Option<&Location>, visit: &mut dyn FnMut(&Entry) -> bool) {
        let store = self.shared.lock();
        for entry in store.after(after) {
            if !visit(entry) {
                break;
            }
        }
    }

    fn counters(&mut self, now: u64) -> Counters {
        let (readings, locations) = {
            let store = self.shared.lock();
            (self.shared.readings(), store.len() as u64)
        };
        Counters {
            clients: self.shared.clients.load(Relaxed),
            readings,
            errors: self.shared.errors.load(Relaxed),
            locations,
            uptime_ms: now.saturating_sub(CLOCK_BASE_MS),
        }
    }

    fn count_error(&mut self) {
        self.shared.errors.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envhub_core::{Config, Connection, Tenths};

    fn reading(loc: &str, temp: i16) -> Reading {
        Reading {
            location: Location::new(loc).unwrap(),
            temp: Tenths(temp),
            hum: Tenths(500),
            seq: None,
        }
    }

    #[test]
    fn ids_start_at_one_and_clients_count_open_connections() {
        let hub = SharedHub::new();
        assert_eq!(hub.open(), 1);
        assert_eq!(hub.open(), 2);
        hub.close();
        assert_eq!(hub.clients(), 1);
        assert_eq!(hub.open(), 3);
        assert_eq!(hub.clients(), 2);
        hub.close();
        hub.close();
        hub.close();
        assert_eq!(hub.clients(), 0);
    }

    #[test]
    fn store_get_visit_and_counters() {
        let shared = SharedHub::new();
        let mut hub = shared.for_client(1);
        hub.store(&reading("b", 10), 5).unwrap();
        hub.store(&reading("a", 20), 6).unwrap();
        hub.store(&reading("b", 30), 7).unwrap();
        hub.count_error();
        let b = hub.get(&Location::new("b").unwrap()).unwrap();
        assert_eq!((b.temp, b.stored_at), (Tenths(30), 7));
        assert!(hub.get(&Location::new("c").unwrap()).is_none());

        let mut seen = Vec::new();
        hub.visit_after(None, &mut |e| {
            seen.push(e.location.as_str().to_owned());
            true
        });
        assert_eq!(seen, ["a", "b"]);
        seen.clear();
        hub.visit_after(Some(&Location::new("a").unwrap()), &mut |e| {
            seen.push(e.location.as_str().to_owned());
            false
        });
        assert_eq!(seen, ["b"]);

        shared.open();
        let c = hub.counters(CLOCK_BASE_MS + 1234);
        assert_eq!(
            c,
            Counters {
                clients: 1,
                readings: 3,
                errors: 1,
                locations: 2,
                uptime_ms: 1234
            }
        );
    }

    #[test]
    fn full_store_is_reported_and_not_counted() {
        let shared = SharedHub::new();
        let mut hub = shared.for_client(1);
        for i in 0..64 {
            hub.store(&reading(&format!("loc{i:02}"), 0), 0).unwrap();
        }
        assert_eq!(hub.store(&reading("new", 0), 0), Err(StoreFull));
        assert_eq!(hub.counters(0).readings, 64);
    }

    #[test]
    fn threads_share_one_store() {
        let shared = SharedHub::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let shared = &shared;
                s.spawn(move || {
                    let mut hub = shared.for_client(t);
                    for i in 0..100 {
                        hub.store(&reading(&format!("t{t}"), i), 0).unwrap();
                    }
                });
            }
        });
        let c = shared.for_client(0).counters(0);
        assert_eq!((c.readings, c.locations), (400, 4));
    }

    #[test]
    fn drives_a_core_connection() {
        let shared = SharedHub::new();
        let id = shared.open();
        let mut conn = Connection::new(id, 0, Config::default());
        let mut out = [0u8; 256];
        let mut hub = shared.for_client(id);
        let p = conn.handle_input(1, b"{\"cmd\":\"ping\"}\n", &mut out, &mut hub);
        assert_eq!(&out[..p.written], b"{\"ok\":true,\"pong\":true}\n");
    }
}
