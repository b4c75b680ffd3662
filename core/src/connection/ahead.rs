//! Readings whose replies wait for the hub.
//!
//! A hub may answer a reading later ([`Outcome::Pending`]): the host's
//! history acknowledges a reading only once the transaction holding it has
//! committed. The reply to such a reading sits at the head of the
//! connection's output as [`Reply::Awaiting`], and nothing after it is
//! written until the hub decides (replies stay in request order).
//!
//! Meanwhile the connection keeps taking the *readings* of a pipelined batch
//! (up to `WAIT` of them, kept in [`Ahead`]), submitting each, so that one
//! commit covers the whole batch. Any other line (a command, a line that
//! does not decode, a line not yet complete in the input, an overlong one)
//! stops it, unconsumed, until every reply before it is out. The shell
//! calls [`Connection::handle_input`] again when the hub signals, and each
//! ticket is settled into its reply: an ack, `store_full` or
//! `storage_error`.

use super::{Connection, State};
use crate::error::ErrorCode;
use crate::hub::{Hub, Outcome, Ticket};
use crate::limits::MAX_LINE;
use crate::reading::Reading;
use crate::reply::Reply;
use crate::request::{decode, Request};

/// Up to `WAIT` submitted readings behind the head of the output, with what
/// the hub answered when each was submitted. Filled, then emptied in order;
/// room is reclaimed once it is empty (a batch is submitted together and
/// settles together).
#[derive(Debug)]
pub(super) struct Ahead<const WAIT: usize> {
    items: heapless::Vec<(Outcome, Reading), WAIT, u8>,
    /// The next item to settle.
    next: u8,
}

impl<const WAIT: usize> Ahead<WAIT> {
    pub(super) const fn new() -> Self {
        Ahead {
            items: heapless::Vec::new(),
            next: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.items.is_full()
    }

    /// Callers check [`Ahead::is_full`] first.
    fn push(&mut self, outcome: Outcome, reading: Reading) {
        let _ = self.items.push((outcome, reading));
    }

    fn pop(&mut self) -> Option<(Outcome, Reading)> {
        let item = self.items.get(usize::from(self.next)).cloned()?;
        self.next += 1;
        if usize::from(self.next) >= self.items.len() {
            self.items.clear();
            self.next = 0;
        }
        Some(item)
    }
}

impl<const WAIT: usize> Connection<WAIT> {
    /// True while the next reply waits for the hub's answer about a reading.
    /// The shell then waits for the hub's signal (not for the socket) and
    /// calls [`Connection::handle_input`] again, with the input it kept.
    pub fn awaits_hub(&self) -> bool {
        self.awaited_ticket().is_some()
    }

    /// The ticket of the reading whose reply is next while it waits for the
    /// hub ([`Connection::awaits_hub`]): a shell whose hub can wake it per
    /// ticket waits for this one.
    pub fn awaited_ticket(&self) -> Option<Ticket> {
        if WAIT == 0 {
            return None;
        }
        match &self.pending {
            Some((Reply::Awaiting(ticket, _), _)) => Some(*ticket),
            _ => None,
        }
    }

    /// The reply for a reading the hub answered `outcome` about; errors are
    /// counted here, once. Without a queue (`WAIT` 0: shells whose hub
    /// answers at once) a `Pending` answer is not waited for: the reading
    /// was not kept as far as the client can know, `storage_error`. (This
    /// keeps all of the waiting out of the firmware's flash.)
    pub(super) fn settled<H: Hub + ?Sized>(
        &mut self,
        outcome: Outcome,
        reading: Reading,
        hub: &mut H,
    ) -> Reply {
        let code = match outcome {
            Outcome::Kept => return Reply::Stored(reading),
            Outcome::Pending(ticket) if WAIT > 0 => return Reply::Awaiting(ticket, reading),
            Outcome::Pending(_) => ErrorCode::StorageError,
            Outcome::StoreFull => ErrorCode::StoreFull,
            Outcome::StorageError => ErrorCode::StorageError,
        };
        hub.count_error();
        Reply::Error(code)
    }

