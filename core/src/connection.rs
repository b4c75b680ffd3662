//! One client connection: line framing, answering, output, timers.
//!
//! The shell owns the socket; the connection owns everything else. Methods
//! come in two groups, as in quinn-proto: `handle_*` take what happened
//! (bytes received, end of input, shutdown, a timer firing) with the time
//! `now` in milliseconds, and `poll_*` say what the shell must do next
//! (when to wake, whether to close).
//!
//! Reading from the client pauses while a reply is not fully written
//! ([`Connection::wants_input`] is false): TCP backpressure, not buffering.

use crate::error::ErrorCode;
use crate::hub::Hub;
use crate::limits::{CLOSE_LINGER_MS, MAX_LINE, SHUTDOWN_GRACE_MS, WRITE_STALL_MS};
use crate::reply::{Reply, Walk, BUSY};
use crate::request::{decode, Request};
use crate::sink::Sink;

mod ahead;
use ahead::Ahead;

pub use crate::config::{Config, Mode};

/// What [`Connection::handle_input`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "the shell must send `written` bytes and drop `consumed` input bytes"]
pub struct Progress {
    /// Input bytes consumed; the shell keeps the rest for the next call.
    pub consumed: usize,
    /// Bytes written to the output buffer, to be sent in order.
    pub written: usize,
}

/// How the shell must end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Close {
    /// Everything was written: send what is buffered, then FIN.
    Graceful,
    /// The peer stopped reading (owed output made no progress for the
    /// write stall or close linger time), or the shutdown grace ran out:
    /// reset, dropping what is buffered.
    Abort,
}

/// Why a connection stopped reading, for the shell's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reason {
    /// The client sent `bye`.
    Bye,
    /// The client closed its sending side.
    ClientClosed,
    /// No complete line for the idle timeout.
    IdleTimeout,
    /// The server is stopping.
    Shutdown,
    /// Owed output made no progress for [`WRITE_STALL_MS`] while it was
    /// reading (the peer sends but never reads): aborted.
    WriteStall,
}

impl Reason {
    /// A few words for a log line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Bye => "bye",
            Reason::ClientClosed => "client closed",
            Reason::IdleTimeout => "idle timeout",
            Reason::Shutdown => "server shutting down",
            Reason::WriteStall => "it stopped reading its replies",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading lines.
    Open,
    /// No more input is read; the owed output drains, then it closes.
    Draining,
    /// Done: the shell closes.
    Closed(Close),
}

/// The line buffer holds one line and, past its 512 bytes, one CR that may
/// turn out to precede the LF.
const LINE_BUF: usize = MAX_LINE + 1;

/// One client's protocol state.
///
/// `WAIT` is how many readings may wait for a hub that answers later
/// ([`crate::Outcome::Pending`]) besides the one whose reply is next: see
/// [`Connection::with_queue`]. Shells whose hub answers at once keep the
/// default 0, which costs no memory.
#[derive(Debug)]
pub struct Connection<const WAIT: usize = 0> {
    id: u64,
    config: Config,
    state: State,
    /// The start of an unterminated line.
    line: heapless::Vec<u8, LINE_BUF>,
    /// Skipping the rest of an overlong line, up to its LF.
    discarding: bool,
    /// The reply being written and how much of its current chunk is out.
    pending: Option<(Reply, usize)>,
    /// A closing error owed after `pending`.
    trailer: Option<ErrorCode>,
    /// The client closed its sending side.
    eof: bool,
    /// The server is stopping.
    shutdown: bool,
    /// When the idle timeout fires.
    idle_deadline: u64,
    /// When a connection whose owed output makes no progress is aborted
    /// (`u64::MAX` while nothing is owed and it is reading).
    stall_deadline: u64,
    /// When a stopping connection is aborted whatever it does (`u64::MAX`
    /// until the first call with a time after [`Connection::handle_shutdown`]).
    shutdown_deadline: u64,
    /// Why it stopped reading, once it did.
    reason: Option<Reason>,
    /// Readings submitted while an earlier reply waits for the hub.
    ahead: Ahead<WAIT>,
}

impl Connection {
    /// A new connection with id `id` (from [`crate::Stats::open`] or the
    /// shell's own counter), accepted at `now`, for a hub that answers
    /// readings at once ([`crate::LocalHub`]). A hub that answers
    /// [`crate::Outcome::Pending`] needs [`Connection::with_queue`]; here
    /// such a reading is answered `storage_error`.
    pub fn new(id: u64, now: u64, config: Config) -> Self {
        Self::with_queue(id, now, config)
    }
}

