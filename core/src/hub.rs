//! What a connection needs from the server it belongs to.

use crate::reading::{Location, Reading};
use crate::stats::{Counters, Stats};
use crate::store::{Entry, Store, StoreFull};

/// A reading handed to a hub that answers later (the host's history
/// commits it to disk first). The hub's own number for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ticket(pub u64);

/// What became of a reading handed to [`Hub::submit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// Stored, counted and visible to every connection: acknowledge it.
    Kept,
    /// A new location while the store is full: `store_full`.
    StoreFull,
    /// It could not be kept (a failed disk write): `storage_error`. Not
    /// stored, so the sensor sends it again.
    StorageError,
    /// Not decided yet: ask again with this ticket once the hub signals the
    /// shell (the host's history after each commit).
    Pending(Ticket),
}

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

    /// Hands over a reading that passed every check. A hub that keeps it at
    /// once answers [`Outcome::Kept`] or [`Outcome::StoreFull`] (the default,
    /// through [`Hub::store`]); one that must first write it somewhere
    /// answers [`Outcome::Pending`], and the connection holds the reply (and
    /// every reply after it) until [`Hub::outcome`] decides.
    fn submit(&mut self, reading: &Reading, now: u64) -> Outcome {
        match self.store(reading, now) {
            Ok(()) => Outcome::Kept,
            Err(StoreFull) => Outcome::StoreFull,
        }
    }

    /// What became of the reading of `ticket`, as handed out by
    /// [`Hub::submit`]. Once the answer is not `Pending`, the connection
    /// never asks about that ticket again. A hub that never answers
    /// `Pending` keeps the default: a ticket it does not know was not kept.
    fn outcome(&mut self, ticket: Ticket) -> Outcome {
        let _ = ticket;
        Outcome::StorageError
    }
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
