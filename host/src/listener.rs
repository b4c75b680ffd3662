//! The listening socket and the accept loop.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown as Side, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{info, warn};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Protocol, Socket, Type};

use crate::worker;
use crate::Shared;

/// Pending connections the kernel may hold before they are accepted (it
/// caps this at net.core.somaxconn). Accepting is quick, so this only
/// matters for bursts of connects.
const BACKLOG: i32 = 1024;

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

/// Accepts connections until the server stops, giving each a thread of its
/// own, or the `busy` reply at the connection limit.
pub fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(shared.shutdown.fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                warn!("poll on the listening socket failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
        // Stop accepting at once: whatever the kernel still queues is reset
        // when the listener closes.
        if shared.shutdown.is_triggered() {
            return;
        }
        loop {
            match listener.accept() {
                Ok((sock, peer)) => admit(sock, peer, shared),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of file descriptors or memory: the connection stays
                    // queued; pause instead of spinning on it.
                    warn!("accept failed: {e}");
                    thread::sleep(Duration::from_millis(20));
                    break;
                }
            }
            if shared.shutdown.is_triggered() {
                return;
            }
        }
    }
}

/// Starts a connection's thread, or turns it away at the limit.
fn admit(sock: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) {
    if shared.hub.clients() >= shared.max_clients {
        turn_away(sock, peer, shared);
        return;
    }
    let id = shared.hub.open();
    info!("client {id} connected from {peer}");
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(format!("client-{id}"))
        .stack_size(worker::STACK_SIZE)
        .spawn(move || worker::serve(id, peer, sock, for_thread));
    if let Err(e) = spawned {
        shared.hub.close();
        warn!("client {id} ({peer}) closed: cannot start its thread: {e}");
    }
}

/// At the limit: `busy` (nothing in echo mode), then close. No id, no
/// thread, never queued.
fn turn_away(sock: TcpStream, peer: SocketAddr, shared: &Shared) {
    let reply = envhub_core::turn_away(shared.config.mode, &mut shared.hub.for_client(0));
    warn!(
        "connection from {peer} turned away: {} clients open (limit {})",
        shared.hub.clients(),
        shared.max_clients
    );
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
