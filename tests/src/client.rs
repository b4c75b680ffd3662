//! A test client: send bytes, receive lines, never hang.
//!
//! Every read has a deadline ([`Client::timeout`], 5 s unless changed) and
//! every write a timeout; a test that waits for a reply that never comes
//! fails with what it did receive. The helpers are `#[track_caller]`, so a
//! failure points at the test line.

use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::reply::Stats;

/// How long a receive waits by default before the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How the server ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A FIN: orderly close.
    Eof,
    /// A RST.
    Reset,
}

/// What one attempt to receive brought.
enum Fill {
    Data,
    Closed,
    Timeout,
}

/// One connection to a server under test.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// Received bytes not yet taken by the test.
    pending: Vec<u8>,
    closed: Option<Closed>,
    /// How long a receive waits.
    pub timeout: Duration,
}

/// Shows bytes readably in failure messages.
pub fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                c if c.is_control() => {
                    let _ = write!(s, "\\u{{{:x}}}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    if s.len() > 2000 {
        let mut cut = 1000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut tail = s.len() - 600;
        while !s.is_char_boundary(tail) {
            tail += 1;
        }
        return format!(
            "{} [... {} bytes ...] {}",
            &s[..cut],
            bytes.len(),
            &s[tail..]
        );
    }
    s
}

