//! One socket slot: listening, serving a client, closing, or stopped.
//!
//! smoltcp has no accept queue: a listening socket becomes the connection.
//! So every free slot listens, a slot whose socket completes a handshake
//! is bound to a [`Connection`] (or answers `busy` when the server is full),
//! and a slot whose connection ended listens again as soon as the close is
//! done: after the peer's last ACK, or a few milliseconds into TIME-WAIT
//! (the peer already has everything; waiting out smoltcp's 10 s TIME-WAIT
//! would only starve the slots), or after a reset.

use envhub_core::limits::HANDSHAKE_TIMEOUT_MS;
use envhub_core::{turn_away, Admit, Close, Connection, LocalHub};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{Socket, State};
use smoltcp::time::Duration;
use smoltcp::wire::{IpAddress, IpEndpoint};

use crate::config::Config;
use crate::logging::Peer;

/// How long an aborted socket waits for its reset to go out before the
/// slot listens anyway (a peer whose address cannot be resolved never
/// gets it, and must not hold the slot). A reset that can be sent goes out
/// in the poll that made it.
pub(crate) const RESET_WAIT_MS: u64 = 100;
/// Keep-alive interval while connected: lets smoltcp notice a peer that
/// vanished without a FIN sooner than the idle timeout.
pub(crate) const KEEP_ALIVE_MS: u64 = 15_000;
/// smoltcp resets a connected socket that hears nothing from its peer for
/// this long (with keep-alive on, a live peer always answers in time).
pub(crate) const SOCKET_TIMEOUT_MS: u64 = 60_000;
/// After the server closed a connection, the longest the FIN exchange may
/// take before the slot is reset and reused (a peer that never closes its
/// side, or never reads).
pub(crate) const CLOSE_TIMEOUT_MS: u64 = 5_000;
/// The longest a slot stays in TIME-WAIT before listening again. Normally
/// it listens again right after the ACK of the peer's FIN went out (in the
/// same poll: closing sockets ACK without delay); this is the fallback.
pub(crate) const TIME_WAIT_LINGER_MS: u64 = 20;
/// Delayed-ACK time: a reply written within it carries the ACK.
pub(crate) const ACK_DELAY_MS: u64 = 10;
/// Rounds of read-answer-write per slot and poll; each round either takes
/// input or writes output, so this only bounds pathological cases.
const MAX_ROUNDS: usize = 64;

/// What a slot needs from its server for one step.
pub(crate) struct Context<'s> {
    /// The store and counters.
    pub(crate) hub: LocalHub<'s>,
    /// The server's settings.
    pub(crate) config: &'s Config,
    /// Where received bytes are copied (as large as a receive buffer).
    pub(crate) scratch: &'s mut [u8],
    /// The server is shutting down: no slot listens again.
    pub(crate) stopping: bool,
    /// This step runs after the poll's egress (packets the sockets owed,
    /// ACKs included, are out).
    pub(crate) sent: bool,
    /// The source address of each slot's client (by slot index), for the
    /// per-source limit.
    pub(crate) sources: &'s mut [Option<IpAddress>],
}

/// A client bound to a slot.
struct Client {
    conn: Connection,
    peer: Option<IpEndpoint>,
    /// The peer's FIN was passed to the connection.
    eof: bool,
}

// Every slot must have room for a connection anyway (there is no heap to
// box it in), so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Listening, or a handshake under way (smoltcp drops one that does not
    /// complete within [`HANDSHAKE_TIMEOUT_MS`]).
    Listening,
    /// Serving a client.
    Serving(Client),
    /// Closed or reset by the server; waiting until the socket may listen
    /// again.
    Closing { since: u64, time_wait: Option<u64> },
    /// Not listening: the server is shutting down.
    Stopped,
}

/// One socket of the server and what it is doing.
pub(crate) struct Slot {
    pub(crate) handle: SocketHandle,
    /// Its place in the server's slots (and in [`Context::sources`]).
    index: usize,
    phase: Phase,
}

