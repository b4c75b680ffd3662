//! An event loop's timers: when each connection must next be driven.
//!
//! A min-heap of `(deadline, connection key)`. Entries are never removed
//! when a connection re-arms or closes (a heap cannot find them cheaply):
//! a stale one only costs a drive that finds nothing to do when it fires.
//! But a connection that closes long before its deadline (the idle timeout
//! is 5 minutes by default) would leave its entry that long, so a flood of
//! short connections could grow the heap without bound. So once the entries
//! outnumber the connections by far, the stale ones are dropped in one
//! pass: amortised, a constant cost per entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Entries allowed beyond two per connection before stale ones are
/// dropped.
const SLACK: usize = 1024;

/// The deadlines of a loop's connections.
#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Timers {
    /// Connection `key` must be driven at `at`.
    pub fn arm(&mut self, at: u64, key: usize) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest deadline, if any.
    pub fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes the earliest entry if it is due at `now`: its deadline and key.
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, usize)> {
        match self.heap.peek() {
            Some(&Reverse((at, key))) if at <= now => {
                self.heap.pop();
                Some((at, key))
            }
            _ => None,
        }
    }

    /// Entries held (stale ones included).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops the stale entries once there are more than two per one of
    /// the `open` connections plus [`SLACK`]: an entry stays only if
    /// `armed(key)` is its deadline (the connection still exists and is
    /// armed for exactly that time).
    pub fn prune(&mut self, open: usize, armed: impl Fn(usize) -> Option<u64>) {
        if self.heap.len() <= open.saturating_mul(2).saturating_add(SLACK) {
            return;
        }
        self.heap
            .retain(|Reverse((at, key))| armed(*key) == Some(*at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_earliest_first() {
        let mut t = Timers::default();
        t.arm(30, 1);
        t.arm(10, 2);
        t.arm(20, 3);
        assert_eq!(t.next(), Some(10));
        assert_eq!(t.pop_due(5), None);
        assert_eq!(t.pop_due(25), Some((10, 2)));
        assert_eq!(t.pop_due(25), Some((20, 3)));
        assert_eq!(t.pop_due(25), None);
        assert_eq!(t.len(), 1);
    }

    /// 100,000 connections open and close, each armed for a deadline far
    /// ahead; 10 stay open. The heap stays bounded and keeps exactly the
    /// live connections' deadlines.
    #[test]
    fn closed_connections_do_not_pile_up() {
        let mut t = Timers::default();
        let live = |key: usize| (key % 10_000 == 0).then_some(300_000 + key as u64);
        let mut most = 0;
        for key in 0..100_000usize {
            t.arm(300_000 + key as u64, key);
            // A second entry, for a deadline it does not hold: stale.
            t.arm(300_000 + key as u64 + 1, key);
            let open = key / 10_000 + 1;
            t.prune(open, live);
            most = most.max(t.len());
        }
        assert!(most <= 2 * 10 + SLACK + 2, "heap grew to {most}");
        let mut kept = Vec::new();
        while let Some(entry) = t.pop_due(u64::MAX) {
            kept.push(entry);
        }
        for i in 0..10u64 {
            let entry = (300_000 + i * 10_000, i as usize * 10_000);
            assert!(kept.contains(&entry), "lost {entry:?}");
        }
    }
}
