//! Server-wide counters.

/// What `stats` reports besides the asking connection's own id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Connections open now (turned-away `busy` ones excluded).
    pub clients: u64,
    /// Readings stored since start.
    pub readings: u64,
    /// Error replies sent since start, `busy` included.
    pub errors: u64,
    /// Distinct stored locations.
    pub locations: u64,
    /// Milliseconds since start.
    pub uptime_ms: u64,
}

/// The counters of a server whose connections all run on one thread (the
/// smoltcp loop, the firmware). The host keeps the same numbers in atomics.
#[derive(Debug, Clone, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Stats {
    /// The last id given to a connection; the first connection gets 1.
    pub last_id: u64,
    /// Connections open now.
    pub clients: u64,
    /// Readings stored since start.
    pub readings: u64,
    /// Error replies since start.
    pub errors: u64,
    /// When the server started, in the shell's milliseconds.
    pub started_at: u64,
}

impl Stats {
    /// Counters of a server started at `now`.
    pub const fn new(now: u64) -> Self {
        Stats {
            last_id: 0,
            clients: 0,
            readings: 0,
            errors: 0,
            started_at: now,
        }
    }

    /// Counts an accepted connection and returns its id.
    pub fn open(&mut self) -> u64 {
        self.last_id += 1;
        self.clients += 1;
        self.last_id
    }

    /// Counts a connection closed.
    pub fn close(&mut self) {
        self.clients = self.clients.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one_and_are_never_reused() {
        let mut s = Stats::new(0);
        assert_eq!(s.open(), 1);
        assert_eq!(s.open(), 2);
        s.close();
        assert_eq!(s.clients, 1);
        assert_eq!(s.open(), 3);
        assert_eq!(s.clients, 2);
    }
}