    /// Asks the hub about an awaited head reply; false while it has no
    /// answer yet.
    pub(super) fn settle<H: Hub + ?Sized>(&mut self, hub: &mut H) -> bool {
        if WAIT == 0 {
            return true;
        }
        let Some((Reply::Awaiting(ticket, reading), _)) = &self.pending else {
            return true;
        };
        let outcome = hub.outcome(*ticket);
        if matches!(outcome, Outcome::Pending(_)) {
            return false;
        }
        let reading = reading.clone();
        let reply = self.settled(outcome, reading, hub);
        self.pending = Some((reply, 0));
        true
    }

    /// With nothing at the head, moves the oldest reading submitted ahead
    /// there; true if there was one.
    pub(super) fn next_awaited<H: Hub + ?Sized>(&mut self, hub: &mut H) -> bool {
        if WAIT == 0 || self.pending.is_some() {
            return false;
        }
        let Some((outcome, reading)) = self.ahead.pop() else {
            return false;
        };
        let reply = self.settled(outcome, reading, hub);
        self.pending = Some((reply, 0));
        true
    }

    /// While the head reply awaits the hub: takes the next line of `input`
    /// if it is a complete reading (submitting it) or blank, and returns
    /// the bytes consumed; `None` leaves it for later.
    pub(super) fn submit_ahead<H: Hub + ?Sized>(
        &mut self,
        now: u64,
        input: &[u8],
        hub: &mut H,
    ) -> Option<usize> {
        if WAIT == 0
            || !self.awaits_hub()
            || self.ahead.is_full()
            || self.discarding
            || !self.line.is_empty()
            || self.state != State::Open
        {
            return None;
        }
        let lf = input.iter().position(|&b| b == b'\n')?;
        let line = &input[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            return None;
        }
        if !line.iter().all(|&b| b == b' ' || b == b'\t') {
            let Ok(Request::Reading(reading)) = decode(line) else {
                return None;
            };
            // Room was checked above, so the push keeps it.
            let outcome = hub.submit(&reading, now);
            self.ahead.push(outcome, reading);
        }
        self.touch(now);
        Some(lf + 1)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::connection::{Close, Config, Mode, Progress};
    use crate::hub::LocalHub;
    use crate::limits::MAX_LOCATIONS;
    use crate::reading::Location;
    use crate::stats::{Counters, Stats};
    use crate::store::{Entry, Store, StoreFull};
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    /// A hub that keeps readings only when the test commits them, as the
    /// host's history does after a transaction.
    struct Deferred {
        store: Store,
        stats: Stats,
        /// Submitted, not yet decided.
        queued: Vec<(Ticket, Reading, u64)>,
        /// Decided: the ticket and what became of it.
        decided: Vec<(Ticket, Outcome)>,
        next: u64,
        /// How many times `submit` ran.
        submitted: usize,
    }

    impl Deferred {
        fn new() -> Self {
            let mut stats = Stats::new(0);
            stats.open();
            Deferred {
                store: Store::new(),
                stats,
                queued: Vec::new(),
                decided: Vec::new(),
                next: 0,
                submitted: 0,
            }
        }

        /// Decides everything queued as a committed transaction would.
        fn commit(&mut self) {
            for (ticket, reading, now) in core::mem::take(&mut self.queued) {
                let outcome = match self.store.insert(&reading, now) {
                    Ok(()) => {
                        self.stats.readings += 1;
                        Outcome::Kept
                    }
                    Err(StoreFull) => Outcome::StoreFull,
                };
                self.decided.push((ticket, outcome));
            }
        }

        /// Decides everything queued as a failed transaction would.
        fn fail(&mut self) {
            for (ticket, _, _) in core::mem::take(&mut self.queued) {
                self.decided.push((ticket, Outcome::StorageError));
            }
        }
    }

    impl Hub for Deferred {
        fn store(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
            LocalHub {
                store: &mut self.store,
                stats: &mut self.stats,
            }
            .store(reading, now)
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
            LocalHub {
                store: &mut self.store,
                stats: &mut self.stats,
            }
            .counters(now)
        }

        fn count_error(&mut self) {
            self.stats.errors += 1;
        }

        fn submit(&mut self, reading: &Reading, now: u64) -> Outcome {
            self.next += 1;
            self.submitted += 1;
            let ticket = Ticket(self.next);
            self.queued.push((ticket, reading.clone(), now));
            Outcome::Pending(ticket)
        }

        fn outcome(&mut self, ticket: Ticket) -> Outcome {
            match self.decided.iter().position(|(t, _)| *t == ticket) {
                Some(i) => self.decided.swap_remove(i).1,
                None => Outcome::Pending(ticket),
            }
        }
    }

    /// A connection that may submit 4 readings ahead, and its hub.
    struct Fixture {
        conn: Connection<4>,
        hub: Deferred,
        /// Input not consumed yet, as a shell keeps it.
        kept: Vec<u8>,
    }

    fn fixture() -> Fixture {
        Fixture {
            conn: Connection::with_queue(1, 0, config()),
            hub: Deferred::new(),
            kept: Vec::new(),
        }
    }

    fn config() -> Config {
        Config {
            mode: Mode::Sensor,
            idle_timeout_ms: 10_000,
            ..Config::default()
        }
    }

    impl Fixture {
        /// Adds `input` to what the shell keeps and drives the connection
        /// once with all of it; returns what was written.
        #[track_caller]
        fn drive(&mut self, input: &[u8]) -> String {
            self.kept.extend_from_slice(input);
            let mut out = [0u8; 4096];
            let p = self
                .conn
                .handle_input(0, &self.kept, &mut out, &mut self.hub);
            self.kept.drain(..p.consumed);
            String::from_utf8(out[..p.written].to_vec()).unwrap()
        }

        /// The shell's re-drive after the hub signalled.
        #[track_caller]
        fn wake(&mut self) -> String {
            self.drive(b"")
        }
    }

    fn reading(location: &str, seq: u32) -> String {
        format!("{{\"location\":\"{location}\",\"temp\":21.5,\"hum\":40,\"seq\":{seq}}}\n")
    }

    fn ack(location: &str, seq: u32) -> String {
        format!("{{\"ok\":true,\"location\":\"{location}\",\"temp\":21.5,\"hum\":40.0,\"seq\":{seq}}}\n")
    }

    fn error(code: &str) -> String {
        format!("{{\"ok\":false,\"error\":\"{code}\"}}\n")
    }

    const PING: &[u8] = b"{\"cmd\":\"ping\"}\n";
    const PONG: &str = "{\"ok\":true,\"pong\":true}\n";

    #[track_caller]
    fn batch(seqs: core::ops::Range<u32>) -> (Vec<u8>, String) {
        let mut input = Vec::new();
        let mut acks = String::new();
        for seq in seqs {
            input.extend_from_slice(reading("hall", seq).as_bytes());
            acks += &ack("hall", seq);
        }
        (input, acks)
    }

    // =========================================================================================
    // Acks wait for the hub
    // =========================================================================================

    #[test]
    fn an_ack_is_sent_only_after_the_hub_decides() {
        let mut f = fixture();
        assert_eq!(f.drive(reading("hall", 1).as_bytes()), "");
        assert!(f.conn.awaits_hub());
        assert_eq!(f.conn.awaited_ticket(), Some(Ticket(1)));
        assert!(!f.conn.wants_input());
        assert_eq!(f.hub.store.len(), 0);
        assert_eq!(f.wake(), "", "nothing decided yet");
        f.hub.commit();
        assert_eq!(f.wake(), ack("hall", 1));
        assert!(!f.conn.awaits_hub());
        assert_eq!(f.conn.awaited_ticket(), None);
        assert!(f.conn.wants_input());
        assert_eq!(f.hub.stats.readings, 1);
    }

    #[test]
    fn a_pipelined_batch_is_submitted_whole_before_the_first_commit() {
        let mut f = fixture();
        let (input, acks) = batch(0..5);
        assert_eq!(f.drive(&input), "");
        assert_eq!(f.hub.submitted, 5, "the head and 4 ahead");
        assert!(f.kept.is_empty());
        f.hub.commit();
        assert_eq!(f.wake(), acks);
    }

    #[test]
    fn a_full_queue_stops_taking_readings_until_it_drains() {
        let mut f = fixture();
        let (input, acks) = batch(0..8);
        assert_eq!(f.drive(&input), "");
        assert_eq!(f.hub.submitted, 5);
        assert_eq!(f.kept.len(), input.len() - 5 * reading("hall", 0).len());
        f.hub.commit();
        // The five acks go out, then the rest is taken in one go.
        let (_, first) = batch(0..5);
        assert_eq!(f.wake(), first);
        assert_eq!(f.hub.submitted, 8);
        assert!(f.kept.is_empty());
        f.hub.commit();
        let (_, rest) = batch(5..8);
        assert_eq!(f.wake(), rest);
        assert_eq!(format!("{first}{rest}"), acks);
    }

    #[test]
    fn a_command_after_awaited_readings_waits_and_replies_stay_in_order() {
        let mut f = fixture();
        let mut input = reading("hall", 1).into_bytes();
        input.extend_from_slice(PING);
        input.extend_from_slice(reading("hall", 2).as_bytes());
        assert_eq!(f.drive(&input), "");
        assert_eq!(f.hub.submitted, 1, "nothing passes the ping");
        assert_eq!(f.kept.len(), input.len() - reading("hall", 1).len());
        f.hub.commit();
        assert_eq!(f.wake(), format!("{}{PONG}", ack("hall", 1)));
        f.hub.commit();
        assert_eq!(f.wake(), ack("hall", 2));
    }

    #[test]
    fn bad_lines_and_partial_lines_wait_too_blank_lines_pass() {
        let mut f = fixture();
        let mut input = reading("hall", 1).into_bytes();
        input.extend_from_slice(b"\n \r\n");
        input.extend_from_slice(reading("hall", 2).as_bytes());
        input.extend_from_slice(b"{\"location\":\"hall\",\"temp\":999,\"hum\":1}\n");
        input.extend_from_slice(b"{\"location\":\"hall\"");
        assert_eq!(f.drive(&input), "");
        assert_eq!(f.hub.submitted, 2);
        f.hub.commit();
        assert_eq!(
            f.wake(),
            format!(
                "{}{}{{\"ok\":false,\"error\":\"invalid_field\",\"field\":\"temp\"}}\n",
                ack("hall", 1),
                ack("hall", 2)
            )
        );
        assert_eq!(
            f.kept, b"",
            "the partial line is buffered once nothing waits"
        );
        assert_eq!(f.drive(b",\"temp\":1,\"hum\":2}\n"), "");
        f.hub.commit();
        assert_eq!(
            f.wake(),
            "{\"ok\":true,\"location\":\"hall\",\"temp\":1.0,\"hum\":2.0}\n"
        );
    }

    #[test]
    fn an_overlong_line_is_reported_after_the_acks_before_it() {
        let mut f = fixture();
        let mut input = reading("hall", 1).into_bytes();
        input.extend_from_slice(&[b'x'; 600]);
        input.push(b'\n');
        input.extend_from_slice(PING);
        assert_eq!(f.drive(&input), "");
        f.hub.commit();
        assert_eq!(
            f.wake(),
            format!("{}{}{PONG}", ack("hall", 1), error("line_too_long"))
        );
    }

    // =========================================================================================
    // What the hub decides
    // =========================================================================================

    #[test]
    fn a_failed_write_answers_storage_error_counts_it_and_stores_nothing() {
        let mut f = fixture();
        let (input, _) = batch(0..3);
        assert_eq!(f.drive(&input), "");
        f.hub.fail();
        assert_eq!(f.wake(), error("storage_error").repeat(3));
        assert_eq!(f.hub.store.len(), 0);
        assert_eq!((f.hub.stats.readings, f.hub.stats.errors), (0, 3));
        // The next write succeeds: acks resume.
        assert_eq!(f.drive(reading("hall", 9).as_bytes()), "");
        f.hub.commit();
        assert_eq!(f.wake(), ack("hall", 9));
    }

    #[test]
    fn store_full_is_decided_by_the_hub_in_order() {
        let mut f = fixture();
        for i in 0..MAX_LOCATIONS {
            f.drive(reading(&format!("l{i}"), 0).as_bytes());
            f.hub.commit();
            assert_eq!(f.wake(), ack(&format!("l{i}"), 0));
        }
        let mut input = reading("new", 1).into_bytes();
        input.extend_from_slice(reading("l3", 2).as_bytes());
        assert_eq!(f.drive(&input), "");
        f.hub.commit();
        assert_eq!(f.wake(), format!("{}{}", error("store_full"), ack("l3", 2)));
        assert_eq!(f.hub.stats.errors, 1);
    }

    #[test]
    fn an_answer_may_come_for_part_of_a_batch() {
        let mut f = fixture();
        assert_eq!(f.drive(reading("a", 1).as_bytes()), "");
        f.hub.commit();
        assert_eq!(f.drive(reading("b", 2).as_bytes()), ack("a", 1));
        assert!(f.conn.awaits_hub());
        f.hub.commit();
        assert_eq!(f.wake(), ack("b", 2));
    }

    #[test]
    fn a_slow_hub_is_no_write_stall() {
        let mut f = fixture();
        let mut input = reading("hall", 1).into_bytes();
        input.extend_from_slice(reading("hall", 2).trim_end().as_bytes());
        assert_eq!(f.drive(&input), "");
        f.conn
            .handle_timeout(crate::limits::WRITE_STALL_MS + 1, &mut f.hub);
        assert_eq!(f.conn.poll_close(), None, "open, waiting");
        // Closing (EOF) with the final line's ack still waiting.
        f.conn.handle_eof();
        f.hub.commit();
        assert_eq!(f.wake(), ack("hall", 1));
        let later = crate::limits::WRITE_STALL_MS * 4;
        f.conn.handle_timeout(later, &mut f.hub);
        assert_eq!(f.conn.poll_close(), None, "draining, waiting");
        assert!(
            f.conn.poll_timeout().is_some_and(|due| due > later),
            "a deadline in the past makes the shell spin"
        );
        f.hub.commit();
        assert_eq!(f.wake(), ack("hall", 2));
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
    }

    // =========================================================================================
    // Closing while readings wait
    // =========================================================================================

    #[test]
    fn eof_sends_the_acks_then_closes() {
        let mut f = fixture();
        let mut input = reading("hall", 1).into_bytes();
        input.extend_from_slice(reading("hall", 2).trim_end().as_bytes());
        f.conn.handle_eof();
        assert_eq!(f.drive(&input), "");
        assert_eq!(f.conn.poll_close(), None);
        f.hub.commit();
        // The unterminated final line is answered once nothing waits before it.
        assert_eq!(f.wake(), ack("hall", 1));
        assert_eq!(f.conn.poll_close(), None);
        f.hub.commit();
        assert_eq!(f.wake(), ack("hall", 2));
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
    }

    #[test]
    fn shutdown_sends_the_acks_then_shutting_down() {
        let mut f = fixture();
        let (input, acks) = batch(0..2);
        assert_eq!(f.drive(&input), "");
        f.conn.handle_shutdown();
        assert_eq!(f.wake(), "");
        f.hub.commit();
        assert_eq!(f.wake(), format!("{acks}{}", error("shutting_down")));
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
    }

    #[test]
    fn an_ack_cut_off_by_a_small_window_resumes_unchanged() {
        let mut f = fixture();
        let (input, acks) = batch(0..3);
        f.kept.extend_from_slice(&input);
        let mut all = Vec::new();
        for step in 0..1000 {
            if step == 3 {
                f.hub.commit();
            }
            let mut out = [0u8; 7];
            let p: Progress = f.conn.handle_input(0, &f.kept, &mut out, &mut f.hub);
            f.kept.drain(..p.consumed);
            all.extend_from_slice(&out[..p.written]);
            if all.len() == acks.len() {
                break;
            }
        }
        assert_eq!(String::from_utf8(all).unwrap(), acks);
    }

    // =========================================================================================
    // No queue
    // =========================================================================================

    #[test]
    fn without_a_queue_a_pending_answer_is_storage_error() {
        let mut conn = Connection::new(1, 0, config());
        let mut hub = Deferred::new();
        let (input, _) = batch(0..2);
        let mut out = [0u8; 256];
        let p = conn.handle_input(0, &input, &mut out, &mut hub);
        assert_eq!(p.consumed, input.len());
        assert_eq!(
            core::str::from_utf8(&out[..p.written]).unwrap(),
            error("storage_error").repeat(2)
        );
        assert!(!conn.awaits_hub());
        assert_eq!(hub.stats.errors, 2);
    }
}
