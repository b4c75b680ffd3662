//! What a connection needs from the server it belongs to.

use crate::reading::{Location, Reading};
use crate::stats::{Counters, Stats};
use crate::store::{Entry, Store, StoreFull};

/// The state shared by every connection of a server: the store and the
/// counters. The shell decides how it is shared: the host puts the store
/// behind a mutex held for one call and the counters in atomics; a
/// single-threaded loop owns both and lends them through [`LocalHub`].
pub trait Hub {
    /// Stores a reading that passed every check and counts it.
    fn store(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull>;

    /// A copy of the entry of `location`.
    fn get(&mut self, location: &Location) -> Option<Entry>;

    /// Calls `visit` with each entry whose location sorts after `after`
    /// (every entry for `None`), in order, until it returns `false`.
    fn visit_after(&mut self, after: Option<&Location>, visit: &mut dyn FnMut(&Entry) -> bool);

    /// The counters as of `now`.
    fn counters(&mut self, now: u64) -> Counters;

    /// Counts one error reply.
    fn count_error(&mut self);
}

/// A [`Hub`] over a store and counters owned by a single-threaded shell.
#[derive(Debug)]
pub struct LocalHub<'a> {
    /// The readings.
    pub store: &'a mut Store,
    /// The counters.
    pub stats: &'a mut Stats,
}

impl Hub for LocalHub<'_> {
    fn store(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        self.store.insert(reading, now)?;
        self.stats.readings += 1;
        Ok(())
    }

    fn get(&mut self, location: &Location) -> Option<Entry> {
        self.store.get(location).cloned()
    }

    fn visit_after(&mut self, after: Option<&Location>, visit: &mut dyn FnMut(&Entry) -> bool) {
        for entry in self.store.after(after) {
            if !visit(entry) {
                break;
            }
        }
    }

    fn counters(&mut self, now: u64) -> Counters {
        Counters {
            clients: self.stats.clients,
            readings: self.stats.readings,
            errors: self.stats.errors,
            locations: self.store.len() as u64,
            uptime_ms: now.saturating_sub(self.stats.started_at),
        }
    }

    fn count_error(&mut self) {
        self.stats.errors += 1;
    }
}