impl Slot {
    /// A slot for the socket `handle`, which must be listening.
    pub(crate) fn new(handle: SocketHandle, index: usize) -> Self {
        Slot {
            handle,
            index,
            phase: Phase::Listening,
        }
    }

    /// Sets the options every socket has, once.
    pub(crate) fn tune(socket: &mut Socket<'_>) {
        socket.set_ack_delay(Some(Duration::from_millis(ACK_DELAY_MS)));
        socket.set_nagle_enabled(false);
        // A handshake that does not complete in time is reset by smoltcp;
        // `settle` listens again even when that reset cannot be sent (an
        // unreachable peer: a spoofed SYN).
        socket.set_timeout(Some(Duration::from_millis(HANDSHAKE_TIMEOUT_MS)));
        socket.set_keep_alive(None);
    }

    /// True while the slot listens (or a handshake is under way).
    pub(crate) fn is_listening(&self) -> bool {
        matches!(self.phase, Phase::Listening)
    }

    /// True once the slot neither listens nor holds a connection.
    pub(crate) fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    /// Binds a just-connected socket to a new connection, or turns the
    /// client away when the server is full. Call after every received
    /// packet, so connections are accepted (and numbered) in the order
    /// their handshakes completed.
    pub(crate) fn accept(&mut self, socket: &mut Socket<'_>, cx: &mut Context<'_>, now: u64) {
        if !matches!(self.phase, Phase::Listening) {
            return;
        }
        match socket.state() {
            State::Listen | State::SynReceived => {}
            State::Established | State::CloseWait if cx.stopping => {
                socket.abort();
                self.phase = closing(socket, now);
            }
            State::Established | State::CloseWait => {
                let peer = socket.remote_endpoint();
                let source = peer.map(|p| p.addr);
                let from_source = source.map_or(0, |ip| {
                    cx.sources.iter().filter(|s| **s == Some(ip)).count()
                });
                let open = usize::try_from(cx.hub.stats.clients).unwrap_or(usize::MAX);
                if let Admit::Busy(full) = cx.config.core.admit(open, from_source) {
                    let reply = turn_away(cx.config.core.mode, &mut cx.hub);
                    // A fresh send buffer holds a `busy` reply (checked in
                    // `Config::check`).
                    let _ = socket.send_slice(reply);
                    socket.close();
                    event!(
                        warn,
                        "connection from {} turned away ({}): {} clients open, {} from it",
                        Peer(peer),
                        full.as_str(),
                        open,
                        from_source
                    );
                    self.phase = closing(socket, now);
                } else {
                    if let Some(slot) = cx.sources.get_mut(self.index) {
                        *slot = source;
                    }
                    let id = cx.hub.stats.open();
                    socket.set_timeout(Some(Duration::from_millis(SOCKET_TIMEOUT_MS)));
                    socket.set_keep_alive(Some(Duration::from_millis(KEEP_ALIVE_MS)));
                    event!(info, "client {} connected from {}", id, Peer(peer));
                    self.phase = Phase::Serving(Client {
                        conn: Connection::new(id, now, cx.config.core),
                        peer,
                        eof: false,
                    });
                }
            }
            // The handshake failed (timed out or reset): listen again once
            // the reset is out.
            _ => self.phase = closing(socket, now),
        }
    }

    /// Moves the slot on: accepts, serves, or finishes a close. Returns
    /// true when the slot has more work that did not fit in this step.
    pub(crate) fn service(
        &mut self,
        socket: &mut Socket<'_>,
        cx: &mut Context<'_>,
        now: u64,
    ) -> bool {
        match self.phase {
            Phase::Listening => {
                self.accept(socket, cx, now);
                if matches!(self.phase, Phase::Serving(_)) {
                    return self.serve(socket, cx, now);
                }
                false
            }
            Phase::Serving(_) => self.serve(socket, cx, now),
            Phase::Closing { .. } => {
                self.settle(socket, cx, now);
                false
            }
            Phase::Stopped => false,
        }
    }

