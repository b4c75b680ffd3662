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
use crate::limits::{CLOSE_LINGER_MS, DEFAULT_IDLE_TIMEOUT_MS, MAX_LINE};
use crate::reply::{Reply, Walk, BUSY};
use crate::request::{decode, Request};
use crate::sink::Sink;

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// The line protocol.
    #[default]
    Sensor,
    /// Every byte back, unchanged; no replies of its own.
    Echo,
}

/// How a connection behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Sensor or echo.
    pub mode: Mode,
    /// Close a connection that sends no complete line for this long.
    pub idle_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Sensor,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
        }
    }
}

/// What [`Connection::handle_input`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
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
    /// The peer stopped reading while the connection was closing: reset.
    Abort,
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
#[derive(Debug)]
pub struct Connection {
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
    /// When a draining connection that makes no progress is aborted.
    stall_deadline: u64,
}

impl Connection {
    /// A new connection with id `id` (from [`crate::Stats::open`] or the
    /// shell's own counter), accepted at `now`.
    pub fn new(id: u64, now: u64, config: Config) -> Self {
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
            idle_deadline: now.saturating_add(config.idle_timeout_ms),
            stall_deadline: u64::MAX,
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
        let mut sink = Sink::new(out);
        let mut consumed = 0;
        if self.flush(&mut sink, hub) && self.state == State::Open {
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
        if written > 0 && self.state == State::Draining {
            self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
        }
        if self.state == State::Draining && self.pending.is_none() && self.trailer.is_none() {
            self.state = State::Closed(Close::Graceful);
        }
        Progress { consumed, written }
    }

    /// Writes owed output when the shell has no unconsumed input (after
    /// EOF, shutdown or a timeout, or while a long reply drains).
    pub fn poll_transmit<H: Hub + ?Sized>(&mut self, now: u64, out: &mut [u8], hub: &mut H) -> usize {
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
    pub fn handle_shutdown(&mut self) {
        self.shutdown = true;
    }

    /// Fires the timers due at `now`: the idle timeout (`idle_timeout`, then
    /// close) and the abort of a closing connection whose peer stopped
    /// reading.
    pub fn handle_timeout<H: Hub + ?Sized>(&mut self, now: u64, hub: &mut H) {
        match self.state {
            State::Open if now >= self.idle_deadline => {
                self.close_with(now, ErrorCode::IdleTimeout, hub);
            }
            State::Draining if now >= self.stall_deadline => {
                self.state = State::Closed(Close::Abort);
            }
            _ => {}
        }
    }

    // ----- output --------------------------------------------------------

    /// When [`Connection::handle_timeout`] must next run, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            State::Open => Some(self.idle_deadline),
            State::Draining => Some(self.stall_deadline),
            State::Closed(_) => None,
        }
    }

    /// `Some` once the shell must close the connection, and how.
    pub fn poll_close(&self) -> Option<Close> {
        match self.state {
            State::Closed(how) => Some(how),
            _ => None,
        }
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
        self.idle_deadline = now.saturating_add(self.config.idle_timeout_ms);
    }

    /// Writes the unfinished reply, then the trailer; true when nothing is
    /// left owed.
    fn flush<H: Hub + ?Sized>(&mut self, sink: &mut Sink<'_>, hub: &mut H) -> bool {
        loop {
            if let Some((reply, offset)) = &mut self.pending {
                if !reply.write(offset, sink, hub) {
                    return false;
                }
                self.pending = None;
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

    /// Stops reading and owes `code` (nothing in echo mode) before closing.
    fn close_with<H: Hub + ?Sized>(&mut self, now: u64, code: ErrorCode, hub: &mut H) {
        if self.config.mode == Mode::Sensor {
            hub.count_error();
            self.trailer = Some(code);
        }
        self.state = State::Draining;
        self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
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
        while at < input.len() && self.pending.is_none() && self.state == State::Open {
            let rest = &input[at..];
            let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
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
    fn line_done<H: Hub + ?Sized>(&mut self, now: u64, line: &[u8], sink: &mut Sink<'_>, hub: &mut H) {
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
            Ok(Request::Reading(reading)) => match hub.store(&reading, now) {
                Ok(()) => Reply::Stored(reading),
                Err(_) => return self.error(ErrorCode::StoreFull, sink, hub),
            },
            Ok(Request::Ping) => Reply::Pong,
            Ok(Request::Bye) => {
                self.state = State::Draining;
                self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
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
            self.close_with(now, ErrorCode::ShuttingDown, hub);
            self.flush(sink, hub);
        } else if self.eof {
            let line = core::mem::take(&mut self.line);
            if !self.discarding && !line.is_empty() && self.config.mode == Mode::Sensor {
                self.line_done(now, &line, sink, hub);
            }
            if self.state == State::Open {
                self.state = State::Draining;
                self.stall_deadline = now.saturating_add(CLOSE_LINGER_MS);
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

