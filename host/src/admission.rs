//! Who is served: the connection counts the core's admission rule
//! ([`Config::admit`]) decides on (all open connections, and those per
//! source address), kept exact as connections open and close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use envhub_core::{Admit, Config, Full};

/// The open connections, in all and per source address.
#[derive(Debug)]
pub struct Admission {
    config: Config,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    open: usize,
    per_source: HashMap<IpAddr, usize>,
}

impl Admission {
    /// No connection open yet; `config` holds the limits.
    pub fn new(config: Config) -> Self {
        Admission {
            config,
            state: Mutex::new(Counts::default()),
        }
    }

    /// Asks the core about a connection from `source`; an accepted one is
    /// counted open at once (until [`Admission::close`]).
    pub fn open(&self, source: IpAddr) -> Result<(), Full> {
        let mut counts = self.lock();
        let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
        match self.config.admit(counts.open, from_source) {
            Admit::Accept => {
                counts.open += 1;
                *counts.per_source.entry(source).or_insert(0) += 1;
                Ok(())
            }
            Admit::Busy(full) => Err(full),
        }
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
    pub fn open_now(&self) -> usize {
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
    fn counts_per_source_and_frees_at_close() {
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let adm = Admission::new(Config {
            max_clients: 3,
            max_per_source: 2,
            ..Config::default()
        });
        assert_eq!(adm.open(a), Ok(()));
        assert_eq!(adm.open(a), Ok(()));
        assert_eq!(adm.open(a), Err(Full::Source));
        assert_eq!(adm.open(b), Ok(()));
        assert_eq!(adm.open(b), Err(Full::Server));
        adm.close(a);
        assert_eq!(adm.open_now(), 2);
        assert_eq!(adm.open(b), Ok(()));
        for ip in [a, b, b] {
            adm.close(ip);
        }
        assert_eq!(adm.open_now(), 0);
        assert!(adm.lock().per_source.is_empty());
    }
}
