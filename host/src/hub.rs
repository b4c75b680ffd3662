//! The state every event loop shares: the store behind a mutex, the
//! counters in atomics, and the server's clock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use std::sync::Arc;

use envhub_core::{Counters, Entry, Hub, Location, Reading, Store, StoreFull};
use log::debug;

use crate::services::{unix_ms, Kept, Services};

/// The server-wide state. Connections reach it through a
/// [`ClientHub`], which implements the core's [`Hub`].
///
/// The mutex is held for one store operation only (a `latest` over the whole
/// store holds it while one output buffer's worth of entries is rendered),
/// never across I/O.
#[derive(Debug)]
pub struct SharedHub {
    store: Mutex<Store>,
    last_id: AtomicU64,
    clients: AtomicU64,
    readings: AtomicU64,
    errors: AtomicU64,
    started: Instant,
    /// The side services: every stored reading goes to their feed.
    services: Arc<Services>,
}

impl Default for SharedHub {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedHub {
    /// Empty store, zero counters, clock starting now.
    pub fn new() -> Self {
        SharedHub {
            store: Mutex::new(Store::new()),
            last_id: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            readings: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            started: Instant::now(),
            services: Arc::new(Services::new()),
        }
    }

    /// What the side services share (the feed of kept readings, status).
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Errors counted since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// Readings stored since start.
    pub fn readings(&self) -> u64 {
        self.readings.load(Relaxed)
    }

    /// A copy of every entry of the store, in location order.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().after(None).cloned().collect()
    }

    /// Milliseconds since the server started: the core's `now`.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
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
        // The store is always consistent between calls (the core never
        // panics while holding it), so a poisoned lock is still usable.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One connection's view of the [`SharedHub`]: the core's [`Hub`], with the
/// connection id for the debug log of each reading.
#[derive(Debug, Clone, Copy)]
pub struct ClientHub<'a> {
    shared: &'a SharedHub,
    client: u64,
}

impl Hub for ClientHub<'_> {
    fn store(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        {
            let mut store = self.shared.lock();
            store.insert(reading, now)?;
            // Counted under the lock so `stats` sees readings and locations
            // agree; published under it so the feed has the store's order.
            let id = self.shared.readings.fetch_add(1, Relaxed) + 1;
            self.shared.services.feed.publish(Kept {
                id: i64::try_from(id).unwrap_or(i64::MAX),
                ts_ms: unix_ms(),
                location: reading.location.clone(),
                temp: reading.temp,
                hum: reading.hum,
                seq: reading.seq,
            });
        }
        debug!(
            "client {}: {} temp {} hum {}",
            self.client,
            reading.location.as_str(),
            reading.temp,
            reading.hum
        );
        Ok(())
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
            (self.shared.readings.load(Relaxed), store.len() as u64)
        };
        Counters {
            clients: self.shared.clients.load(Relaxed),
            readings,
            errors: self.shared.errors.load(Relaxed),
            locations,
            uptime_ms: now,
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
        let c = hub.counters(1234);
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