    /// Moves bytes between the socket and the connection, fires its
    /// timers, and closes the socket when the connection is done.
    fn serve(&mut self, socket: &mut Socket<'_>, cx: &mut Context<'_>, now: u64) -> bool {
        let Phase::Serving(client) = &mut self.phase else {
            return false;
        };
        if !matches!(socket.state(), State::Established | State::CloseWait) {
            // Reset by the peer, or timed out by smoltcp.
            event!(
                info,
                "client {} ({}) disconnected: connection reset or timed out",
                client.conn.id(),
                Peer(client.peer)
            );
            cx.hub.stats.close();
            if let Some(source) = cx.sources.get_mut(self.index) {
                *source = None;
            }
            self.phase = closing(socket, now);
            return false;
        }
        let Context {
            hub,
            scratch,
            sources,
            ..
        } = cx;
        let conn = &mut client.conn;
        if conn.poll_timeout().is_some_and(|due| due <= now) {
            conn.handle_timeout(now, hub);
        }
        if !client.eof && socket.state() == State::CloseWait {
            // Every byte before the FIN is in the receive buffer, and each
            // call below passes the whole buffer: the input is complete.
            conn.handle_eof();
            client.eof = true;
        }
        let mut more = false;
        for round in 0..MAX_ROUNDS {
            // Receive and send both borrow the socket: copy what was
            // received, let the connection answer straight into the send
            // buffer, then drop exactly the bytes it consumed.
            let n = socket.peek_slice(scratch).unwrap_or(0);
            let input = &scratch[..n];
            let sent = socket.send(|out| {
                let progress = conn.handle_input(now, input, out, hub);
                (progress.written, progress)
            });
            let Ok(progress) = sent else { break };
            drop_received(socket, progress.consumed);
            if progress.consumed == 0 && progress.written == 0 {
                break;
            }
            more = round + 1 == MAX_ROUNDS;
        }
        let Some(how) = conn.poll_close() else {
            return more;
        };
        match how {
            Close::Graceful => {
                socket.close();
                event!(
                    info,
                    "client {} ({}) disconnected: {}",
                    conn.id(),
                    Peer(client.peer),
                    conn.close_reason().map_or("closed", |r| r.as_str())
                );
            }
            Close::Abort => {
                socket.abort();
                event!(
                    warn,
                    "client {} ({}) reset: {}",
                    conn.id(),
                    Peer(client.peer),
                    conn.close_reason()
                        .map_or("it stopped reading while closing", |r| r.as_str())
                );
            }
        }
        hub.stats.close();
        if let Some(source) = sources.get_mut(self.index) {
            *source = None;
        }
        self.phase = closing(socket, now);
        false
    }

