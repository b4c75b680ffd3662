//! Reconnect delays: 0.5 s doubling to 30 s, with jitter, so that a fleet of
//! gateways does not hammer a broker that comes back (rumqttc itself would
//! retry at once, in a tight loop).

use std::time::Duration;

/// The first delay before a retry.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest delay between two attempts.
pub const MAX: Duration = Duration::from_secs(30);

/// The delays between connection attempts. Each delay is drawn uniformly
/// from `[base / 2, base]`, where `base` starts at [`FIRST`] and doubles up
/// to [`MAX`] ("equal jitter").
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    rng: u64,
}

impl Backoff {
    /// A fresh backoff; `seed` varies the jitter between gateways.
    pub fn new(seed: u64) -> Self {
        Backoff {
            base: FIRST,
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// A seed from the clock and the process id.
    pub fn seed() -> u64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    }

    /// The delay before the next attempt; the one after will be longer.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base;
        self.base = (base * 2).min(MAX);
        let half = base / 2;
        let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(self.random() % (spread + 1))
    }

    /// After a connection that lasted: start again from [`FIRST`].
    pub fn reset(&mut self) {
        self.base = FIRST;
    }

    /// xorshift64: jitter needs no quality, only spread, so no crate for it.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_half_a_second_to_thirty_with_jitter() {
        let mut b = Backoff::new(42);
        let mut base = FIRST;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} outside [{:?}, {base:?}]",
                base / 2
            );
            base = (base * 2).min(MAX);
        }
        // At the top, delays still vary.
        let tops: std::collections::BTreeSet<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(tops.len() > 1);
        assert!(tops.iter().all(|d| *d <= MAX && *d >= MAX / 2));
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }

    #[test]
    fn two_gateways_do_not_retry_in_step() {
        let mut a = Backoff::new(1);
        let mut b = Backoff::new(2);
        let da: Vec<_> = (0..5).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }
}
