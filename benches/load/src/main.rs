//! `envhub-load`: a load generator for the envhub line protocol.
//!
//! It opens `-c` connections to one server and keeps `-d` requests in flight
//! on each (pipelining) for `--duration` seconds. Every reply is checked byte
//! for byte against the reply computed locally for the request it answers;
//! a wrong, missing or extra reply counts as an error. At the end it prints
//! requests per second and the latency (send to reply) percentiles, then one
//! machine-readable line starting with `SUMMARY`.
//!
//! Modes:
//! - `sensor`: readings with sequence numbers over a few dozen locations;
//!   each must come back as the exact `{"ok":true,...}` acknowledgement.
//! - `echo`: the same lines against a server in echo mode; each must come
//!   back verbatim.
//! - `ack`: the same lines; each must be answered by `{"ok":true}` (the
//!   minimal smoltcp peer of `benches/smoltcp-ack`).
//!
//! `--hold N` instead opens N connections, sends one `ping` on each, checks
//! its reply so the server has surely accepted and served it, prints
//! `held N connections` and then keeps them idle until killed or until
//! `--duration` ends (for measuring the server's memory per connection).
//!
//! Traffic goes only to loopback, or, with `--allow-netns-addr`, to the
//! benchmark namespace subnet 192.168.69.0/24 (optionally after entering a
//! network namespace with `--netns`). Every run is bounded in time.
//!
//! The event loop is hand-written over `epoll` (through `nix`) rather than an
//! async runtime: a generator pinned to one core measures the server best
//! when one thread serves every connection with the fewest syscalls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

/// Longest run accepted, in seconds (also for `--hold`).
const MAX_DURATION_SECS: f64 = 120.0;
/// Longest warm-up accepted, in seconds.
const MAX_WARMUP_SECS: f64 = 30.0;
/// How long to wait for the replies still owed once sending stopped.
const DRAIN: Duration = Duration::from_secs(3);
/// How long one connect or one `--hold` ping may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Mismatched replies printed in full (the rest are only counted).
const SHOWN_MISMATCHES: u64 = 5;

mod args {
    //! The command line.

    use clap::{Parser, ValueEnum};

    /// What the server is expected to answer.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
    pub enum Mode {
        /// The line protocol: each reading acknowledged.
        Sensor,
        /// Echo mode: each line back verbatim.
        Echo,
        /// Each line answered by `{"ok":true}`.
        Ack,
    }

    /// Load generator for envhub servers: pipelined readings, every reply
    /// verified byte for byte, throughput and latency percentiles.
    #[derive(Debug, Parser)]
    #[command(name = "envhub-load", version)]
    pub struct Args {
        /// Server address, IP:PORT (loopback only, unless --allow-netns-addr).
        #[arg(long, default_value = "127.0.0.1:8080")]
        pub addr: String,
        /// Number of connections.
        #[arg(short = 'c', long, default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=20_000))]
        pub connections: u32,
        /// Requests kept in flight on each connection.
        #[arg(short = 'd', long, default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=1024))]
        pub depth: u32,
        /// Seconds of measurement (at most 120).
        #[arg(long, default_value_t = 5.0)]
        pub duration: f64,
        /// Seconds of load before measuring starts (at most 30).
        #[arg(long, default_value_t = 0.0)]
        pub warmup: f64,
        /// What the server answers.
        #[arg(long, value_enum, default_value_t = Mode::Sensor)]
        pub mode: Mode,
        /// Generator threads; connections are spread over them.
        #[arg(short = 't', long, default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=64))]
        pub threads: u32,
        /// Enter this network namespace (`ip netns` name) before connecting.
        #[arg(long)]
        pub netns: Option<String>,
        /// Also allow addresses in 192.168.69.0/24 (the benchmark namespace).
        #[arg(long)]
        pub allow_netns_addr: bool,
        /// Only open this many idle connections and hold them.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=200_000))]
        pub hold: Option<u32>,
        /// With --hold towards 127.0.0.1: spread the connections over this
        /// many source addresses, 127.0.0.2 on (one address has only
        /// ~28,000 ports). 0: the system's choice.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=200))]
        pub sources: u8,
    }
}

mod target {
    //! Where traffic may go, and getting there.

    use std::net::{IpAddr, SocketAddr};