    /// Finishes a close: drops whatever the peer still sends, and listens
    /// again once the socket allows it (or resets a close that drags on).
    pub(crate) fn settle(&mut self, socket: &mut Socket<'_>, cx: &mut Context<'_>, now: u64) {
        let Phase::Closing { since, time_wait } = &mut self.phase else {
            return;
        };
        let since = *since;
        drop_received(socket, usize::MAX);
        match socket.state() {
            // Aborted: the reset is still to be sent (the remote endpoint is
            // forgotten once it is), unless the peer cannot be reached.
            State::Closed
                if socket.remote_endpoint().is_some()
                    && now < since.saturating_add(RESET_WAIT_MS) => {}
            State::Closed | State::Listen => self.reopen(socket, cx),
            // Shutting down, the peer has everything, FIN included: done
            // (its side may stay open as long as it likes).
            State::FinWait2 if cx.stopping => self.phase = Phase::Stopped,
            State::TimeWait => {
                // Seen before this poll's egress, which then sent the
                // (undelayed) ACK of the peer's FIN: the peer has all it
                // needs, nothing is left to wait for.
                let seen = time_wait.is_some();
                let entered = *time_wait.get_or_insert(now);
                if (seen && cx.sent) || now >= entered.saturating_add(TIME_WAIT_LINGER_MS) {
                    self.reopen(socket, cx);
                }
            }
            // The peer has all we sent but keeps its side open: routine.
            State::FinWait2 if now >= since.saturating_add(CLOSE_TIMEOUT_MS) => {
                event!(
                    info,
                    "reset a connection to {} that stayed half-open for {} ms",
                    Peer(socket.remote_endpoint()),
                    CLOSE_TIMEOUT_MS
                );
                socket.abort();
            }
            // Our reply or FIN is not acknowledged: the peer vanished or
            // stopped reading.
            _ if now >= since.saturating_add(CLOSE_TIMEOUT_MS) => {
                event!(
                    warn,
                    "reset a connection to {} that took over {} ms to close",
                    Peer(socket.remote_endpoint()),
                    CLOSE_TIMEOUT_MS
                );
                socket.abort();
            }
            _ => {}
        }
    }

    /// Listens again, or stops when the server is shutting down. (Out of
    /// line: called from three places.)
    #[inline(never)]
    fn reopen(&mut self, socket: &mut Socket<'_>, cx: &mut Context<'_>) {
        if cx.stopping {
            if socket.state() == State::Listen {
                socket.abort();
            }
            self.phase = Phase::Stopped;
            return;
        }
        // `listen` works from CLOSED and TIME-WAIT (and is a no-op when
        // already listening on the port).
        match socket.listen(cx.config.port) {
            Ok(()) => {
                Slot::tune(socket);
                self.phase = Phase::Listening;
            }
            Err(_) => socket.abort(),
        }
    }

    /// The server is shutting down: stop listening, and let a client's
    /// connection answer the lines already received, then say
    /// `shutting_down` and close.
    pub(crate) fn shutdown(&mut self, socket: &mut Socket<'_>, now: u64) {
        match &mut self.phase {
            Phase::Listening => {
                // No RST for a plain listener; one for a handshake under way.
                socket.abort();
                self.phase = closing(socket, now);
            }
            Phase::Serving(client) => client.conn.handle_shutdown(),
            Phase::Closing { .. } | Phase::Stopped => {}
        }
    }

    /// When the slot must next be serviced, if it has a timer.
    pub(crate) fn deadline(&self, socket: &Socket<'_>) -> Option<u64> {
        match &self.phase {
            Phase::Serving(client) => client.conn.poll_timeout(),
            Phase::Closing { since, time_wait } => match socket.state() {
                State::Closed => socket
                    .remote_endpoint()
                    .map(|_| since.saturating_add(RESET_WAIT_MS)),
                State::TimeWait => Some(
                    time_wait
                        .unwrap_or(*since)
                        .saturating_add(TIME_WAIT_LINGER_MS),
                ),
                _ => Some(since.saturating_add(CLOSE_TIMEOUT_MS)),
            },
            Phase::Listening | Phase::Stopped => None,
        }
    }
}

/// The phase of a slot whose socket was just closed or reset. A closing
/// socket ACKs without delay, so the ACK of the peer's FIN goes out in the
/// same poll and the slot can listen again right after.
fn closing(socket: &mut Socket<'_>, now: u64) -> Phase {
    socket.set_ack_delay(None);
    Phase::Closing {
        since: now,
        time_wait: None,
    }
}

/// Removes up to `count` received bytes (the ring buffer hands them out in
/// at most two contiguous pieces).
fn drop_received(socket: &mut Socket<'_>, mut count: usize) {
    while count > 0 {
        let dropped = socket.recv(|buf| {
            let n = buf.len().min(count);
            (n, n)
        });
        match dropped {
            Ok(n) if n > 0 => count -= n,
            _ => break,
        }
    }
}