impl Client {
    /// Wraps a connected stream (Nagle off, so small writes go out at once).
    pub fn new(stream: TcpStream) -> Client {
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        stream
            .set_write_timeout(Some(DEFAULT_TIMEOUT))
            .expect("set write timeout");
        Client {
            stream,
            pending: Vec::new(),
            closed: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The socket, e.g. to clone it for a writer thread.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends all of `bytes`; fails the test if the server does not take them
    /// within the write timeout.
    #[track_caller]
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        if let Err(e) = self.stream.write_all(bytes) {
            panic!("sending {} bytes failed: {e}", bytes.len());
        }
    }

    /// Sends `line` and a LF.
    #[track_caller]
    pub fn send_line(&mut self, line: impl AsRef<[u8]>) {
        let mut bytes = line.as_ref().to_vec();
        bytes.push(b'\n');
        self.send(bytes);
    }

    /// Sends `bytes` one by one, each in its own segment.
    #[track_caller]
    pub fn send_bytewise(&mut self, bytes: impl AsRef<[u8]>) {
        for &b in bytes.as_ref() {
            self.send([b]);
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// One `write` that may fail or time out (for floods and for writing to
    /// a connection the server may have closed).
    pub fn try_send(&mut self, bytes: &[u8], timeout: Duration) -> io::Result<usize> {
        self.stream
            .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let result = self.stream.write(bytes);
        self.stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        result
    }

    /// Pipelines `stats` requests and never reads the replies, until the
    /// server stops taking input (its replies pile up unread; a write
    /// blocks for 300 ms), at most 256 MiB or 10 s. Returns the bytes sent.
    pub fn flood_without_reading(&mut self) -> usize {
        let chunk = "{\"cmd\":\"stats\"}\n".repeat(4096);
        let started = Instant::now();
        let mut total = 0;
        while total < 256 << 20 && started.elapsed() < Duration::from_secs(10) {
            match self.try_send(chunk.as_bytes(), Duration::from_millis(300)) {
                Ok(n) => total += n,
                Err(_) => break, // blocked (or reset): the server stopped reading
            }
        }
        total
    }

    /// Closes the sending side (the server sees EOF); receiving still works.
    #[track_caller]
    pub fn shutdown_write(&mut self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(Write)");
    }

    /// Receives once, until `deadline` at the latest.
    #[track_caller]
    fn fill(&mut self, deadline: Instant) -> Fill {
        if self.closed.is_some() {
            return Fill::Closed;
        }
        let mut buf = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Fill::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("set read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = Some(Closed::Eof);
                    return Fill::Closed;
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return Fill::Data;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Fill::Timeout;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    self.closed = Some(Closed::Reset);
                    return Fill::Closed;
                }
                Err(e) => panic!("receive failed: {e}"),
            }
        }
    }

    /// Receives one line, returned without its LF; fails the test on
    /// timeout or close.
    #[track_caller]
    pub fn recv_line_bytes(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=i).collect();
                line.pop();
                return line;
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => panic!(
                    "connection closed ({:?}) while waiting for a line; received before: \"{}\"",
                    self.closed,
                    show(&self.pending)
                ),
                Fill::Timeout => panic!(
                    "no complete line within {:?}; received: \"{}\"",
                    self.timeout,
                    show(&self.pending)
                ),
            }
        }
    }

    /// A line if one arrives within `wait`, else `None`; fails the test if
    /// the server closes first.
    #[track_caller]
    pub fn try_recv_line(&mut self, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=i).collect();
                line.pop();
                return Some(String::from_utf8_lossy(&line).into_owned());
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Timeout => return None,
                Fill::Closed => panic!(
                    "connection closed ({:?}) while waiting for a line; received before: \"{}\"",
                    self.closed,
                    show(&self.pending)
                ),
            }
        }
    }

    /// Receives one line as text (replies are UTF-8), without its LF.
    #[track_caller]
    pub fn recv_line(&mut self) -> String {
        let line = self.recv_line_bytes();
        match String::from_utf8(line) {
            Ok(s) => s,
            Err(e) => panic!("reply is not UTF-8: \"{}\"", show(e.as_bytes())),
        }
    }

    /// Receives `n` lines.
    #[track_caller]
    pub fn recv_lines(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.recv_line()).collect()
    }

    /// Receives exactly `n` bytes (echo mode).
    #[track_caller]
    pub fn recv_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + self.timeout;
        while self.pending.len() < n {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => panic!(
                    "connection closed ({:?}) after {} of {n} bytes",
                    self.closed,
                    self.pending.len()
                ),
                Fill::Timeout => panic!(
                    "only {} of {n} bytes within {:?}",
                    self.pending.len(),
                    self.timeout
                ),
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Fails the test if anything arrives (or the connection closes) within
    /// `wait`.
    #[track_caller]
    pub fn recv_nothing(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while self.pending.is_empty() {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Timeout => return,
                Fill::Closed => panic!(
                    "expected silence, but the server closed ({:?})",
                    self.closed
                ),
            }
        }
        panic!("expected no reply, received \"{}\"", show(&self.pending));
    }

    /// Expects the server to close the connection, with no further bytes;
    /// returns how it closed.
    #[track_caller]
    pub fn recv_closed(&mut self) -> Closed {
        let deadline = Instant::now() + self.timeout;
        loop {
            if !self.pending.is_empty() {
                panic!("expected the close, received \"{}\"", show(&self.pending));
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed if self.pending.is_empty() => {
                    return self.closed.unwrap_or(Closed::Eof);
                }
                Fill::Closed => {
                    panic!("expected the close, received \"{}\"", show(&self.pending))
                }
                Fill::Timeout => panic!("the server did not close within {:?}", self.timeout),
            }
        }
    }

    /// Everything received until the server closes (bounded by the timeout).
    #[track_caller]
    pub fn recv_until_closed(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return std::mem::take(&mut self.pending),
                Fill::Timeout => panic!(
                    "the server did not close within {:?}; received \"{}\"",
                    self.timeout,
                    show(&self.pending)
                ),
            }
        }
    }

    /// Sends `line` and a LF, returns the reply line.
    #[track_caller]
    pub fn request(&mut self, line: impl AsRef<[u8]>) -> String {
        self.send_line(line);
        self.recv_line()
    }

    /// Sends `line` and a LF; the reply must be `reply`, byte for byte.
    #[track_caller]
    pub fn expect(&mut self, line: impl AsRef<[u8]>, reply: impl AsRef<str>) {
        let (line, reply) = (line.as_ref(), reply.as_ref());
        let got = self.request(line);
        assert!(
            got == reply,
            "wrong reply\n  request:  {}\n  expected: {reply}\n  actual:   {got}\n",
            show(line)
        );
    }

    /// Sends every request of `cases` in turn and compares each reply with
    /// its expected reply, byte for byte; reports every mismatch at once.
    #[track_caller]
    pub fn check<R: AsRef<[u8]>, E: AsRef<str>>(&mut self, cases: &[(R, E)]) {
        let mut failures = String::new();
        for (request, expected) in cases {
            let (request, expected) = (request.as_ref(), expected.as_ref());
            let got = self.request(request);
            if got != expected {
                let _ = write!(
                    failures,
                    "\n  request:  {}\n  expected: {expected}\n  actual:   {got}\n",
                    show(request)
                );
            }
        }
        assert!(failures.is_empty(), "wrong replies:{failures}");
    }

    /// Asks `stats` and parses the reply, checking its exact format.
    #[track_caller]
    pub fn stats(&mut self) -> Stats {
        let line = self.request(r#"{"cmd":"stats"}"#);
        Stats::parse(&line)
    }

    /// Asks `stats` until `ok` holds (the server may not have noticed a
    /// close yet), at most for the timeout; returns the last answer.
    #[track_caller]
    pub fn stats_until(&mut self, ok: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + self.timeout;
        loop {
            let stats = self.stats();
            if ok(&stats) {
                return stats;
            }
            if Instant::now() >= deadline {
                panic!("stats never reached the expected state; last: {stats:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
