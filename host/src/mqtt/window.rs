//! The readings in flight: published, not yet acknowledged (PUBACK). Pure
//! bookkeeping, apart from the I/O.
//!
//! Readings enter in id order. The event loop tells the packet id of each
//! QoS 1 publish as it sends it; a PUBACK names that packet id. Acks may
//! come out of order; only the contiguous acknowledged prefix leaves the
//! window, so the cursor never passes an unacknowledged reading.

use std::collections::VecDeque;

use crate::mqtt::payload::Row;

/// At most this many readings in flight at once.
pub const MAX_IN_FLIGHT: usize = 100;

#[derive(Debug)]
struct Slot {
    row: Row,
    pkid: Option<u16>,
    acked: bool,
}

/// Readings published and not yet acknowledged, oldest first.
#[derive(Debug, Default)]
pub struct Window {
    slots: VecDeque<Slot>,
    /// Index (from the front) of the first slot without a packet id.
    unassigned: usize,
}

impl Window {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Readings in flight.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Room for more.
    pub fn has_room(&self) -> bool {
        self.slots.len() < MAX_IN_FLIGHT
    }

    /// `row` was handed to the client, after every row before it.
    pub fn push(&mut self, row: Row) {
        self.slots.push_back(Slot {
            row,
            pkid: None,
            acked: false,
        });
    }

    /// The oldest reading without a packet id went out as `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(slot) = self.slots.get_mut(self.unassigned) {
            slot.pkid = Some(pkid);
            self.unassigned += 1;
        }
    }

    /// The broker acknowledged `pkid`. Returns the readings that are now
    /// acknowledged together with every reading before them, oldest first.
    pub fn acked(&mut self, pkid: u16) -> Vec<Row> {
        if let Some(slot) = self
            .slots
            .iter_mut()
            .take(self.unassigned)
            .find(|s| s.pkid == Some(pkid) && !s.acked)
        {
            slot.acked = true;
        }
        let mut done = Vec::new();
        while self.slots.front().is_some_and(|s| s.acked) {
            if let Some(slot) = self.slots.pop_front() {
                done.push(slot.row);
                self.unassigned = self.unassigned.saturating_sub(1);
            }
        }
        done
    }

    /// The connection is gone: every reading not yet acknowledged, oldest
    /// first (acknowledged ones behind an unacknowledged one included: the
    /// cursor has not passed them, so they go again).
    pub fn clear(&mut self) -> Vec<Row> {
        self.unassigned = 0;
        self.slots.drain(..).map(|s| s.row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envhub_core::Tenths;

    fn row(id: i64) -> Row {
        Row {
            id,
            ts_ms: 0,
            location: "x".into(),
            temp: Tenths(0),
            hum: Tenths(0),
            seq: None,
        }
    }

    fn ids(rows: Vec<Row>) -> Vec<i64> {
        rows.into_iter().map(|r| r.id).collect()
    }

    #[test]
    fn only_the_acknowledged_prefix_leaves() {
        let mut w = Window::new();
        for id in 1..=4 {
            w.push(row(id));
        }
        w.sent(7);
        w.sent(8);
        w.sent(9);
        // Id 4 has no packet id yet: its ack cannot be matched.
        assert!(ids(w.acked(8)).is_empty());
        assert_eq!(ids(w.acked(7)), [1, 2]);
        assert!(ids(w.acked(1)).is_empty(), "unknown pkid");
        w.sent(1);
        assert!(ids(w.acked(1)).is_empty(), "3 is still out");
        assert_eq!(ids(w.acked(9)), [3, 4]);
        assert!(w.is_empty());
    }

    #[test]
    fn packet_ids_are_reused_safely() {
        let mut w = Window::new();
        w.push(row(1));
        w.sent(1);
        assert_eq!(ids(w.acked(1)), [1]);
        w.push(row(2));
        w.sent(1);
        assert!(ids(w.acked(1)).len() == 1);
    }

    #[test]
    fn clear_gives_back_everything_unacknowledged_in_order() {
        let mut w = Window::new();
        for id in 1..=MAX_IN_FLIGHT as i64 {
            w.push(row(id));
            w.sent(id as u16);
        }
        assert!(!w.has_room());
        w.acked(3);
        assert_eq!(
            ids(w.clear()),
            (1..=MAX_IN_FLIGHT as i64).collect::<Vec<_>>()
        );
        assert!(w.has_room());
    }
}
