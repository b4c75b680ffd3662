//! An event-loop thread: one `mio` poll over its share of the connections.
//!
//! The server runs `--threads` of these. The acceptor
//! ([`crate::listener`]) hands each admitted connection to one of them,
//! round-robin, through the loop's [`LoopHandle`]: it pushes the socket
//! into the handle's inbox and wakes the loop with its `mio::Waker`.
//!
//! Each loop owns:
//! - its connections ([`Client`]s in a slab; a connection's slab key is its
//!   `mio` token),
//! - a timer heap of `(deadline, key)`: each connection has at most one
//!   live entry, [`Client::armed`]; an entry that fires early (the deadline
//!   moved later, e.g. the idle timeout after a new line) only re-arms it,
//!   so a busy connection costs no heap work,
//! - a queue of connections whose turn ended with work left (fairness: no
//!   client floods a loop),
//! - the scratch buffers every connection reads into and renders into.
//!
//! ## Waking a loop from another thread (the hub seam)
//!
//! A part of the hub that works on a thread of its own (the history writer,
//! which commits readings to disk in groups) makes the core hold a reply
//! until that work is done. A connection whose next reply waits for the hub
//! (`Connection::awaits_hub`) is marked [`Client::waits_on_hub`]; the loop
//! keeps those keys in its `hub_waiters` set. The history's commit hook
//! (set in [`crate::Server::bind`]) calls [`crate::Shared::wake_all`]. [`crate::Shared::wake_all`] (or
//! [`LoopHandle::wake_hub`] for one loop) sets the handle's `hub_ready`
//! flag and wakes the loop; the loop then drives every waiting connection
//! again (the core is called with no new input and what it writes is
//! flushed). Calling it with nothing waiting is harmless.

use std::collections::{HashSet, VecDeque};
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::warn;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::timers::Timers;
use crate::worker::{Client, End, Scratch, Step};
use crate::Shared;

/// The token of the loop's waker.
const WAKER: Token = Token(usize::MAX);
/// The token of the shutdown pipe.
const SHUTDOWN: Token = Token(usize::MAX - 1);

/// Events taken from the poll at once.
const EVENTS: usize = 1024;

/// A connection the acceptor hands to a loop: admitted and counted open.
#[derive(Debug)]
pub struct Handoff {
    /// Its id.
    pub id: u64,
    /// Its peer.
    pub peer: SocketAddr,
    /// The socket, non-blocking.
    pub sock: TcpStream,
}

/// What other threads hold of a loop: its inbox and its waker.
#[derive(Debug)]
pub struct LoopHandle {
    waker: Waker,
    inbox: Mutex<Vec<Handoff>>,
    hub_ready: AtomicBool,
}

impl LoopHandle {
    /// Hands a connection to the loop.
    pub fn hand(&self, conn: Handoff) {
        let was_empty = {
            let mut inbox = self.inbox.lock().unwrap_or_else(|p| p.into_inner());
            inbox.push(conn);
            inbox.len() == 1
        };
        // One wake per batch: the loop empties the whole inbox.
        if was_empty {
            self.wake();
        }
    }

    /// The hub has news for connections that wait on it: drive them again.
    /// Wakes the loop only if it has not yet taken the last news (commits
    /// come far more often than a busy loop polls).
    pub fn wake_hub(&self) {
        if !self.hub_ready.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    /// Wakes the loop to look at the server's state again (the acceptor
    /// has stopped).
    pub fn nudge(&self) {
        self.wake();
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            warn!("cannot wake an event loop: {e}");
        }
    }
}

/// A loop, made but not yet running.
#[derive(Debug)]
pub struct EventLoop {
    poll: Poll,
}