impl<const WAIT: usize> Connection<WAIT> {
    /// Like [`Connection::new`], for a hub that answers readings later: up
    /// to `WAIT` further readings of a pipelined batch are submitted while
    /// the first one waits (so one disk commit can cover them all), and
    /// their replies follow in request order once the hub decides.
    pub fn with_queue(id: u64, now: u64, config: Config) -> Self {
        Connection {
            id,
            config,
            state: State::Open,
            line: heapless::Vec::new(),
            discarding: false,
            pending: None,
            trailer: None,
            eof: false,
            shutdown: false,
            idle_deadline: config.idle_deadline(now),
            stall_deadline: u64::MAX,
            shutdown_deadline: u64::MAX,
            reason: None,
            ahead: Ahead::new(),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The configuration it was made with.
    pub fn config(&self) -> Config {
        self.config
    }

    // ----- input ---------------------------------------------------------

    /// Takes received bytes and writes what is owed into `out`.
    ///
    /// `input` is every received byte not yet consumed (it may be empty:
    /// then this only writes owed output). First the rest of an unfinished
    /// reply is written; then lines are read and answered, each reply
    /// written straight into `out`, until the input is used up or a reply
    /// does not fit. Bytes after that stay unconsumed: the shell offers them
    /// again once it has sent `out`.
    pub fn handle_input<H: Hub + ?Sized>(
        &mut self,
        now: u64,
        input: &[u8],
        out: &mut [u8],
        hub: &mut H,
    ) -> Progress {
        self.arm_shutdown(now);
        let mut sink = Sink::new(out);
        let mut consumed = 0;
        let clear = self.flush(&mut sink, hub);
        if (clear || self.awaits_hub()) && self.state == State::Open {
            consumed = match self.config.mode {
                Mode::Sensor => self.read_lines(now, input, &mut sink, hub),
                Mode::Echo => {
                    let n = sink.put_raw(input);
                    if n > 0 {
                        self.touch(now);
                    }
                    n
                }
            };
            if consumed == input.len() && self.pending.is_none() {
                self.finish_input(now, &mut sink, hub);
            }
        }
        let written = sink.len();
        self.watch_output(now, written);
        if self.state == State::Draining && self.pending.is_none() && self.trailer.is_none() {
            self.state = State::Closed(Close::Graceful);
        }
        Progress { consumed, written }
    }

    /// Writes owed output when the shell has no unconsumed input (after
    /// EOF, shutdown or a timeout, or while a long reply drains).
    pub fn poll_transmit<H: Hub + ?Sized>(
        &mut self,
        now: u64,
        out: &mut [u8],
        hub: &mut H,
    ) -> usize {
        self.handle_input(now, &[], out, hub).written
    }

    /// The client closed its sending side. Once the input given so far is
    /// consumed, an unterminated final line is answered as if it had its LF;
    /// then the connection closes.
    pub fn handle_eof(&mut self) {
        self.eof = true;
    }

    /// The server is stopping. Complete lines in the input still given are
    /// answered; then a partial line is dropped, `shutting_down` is sent
    /// (nothing in echo mode) and the connection closes.
    ///
    /// The shutdown grace ([`SHUTDOWN_GRACE_MS`]) runs from the next call
    /// that passes the time (the shell's next `handle_input`,
    /// `poll_transmit` or `handle_timeout`): a connection still open then
    /// is aborted, even if its peer keeps reading slowly.
    pub fn handle_shutdown(&mut self) {
        self.shutdown = true;
    }

    /// Fires the timers due at `now`: the idle timeout (`idle_timeout`, then
    /// close), the write stall (owed output made no progress for
    /// [`WRITE_STALL_MS`] while reading, or [`CLOSE_LINGER_MS`] while
    /// closing: abort) and the shutdown grace (abort).
    // A cold path: kept out of line, which keeps the firmware in its flash
    // budget.
    #[inline(never)]
    pub fn handle_timeout<H: Hub + ?Sized>(&mut self, now: u64, hub: &mut H) {
        self.arm_shutdown(now);
        match self.state {
            State::Closed(_) => {}
            _ if now >= self.shutdown_deadline => {
                self.reason.get_or_insert(Reason::Shutdown);
                self.state = State::Closed(Close::Abort);
            }
            State::Open if self.has_output() && now >= self.stall_deadline => {
                self.reason = Some(Reason::WriteStall);
                self.state = State::Closed(Close::Abort);
            }
            State::Open if now >= self.idle_deadline => {
                self.close_with(now, Reason::IdleTimeout, hub);
            }
            // A reply waiting for the hub is no stall; look again a linger
            // later (never a deadline in the past: the shell would spin).
            State::Draining if now >= self.stall_deadline && self.awaits_hub() => {
                self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
            }
            State::Draining if now >= self.stall_deadline => {
                self.state = State::Closed(Close::Abort);
            }
            _ => {}
        }
    }

    // ----- output --------------------------------------------------------

    /// When [`Connection::handle_timeout`] must next run, if ever.
    #[inline(never)] // called from several places in every shell
    pub fn poll_timeout(&self) -> Option<u64> {
        let due = match self.state {
            State::Open => self.idle_deadline.min(self.stall_deadline),
            State::Draining => self.stall_deadline,
            State::Closed(_) => return None,
        };
        Some(due.min(self.shutdown_deadline)).filter(|&due| due != u64::MAX)
    }

    /// `Some` once the shell must close the connection, and how.
    pub fn poll_close(&self) -> Option<Close> {
        match self.state {
            State::Closed(how) => Some(how),
            _ => None,
        }
    }

    /// Why the connection stopped reading (`None` while it reads): for the
    /// shell's log when it closes.
    pub fn close_reason(&self) -> Option<Reason> {
        self.reason
    }

    /// True while the connection reads input: no reply is waiting for room.
    /// When false, the shell stops reading from the socket.
    pub fn wants_input(&self) -> bool {
        self.state == State::Open && self.pending.is_none()
    }

    /// True while output is owed (a reply not fully written, or a closing
    /// error not yet written).
    pub fn has_output(&self) -> bool {
        self.pending.is_some() || self.trailer.is_some()
    }

    // ----- internals -----------------------------------------------------

    fn touch(&mut self, now: u64) {
        self.idle_deadline = self.config.idle_deadline(now);
    }

    /// Starts the shutdown grace at the first time seen after
    /// [`Connection::handle_shutdown`].
    fn arm_shutdown(&mut self, now: u64) {
        if self.shutdown && self.shutdown_deadline == u64::MAX {
            self.shutdown_deadline = now.saturating_add(SHUTDOWN_GRACE_MS);
        }
    }

    /// Keeps the write-stall deadline after a call that wrote `written`
    /// bytes: output owed while reading must progress within
    /// [`WRITE_STALL_MS`], while closing within [`CLOSE_LINGER_MS`].
    fn watch_output(&mut self, now: u64, written: usize) {
        match self.state {
            // A reply waiting for the hub is not output the peer fails to take.
            State::Open if !self.has_output() || self.awaits_hub() => {
                self.stall_deadline = u64::MAX;
            }
            State::Open if written > 0 || self.stall_deadline == u64::MAX => {
                self.stall_deadline = now.saturating_add(WRITE_STALL_MS);
            }
            State::Draining if written > 0 => {
                self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
            }
            _ => {}
        }
    }

    /// Writes the unfinished reply, then the trailer; true when nothing is
    /// left owed.
    fn flush<H: Hub + ?Sized>(&mut self, sink: &mut Sink<'_>, hub: &mut H) -> bool {
        loop {
            if !self.settle(hub) {
                return false;
            }
            if let Some((reply, offset)) = &mut self.pending {
                if !reply.write(offset, sink, hub) {
                    return false;
                }
                self.pending = None;
            }
            if self.next_awaited(hub) {
                continue;
            }
            match self.trailer.take() {
                Some(code) => self.pending = Some((Reply::Error(code), 0)),
                None => return true,
            }
        }
    }

    /// Queues a reply and writes what fits.
    fn answer<H: Hub + ?Sized>(&mut self, mut reply: Reply, sink: &mut Sink<'_>, hub: &mut H) {
        let mut offset = 0;
        if !reply.write(&mut offset, sink, hub) {
            self.pending = Some((reply, offset));
        }
    }

    /// Stops reading: the owed output drains, then the connection closes.
    fn drain(&mut self, now: u64, reason: Reason) {
        self.state = State::Draining;
        self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
        self.reason = Some(reason);
    }

    /// Stops reading for the server's own `reason`, owing its error reply
    /// (nothing in echo mode) before closing.
    fn close_with<H: Hub + ?Sized>(&mut self, now: u64, reason: Reason, hub: &mut H) {
        if self.config.mode == Mode::Sensor {
            hub.count_error();
            self.trailer = Some(match reason {
                Reason::IdleTimeout => ErrorCode::IdleTimeout,
                _ => ErrorCode::ShuttingDown,
            });
        }
        self.drain(now, reason);
    }

    /// Reads lines from `input` until it is used up or a reply is pending;
    /// returns the bytes consumed.
    fn read_lines<H: Hub + ?Sized>(
        &mut self,
        now: u64,
        input: &[u8],
        sink: &mut Sink<'_>,
        hub: &mut H,
    ) -> usize {
        let mut at = 0;
        while at < input.len() && self.state == State::Open {
            if self.pending.is_some() {
                // Only readings may go ahead of a reply that waits for the hub.
                match self.submit_ahead(now, &input[at..], hub) {
                    Some(n) => {
                        at += n;
                        continue;
                    }
                    None => break,
                }
            }
            let rest = &input[at..];
            // `memchr` looks at a word (or a vector) at a time; on a
            // bare-metal target (the firmware) a plain loop, for flash.
            #[cfg(not(target_os = "none"))]
            let lf = memchr::memchr(b'\n', rest);
            #[cfg(target_os = "none")]
            let lf = rest.iter().position(|&b| b == b'\n');
            let Some(lf) = lf else {
                // No LF yet: keep the start of the line.
                if !self.discarding {
                    self.buffer_partial(rest, sink, hub);
                }
                at = input.len();
                break;
            };
            at += lf + 1;
            self.touch(now);
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let segment = &rest[..lf];
            if self.line.is_empty() {
                self.line_done(now, segment, sink, hub);
            } else if self.line.extend_from_slice(segment).is_ok() {
                let line = core::mem::take(&mut self.line);
                self.line_done(now, &line, sink, hub);
            } else {
                self.line.clear();
                self.error(ErrorCode::LineTooLong, sink, hub);
            }
        }
        at
    }

    /// Keeps the start of a line that has no LF yet, or answers
    /// `line_too_long` as soon as it is certain.
    fn buffer_partial<H: Hub + ?Sized>(&mut self, part: &[u8], sink: &mut Sink<'_>, hub: &mut H) {
        let total = self.line.len() + part.len();
        // 512 bytes plus a CR are still a line that may end well.
        let may_fit = total <= MAX_LINE || (total == LINE_BUF && part.last() == Some(&b'\r'));
        if may_fit && self.line.extend_from_slice(part).is_ok() {
            return;
        }
        self.line.clear();
        self.discarding = true;
        self.error(ErrorCode::LineTooLong, sink, hub);
    }

    /// Answers one complete line (without its LF).
    fn line_done<H: Hub + ?Sized>(
        &mut self,
        now: u64,
        line: &[u8],
        sink: &mut Sink<'_>,
        hub: &mut H,
    ) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE {
            self.error(ErrorCode::LineTooLong, sink, hub);
            return;
        }
        if line.iter().all(|&b| b == b' ' || b == b'\t') {
            return;
        }
        let reply = match decode(line) {
            Err(code) => return self.error(code, sink, hub),
            Ok(Request::Reading(reading)) => {
                let outcome = hub.submit(&reading, now);
                self.settled(outcome, reading, hub)
            }
            Ok(Request::Ping) => Reply::Pong,
            Ok(Request::Bye) => {
                self.drain(now, Reason::Bye);
                Reply::Bye
            }
            Ok(Request::Stats) => Reply::Stats {
                client: self.id,
                counters: hub.counters(now),
            },
            Ok(Request::Latest(None)) => Reply::All(Walk::new(now)),
            Ok(Request::Latest(Some(location))) => match hub.get(&location) {
                Some(entry) => Reply::One { entry, at: now },
                None => return self.error(ErrorCode::UnknownLocation, sink, hub),
            },
        };
        self.answer(reply, sink, hub);
    }

    fn error<H: Hub + ?Sized>(&mut self, code: ErrorCode, sink: &mut Sink<'_>, hub: &mut H) {
        hub.count_error();
        self.answer(Reply::Error(code), sink, hub);
    }

    /// After EOF or shutdown, once every given byte is consumed: the input
    /// is over.
    fn finish_input<H: Hub + ?Sized>(&mut self, now: u64, sink: &mut Sink<'_>, hub: &mut H) {
        if self.state != State::Open {
            return;
        }
        if self.shutdown {
            self.line.clear();
            self.close_with(now, Reason::Shutdown, hub);
            self.flush(sink, hub);
        } else if self.eof {
            let line = core::mem::take(&mut self.line);
            if !self.discarding && !line.is_empty() && self.config.mode == Mode::Sensor {
                self.line_done(now, &line, sink, hub);
            }
            if self.state == State::Open {
                self.drain(now, Reason::ClientClosed);
            }
        }
    }
}

/// What a shell at its connection limit sends before closing the new
/// connection: `busy` (counted as an error), or nothing in echo mode.
pub fn turn_away<H: Hub + ?Sized>(mode: Mode, hub: &mut H) -> &'static [u8] {
    match mode {
        Mode::Sensor => {
            hub.count_error();
            BUSY
        }
        Mode::Echo => b"",
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::limits::MAX_LOCATIONS;
    use crate::testing::Driver;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    const PING: &[u8] = b"{\"cmd\":\"ping\"}\n";
    const PONG: &str = "{\"ok\":true,\"pong\":true}\n";

    type Fixture = Driver;

    fn fixture() -> Fixture {
        fixture_with(Config {
            mode: Mode::Sensor,
            idle_timeout_ms: 10_000,
            ..Config::default()
        })
    }

    fn fixture_with(config: Config) -> Fixture {
        Driver::new(config)
    }

    fn error(code: &str) -> String {
        format!("{{\"ok\":false,\"error\":\"{code}\"}}\n")
    }

    fn field_error(code: &str, field: &str) -> String {
        format!("{{\"ok\":false,\"error\":\"{code}\",\"field\":\"{field}\"}}\n")
    }

    /// A valid ping line padded with spaces to exactly `len` bytes.
    fn padded_ping(len: usize) -> Vec<u8> {
        let mut line = b"{\"cmd\":\"ping\"}".to_vec();
        line.resize(len, b' ');
        line
    }

    // =========================================================================================
    // Open: framing
    // =========================================================================================

    #[test]
    fn ping_is_answered() {
        fixture().recv(PING, PONG);
    }

    #[test]
    fn pipelined_lines_are_answered_in_order() {
        let mut f = fixture();
        let input = b"{\"cmd\":\"ping\"}\n{\"cmd\":\"nope\"}\n{\"cmd\":\"ping\"}\n";
        f.recv(input, &format!("{PONG}{}{PONG}", error("unknown_cmd")));
    }

    #[test]
    fn a_line_split_byte_by_byte_gets_one_reply() {
        let mut f = fixture();
        let mut all = String::new();
        for b in PING {
            all += &f.send(core::slice::from_ref(b));
        }
        assert_eq!(all, PONG);
    }

    #[test]
    fn crlf_is_accepted_and_one_cr_dropped() {
        let mut f = fixture();
        f.recv(b"{\"cmd\":\"ping\"}\r\n", PONG);
        // A second CR is JSON whitespace inside the line.
        f.recv(b"{\"cmd\":\"ping\"}\r\r\n", PONG);
    }

    #[test]
    fn blank_lines_get_no_reply() {
        let mut f = fixture();
        f.recv_nothing(b"\n");
        f.recv_nothing(b"\r\n");
        f.recv_nothing(b"   \t \n");
        f.recv_nothing(b" \t\r\n");
        f.recv(b"\n\n{\"cmd\":\"ping\"}\n\n", PONG);
    }

    #[test]
    fn a_lone_cr_line_is_not_blank() {
        let mut f = fixture();
        f.recv(b"\r\r\n", &error("invalid_json"));
    }

    #[test]
    fn line_of_exactly_512_bytes_is_accepted() {
        let mut f = fixture();
        let mut line = padded_ping(512);
        line.push(b'\n');
        f.recv(&line, PONG);
    }

    #[test]
    fn line_of_512_bytes_with_crlf_is_accepted() {
        let mut f = fixture();
        let mut line = padded_ping(512);
        line.extend_from_slice(b"\r\n");
        f.recv(&line, PONG);
        // The same, with the CR and the LF in separate segments.
        let mut f = fixture();
        let mut line = padded_ping(512);
        line.push(b'\r');
        f.recv_nothing(&line);
        f.recv(b"\n", PONG);
    }

    #[test]
    fn line_of_513_bytes_is_too_long_and_the_connection_stays_usable() {
        let mut f = fixture();
        let mut line = padded_ping(513);
        line.push(b'\n');
        line.extend_from_slice(PING);
        f.recv(&line, &format!("{}{PONG}", error("line_too_long")));
        assert_eq!(f.stats.errors, 1);
    }

    #[test]
    fn a_long_line_in_pieces_gets_exactly_one_reply() {
        let mut f = fixture();
        let mut all = f.send(&[b'x'; 300]);
        all += &f.send(&[b'x'; 300]);
        all += &f.send(&[b'x'; 3000]);
        all += &f.send(b"xx\n");
        assert_eq!(all, error("line_too_long"));
        f.recv(PING, PONG);
    }

    #[test]
    fn overlong_line_is_reported_as_soon_as_it_is_certain() {
        let mut f = fixture();
        f.recv_nothing(&padded_ping(512));
        f.recv(b"x", &error("line_too_long"));
        f.recv_nothing(b"more junk {\"cmd\":\"ping\"}");
        f.recv(b"\n", "");
        f.recv(PING, PONG);
    }

    #[test]
    fn cr_past_512_bytes_followed_by_more_is_too_long() {
        let mut f = fixture();
        let mut line = padded_ping(512);
        line.push(b'\r');
        f.recv_nothing(&line);
        f.recv(b" \n", &error("line_too_long"));
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut f = fixture();
        f.recv(
            b"{\"location\":\"\xff\",\"temp\":1,\"hum\":1}\n",
            &error("invalid_utf8"),
        );
        f.recv(PING, PONG);
    }

    #[test]
    fn a_tiny_output_window_gives_the_same_bytes() {
        let input = b"{\"location\":\"k\",\"temp\":1,\"hum\":2,\"seq\":3}\n{\"cmd\":\"latest\"}\n{\"cmd\":\"stats\"}\nbad\n";
        let mut big = fixture();
        let expected = big.send(input);
        for window in [1, 2, 3, 7, 16] {
            let mut f = fixture();
            f.windows = std::vec![window];
            assert_eq!(f.send(input), expected, "window {window}");
        }
    }

    #[test]
    fn input_is_not_consumed_while_a_reply_waits_for_room() {
        let mut f = fixture();
        let input = b"{\"cmd\":\"ping\"}\n{\"cmd\":\"ping\"}\n";
        let mut out = [0u8; 10];
        let p = f.step(input, &mut out);
        assert_eq!(
            p,
            Progress {
                consumed: 15,
                written: 10
            }
        );
        assert!(!f.conn.wants_input());
        assert!(f.conn.has_output());
        let mut out = [0u8; 64];
        let p = f.step(&input[15..], &mut out);
        assert_eq!(p.consumed, 15);
        assert_eq!(
            &out[..p.written],
            &b",\"pong\":true}\n{\"ok\":true,\"pong\":true}\n"[..]
        );
        assert!(f.conn.wants_input());
    }

    // =========================================================================================
    // Open: readings and commands
    // =========================================================================================

    #[test]
    fn a_reading_is_stored_and_acknowledged() {
        let mut f = fixture();
        f.recv(
            b"{\"location\":\"living_room\",\"temp\":25.5,\"hum\":60,\"seq\":7}\n",
            "{\"ok\":true,\"location\":\"living_room\",\"temp\":25.5,\"hum\":60.0,\"seq\":7}\n",
        );
        f.recv(
            b"{\"location\":\"kitchen\",\"temp\":-0.04,\"hum\":0}\n",
            "{\"ok\":true,\"location\":\"kitchen\",\"temp\":0.0,\"hum\":0.0}\n",
        );
        assert_eq!(f.stats.readings, 2);
        assert_eq!(f.store.len(), 2);
    }

    #[test]
    fn a_bad_reading_changes_nothing() {
        let mut f = fixture();
        f.recv(
            b"{\"location\":\"a\",\"temp\":200,\"hum\":1}\n",
            &field_error("invalid_field", "temp"),
        );
        f.recv(
            b"{\"location\":\"a\",\"hum\":1}\n",
            &field_error("missing_field", "temp"),
        );
        assert_eq!(f.store.len(), 0);
        assert_eq!(f.stats.readings, 0);
        assert_eq!(f.stats.errors, 2);
    }

    #[test]
    fn latest_lists_every_location_sorted_bytewise() {
        let mut f = fixture();
        f.now = 100;
        f.send(b"{\"location\":\"b\",\"temp\":1,\"hum\":2}\n");
        f.now = 150;
        f.send(b"{\"location\":\"B\",\"temp\":-1.25,\"hum\":99.95}\n");
        f.send(b"{\"location\":\"a\",\"temp\":3,\"hum\":4}\n");
        f.now = 400;
        f.recv(
            b"{\"cmd\":\"latest\"}\n",
            "{\"ok\":true,\"readings\":[\
             {\"location\":\"B\",\"temp\":-1.3,\"hum\":100.0,\"age_ms\":250},\
             {\"location\":\"a\",\"temp\":3.0,\"hum\":4.0,\"age_ms\":250},\
             {\"location\":\"b\",\"temp\":1.0,\"hum\":2.0,\"age_ms\":300}]}\n",
        );
    }

    #[test]
    fn latest_of_an_empty_store_is_an_empty_list() {
        fixture().recv(b"{\"cmd\":\"latest\"}\n", "{\"ok\":true,\"readings\":[]}\n");
    }

    #[test]
    fn latest_for_one_location() {
        let mut f = fixture();
        f.send(b"{\"location\":\"x\",\"temp\":1,\"hum\":2}\n");
        f.send(b"{\"location\":\"y\",\"temp\":1,\"hum\":2}\n");
        f.now = 5;
        f.recv(
            b"{\"cmd\":\"latest\",\"location\":\"y\"}\n",
            "{\"ok\":true,\"readings\":[{\"location\":\"y\",\"temp\":1.0,\"hum\":2.0,\"age_ms\":5}]}\n",
        );
        f.recv(
            b"{\"cmd\":\"latest\",\"location\":\"z\"}\n",
            &error("unknown_location"),
        );
    }

    #[test]
    fn a_full_latest_streams_through_a_small_window_unchanged() {
        let mut f = fixture();
        for i in 0..MAX_LOCATIONS {
            let line = format!("{{\"location\":\"{:0>32}\",\"temp\":{i},\"hum\":{i}}}\n", i);
            f.send(line.as_bytes());
        }
        let whole = f.send(b"{\"cmd\":\"latest\"}\n");
        assert!(whole.len() > 5000, "{}", whole.len());
        assert_eq!(whole.matches("\"location\"").count(), MAX_LOCATIONS);
        for window in [1, 64, 100, 1024] {
            f.windows = std::vec![window];
            assert_eq!(f.send(b"{\"cmd\":\"latest\"}\n"), whole, "window {window}");
        }
    }

    #[test]
    fn latest_sees_each_location_once_when_the_store_changes_mid_reply() {
        let mut f = fixture();
        for name in ["b", "d", "f"] {
            f.send(format!("{{\"location\":\"{name}\",\"temp\":1,\"hum\":1}}\n").as_bytes());
        }
        let mut out = [0u8; 40];
        let mut text = Vec::new();
        let p = f.step(b"{\"cmd\":\"latest\"}\n", &mut out);
        text.extend_from_slice(&out[..p.written]);
        // Another connection stores a location before and one after the cursor.
        let mut other = Connection::new(2, 0, Config::default());
        let mut scratch = [0u8; 256];
        let _ = other.handle_input(
            0,
            b"{\"location\":\"a\",\"temp\":1,\"hum\":1}\n{\"location\":\"e\",\"temp\":1,\"hum\":1}\n",
            &mut scratch,
            &mut f.hub(),
        );
        text.extend_from_slice(f.send(b"").as_bytes());
        let text = String::from_utf8(text).unwrap();
        let names: Vec<&str> = text
            .split("\"location\":\"")
            .skip(1)
            .map(|s| &s[..1])
            .collect();
        assert_eq!(names, ["b", "d", "e", "f"], "{text}");
    }

    #[test]
    fn store_full_only_for_a_new_location() {
        let mut f = fixture();
        for i in 0..MAX_LOCATIONS {
            let line = format!("{{\"location\":\"l{i}\",\"temp\":1,\"hum\":1}}\n");
            assert!(f.send(line.as_bytes()).starts_with("{\"ok\":true"));
        }
        f.recv(
            b"{\"location\":\"new\",\"temp\":1,\"hum\":1}\n",
            &error("store_full"),
        );
        f.recv(
            b"{\"location\":\"l5\",\"temp\":2,\"hum\":1}\n",
            "{\"ok\":true,\"location\":\"l5\",\"temp\":2.0,\"hum\":1.0}\n",
        );
        // An invalid reading reports its field error, not store_full.
        f.recv(
            b"{\"location\":\"new\",\"temp\":1,\"hum\":101}\n",
            &field_error("invalid_field", "hum"),
        );
    }

    #[test]
    fn stats_counts_everything() {
        let mut f = fixture();
        let _second = f.stats.open();
        f.now = 1234;
        f.send(b"{\"location\":\"a\",\"temp\":1,\"hum\":1}\n");
        f.send(b"{\"location\":\"a\",\"temp\":2,\"hum\":1}\n");
        f.send(b"garbage\n");
        f.recv(
            b"{\"cmd\":\"stats\"}\n",
            "{\"ok\":true,\"client\":1,\"clients\":2,\"readings\":2,\"errors\":1,\"locations\":1,\"uptime_ms\":1234}\n",
        );
    }

    #[test]
    fn bye_answers_then_closes_and_reads_nothing_more() {
        let mut f = fixture();
        let mut out = [0u8; 128];
        let input = b"{\"cmd\":\"bye\"}\n{\"cmd\":\"ping\"}\n";
        let p = f.step(input, &mut out);
        assert_eq!(&out[..p.written], b"{\"ok\":true,\"bye\":true}\n");
        assert_eq!(p.consumed, 14);
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
        assert_eq!(f.conn.close_reason(), Some(Reason::Bye));
        assert!(!f.conn.wants_input());
    }

    // =========================================================================================
    // End of input
    // =========================================================================================

    #[test]
    fn eof_answers_an_unterminated_final_line_then_closes() {
        let mut f = fixture();
        f.recv_nothing(b"{\"cmd\":\"ping\"}");
        f.conn.handle_eof();
        f.recv(b"", PONG);
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
        assert_eq!(f.conn.close_reason(), Some(Reason::ClientClosed));
    }

    #[test]
    fn eof_after_complete_lines_just_closes() {
        let mut f = fixture();
        f.conn.handle_eof();
        f.recv(PING, PONG);
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
    }

    #[test]
    fn eof_inside_an_overlong_line_adds_nothing() {
        let mut f = fixture();
        f.recv(&[b' '; 600], &error("line_too_long"));
        f.conn.handle_eof();
        f.recv_nothing(b"");
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
    }

    #[test]
    fn eof_drops_one_cr_of_the_final_line() {
        let mut f = fixture();
        let mut line = padded_ping(512);
        line.push(b'\r');
        f.conn.handle_eof();
        f.recv(&line, PONG);
    }

    // =========================================================================================
    // Shutdown
    // =========================================================================================

    #[test]
    fn shutdown_answers_complete_lines_drops_a_partial_one_and_says_so() {
        let mut f = fixture();
        f.conn.handle_shutdown();
        f.recv(
            b"{\"cmd\":\"ping\"}\n{\"cmd\":\"pi",
            &format!("{PONG}{}", error("shutting_down")),
        );
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
        assert_eq!(f.conn.close_reason(), Some(Reason::Shutdown));
        assert_eq!(f.stats.errors, 1);
    }

    #[test]
    fn shutdown_after_bye_says_nothing_more() {
        let mut f = fixture();
        f.conn.handle_shutdown();
        f.recv(b"{\"cmd\":\"bye\"}\n", "{\"ok\":true,\"bye\":true}\n");
        assert_eq!(f.stats.errors, 0);
    }

    #[test]
    fn a_peer_that_never_reads_is_aborted_after_shutdown() {
        let mut f = fixture();
        f.conn.handle_shutdown();
        let p = f.step(b"", &mut []);
        assert_eq!(p.written, 0);
        assert_eq!(f.conn.poll_close(), None);
        let deadline = f.conn.poll_timeout().unwrap();
        assert!(deadline <= CLOSE_LINGER_MS);
        f.timeout(deadline);
        assert_eq!(f.conn.poll_close(), Some(Close::Abort));
        assert_eq!(f.conn.poll_timeout(), None);
    }

    // =========================================================================================
    // Timers
    // =========================================================================================

    #[test]
    fn idle_timeout_fires_after_the_configured_time() {
        let mut f = fixture();
        assert_eq!(f.conn.poll_timeout(), Some(10_000));
        f.timeout(9_999);
        assert_eq!(f.conn.poll_close(), None);
        f.timeout(10_000);
        f.recv(b"", &error("idle_timeout"));
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
        assert_eq!(f.conn.close_reason(), Some(Reason::IdleTimeout));
        assert_eq!(f.stats.errors, 1);
    }

    #[test]
    fn a_complete_line_even_blank_resets_the_idle_timer() {
        let mut f = fixture();
        f.now = 6_000;
        f.recv_nothing(b"\n");
        assert_eq!(f.conn.poll_timeout(), Some(16_000));
        f.timeout(10_000);
        assert_eq!(f.conn.poll_close(), None);
    }

    #[test]
    fn dribbling_a_partial_line_does_not_keep_a_connection_alive() {
        let mut f = fixture();
        for t in (0..10_000).step_by(1000) {
            f.now = t;
            f.recv_nothing(b"x");
        }
        assert_eq!(f.conn.poll_timeout(), Some(10_000));
        f.timeout(10_000);
        f.recv(b"", &error("idle_timeout"));
    }

    #[test]
    fn idle_timeout_zero_never_fires() {
        let mut f = fixture_with(Config {
            idle_timeout_ms: 0,
            ..Config::default()
        });
        assert_eq!(f.conn.poll_timeout(), None);
        f.advance(u64::MAX / 2);
        f.recv(PING, PONG);
        assert_eq!(f.conn.poll_close(), None);
        assert_eq!(f.conn.poll_timeout(), None);
    }

    /// Fills the connection with `latest` requests behind a closed window:
    /// a reply is owed and cannot be written.
    fn stalled() -> Fixture {
        let mut f = fixture();
        f.windows = std::vec![0];
        let p = f.step(b"{\"cmd\":\"latest\"}\n{\"cmd\":\"ping\"}\n", &mut []);
        assert_eq!(p.consumed, 17);
        assert!(f.conn.has_output());
        f
    }

    #[test]
    fn a_peer_that_sends_but_never_reads_is_aborted_after_the_write_stall() {
        let mut f = stalled();
        assert_eq!(f.conn.poll_timeout(), Some(WRITE_STALL_MS));
        f.timeout(WRITE_STALL_MS - 1);
        assert_eq!(f.conn.poll_close(), None);
        f.timeout(WRITE_STALL_MS);
        assert_eq!(f.conn.poll_close(), Some(Close::Abort));
        assert_eq!(f.conn.close_reason(), Some(Reason::WriteStall));
        assert_eq!(f.conn.poll_timeout(), None);
    }

    #[test]
    fn output_progress_restarts_the_write_stall() {
        let mut f = stalled();
        f.now = 4_000;
        let mut out = [0u8; 5];
        assert_eq!(f.step(b"", &mut out).written, 5);
        assert_eq!(f.conn.poll_timeout(), Some(4_000 + WRITE_STALL_MS));
        // Calls that write nothing are no progress.
        f.now = 8_000;
        assert_eq!(f.step(b"", &mut []).written, 0);
        f.timeout(4_000 + WRITE_STALL_MS);
        assert_eq!(f.conn.poll_close(), Some(Close::Abort));
        // Once nothing is owed, only the idle timeout is left.
        let mut f = stalled();
        f.now = 100;
        f.windows = std::vec![4096];
        assert_eq!(f.send(b""), "{\"ok\":true,\"readings\":[]}\n");
        assert_eq!(f.conn.poll_timeout(), Some(10_000));
    }

    #[test]
    fn an_idle_timeout_with_stuck_output_ends_in_an_abort() {
        let mut f = fixture_with(Config {
            idle_timeout_ms: 2_000,
            ..Config::default()
        });
        f.windows = std::vec![0];
        let _ = f.step(b"{\"cmd\":\"ping\"}\n", &mut []);
        // Idle at 2 s: the connection stops reading and owes idle_timeout,
        // which the peer does not read either: aborted after the linger.
        f.advance(2_000);
        assert_eq!(f.conn.close_reason(), Some(Reason::IdleTimeout));
        f.advance(2_000 + CLOSE_LINGER_MS);
        assert_eq!(f.conn.poll_close(), Some(Close::Abort));
    }

    #[test]
    fn shutdown_grace_aborts_a_slow_reader() {
        let mut f = fixture();
        for i in 0..MAX_LOCATIONS {
            let line = format!("{{\"location\":\"{i:0>32}\",\"temp\":1,\"hum\":1}}\n");
            f.send(line.as_bytes());
        }
        f.now = 1_000;
        let mut out = [0u8; 1];
        let _ = f.step(b"{\"cmd\":\"latest\"}\n", &mut out);
        f.conn.handle_shutdown();
        // The peer reads one byte every 100 ms: progress, but slow.
        let mut t = 1_000;
        while f.conn.poll_close().is_none() && t < 10_000 {
            t += 100;
            f.now = t;
            assert_eq!(f.step(b"", &mut out).written, 1);
            f.timeout(t);
        }
        assert_eq!(f.conn.poll_close(), Some(Close::Abort));
        assert_eq!(t, 1_100 + SHUTDOWN_GRACE_MS);
        assert_eq!(f.conn.close_reason(), Some(Reason::Shutdown));
    }

    // =========================================================================================
    // Echo mode
    // =========================================================================================

    fn echo() -> Fixture {
        fixture_with(Config {
            mode: Mode::Echo,
            idle_timeout_ms: 1_000,
            ..Config::default()
        })
    }

    #[test]
    fn echo_sends_every_byte_back_unframed() {
        let mut f = echo();
        let junk = b"{\"cmd\":\"ping\"}\n\xff\x00 no newline";
        assert_eq!(f.send_raw(junk), junk);
        let mut f = echo();
        f.windows = std::vec![3];
        assert_eq!(f.send(b"abc\r\n"), "abc\r\n");
    }

    #[test]
    fn echo_closes_silently_on_idle_and_shutdown() {
        let mut f = echo();
        f.timeout(1_000);
        f.recv_nothing(b"");
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
        let mut f = echo();
        f.conn.handle_shutdown();
        f.recv(b"hi", "hi");
        assert_eq!(f.conn.poll_close(), Some(Close::Graceful));
        assert_eq!(f.stats.errors, 0);
    }

    #[test]
    fn turning_away_counts_busy_except_in_echo_mode() {
        let mut f = fixture();
        assert_eq!(turn_away(Mode::Sensor, &mut f.hub()), BUSY);
        assert_eq!(turn_away(Mode::Echo, &mut f.hub()), b"");
        assert_eq!(f.stats.errors, 1);
        assert_eq!(f.stats.clients, 1);
    }
}
