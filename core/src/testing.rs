//! The one test driver of the core (feature `testing`): feed bytes, drain
//! replies, advance time. The core's unit tests, its property tests, the
//! fuzz target and the benchmarks all drive a [`Connection`] through it, so
//! the rules of driving one (offer every unconsumed byte again, send what
//! was written, fire timers when due) are written once.
//!
//! It needs `std` (vectors of bytes), which the core itself never uses.

extern crate std;

use std::string::String;
use std::vec;
use std::vec::Vec;

use crate::config::Config;
use crate::connection::{Connection, Progress};
use crate::error::ErrorCode;
use crate::hub::LocalHub;
use crate::request::Request;
use crate::stats::Stats;
use crate::store::Store;

/// Most calls one [`Driver::pump`] makes before it declares the connection
/// stuck in a loop.
const MAX_CALLS: usize = 1_000_000;
/// Written after the offered output window; must stay untouched.
const GUARD: u8 = 0xAA;
/// How many bytes after the window are guarded. Output is written in order,
/// so a write past the window lands here first; guarding the whole rest of
/// the buffer would cost a 4 KiB fill and scan per call, which made the fuzz
/// target (1-byte windows, thousands of calls per input) 30× slower.
const GUARD_LEN: usize = 64;

/// What [`crate::decode`] answers for `line` when it goes the general way
/// (UTF-8 check, the whole JSON scan, the protocol's rules in order), never
/// through its shortcut for the usual reading: the oracle the fuzz target
/// compares `decode` with.
pub fn decode_general(line: &[u8]) -> Result<Request, ErrorCode> {
    crate::request::decode_scanned(line)
}

/// A connection with its own store and counters, a clock, and the received
/// bytes it has not consumed yet.
#[derive(Debug)]
pub struct Driver {
    /// The connection under test.
    pub conn: Connection,
    /// Its store.
    pub store: Store,
    /// Its counters (the connection is counted open).
    pub stats: Stats,
    /// The time passed to every call, in milliseconds.
    pub now: u64,
    /// Output buffer sizes offered, one per call, cycled (at least one).
    pub windows: Vec<usize>,
    /// Received bytes the connection has not consumed yet.
    pub pending: Vec<u8>,
    next_window: usize,
}

impl Driver {
    /// A connection with `config` at time 0, numbered by a fresh [`Stats`],
    /// with an empty store and 4 KiB output windows.
    pub fn new(config: Config) -> Self {
        Driver::with_store(config, Store::new())
    }

    /// The same, with `store` as its store.
    pub fn with_store(config: Config, store: Store) -> Self {
        let mut stats = Stats::new(0);
        let id = stats.open();
        Driver {
            conn: Connection::new(id, 0, config),
            store,
            stats,
            now: 0,
            windows: vec![4096],
            pending: Vec::new(),
            next_window: 0,
        }
    }

    /// The store and counters as the connection's hub.
    pub fn hub(&mut self) -> LocalHub<'_> {
        LocalHub {
            store: &mut self.store,
            stats: &mut self.stats,
        }
    }

    /// One `handle_input` call at `self.now` with `input` and `out`
    /// (ignoring [`Driver::pending`]).
    pub fn step(&mut self, input: &[u8], out: &mut [u8]) -> Progress {
        let mut hub = LocalHub {
            store: &mut self.store,
            stats: &mut self.stats,
        };
        self.conn.handle_input(self.now, input, out, &mut hub)
    }

    /// Adds `bytes` to what was received and pumps; returns every byte
    /// written.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(bytes);
        self.pump()
    }

    /// Calls the connection with the pending input until a call neither
    /// consumes nor writes anything; returns every byte written. Checks
    /// that no call writes past its window or consumes more than given.
    pub fn pump(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 4096];
        for _ in 0..MAX_CALLS {
            let size = self.windows[self.next_window % self.windows.len()].min(buf.len());
            self.next_window += 1;
            let guard = size..(size + GUARD_LEN).min(buf.len());
            buf[guard.clone()].fill(GUARD);
            let pending = core::mem::take(&mut self.pending);
            let p = self.step(&pending, &mut buf[..size]);
            self.pending = pending;
            assert!(p.written <= size, "wrote {} into {size}", p.written);
            assert!(p.consumed <= self.pending.len(), "consumed too much");
            assert!(
                buf[guard].iter().all(|&b| b == GUARD),
                "wrote past the window"
            );
            all.extend_from_slice(&buf[..p.written]);
            self.pending.drain(..p.consumed);
            // A zero-sized window never makes progress on its own.
            let closed = self.windows.iter().all(|&w| w == 0);
            if p.consumed == 0 && p.written == 0 && (size > 0 || closed) {
                return all;
            }
        }
        panic!("the connection never stopped making progress");
    }

    /// Feeds `input` and expects it all consumed and nothing owed after;
    /// returns the replies as text.
    #[track_caller]
    pub fn send(&mut self, input: &[u8]) -> String {
        let Ok(text) = String::from_utf8(self.send_raw(input)) else {
            panic!("replies are not UTF-8");
        };
        text
    }

    /// Like [`Driver::send`], for output that need not be UTF-8.
    #[track_caller]
    pub fn send_raw(&mut self, input: &[u8]) -> Vec<u8> {
        let out = self.feed(input);
        assert!(
            self.pending.is_empty() && !self.conn.has_output(),
            "connection stopped making progress"
        );
        out
    }

    /// Sends and expects exactly `replies`.
    #[track_caller]
    pub fn recv(&mut self, input: &[u8], replies: &str) {
        assert_eq!(self.send(input), replies);
    }

    /// Sends and expects no reply at all.
    #[track_caller]
    pub fn recv_nothing(&mut self, input: &[u8]) {
        assert_eq!(self.send(input), "");
    }

    /// Sets the clock to `now` and runs `handle_timeout`.
    pub fn timeout(&mut self, now: u64) {
        self.now = now;
        let mut hub = LocalHub {
            store: &mut self.store,
            stats: &mut self.stats,
        };
        self.conn.handle_timeout(now, &mut hub);
    }

    /// Moves the clock to `now`, firing every timer that falls due on the
    /// way (at its own time) and pumping after each; returns what was
    /// written.
    pub fn advance(&mut self, now: u64) -> Vec<u8> {
        let mut all = Vec::new();
        // Each firing moves the connection on (to closing, or closed), so
        // a few rounds always suffice.
        for _ in 0..8 {
            let Some(due) = self.conn.poll_timeout().filter(|&due| due <= now) else {
                break;
            };
            self.timeout(due.max(self.now));
            all.extend(self.pump());
        }
        self.now = now;
        all
    }
}