impl EventLoop {
    /// A new poll and the handle that reaches it.
    pub fn new() -> io::Result<(EventLoop, LoopHandle)> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let handle = LoopHandle {
            waker,
            inbox: Mutex::new(Vec::new()),
            hub_ready: AtomicBool::new(false),
        };
        Ok((EventLoop { poll }, handle))
    }

    /// Runs the loop `index` of `shared.loops` until the server stopped and
    /// every one of its connections is gone.
    pub fn run(mut self, index: usize, shared: Arc<Shared>) {
        let Some(handle) = shared.loops.get(index) else {
            return;
        };
        let shutdown_fd = shared.shutdown.fd().as_raw_fd();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&shutdown_fd), SHUTDOWN, Interest::READABLE)
        {
            warn!("event loop {index}: cannot watch the stop signal: {e}");
        }
        let mut state = State {
            shared: &shared,
            clients: Slab::new(),
            timers: Timers::default(),
            again: VecDeque::new(),
            hub_waiters: HashSet::new(),
            scratch: Scratch::default(),
            stopping: false,
        };
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let now = shared.hub.now_ms();
            if state.stopping
                && state.clients.is_empty()
                && !shared.accepting.load(Ordering::Acquire)
                && inbox_empty(handle)
            {
                return;
            }
            let timeout = if !state.again.is_empty() {
                Some(Duration::ZERO)
            } else {
                state
                    .timers
                    .next()
                    .map(|at| Duration::from_millis(at.saturating_sub(now)))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != ErrorKind::Interrupted {
                    warn!("event loop {index}: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let now = shared.hub.now_ms();
            let mut woken = false;
            for ev in events.iter() {
                match ev.token() {
                    WAKER => woken = true,
                    SHUTDOWN => {}
                    Token(key) => {
                        let Some(c) = state.clients.get_mut(key) else {
                            continue;
                        };
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.readable = true;
                        }
                        if ev.is_read_closed() || ev.is_error() {
                            c.read_closed = true;
                        }
                        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                            c.writable = true;
                        }
                        state.drive(key, now);
                    }
                }
            }
            if !state.stopping && shared.shutdown.is_triggered() {
                state.stop(now);
            }
            if woken {
                let new =
                    std::mem::take(&mut *handle.inbox.lock().unwrap_or_else(|p| p.into_inner()));
                for h in new {
                    state.add(&self.poll, h, now);
                }
                if handle.hub_ready.swap(false, Ordering::AcqRel) {
                    let waiting: Vec<usize> = state.hub_waiters.drain().collect();
                    for key in waiting {
                        state.drive(key, now);
                    }
                }
            }
            state.fire_timers(now);
            for _ in 0..state.again.len() {
                let Some(key) = state.again.pop_front() else {
                    break;
                };
                if let Some(c) = state.clients.get_mut(key) {
                    c.queued = false;
                    state.drive(key, now);
                }
            }
        }
    }
}

fn inbox_empty(handle: &LoopHandle) -> bool {
    handle
        .inbox
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty()
}

/// A running loop's state.
struct State<'a> {
    shared: &'a Shared,
    clients: Slab<Client>,
    timers: Timers,
    again: VecDeque<usize>,
    hub_waiters: HashSet<usize>,
    scratch: Scratch,
    stopping: bool,
}

impl State<'_> {
    /// Registers a handed-over connection and serves it at once.
    fn add(&mut self, poll: &Poll, h: Handoff, now: u64) {
        let mut client = Client::new(h.id, h.peer, h.sock, self.shared, now);
        if self.stopping {
            client.stop(now);
        }
        let entry = self.clients.vacant_entry();
        let key = entry.key();
        let fd = client.socket().as_raw_fd();
        if let Err(e) = poll.registry().register(
            &mut SourceFd(&fd),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            let _ = client.end(End::Failed(e), self.shared, now);
            return;
        }
        entry.insert(client);
        self.drive(key, now);
    }

    /// Drives connection `key` and files it as its step says.
    fn drive(&mut self, key: usize, now: u64) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        match c.drive(now, self.shared, &mut self.scratch) {
            Step::Wait => {}
            Step::Again => {
                if !c.queued {
                    c.queued = true;
                    self.again.push_back(key);
                }
            }
            Step::Ended(end) => {
                if !c.end(end, self.shared, now) {
                    // Dropping the socket closes it, which also removes it
                    // from the poll.
                    self.clients.remove(key);
                    self.hub_waiters.remove(&key);
                    let clients = &self.clients;
                    self.timers
                        .prune(clients.len(), |key| clients.get(key).map(|c| c.armed));
                    return;
                }
            }
        }
        if c.waits_on_hub {
            self.hub_waiters.insert(key);
        }
        let next = c.deadline();
        if next < c.armed || c.armed <= now {
            c.armed = next;
            if next != u64::MAX {
                self.timers.arm(next, key);
            }
        }
    }

    /// Drives every connection whose timer is due.
    fn fire_timers(&mut self, now: u64) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            // A stale entry (the key was reused, or re-armed earlier) only
            // costs a drive that finds nothing to do.
            if let Some(c) = self.clients.get_mut(key) {
                if c.armed <= at {
                    c.armed = u64::MAX;
                }
                self.drive(key, now);
            }
        }
    }

    /// The server began to stop: every connection answers what it has,
    /// says `shutting_down` and closes.
    fn stop(&mut self, now: u64) {
        self.stopping = true;
        let keys: Vec<usize> = self.clients.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(c) = self.clients.get_mut(key) {
                c.stop(now);
            }
            self.drive(key, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn another_thread_wakes_a_loop_for_the_hub() {
        let (mut l, handle) = EventLoop::new().unwrap();
        let handle = Arc::new(handle);
        let mut events = Events::with_capacity(8);
        l.poll
            .poll(&mut events, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(events.is_empty(), "woke with nothing to say");
        let waker = {
            let handle = Arc::clone(&handle);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                handle.wake_hub();
            })
        };
        let start = Instant::now();
        l.poll
            .poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(events.iter().any(|e| e.token() == WAKER));
        assert!(handle.hub_ready.swap(false, Ordering::AcqRel));
        waker.join().unwrap();
    }
}