    /// Parses `addr` and refuses anything but loopback, or with
    /// `allow_netns` also 192.168.69.0/24.
    pub fn checked_addr(addr: &str, allow_netns: bool) -> Result<SocketAddr, String> {
        let sa: SocketAddr = addr
            .parse()
            .map_err(|_| format!("--addr {addr:?} is not IP:PORT"))?;
        if allowed(sa.ip(), allow_netns) {
            Ok(sa)
        } else if allow_netns {
            Err(format!(
                "refusing {sa}: only 127.0.0.0/8, ::1 and 192.168.69.0/24 are allowed"
            ))
        } else {
            Err(format!(
                "refusing {sa}: only 127.0.0.0/8 and ::1 are allowed (see --allow-netns-addr)"
            ))
        }
    }

    fn allowed(ip: IpAddr, allow_netns: bool) -> bool {
        match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback() || (allow_netns && v4.octets()[..3] == [192, 168, 69])
            }
            IpAddr::V6(v6) => v6.is_loopback(),
        }
    }

    /// Moves this thread (and the threads it starts later) into the network
    /// namespace `name` made by `ip netns add`.
    pub fn enter_netns(name: &str) -> Result<(), String> {
        let simple = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && name != "."
            && name != "..";
        if !simple {
            return Err(format!("--netns {name:?} is not a plain namespace name"));
        }
        let path = format!("/run/netns/{name}");
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns({path}): {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn loopback_only_by_default() {
            assert!(checked_addr("127.0.0.1:8080", false).is_ok());
            assert!(checked_addr("127.3.2.1:1", false).is_ok());
            assert!(checked_addr("[::1]:8080", false).is_ok());
            assert!(checked_addr("192.168.69.2:8080", false).is_err());
            assert!(checked_addr("10.0.0.1:8080", false).is_err());
            assert!(checked_addr("0.0.0.0:8080", false).is_err());
            assert!(checked_addr("localhost:8080", false).is_err());
        }

        #[test]
        fn netns_subnet_only_when_allowed() {
            assert!(checked_addr("192.168.69.2:8080", true).is_ok());
            assert!(checked_addr("192.168.70.2:8080", true).is_err());
            assert!(checked_addr("8.8.8.8:53", true).is_err());
            assert!(checked_addr("[::2]:80", true).is_err());
        }

        #[test]
        fn netns_names_are_plain() {
            assert!(enter_netns("../etc").is_err());
            assert!(enter_netns("a/b").is_err());
            assert!(enter_netns("").is_err());
        }
    }
}

mod workload {
    //! The request lines sent and the replies they must get.

    use super::args::Mode;

    /// Distinct locations used (below the store's 64).
    pub const LOCATIONS: u32 = 40;

    /// Appends the request number `seq` of connection `conn`.
    pub fn request(conn: u32, seq: u32, out: &mut Vec<u8>) {
        let (loc, temp, hum) = values(conn, seq);
        out.extend_from_slice(b"{\"location\":\"room_");
        two_digits(loc, out);
        out.extend_from_slice(b"\",\"temp\":");
        tenths(temp, out);
        out.extend_from_slice(b",\"hum\":");
        out.extend_from_slice(itoa::Buffer::new().format(hum).as_bytes());
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        out.extend_from_slice(b"}\n");
    }

    /// Appends the reply `mode` owes to [`request`]`(conn, seq)`.
    pub fn expected(mode: Mode, conn: u32, seq: u32, out: &mut Vec<u8>) {
        match mode {
            Mode::Echo => request(conn, seq, out),
            Mode::Ack => out.extend_from_slice(b"{\"ok\":true}\n"),
            Mode::Sensor => {
                let (loc, temp, hum) = values(conn, seq);
                out.extend_from_slice(b"{\"ok\":true,\"location\":\"room_");
                two_digits(loc, out);
                out.extend_from_slice(b"\",\"temp\":");
                tenths(temp, out);
                out.extend_from_slice(b",\"hum\":");
                out.extend_from_slice(itoa::Buffer::new().format(hum).as_bytes());
                out.extend_from_slice(b".0,\"seq\":");
                out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
                out.extend_from_slice(b"}\n");
            }
        }
    }

    /// The `ping` of `--hold` and the reply `mode` owes to it.
    pub fn ping(mode: Mode) -> (&'static [u8], &'static [u8]) {
        let ping: &[u8] = b"{\"cmd\":\"ping\"}\n";
        let reply: &[u8] = match mode {
            Mode::Sensor => b"{\"ok\":true,\"pong\":true}\n",
            Mode::Echo => ping,
            Mode::Ack => b"{\"ok\":true}\n",
        };
        (ping, reply)
    }

