//! Log lines a client can trigger, at most one per second per kind.
//!
//! A flood of connections beyond the limit, or a burst of `accept` errors,
//! would otherwise write one line each (megabytes per second). Each kind of
//! such line has a [`LogLimit`]: the first line in a second is written, the
//! rest are counted, and the next line written says how many were left out.
//! Lock-free, so every thread shares one per kind. (No crate does exactly
//! this without pulling in a tracing subscriber, hence by hand.)

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Shortest time between two lines of one kind.
pub const LOG_INTERVAL_MS: u64 = 1_000;

/// The rate limit of one kind of log line.
#[derive(Debug, Default)]
pub struct LogLimit {
    /// When the next line may be written (ms on the server's clock).
    next_ms: AtomicU64,
    /// Lines left out since the last one written.
    suppressed: AtomicU64,
}

impl LogLimit {
    /// A limit that lets the first line through.
    pub const fn new() -> Self {
        LogLimit {
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// At `now_ms`: `Some(n)` if a line may be written now, `n` being how
    /// many were left out since the last one; `None` (and counted) if not.
    pub fn allow(&self, now_ms: u64) -> Option<u64> {
        let next = self.next_ms.load(Relaxed);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now_ms.saturating_add(LOG_INTERVAL_MS),
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// `" (N more since the last such line)"`, or nothing when none were left
/// out: the tail of a rate-limited line.
pub fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more like this not logged in the last second)")
    }
}

/// The limits of the server's client-triggered lines, one per kind.
#[derive(Debug, Default)]
pub struct Logs {
    /// A connection turned away with `busy`.
    pub busy: LogLimit,
    /// `accept` failed (out of descriptors or memory).
    pub accept: LogLimit,
    /// A connection reset because its replies made no progress.
    pub stall: LogLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_with_the_count_of_the_rest() {
        let l = LogLimit::new();
        assert_eq!(l.allow(5), Some(0));
        assert_eq!(l.allow(6), None);
        assert_eq!(l.allow(1004), None);
        assert_eq!(l.allow(1005), Some(2));
        assert_eq!(l.allow(5000), Some(0));
        assert_eq!(suppressed(0), "");
        assert!(suppressed(3).contains("3 more"));
    }

    #[test]
    fn threads_share_a_limit() {
        let l = LogLimit::new();
        let written: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| l.allow(10).is_some()).count() as u64))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(written, 1);
        assert_eq!(l.allow(2000), Some(3999));
    }
}
