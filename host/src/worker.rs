//! One connection on an event-loop thread: moves bytes between its socket
//! and the core's [`Connection`], and nothing else (all protocol work is
//! the core's).
//!
//! [`Client::drive`] is called by the loop ([`crate::evloop`]) whenever the
//! socket became readable or writable, a timer fired, the server began to
//! stop or the hub woke the loop. It does what it can without blocking and
//! returns [`Step::Wait`] (the loop waits for the socket and
//! [`Client::deadline`]), [`Step::Again`] (its turn is over, more to do) or
//! [`Step::Ended`].
//!
//! Memory: an idle connection holds only its core [`Connection`], its
//! socket and a few flags. Bytes are read into and replies rendered in the
//! loop's scratch buffers ([`Scratch`]); a connection keeps heap buffers of
//! its own only while it has input the core did not take yet or replies the
//! socket did not take yet, and gives them back once they are empty.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown as Side, SocketAddr, TcpStream};
use std::time::Duration;

use envhub_core::limits::{CLOSE_LINGER_MS, SHUTDOWN_GRACE_MS, WRITE_STALL_MS};
use envhub_core::{Close, Connection, Mode, Reason};
use log::{info, warn};
use socket2::SockRef;

use crate::cli::Encoding;
use crate::codec::{Codec, Got, Utf8};
use crate::gbk::Gbk;
use crate::ratelog::suppressed;
use crate::Shared;

/// The loop's input scratch: the most read from one socket at once.
pub const IN: usize = 8 * 1024;

/// The loop's output scratch: the most core output rendered at once
/// (twice the input, as replies run longer than requests).
pub const OUT: usize = 2 * IN;

/// How long a connection whose closing replies the core has all handed
/// over keeps reading (and discarding) what the client still sends after
/// the FIN, so that closing with unread data does not reset the connection
/// before the client has read the last replies: the core's close linger.
/// Its slot is already free then.
pub const LINGER_MS: u64 = CLOSE_LINGER_MS;

/// Readings a connection submits to the history while the first one's ack
/// waits for its commit (see [`Connection::with_queue`]): one commit can
/// cover a pipelined batch.
pub const AHEAD: usize = 16;

/// Rounds of read/answer/write one connection gets per turn before the
/// loop serves the others.
const BUDGET: usize = 16;

/// The kernel send buffer each connection asks for (`SO_SNDBUF`; Linux
/// doubles it for its bookkeeping). Small, so that a client that reads
/// slowly fills it soon and the write-stall rule sees the stall, instead of
/// the kernel holding megabytes of replies for it; still many `latest`
/// replies deep.
pub const SEND_BUFFER: usize = 16 * 1024;

/// The loop's buffers, shared by all its connections.
#[derive(Debug)]
pub struct Scratch {
    input: Box<[u8]>,
    out: Box<[u8]>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            input: vec![0; IN].into_boxed_slice(),
            out: vec![0; OUT].into_boxed_slice(),
        }
    }
}

/// How a connection ended.
#[derive(Debug)]
pub enum End {
    /// The core closed gracefully (for this reason) and every byte was
    /// written.
    Graceful(Option<Reason>),
    /// Reset the connection, for this reason.
    Abort(&'static str),
    /// The socket failed.
    Failed(io::Error),
}

/// What the loop does with a connection after [`Client::drive`].
#[derive(Debug)]
pub enum Step {
    /// Wait for the socket, or until [`Client::deadline`].
    Wait,
    /// Its turn is over but it has more to do: drive it again soon.
    Again,
    /// Close it as [`Client::end`] says.
    Ended(End),
}

/// One connection's state.
pub struct Client {
    id: u64,
    peer: SocketAddr,
    sock: TcpStream,
    conn: Connection<AHEAD>,
    codec: Box<dyn Codec + Send>,
    /// Input the core has not consumed yet (empty, unallocated, when idle).
    input: Vec<u8>,
    /// Wire bytes not sent yet, from `wire_at` on.
    wire: Vec<u8>,
    wire_at: usize,
    /// The socket may have bytes to read / room to write (edge-triggered:
    /// set by the loop's events, cleared when the socket says it would
    /// block).
    pub readable: bool,
    /// See [`Client::readable`].
    pub writable: bool,
    /// An event said the client closed its side (EPOLLRDHUP) or the socket
    /// failed: keep reading until the read says so, even after a short
    /// read (the FIN may have come with the last data, in the same edge).
    pub read_closed: bool,
    /// The client closed its sending side.
    eof: bool,
    /// The server is stopping.
    stopping: bool,
    /// The core was told ([`Connection::handle_shutdown`]).
    told: bool,
    /// The end of the core's shutdown grace: lingering stops then.
    stop_deadline: u64,
    /// When wire bytes the core handed over but the socket has not taken
    /// (the shell's own buffer, which the core cannot see) get the
    /// connection reset: the core's write-stall time.
    write_deadline: u64,
    /// Closed gracefully (counted closed): discarding what the client still
    /// sends until then.
    linger_until: Option<u64>,
    /// The core's next reply waits for the hub ([`Connection::awaits_hub`]):
    /// the loop re-drives it on the hub's wake (see [`crate::evloop`]).
    pub waits_on_hub: bool,
    /// The deadline this connection has in its loop's timer heap
    /// (`u64::MAX`: none).
    pub armed: u64,
    /// Already in its loop's queue of connections to drive again.
    pub queued: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A freshly accepted connection (already counted open), at `now`.
    pub fn new(id: u64, peer: SocketAddr, sock: TcpStream, shared: &Shared, now: u64) -> Client {
        let codec: Box<dyn Codec + Send> =
            if shared.config.mode == Mode::Sensor && shared.encoding == Encoding::Gbk {
                Box::new(Gbk::new())
            } else {
                // A zero-sized type: no allocation.
                Box::new(Utf8)
            };
        Client {
            id,
            peer,
            sock,
            conn: Connection::with_queue(id, now, shared.config),
            codec,
            input: Vec::new(),
            wire: Vec::new(),
            wire_at: 0,
            // Try at once: the client may have sent already.
            readable: true,
            writable: true,
            read_closed: false,
            eof: false,
            stopping: false,
            told: false,
            stop_deadline: u64::MAX,
            write_deadline: u64::MAX,
            linger_until: None,
            waits_on_hub: false,
            armed: u64::MAX,
            queued: false,
        }
    }

