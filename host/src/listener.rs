//! The listening socket and the acceptor: admission, the hand-off to the
//! event loops, and running out of file descriptors gracefully.
//!
//! One acceptor thread serves the one listening socket and hands each
//! admitted connection to the next event loop, round-robin. (The other
//! design, a listener per loop with `SO_REUSEPORT`, lets the kernel spread
//! connections by a hash of their addresses: uneven for few clients, it
//! resets connections queued on a loop's listener when the server stops,
//! and the global and per-source counts must be shared anyway. The hand-off
//! costs little: with the server on one CPU, connect + ping + close took
//! about 100 µs of server CPU per connection, as much as a tokio
//! current-thread server that accepts inside its one loop.)
//!
//! A connection beyond a limit gets `busy` and a close from the acceptor
//! itself: it never takes a loop's slot.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown as Side, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;

use log::{info, warn};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::evloop::Handoff;
use crate::ratelog::suppressed;
use crate::worker::SEND_BUFFER;
use crate::Shared;

/// Pending connections the kernel may hold before they are accepted (it
/// caps this at net.core.somaxconn). Accepting is quick, so this only
/// matters for bursts of connects.
const BACKLOG: i32 = 4096;

/// How long the acceptor pauses when `accept` fails and no connection could
/// be taken off the queue (out of descriptors with the reserve used up, or
/// out of memory): short, so that a queued client hears from the server
/// well within a second once descriptors are free again.
const BACKOFF_MS: u16 = 50;

/// Opens a non-blocking listening socket on `addr` with SO_REUSEADDR (a
/// restarted server binds its port at once, despite old connections in
/// TIME_WAIT). An IPv6 address keeps the system's dual-stack default.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One file descriptor kept in reserve: when `accept` fails for want of
/// descriptors, closing it lets the acceptor take one queued connection,
/// tell it `busy` and close it, instead of leaving it hanging.
#[derive(Debug)]
struct Reserve(Option<File>);

impl Reserve {
    fn new() -> Reserve {
        Reserve(File::open("/dev/null").ok())
    }

    /// Out of descriptors: spends the reserve on one queued connection
    /// (`busy`, close) and takes it back. True if a connection was taken.
    fn turn_away_one(&mut self, listener: &TcpListener, shared: &Shared) -> bool {
        let Some(file) = self.0.take() else {
            self.0 = File::open("/dev/null").ok();
            return false;
        };
        drop(file);
        let took = match listener.accept() {
            Ok((sock, peer)) => {
                turn_away(sock, peer, shared, "out of file descriptors");
                true
            }
            Err(_) => false,
        };
        self.0 = File::open("/dev/null").ok();
        took
    }
}

/// True for the errors that mean "out of file descriptors".
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE)
    )
}

/// Accepts connections until the server stops, handing each to an event
/// loop, or turning it away with `busy` at a limit or when out of
/// descriptors.
pub fn accept_loop(listener: &TcpListener, shared: &Shared) {
    let mut reserve = Reserve::new();
    let mut next_loop = 0usize;
    let mut backoff = false;
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(shared.shutdown.fd(), PollFlags::POLLIN),
        ];
        // After a failure the listener stays readable: wait for the stop
        // signal only, a little, instead of spinning on it.
        let (fds, timeout) = if backoff {
            (&mut fds[1..], PollTimeout::from(BACKOFF_MS))
        } else {
            (&mut fds[..], PollTimeout::NONE)
        };
        match poll(fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                warn!("poll on the listening socket failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        backoff = false;
        // Stop accepting at once: whatever the kernel still queues is reset
        // when the listener closes.
        if shared.shutdown.is_triggered() {
            return;
        }
        loop {
            match listener.accept() {
                Ok((sock, peer)) => admit(sock, peer, shared, &mut next_loop),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    if let Some(n) = shared.logs.accept.allow(shared.hub.now_ms()) {
                        warn!("accept failed: {e}{}", suppressed(n));
                    }
                    if !(out_of_descriptors(&e) && reserve.turn_away_one(listener, shared)) {
                        backoff = true;
                        break;
                    }
                }
            }
            if shared.shutdown.is_triggered() {
                return;
            }
        }
    }
}

/// Hands a connection to the next loop, or turns it away at a limit.
fn admit(sock: TcpStream, peer: SocketAddr, shared: &Shared, next_loop: &mut usize) {
    if let Err(full) = shared.admission.open(peer.ip()) {
        return turn_away(sock, peer, shared, full.as_str());
    }
    let id = shared.hub.open();
    if let Err(e) = sock.set_nonblocking(true) {
        shared.close_client(peer);
        warn!("client {id} ({peer}): cannot make the socket non-blocking: {e}");
        return;
    }
    // Replies go out whole and at once; never wait for more to coalesce.
    let _ = sock.set_nodelay(true);
    let _ = SockRef::from(&sock).set_send_buffer_size(SEND_BUFFER);
    info!("client {id} connected from {peer}");
    let n = shared.loops.len();
    match shared.loops.get(*next_loop % n.max(1)) {
        Some(handle) => handle.hand(Handoff { id, peer, sock }),
        None => shared.close_client(peer),
    }
    *next_loop = next_loop.wrapping_add(1);
}

/// `busy` (nothing in echo mode), then close. No id, no loop slot, never
/// queued.
fn turn_away(sock: TcpStream, peer: SocketAddr, shared: &Shared, why: &str) {
    let reply = envhub_core::turn_away(shared.config.mode, &mut shared.hub.for_client(0));
    if let Some(n) = shared.logs.busy.allow(shared.hub.now_ms()) {
        warn!(
            "connection from {peer} turned away: {why} ({} open, limit {}){}",
            shared.hub.clients(),
            shared.max_clients,
            suppressed(n)
        );
    }
    let _ = sock.set_nonblocking(true);
    let mut sock = &sock;
    // A fresh socket has room for these few bytes.
    let _ = sock.write(reply);
    let _ = sock.shutdown(Side::Write);
    // Take what the client sent already, so that closing does not reset the
    // connection (and maybe lose `busy`) over unread data. Bounded: never
    // wait, never read much.
    let mut scratch = [0u8; 1024];
    for _ in 0..8 {
        match sock.read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}