    /// Location index, temperature in tenths (−400..=1250, written with one
    /// decimal so it comes back as written) and humidity (0..=100, written as
    /// an integer so it comes back with `.0`).
    fn values(conn: u32, seq: u32) -> (u32, i32, u32) {
        let loc = (conn.wrapping_mul(7).wrapping_add(seq)) % LOCATIONS;
        let temp = (seq.wrapping_mul(37) % 1651) as i32 - 400;
        let hum = seq.wrapping_mul(13) % 101;
        (loc, temp, hum)
    }

    fn two_digits(n: u32, out: &mut Vec<u8>) {
        out.push(b'0' + (n / 10 % 10) as u8);
        out.push(b'0' + (n % 10) as u8);
    }

    fn tenths(t: i32, out: &mut Vec<u8>) {
        if t < 0 {
            out.push(b'-');
        }
        let m = t.unsigned_abs();
        out.extend_from_slice(itoa::Buffer::new().format(m / 10).as_bytes());
        out.push(b'.');
        out.push(b'0' + (m % 10) as u8);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
            let mut v = Vec::new();
            f(&mut v);
            String::from_utf8(v).unwrap()
        }

        #[test]
        fn request_and_sensor_reply_agree() {
            // seq 0: temp -40.0, hum 0.
            assert_eq!(
                text(|o| request(0, 0, o)),
                "{\"location\":\"room_00\",\"temp\":-40.0,\"hum\":0,\"seq\":0}\n"
            );
            assert_eq!(
                text(|o| expected(Mode::Sensor, 0, 0, o)),
                "{\"ok\":true,\"location\":\"room_00\",\"temp\":-40.0,\"hum\":0.0,\"seq\":0}\n"
            );
            assert_eq!(
                text(|o| expected(Mode::Echo, 3, 9, o)),
                text(|o| request(3, 9, o))
            );
            assert_eq!(text(|o| expected(Mode::Ack, 3, 9, o)), "{\"ok\":true}\n");
        }

        #[test]
        fn values_stay_in_range_and_small_negatives_keep_their_sign() {
            for seq in 0..5000u32 {
                let (loc, t, h) = values(seq % 17, seq);
                assert!(loc < LOCATIONS && (-400..=1250).contains(&t) && h <= 100);
            }
            assert_eq!(text(|o| tenths(-5, o)), "-0.5");
            assert_eq!(text(|o| tenths(0, o)), "0.0");
            assert_eq!(text(|o| tenths(1250, o)), "125.0");
        }
    }
}

mod driver {
    //! One generator thread: an epoll loop over its connections.

    use super::args::Mode;
    use super::workload;
    use super::SHOWN_MISMATCHES;
    use hdrhistogram::Histogram;
    use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
    use std::collections::VecDeque;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    /// Receive buffer per connection: far more than `depth` replies.
    const RECV_BUF: usize = 16 * 1024;

    /// When things happen, shared by every thread.
    #[derive(Debug, Clone, Copy)]
    pub struct Plan {
        /// What the server answers.
        pub mode: Mode,
        /// Requests in flight per connection.
        pub depth: u32,
        /// Replies received from here on are measured.
        pub measure_from: Instant,
        /// No new request is sent from here on.
        pub stop_at: Instant,
        /// Replies still owed at this point are counted missing.
        pub drain_until: Instant,
    }

    /// What one thread saw.
    #[derive(Debug)]
    pub struct Outcome {
        /// Correct replies received inside the measured window.
        pub measured: u64,
        /// Latency of those replies, nanoseconds.
        pub latency: Histogram<u64>,
        /// Correct replies overall.
        pub ok: u64,
        /// Wrong, extra and missing replies, I/O errors, early closes.
        pub errors: u64,
        /// Fewest and most correct replies of one connection (fairness).
        pub per_conn: (u64, u64),
    }