    /// The socket, for registering with the loop's poll.
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }

    /// The server began to stop at `now`: answer what came in, then the
    /// core says `shutting_down` and closes (it resets what is still open
    /// after its shutdown grace).
    pub fn stop(&mut self, now: u64) {
        if !self.stopping {
            self.stopping = true;
            self.stop_deadline = now.saturating_add(SHUTDOWN_GRACE_MS);
            // Take in everything the kernel holds before telling the core.
            self.readable = true;
            if let Some(until) = &mut self.linger_until {
                *until = (*until).min(self.stop_deadline);
            }
        }
    }

    /// The next time the connection must be driven even if its socket
    /// stays quiet (`u64::MAX`: never).
    pub fn deadline(&self) -> u64 {
        if let Some(until) = self.linger_until {
            return until;
        }
        let mut at = self.conn.poll_timeout().unwrap_or(u64::MAX);
        if self.wire_pending() {
            at = at.min(self.write_deadline);
        }
        at
    }

    fn wire_pending(&self) -> bool {
        self.wire_at < self.wire.len()
    }

    /// Does what can be done now without blocking.
    pub fn drive(&mut self, now: u64, shared: &Shared, s: &mut Scratch) -> Step {
        if let Some(until) = self.linger_until {
            return self.linger(now, until, s);
        }
        let mut hub = shared.hub.for_client(self.id);
        let room = OUT.min(self.codec.out_room());
        self.waits_on_hub = false;
        for _ in 0..BUDGET {
            if self.wire_pending() && now >= self.write_deadline {
                return Step::Ended(End::Abort("client stopped reading its replies"));
            }
            if self.conn.poll_timeout().is_some_and(|due| now >= due) {
                self.conn.handle_timeout(now, &mut hub);
            }
            match self.conn.poll_close() {
                Some(Close::Abort) => {
                    return Step::Ended(End::Abort(match self.conn.close_reason() {
                        Some(Reason::WriteStall) => "client stopped reading its replies",
                        Some(Reason::Shutdown) => {
                            "server stopping and the client did not take its replies"
                        }
                        _ => "client stopped reading while closing",
                    }))
                }
                Some(Close::Graceful) if !self.wire_pending() => {
                    return Step::Ended(End::Graceful(self.conn.close_reason()))
                }
                _ => {}
            }

            // Send what is owed.
            if self.wire_pending() {
                if !self.writable {
                    return Step::Wait;
                }
                match (&self.sock).write(&self.wire[self.wire_at..]) {
                    Ok(n) => {
                        self.wire_at += n;
                        self.write_deadline = now.saturating_add(WRITE_STALL_MS);
                        if !self.wire_pending() {
                            // Give the buffer back: idle connections hold none.
                            self.wire = Vec::new();
                            self.wire_at = 0;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.writable = false;
                        return Step::Wait;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Step::Ended(End::Failed(e)),
                }
                continue;
            }

            // Let the core answer what came in (or write what it still owes).
            let p = self
                .conn
                .handle_input(now, &self.input, &mut s.out[..room], &mut hub);
            if p.consumed > 0 {
                self.input.drain(..p.consumed);
                if self.input.is_empty() {
                    self.input = Vec::new();
                }
            }
            if p.written > 0 {
                if let Err(e) = self.send(now, p.written, s) {
                    return Step::Ended(End::Failed(e));
                }
                continue;
            }
            if self.conn.poll_close().is_some() {
                continue;
            }

            // Read more, when the core wants it and has taken all before.
            let can_read =
                self.input.is_empty() && self.conn.wants_input() && !self.eof && !self.told;
            if can_read && self.readable {
                match self.codec.read(&self.sock, &mut s.input) {
                    Ok(Got::Data { len, more }) => {
                        if !more && !self.stopping && !self.read_closed {
                            // Edge-triggered: new data, or the FIN, brings
                            // a new event.
                            self.readable = false;
                        }
                        let p = self.conn.handle_input(
                            now,
                            &s.input[..len],
                            &mut s.out[..room],
                            &mut hub,
                        );
                        if let Some(rest) = s.input.get(p.consumed..len) {
                            self.input.extend_from_slice(rest);
                        }
                        if p.written > 0 {
                            if let Err(e) = self.send(now, p.written, s) {
                                return Step::Ended(End::Failed(e));
                            }
                        }
                        continue;
                    }
                    Ok(Got::Eof) => {
                        self.eof = true;
                        let len = self.codec.finish(&mut s.input);
                        self.input.extend_from_slice(&s.input[..len]);
                        self.conn.handle_eof();
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => self.readable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Step::Ended(End::Failed(e)),
                }
            }
            // Stopping, and everything the kernel had is in: the core
            // answers the complete lines, then sends `shutting_down`.
            if self.stopping && !self.told {
                self.conn.handle_shutdown();
                self.told = true;
                continue;
            }
            // The next reply waits for the hub (the history's commit): the
            // loop drives this connection again when the hub wakes it.
            self.waits_on_hub = self.conn.awaits_hub();
            return Step::Wait;
        }
        Step::Again
    }

    /// Sends `written` bytes of core output from the scratch: as much as
    /// the socket takes now, the rest kept for later.
    fn send(&mut self, now: u64, written: usize, s: &Scratch) -> io::Result<()> {
        let n = self.codec.encode(&s.out[..written]);
        let bytes = &self.codec.wire(&s.out)[..n];
        self.write_deadline = now.saturating_add(WRITE_STALL_MS);
        let mut sent = 0;
        while self.writable && sent < bytes.len() {
            match (&self.sock).write(&bytes[sent..]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if sent < bytes.len() {
            self.wire.extend_from_slice(&bytes[sent..]);
        }
        Ok(())
    }

    /// After the FIN: discards what the client still sends until it closes
    /// too, or until `until`.
    fn linger(&mut self, now: u64, until: u64, s: &mut Scratch) -> Step {
        if now >= until {
            return Step::Ended(End::Graceful(None));
        }
        for _ in 0..BUDGET {
            if !self.readable {
                return Step::Wait;
            }
            match (&self.sock).read(&mut s.input) {
                Ok(0) => return Step::Ended(End::Graceful(None)),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Step::Ended(End::Graceful(None)),
            }
        }
        Step::Again
    }

    /// Ends the connection as `end` says: counts it closed (its slot is
    /// free at once) and logs it. True if it stays with the loop a little
    /// longer, lingering (see [`LINGER_MS`]); false if it is gone (the
    /// socket closes when the client is dropped).
    pub fn end(&mut self, end: End, shared: &Shared, now: u64) -> bool {
        if self.linger_until.is_some() {
            // Lingering is over; it was counted closed before.
            return false;
        }
        shared.close_client(self.peer);
        let (id, peer) = (self.id, self.peer);
        match end {
            End::Graceful(reason) => {
                let _ = self.sock.shutdown(Side::Write);
                let why = reason.map_or("closed", Reason::as_str);
                info!("client {id} ({peer}) disconnected: {why}");
                let until = now.saturating_add(LINGER_MS);
                self.linger_until = Some(if self.stopping {
                    until.min(self.stop_deadline)
                } else {
                    until
                });
                self.input = Vec::new();
                true
            }
            End::Abort(why) => {
                // SO_LINGER 0: close sends RST and drops unsent data.
                let _ = SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
                if let Some(n) = shared.logs.stall.allow(now) {
                    warn!("client {id} ({peer}) reset: {why}{}", suppressed(n));
                }
                false
            }
            End::Failed(e) => {
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::BrokenPipe
                        | ErrorKind::ConnectionAborted
                ) {
                    info!("client {id} ({peer}) disconnected: {e}");
                } else {
                    warn!("client {id} ({peer}) disconnected after an error: {e}");
                }
                false
            }
        }
    }
}
