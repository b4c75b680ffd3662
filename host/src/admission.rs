//! Who is served: the connection counts the admission decision needs (all
//! open connections, and those per source address), kept exact as
//! connections open and close.
//!
//! The decision itself is [`decide`], shaped like the core's admission rule
//! (`Config::admit(open, from_source)`) that replaces it once the core has
//! it; the host only keeps the counts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

/// The smallest default `--max-per-source`, so that small `--max-clients`
/// behave as if there were no per-source limit.
pub const MIN_DEFAULT_MAX_PER_SOURCE: u64 = 64;

/// The default `--max-per-source` for `max_clients`: a quarter, rounded up,
/// but never below [`MIN_DEFAULT_MAX_PER_SOURCE`].
pub fn default_max_per_source(max_clients: u64) -> u64 {
    max_clients.div_ceil(4).max(MIN_DEFAULT_MAX_PER_SOURCE)
}

/// Whether a new connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Serve it.
    Accept,
    /// `busy`, then close: `max_clients` connections are open.
    ServerFull,
    /// `busy`, then close: `max_per_source` connections from its address
    /// are open.
    SourceFull,
}

impl Admit {
    /// A few words for the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Admit::Accept => "accepted",
            Admit::ServerFull => "server full",
            Admit::SourceFull => "too many connections from this address",
        }
    }
}

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once.
    pub max_clients: u64,
    /// Most connections open at once from one source address.
    pub max_per_source: u64,
}

/// The admission rule: `open` connections are open now, `from_source` of
/// them from the new one's address (neither counting the new one).
pub fn decide(limits: Limits, open: u64, from_source: u64) -> Admit {
    if open >= limits.max_clients {
        Admit::ServerFull
    } else if from_source >= limits.max_per_source {
        Admit::SourceFull
    } else {
        Admit::Accept
    }
}

/// The open connections, in all and per source address.
#[derive(Debug)]
pub struct Admission {
    limits: Limits,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    open: u64,
    per_source: HashMap<IpAddr, u64>,
}

impl Admission {
    /// No connection open yet.
    pub fn new(limits: Limits) -> Self {
        Admission {
            limits,
            state: Mutex::new(Counts::default()),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decides on a connection from `source`; an accepted one is counted
    /// open at once (until [`Admission::close`]).
    pub fn open(&self, source: IpAddr) -> Admit {
        let mut counts = self.lock();
        let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
        let admit = decide(self.limits, counts.open, from_source);
        if admit == Admit::Accept {
            counts.open += 1;
            *counts.per_source.entry(source).or_insert(0) += 1;
        }
        admit
    }

    /// A connection from `source` closed: its slot is free at once.
    pub fn close(&self, source: IpAddr) {
        let mut counts = self.lock();
        counts.open = counts.open.saturating_sub(1);
        if let Some(n) = counts.per_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_source.remove(&source);
            }
        }
    }

    /// Connections open now.
    pub fn open_now(&self) -> u64 {
        self.lock().open
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counts are consistent between calls; a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_source() {
        assert_eq!(default_max_per_source(1), 64);
        assert_eq!(default_max_per_source(1024), 256);
        assert_eq!(default_max_per_source(1025), 257);
        assert_eq!(default_max_per_source(200), 64);
    }

    #[test]
    fn counts_per_source_and_frees_at_close() {
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let adm = Admission::new(Limits {
            max_clients: 3,
            max_per_source: 2,
        });
        assert_eq!(adm.open(a), Admit::Accept);
        assert_eq!(adm.open(a), Admit::Accept);
        assert_eq!(adm.open(a), Admit::SourceFull);
        assert_eq!(adm.open(b), Admit::Accept);
        assert_eq!(adm.open(b), Admit::ServerFull);
        adm.close(a);
        assert_eq!(adm.open_now(), 2);
        assert_eq!(adm.open(b), Admit::Accept);
        for ip in [a, b, b] {
            adm.close(ip);
        }
        assert_eq!(adm.open_now(), 0);
        assert!(adm.lock().per_source.is_empty());
    }
}
