//! One connection's thread: moves bytes between its socket and the core's
//! [`Connection`], and nothing else (all protocol work is the core's).
//!
//! The socket is non-blocking. The thread waits in `poll(2)` on the socket
//! and the shutdown pipe together, with the core's next deadline as the
//! timeout, so it wakes for data, for room to write, for its timers and for
//! the server stopping. One read gathers as many pipelined lines as the
//! buffer holds; all of their replies go out in one write.
//!
//! Both buffers live on the thread's 64 KiB stack, and they are small on
//! purpose: every stack page an idle connection ever touched stays resident,
//! so the deepest call path decides its memory. glibc's thread block and
//! std's thread start take the first ~5 KiB of the stack; the loop's frame
//! (these buffers and the core's `Connection`) and the core's deepest call
//! (decoding a number, rendering a `latest` item) must fit in the next ~7 KiB
//! so that a connection costs three stack pages (~13.7 KiB RSS in all,
//! measured over 1000 connections that each sent a ping). With 1 KiB in and
//! 2 KiB out the deepest path measured is ~11 KiB. A read still brings up to
//! ~70 pipelined lines, answered with one write: the output buffer is twice
//! the input, as replies run longer than requests (a full output buffer only
//! costs another write).

use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown as Side, SocketAddr, TcpStream};
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use envhub_core::{Close, Connection, Mode, Reason};
use log::{info, warn};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::SockRef;

use crate::cli::Encoding;
use crate::codec::{Codec, Got, Utf8};
use crate::gbk::Gbk;
use crate::Shared;

/// Each connection thread's stack: 64 KiB, plenty for the optimized build
/// (its deepest path is ~11 KiB). Unoptimized frames are many times larger,
/// so debug builds (as `cargo test` makes them) get more.
pub const STACK_SIZE: usize = if cfg!(debug_assertions) {
    512 * 1024
} else {
    64 * 1024
};

/// Input buffer: received bytes (UTF-8 for the core) not yet consumed.
const IN: usize = 1024;

/// Output buffer: replies not yet sent.
const OUT: usize = 2048;

/// A connection whose unsent replies make no progress for this long is
/// reset: a client that stops reading cannot pin its thread. (Plays the
/// part of SO_SNDTIMEO, which has no effect on a non-blocking socket.)
pub const WRITE_TIMEOUT_MS: u64 = 5_000;

/// Once the server stops, a connection has this long to deliver its last
/// replies and `shutting_down`; then it is reset.
pub const SHUTDOWN_GRACE_MS: u64 = 1_000;

/// After a graceful close, how long the thread keeps reading (and
/// discarding) what the client still sends, so that closing with unread
/// data does not reset the connection before the client has read the last
/// replies.
const LINGER_MS: u64 = 500;

/// While its replies wait for the history, a connection looks at its timers
/// and the stop signal at least this often.
const HUB_WAIT_MS: u64 = 100;

/// Readings a connection submits to the history while the first one's ack
/// waits for its commit (see [`Connection::with_queue`]): a read of
/// [`IN`] bytes brings about this many readings.
pub const AHEAD: usize = 16;

/// Serves one accepted connection until it closes. Runs on its own thread.
pub fn serve(id: u64, peer: SocketAddr, sock: TcpStream, shared: Arc<Shared>) {
    if let Err(e) = sock.set_nonblocking(true) {
        warn!("client {id} ({peer}): cannot make the socket non-blocking: {e}");
        shared.hub.close();
        return;
    }
    // Replies go out whole and at once; never wait for more to coalesce.
    let _ = sock.set_nodelay(true);
    if shared.config.mode == Mode::Sensor && shared.encoding == Encoding::Gbk {
        serve_gbk(id, peer, sock, &shared);
    } else {
        run(id, peer, sock, &shared, Utf8);
    }
}

/// GBK transcoding, in a frame of its own so that its buffers take no stack
/// in UTF-8 mode.
#[inline(never)]
fn serve_gbk(id: u64, peer: SocketAddr, sock: TcpStream, shared: &Shared) {
    run(id, peer, sock, shared, Gbk::new());
}