    /// A histogram of latencies from 1 ns to 10 minutes, 3 significant digits.
    pub fn latency_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
        Histogram::new_with_bounds(1, 600_000_000_000, 3)
    }

    struct Conn {
        stream: TcpStream,
        /// Its place in this thread's list: the epoll data.
        slot: u64,
        index: u32,
        next_seq: u32,
        /// Correct replies so far.
        ok: u64,
        /// Send time and seq of each request not yet answered, in order.
        inflight: VecDeque<(Instant, u32)>,
        recv: Box<[u8]>,
        recv_len: usize,
        send: Vec<u8>,
        send_pos: usize,
        want_write: bool,
        dead: bool,
    }

    /// Runs `streams` (with their global connection numbers) to the end of
    /// `plan`.
    pub fn run(streams: Vec<(u32, TcpStream)>, plan: Plan) -> std::io::Result<Outcome> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let mut conns = Vec::with_capacity(streams.len());
        for (i, (index, stream)) in streams.into_iter().enumerate() {
            stream.set_nonblocking(true)?;
            epoll.add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))?;
            conns.push(Conn {
                stream,
                slot: i as u64,
                index,
                next_seq: 0,
                ok: 0,
                inflight: VecDeque::with_capacity(plan.depth as usize),
                recv: vec![0; RECV_BUF].into_boxed_slice(),
                recv_len: 0,
                send: Vec::with_capacity(128 * plan.depth as usize),
                send_pos: 0,
                want_write: false,
                dead: false,
            });
        }
        let mut out = Outcome {
            measured: 0,
            latency: latency_histogram().map_err(std::io::Error::other)?,
            ok: 0,
            errors: 0,
            per_conn: (u64::MAX, 0),
        };
        let mut scratch = Vec::with_capacity(256);
        let now = Instant::now();
        for c in &mut conns {
            c.queue(plan.depth, now);
            c.flush(&epoll, &mut out);
        }
        let mut events = vec![EpollEvent::empty(); conns.len().clamp(1, 1024)];
        let mut stopping = false;
        loop {
            let now = Instant::now();
            if now >= plan.stop_at {
                stopping = true;
            }
            if stopping && conns.iter().all(|c| c.dead || c.inflight.is_empty()) {
                break;
            }
            if now >= plan.drain_until {
                break;
            }
            let limit = if stopping {
                plan.drain_until
            } else {
                plan.stop_at
            };
            let wait_ms = limit
                .saturating_duration_since(now)
                .as_millis()
                .clamp(1, 100) as u16;
            let n = match epoll.wait(&mut events, wait_ms) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let now = Instant::now();
            let measuring = now >= plan.measure_from && now <= plan.stop_at;
            for ev in &events[..n] {
                let Some(c) = conns.get_mut(ev.data() as usize) else {
                    continue;
                };
                if c.dead {
                    continue;
                }
                let flags = ev.events();
                if flags.intersects(EpollFlags::EPOLLOUT) {
                    c.flush(&epoll, &mut out);
                }
                if flags
                    .intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
                {
                    let answered = c.receive(&plan, now, measuring, &mut scratch, &mut out);
                    if !stopping && !c.dead && answered > 0 {
                        c.queue(answered, now);
                        c.flush(&epoll, &mut out);
                    }
                }
                if c.dead {
                    // A closed socket stays readable: stop watching it.
                    let _ = epoll.delete(&c.stream);
                }
            }
        }
        for c in &conns {
            out.per_conn = (out.per_conn.0.min(c.ok), out.per_conn.1.max(c.ok));
            if !c.dead && !c.inflight.is_empty() {
                eprintln!(
                    "connection {}: {} replies missing at the end",
                    c.index,
                    c.inflight.len()
                );
                out.errors += c.inflight.len() as u64;
            }
        }
        Ok(out)
    }

    impl Conn {
        /// Appends `n` new requests to the send buffer.
        fn queue(&mut self, n: u32, now: Instant) {
            for _ in 0..n {
                let seq = self.next_seq;
                self.next_seq = seq.wrapping_add(1);
                workload::request(self.index, seq, &mut self.send);
                self.inflight.push_back((now, seq));
            }
        }

        /// Writes what the socket takes; waits for room if it takes less.
        fn flush(&mut self, epoll: &Epoll, out: &mut Outcome) {
            while self.send_pos < self.send.len() {
                match self.stream.write(&self.send[self.send_pos..]) {
                    Ok(0) => return self.fail("write returned 0", epoll, out),
                    Ok(n) => self.send_pos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(&format!("write: {e}"), epoll, out),
                }
            }
            let pending = self.send_pos < self.send.len();
            if !pending {
                self.send.clear();
                self.send_pos = 0;
            }
            if pending != self.want_write {
                self.want_write = pending;
                let flags = if pending {
                    EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
                } else {
                    EpollFlags::EPOLLIN
                };
                let mut ev = EpollEvent::new(flags, self.slot);
                if let Err(e) = epoll.modify(&self.stream, &mut ev) {
                    self.fail(&format!("epoll modify: {e}"), epoll, out);
                }
            }
        }

        /// Reads once and checks every complete reply; returns how many
        /// replies arrived.
        fn receive(
            &mut self,
            plan: &Plan,
            now: Instant,
            measuring: bool,
            scratch: &mut Vec<u8>,
            out: &mut Outcome,
        ) -> u32 {
            let n = loop {
                match self.stream.read(&mut self.recv[self.recv_len..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return 0,
                    Err(e) => {
                        self.die(&format!("read: {e}"), out);
                        return 0;
                    }
                }
            };
            if n == 0 {
                let why = if self.recv_len > 0 {
                    "server closed after a partial reply"
                } else {
                    "server closed the connection"
                };
                self.die(why, out);
                return 0;
            }
            self.recv_len += n;
            let mut answered = 0;
            let mut start = 0;
            while let Some(lf) = self.recv[start..self.recv_len]
                .iter()
                .position(|&b| b == b'\n')
            {
                let line = &self.recv[start..start + lf + 1];
                start += lf + 1;
                answered += 1;
                let Some((sent, seq)) = self.inflight.pop_front() else {
                    out.errors += 1;
                    show(out, self.index, "(no request)", line);
                    continue;
                };
                scratch.clear();
                workload::expected(plan.mode, self.index, seq, scratch);
                if line != scratch.as_slice() {
                    out.errors += 1;
                    show(out, self.index, &String::from_utf8_lossy(scratch), line);
                    continue;
                }
                out.ok += 1;
                self.ok += 1;
                if measuring {
                    out.measured += 1;
                    let ns = now.saturating_duration_since(sent).as_nanos();
                    out.latency
                        .saturating_record(u64::try_from(ns).unwrap_or(u64::MAX));
                }
            }
            self.recv.copy_within(start..self.recv_len, 0);
            self.recv_len -= start;
            if self.recv_len == self.recv.len() {
                self.die("reply longer than the receive buffer", out);
            }
            answered
        }

        fn fail(&mut self, why: &str, epoll: &Epoll, out: &mut Outcome) {
            let _ = epoll.delete(&self.stream);
            self.die(why, out);
        }

        fn die(&mut self, why: &str, out: &mut Outcome) {
            if !self.dead {
                eprintln!(
                    "connection {}: {why} ({} replies owed)",
                    self.index,
                    self.inflight.len()
                );
                out.errors += 1 + self.inflight.len() as u64;
                self.inflight.clear();
                self.dead = true;
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    fn show(out: &Outcome, conn: u32, expected: &str, got: &[u8]) {
        if out.errors <= SHOWN_MISMATCHES {
            eprintln!(
                "connection {conn}: wrong reply\n  expected {}\n  got      {}",
                expected.trim_end(),
                String::from_utf8_lossy(got).trim_end()
            );
        }
    }
}

/// Prints one line to stdout and flushes it; a closed stdout (`| head`) is
/// not worth a panic.
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// Connects to `addr` with TCP_NODELAY, blocking.
fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Connects to `addr` from 127.0.0.`2 + source`, blocking.
fn connect_from(addr: SocketAddr, source: u8) -> std::io::Result<TcpStream> {
    let from = SocketAddr::from(([127, 0, 0, 2u8.saturating_add(source)], 0));
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&from.into())?;
    s.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    Ok(s)
}

/// `--hold N`: N idle connections, each served one ping first, spread over
/// `sources` source addresses (0: the system's choice).
fn hold(addr: SocketAddr, n: u32, sources: u8, mode: args::Mode, secs: f64) -> Result<(), String> {
    let (ping, reply) = workload::ping(mode);
    let mut held = Vec::with_capacity(n as usize);
    for i in 0..n {
        let s = if sources == 0 {
            connect(addr)
        } else {
            connect_from(addr, u8::try_from(i % u32::from(sources)).unwrap_or(0))
        };
        let mut s = s.map_err(|e| format!("connection {i}: connect: {e}"))?;
        s.set_read_timeout(Some(CONNECT_TIMEOUT))
            .map_err(|e| e.to_string())?;
        s.write_all(ping)
            .map_err(|e| format!("connection {i}: write: {e}"))?;
        let mut got = vec![0u8; reply.len()];
        s.read_exact(&mut got)
            .map_err(|e| format!("connection {i}: no reply to ping: {e}"))?;
        if got != reply {
            return Err(format!(
                "connection {i}: wrong ping reply {:?}",
                String::from_utf8_lossy(&got)
            ));
        }
        held.push(s);
    }
    say(format_args!("held {n} connections"));
    std::thread::sleep(Duration::from_secs_f64(secs));
    say(format_args!("released {} connections", held.len()));
    Ok(())
}

/// The measured run.
fn load(addr: SocketAddr, a: &args::Args) -> Result<u64, String> {
    let threads = a.threads.min(a.connections) as usize;
    let mut groups: Vec<Vec<(u32, TcpStream)>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..a.connections {
        let s = connect(addr).map_err(|e| format!("connection {i}: connect to {addr}: {e}"))?;
        groups[i as usize % threads].push((i, s));
    }
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(a.duration);
    let plan = driver::Plan {
        mode: a.mode,
        depth: a.depth,
        measure_from,
        stop_at,
        drain_until: stop_at + DRAIN,
    };
    let results: Vec<std::io::Result<driver::Outcome>> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|g| scope.spawn(move || driver::run(g, plan)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("generator thread panicked")))
            })
            .collect()
    });
    let mut total = driver::Outcome {
        measured: 0,
        latency: driver::latency_histogram().map_err(|e| e.to_string())?,
        ok: 0,
        errors: 0,
        per_conn: (u64::MAX, 0),
    };
    for r in results {
        let o = r.map_err(|e| format!("generator thread: {e}"))?;
        total.measured += o.measured;
        total.ok += o.ok;
        total.errors += o.errors;
        total.per_conn = (
            total.per_conn.0.min(o.per_conn.0),
            total.per_conn.1.max(o.per_conn.1),
        );
        total
            .latency
            .add(&o.latency)
            .map_err(|e| format!("histogram: {e}"))?;
    }
    let secs = stop_at.duration_since(measure_from).as_secs_f64();
    let rps = total.measured as f64 / secs;
    let us = |q: f64| total.latency.value_at_quantile(q) as f64 / 1000.0;
    let mode = format!("{:?}", a.mode).to_lowercase();
    say(format_args!(
        "{mode} {addr}: {} connections x depth {}, {secs:.1} s: {rps:.0} req/s, \
         latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us; \
         {} correct replies ({} to {} per connection), {} errors",
        a.connections,
        a.depth,
        us(0.5),
        us(0.99),
        us(0.999),
        total.latency.max() as f64 / 1000.0,
        total.ok,
        total.per_conn.0,
        total.per_conn.1,
        total.errors
    ));
    say(format_args!(
        "SUMMARY mode={mode} connections={} depth={} secs={secs:.3} replies={} rps={rps:.1} \
         p50_us={:.1} p99_us={:.1} p999_us={:.1} max_us={:.1} errors={} total={} conn_min={} conn_max={}",
        a.connections,
        a.depth,
        total.measured,
        us(0.5),
        us(0.99),
        us(0.999),
        total.latency.max() as f64 / 1000.0,
        total.errors,
        total.ok,
        total.per_conn.0,
        total.per_conn.1
    ));
    Ok(total.errors)
}

fn main() -> ExitCode {
    let a = args::Args::parse();
    let bounded = |v: f64, max: f64| v.is_finite() && (0.0..=max).contains(&v);
    if !bounded(a.duration, MAX_DURATION_SECS) || a.duration <= 0.0 {
        eprintln!("envhub-load: --duration must be in (0, {MAX_DURATION_SECS}] seconds");
        return ExitCode::from(2);
    }
    if !bounded(a.warmup, MAX_WARMUP_SECS) {
        eprintln!("envhub-load: --warmup must be in [0, {MAX_WARMUP_SECS}] seconds");
        return ExitCode::from(2);
    }
    let addr = match target::checked_addr(&a.addr, a.allow_netns_addr) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("envhub-load: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(ns) = &a.netns {
        if let Err(e) = target::enter_netns(ns) {
            eprintln!("envhub-load: {e}");
            return ExitCode::from(2);
        }
    }
    let result = match a.hold {
        Some(n) => hold(addr, n, a.sources, a.mode, a.duration).map(|()| 0),
        None => load(addr, &a),
    };
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("envhub-load: {e}");
            ExitCode::from(2)
        }
    }
}