/// The buffers and the loop. Not inlined, and the [`Connection`] is built
/// right here, so that one frame holds one copy of everything (see the
/// module documentation on stack depth).
#[inline(never)]
fn run<C: Codec>(id: u64, peer: SocketAddr, sock: TcpStream, shared: &Shared, codec: C) {
    let mut conn = Connection::<AHEAD>::with_queue(id, shared.hub.now_ms(), shared.config);
    let mut input = [0u8; IN];
    let mut out = [0u8; OUT];
    let mut w = Worker::new(id, peer, sock, shared, codec);
    let end = w.drive(&mut conn, &mut input, &mut out);
    w.end(end, &mut input);
}

/// How the loop ended.
#[derive(Debug)]
enum End {
    /// The core closed gracefully (for this reason) and every byte was
    /// written.
    Graceful(Option<Reason>),
    /// Reset the connection, for this reason.
    Abort(&'static str),
    /// The socket failed.
    Failed(io::Error),
}

/// One connection's state besides its buffers.
struct Worker<'a, C> {
    id: u64,
    peer: SocketAddr,
    sock: TcpStream,
    shared: &'a Shared,
    codec: C,
    /// The client closed its sending side.
    eof: bool,
    /// The server is stopping.
    stopping: bool,
    /// The core was told ([`Connection::handle_shutdown`]).
    told: bool,
    /// When a stopping connection is reset.
    stop_deadline: u64,
}

impl<C> Worker<'_, C> {
    fn new(id: u64, peer: SocketAddr, sock: TcpStream, shared: &Shared, codec: C) -> Worker<'_, C> {
        Worker {
            id,
            peer,
            sock,
            shared,
            codec,
            eof: false,
            stopping: false,
            told: false,
            stop_deadline: u64::MAX,
        }
    }
}

impl<C: Codec> Worker<'_, C> {
    /// The loop: send what is owed, let the core work, read, wait.
    fn drive(
        &mut self,
        conn: &mut Connection<AHEAD>,
        input: &mut [u8; IN],
        out: &mut [u8; OUT],
    ) -> End {
        let mut hub = self.shared.hub.for_client(self.id);
        // Unconsumed input at `input[..in_len]`; unsent wire bytes.
        let mut in_len = 0;
        let mut wire: Range<usize> = 0..0;
        let mut write_deadline = u64::MAX;
        // Try a read before waiting (the client may have sent already).
        let mut may_read = true;
        let room = OUT.min(self.codec.out_room());
        loop {
            let now = self.shared.hub.now_ms();
            if !self.stopping && self.shared.shutdown.is_triggered() {
                self.stopping = true;
                self.stop_deadline = now.saturating_add(SHUTDOWN_GRACE_MS);
                may_read = true;
            }
            if now >= self.stop_deadline {
                return End::Abort("server stopping and the client did not take its replies");
            }
            if !wire.is_empty() && now >= write_deadline {
                return End::Abort("client stopped reading its replies");
            }
            if let Some(due) = conn.poll_timeout() {
                if now >= due {
                    conn.handle_timeout(now, &mut hub);
                }
            }
            match conn.poll_close() {
                Some(Close::Abort) => return End::Abort("client stopped reading while closing"),
                Some(Close::Graceful) if wire.is_empty() => {
                    return End::Graceful(conn.close_reason())
                }
                _ => {}
            }

            // Send what is owed.
            if !wire.is_empty() {
                match (&self.sock).write(&self.codec.wire(out)[wire.clone()]) {
                    Ok(n) => {
                        wire.start += n;
                        write_deadline = now.saturating_add(WRITE_TIMEOUT_MS);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return End::Failed(e),
                }
                if !wire.is_empty() {
                    let deadline = self.deadline(conn).min(write_deadline);
                    if let Err(e) = self.wait(PollFlags::POLLOUT, deadline, now) {
                        return End::Failed(e);
                    }
                    continue;
                }
                if conn.poll_close().is_some() {
                    continue;
                }
            }

            // Let the core answer what came in (or write what it still owes).
            let p = conn.handle_input(now, &input[..in_len], &mut out[..room], &mut hub);
            if p.consumed > 0 {
                input.copy_within(p.consumed..in_len, 0);
                in_len -= p.consumed;
            }
            if p.written > 0 {
                wire = 0..self.codec.encode(&out[..p.written]);
                write_deadline = now.saturating_add(WRITE_TIMEOUT_MS);
                continue;
            }
            if conn.poll_close().is_some() {
                continue;
            }

            // Read more, when the core wants it and it has taken all before.
            let can_read = in_len == 0 && conn.wants_input() && !self.eof && !self.told;
            if can_read && may_read {
                match self.codec.read(&self.sock, input) {
                    Ok(Got::Data { len, more }) => {
                        in_len = len;
                        may_read = more || self.stopping;
                        continue;
                    }
                    Ok(Got::Eof) => {
                        self.eof = true;
                        in_len = self.codec.finish(input);
                        conn.handle_eof();
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => may_read = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return End::Failed(e),
                }
            }
            // Stopping, and everything the kernel had is in: the core
            // answers the complete lines, then sends `shutting_down`.
            if self.stopping && !self.told {
                conn.handle_shutdown();
                self.told = true;
                continue;
            }

            // Replies wait for the history's commit: wait for it (not for
            // the socket, which is not read meanwhile).
            if let Some(ticket) = conn.awaited_ticket() {
                let left = self.deadline(conn).saturating_sub(now);
                let wait = Duration::from_millis(left.min(HUB_WAIT_MS));
                self.shared.hub.wait_decided(ticket, wait);
                continue;
            }

            // Nothing to do until the client sends, a timer fires or the
            // server stops.
            let events = if can_read {
                PollFlags::POLLIN
            } else {
                PollFlags::empty()
            };
            match self.wait(events, self.deadline(conn), now) {
                Ok(ready) => may_read |= ready,
                Err(e) => return End::Failed(e),
            }
        }
    }

    /// The next time the loop must run even if nothing happens.
    fn deadline(&self, conn: &Connection<AHEAD>) -> u64 {
        conn.poll_timeout()
            .unwrap_or(u64::MAX)
            .min(self.stop_deadline)
    }

    /// Waits for `events` on the socket (none: only for the deadline), for
    /// the shutdown pipe while not yet stopping, and at most until
    /// `deadline`. True if the socket is ready.
    fn wait(&self, events: PollFlags, deadline: u64, now: u64) -> io::Result<bool> {
        let timeout = if deadline == u64::MAX {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(deadline.saturating_sub(now)).unwrap_or(PollTimeout::MAX)
        };
        let mut fds = [
            PollFd::new(self.sock.as_fd(), events),
            PollFd::new(self.shared.shutdown.fd(), PollFlags::POLLIN),
        ];
        // A socket polled for nothing would still report errors and hang-ups,
        // over and over: leave it out then.
        let from = usize::from(events.is_empty());
        let to = if self.stopping { 1 } else { 2 };
        let fds = fds.get_mut(from..to).unwrap_or_default();
        match poll(fds, timeout) {
            Ok(_) => Ok(from == 0 && fds.first().and_then(PollFd::any).unwrap_or(false)),
            Err(Errno::EINTR) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes the connection as `end` says, counts it closed and logs it.
    /// `scratch` receives what a lingering client still sends. Not inlined:
    /// its frame (logging) is needed only once, at the end.
    #[cold]
    #[inline(never)]
    fn end(self, end: End, scratch: &mut [u8]) {
        let (id, peer) = (self.id, self.peer);
        match end {
            End::Graceful(reason) => {
                let _ = self.sock.shutdown(Side::Write);
                self.shared.hub.close();
                let why = reason.map_or("closed", Reason::as_str);
                info!("client {id} ({peer}) disconnected: {why}");
                self.linger(scratch);
            }
            End::Abort(why) => {
                // SO_LINGER 0: close sends RST and drops unsent data.
                let _ = SockRef::from(&self.sock).set_linger(Some(Duration::ZERO));
                drop(self.sock);
                self.shared.hub.close();
                warn!("client {id} ({peer}) reset: {why}");
            }
            End::Failed(e) => {
                drop(self.sock);
                self.shared.hub.close();
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
            }
        }
    }

    /// After the FIN: discards what the client still sends until it closes
    /// too, for at most [`LINGER_MS`] (less when the server is stopping).
    fn linger(self, scratch: &mut [u8]) {
        let start = self.shared.hub.now_ms();
        let deadline = start.saturating_add(LINGER_MS).min(self.stop_deadline);
        let mut sock = &self.sock;
        loop {
            match io::Read::read(&mut sock, scratch) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            let now = self.shared.hub.now_ms();
            if now >= deadline {
                return;
            }
            let timeout = PollTimeout::try_from(deadline - now).unwrap_or(PollTimeout::MAX);
            let mut fds = [
                PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.shared.shutdown.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, timeout) {
                Ok(0) => return,
                Ok(_) if fds[1].any().unwrap_or(false) => return,
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}
