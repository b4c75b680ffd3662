//! # envhub-host
//!
//! The envhub server for hosts (binary `envhub`): a std `TcpListener` with
//! one acceptor thread, `--threads` event-loop threads (`mio`) that each
//! serve their share of the connections, and the sans-IO core
//! ([`envhub_core`]) doing all of the protocol. This crate only moves bytes,
//! keeps time, shares the store between threads and stops gracefully.
//!
//! - [`args`]: the whole command line: serve, or a client subcommand.
//! - [`cli`]: the server's flags.
//! - [`client`]: `envhub send`, `latest` and `stats`.
//! - [`hub`]: the store and counters every connection shares.
//! - [`history`]: every acknowledged reading kept in SQLite.
//! - [`admission`]: the open-connection counts behind `busy`.
//! - [`listener`]: the listening socket and the acceptor.
//! - [`evloop`]: an event-loop thread and how other threads wake it.
//! - [`worker`]: one connection on its loop.
//! - [`ratelog`]: at most one log line per second per kind a client can
//!   trigger.
//! - [`codec`], [`gbk`]: UTF-8 pass-through and GBK transcoding.
//! - [`shutdown`]: SIGINT/SIGTERM, and waking every blocked thread.
//! - [`services`]: what the side services (history, MQTT, HTTP) share.
//! - [`http`]: the dashboard, JSON API, event stream and metrics.
//! - [`mqtt`]: the MQTT bridge to Home Assistant.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admission;
pub mod args;
pub mod cli;
pub mod client;
pub mod codec;
pub mod evloop;
pub mod gbk;
pub mod history;
pub mod http;
pub mod hub;
pub mod listener;
pub mod mqtt;
pub mod ratelog;
pub mod services;
pub mod shutdown;
pub mod timers;
pub mod worker;

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use envhub_core::Config;
use log::{info, warn};

use admission::Admission;
use evloop::{EventLoop, LoopHandle};
use ratelog::Logs;

pub use args::{Args, Command};
pub use cli::{Cli, Encoding, HttpAddr};
pub use hub::SharedHub;
pub use shutdown::Shutdown;

/// How long the server waits, once stopped, for its event loops to close
/// their connections (the core resets each after its shutdown grace): the
/// core's promise for the whole exit.
pub const STOP_WAIT: Duration = Duration::from_millis(envhub_core::limits::SHUTDOWN_EXIT_MS);

/// What the acceptor and every event loop share.
#[derive(Debug)]
pub struct Shared {
    /// The event loops' handles (inbox, waker), in loop order.
    pub loops: Vec<LoopHandle>,
    /// The open-connection counts and the admission rule.
    pub admission: Admission,
    /// Rate limits of the log lines clients can trigger.
    pub logs: Logs,
    /// Store and counters.
    pub hub: SharedHub,
    /// The stop signal.
    pub shutdown: Arc<Shutdown>,
    /// Each connection's configuration.
    pub config: Config,
    /// The wire's text encoding.
    pub encoding: Encoding,
    /// Most connections open at once.
    pub max_clients: u64,
    /// True until the acceptor has handed over its last connection: a loop
    /// that is stopping ends only after that, so a connection accepted just
    /// before the stop is never left in a loop's inbox.
    pub accepting: AtomicBool,
}

impl Shared {
    /// A connection from `peer` closed: counted closed at once (its slot
    /// is free for the next connection).
    pub fn close_client(&self, peer: SocketAddr) {
        self.admission.close(peer.ip());
        self.hub.close();
    }

    /// Wakes every event loop to drive again the connections that wait on
    /// the hub (see [`evloop`]): for a part of the hub working on another
    /// thread, once it has done what those connections wait for. Cheap;
    /// callable from any thread, any number of times.
    pub fn wake_all(&self) {
        for l in &self.loops {
            l.wake_hub();
        }
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The history database cannot be used (its message names the file).
    History(history::OpenError),
    /// The listening socket cannot be bound.
    Listen(SocketAddr, io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::History(e) => e.fmt(f),
            StartError::Listen(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound server, not yet accepting.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    loops: Vec<EventLoop>,
    shared: Arc<Shared>,
}

impl Server {
    /// Opens the history (unless `--no-db` or echo mode) and binds the
    /// listening socket, as `cli` says.
    pub fn bind(cli: &Cli) -> Result<Server, StartError> {
        let hub = match cli.history() {
            Some(options) => SharedHub::with_history(&options).map_err(StartError::History)?,
            None => SharedHub::new(),
        };
        let listener = listener::bind(cli.bind).map_err(|e| StartError::Listen(cli.bind, e))?;
        let mut loops = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..cli.threads() {
            let (l, h) = EventLoop::new().map_err(|e| StartError::Listen(cli.bind, e))?;
            loops.push(l);
            handles.push(h);
        }
        let shared = Arc::new(Shared {
            loops: handles,
            admission: Admission::new(cli.config()),
            logs: Logs::default(),
            hub,
            shutdown: Arc::new(Shutdown::new().map_err(|e| StartError::Listen(cli.bind, e))?),
            config: cli.config(),
            encoding: cli.encoding,
            max_clients: cli.max_clients,
            accepting: AtomicBool::new(true),
        });
        // A commit decides the tickets that connections wait for: the loops
        // drive those connections again.
        if let Some(history) = shared.hub.history() {
            let weak = Arc::downgrade(&shared);
            history.on_commit(Box::new(move || {
                if let Some(shared) = weak.upgrade() {
                    shared.wake_all();
                }
            }));
        }
        Ok(Server {
            listener,
            loops,
            shared,
        })
    }

    /// The address actually bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The stop signal: trigger it to stop [`Server::run`].
    pub fn shutdown(&self) -> Arc<Shutdown> {
        Arc::clone(&self.shared.shutdown)
    }

    /// What the side services share: the feed of kept readings, status.
    pub fn services(&self) -> Arc<services::Services> {
        Arc::clone(self.shared.hub.services())
    }

    /// The state shared by the connections.
    pub fn shared(&self) -> Arc<Shared> {
        Arc::clone(&self.shared)
    }

    /// Serves until the stop signal; then stops accepting, lets every
    /// connection say `shutting_down` and close, and returns once all are
    /// closed or after [`STOP_WAIT`], and the history has committed
    /// everything queued.
    pub fn run(self) {
        let mut threads = Vec::new();
        for (i, l) in self.loops.into_iter().enumerate() {
            let shared = Arc::clone(&self.shared);
            let spawned = thread::Builder::new()
                .name(format!("loop-{i}"))
                .spawn(move || l.run(i, shared));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    warn!("cannot start event loop {i}: {e}");
                    self.shared.shutdown.trigger();
                }
            }
        }
        listener::accept_loop(&self.listener, &self.shared);
        drop(self.listener);
        self.shared.accepting.store(false, Ordering::Release);
        for l in &self.shared.loops {
            l.nudge();
        }
        let open = self.shared.hub.clients();
        info!("stopped accepting; closing {open} connection(s)");
        let start = Instant::now();
        // Every loop resets what is still open at its grace deadline and
        // then ends; wait for that, but never past STOP_WAIT.
        while threads.iter().any(|t| !t.is_finished()) && start.elapsed() < STOP_WAIT {
            thread::sleep(Duration::from_millis(5));
        }
        for t in threads.into_iter().filter(|t| t.is_finished()) {
            let _ = t.join();
        }
        match self.shared.hub.clients() {
            0 => info!("all connections closed"),
            n => warn!("{n} connection(s) still open at exit"),
        }
        self.shared.hub.close_history();
    }
}

/// Logs to stderr, at the level RUST_LOG sets (default: info).
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
}

/// The whole program after parsing: check the settings and bind (exit 2
/// on failure), announce
/// `listening on ADDR` on stdout, serve until SIGINT/SIGTERM, exit 0.
pub fn run(cli: Cli) -> ExitCode {
    if let Err(e) = cli.config().check(usize::MAX) {
        eprintln!("envhub: {e}");
        return ExitCode::from(2);
    }
    let mqtt = match mqtt::Settings::from_cli(&cli) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("envhub: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match Server::bind(&cli) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("envhub: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = Shutdown::on_signals(&server.shutdown()) {
        eprintln!("envhub: cannot handle signals: {e}");
        return ExitCode::FAILURE;
    }
    let addr = match server.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("envhub: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Listening on the feed before the first sensor can be accepted.
    // With history on, the bridge forwards the `readings` table; with
    // `--no-db` (or in echo mode), the feed through its bounded queue.
    let db = cli.history().map(|history| history.path);
    let bridge = match mqtt {
        Some(settings) => match mqtt::Bridge::start(settings, server.services(), db.as_deref()) {
            Ok(bridge) => Some(bridge),
            Err(e) => {
                eprintln!("envhub: {e}");
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let http = match start_http(&cli, &server) {
        Ok(http) => http,
        Err(code) => return code,
    };
    info!("listening on {addr}");
    // For tests and scripts: `listening on ADDR` is the last line printed
    // at start (after the dashboard's), so a reader that waits for it has
    // seen both.
    let mut stdout = io::stdout().lock();
    if let Some(http) = &http {
        let _ = writeln!(stdout, "dashboard on http://{}/", http.local_addr());
    }
    let _ = writeln!(stdout, "listening on {addr}").and_then(|()| stdout.flush());
    drop(stdout);
    server.run();
    drop(http);
    if let Some(bridge) = bridge {
        bridge.stop();
    }
    info!("bye");
    ExitCode::SUCCESS
}

/// Starts the HTTP side as `--http` says; on failure, the one-line error
/// and exit code 2 (as for the sensor port).
fn start_http(cli: &Cli, server: &Server) -> Result<Option<http::Http>, ExitCode> {
    let HttpAddr::On(addr) = cli.http else {
        return Ok(None);
    };
    let opts = http::Options {
        addr,
        max_clients: usize::try_from(cli.http_max_clients).unwrap_or(http::DEFAULT_MAX_CLIENTS),
        // Read-only connections of its own to the history's database.
        db: cli.history().map(|h| h.path),
    };
    match http::Http::start(&opts, server.shared()) {
        Ok(http) => Ok(Some(http)),
        Err(e) => {
            eprintln!("envhub: dashboard on {addr}: {e}");
            Err(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    //! A few in-process checks over loopback; the end-to-end suite lives in
    //! the `envhub-tests` crate.

    use super::*;
    use clap::Parser;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpStream;

    const PING: &[u8] = b"{\"cmd\":\"ping\"}\n";
    const PONG: &str = "{\"ok\":true,\"pong\":true}\n";

    fn server(args: &[&str]) -> (SocketAddr, Arc<Shutdown>, thread::JoinHandle<()>) {
        let argv = ["envhub", "--bind", "127.0.0.1:0", "--no-db"]
            .iter()
            .chain(args);
        let server = Server::bind(&Cli::parse_from(argv)).unwrap();
        let addr = server.local_addr().unwrap();
        let stop = server.shutdown();
        (addr, stop, thread::spawn(move || server.run()))
    }

    fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    fn line(r: &mut BufReader<TcpStream>) -> String {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    }

    #[test]
    fn serves_busy_and_stops_gracefully() {
        let (addr, stop, run) = server(&["--max-clients", "1"]);
        let (mut a, mut ra) = connect(addr);
        a.write_all(PING).unwrap();
        assert_eq!(line(&mut ra), PONG);

        // At the limit: busy, then EOF; no id taken.
        let (_b, mut rb) = connect(addr);
        let mut rest = String::new();
        rb.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "{\"ok\":false,\"error\":\"busy\"}\n");
        a.write_all(b"{\"cmd\":\"stats\"}\n").unwrap();
        let stats = line(&mut ra);
        assert!(
            stats.starts_with("{\"ok\":true,\"client\":1,\"clients\":1,"),
            "{stats}"
        );
        assert!(stats.contains("\"errors\":1,"), "{stats}");

        // Complete lines sent before the stop are answered; the partial one
        // is dropped; then shutting_down and EOF.
        a.write_all(b"{\"cmd\":\"ping\"}\n{\"cmd\":\"ping\"}\n{\"cmd\"")
            .unwrap();
        thread::sleep(Duration::from_millis(100));
        stop.trigger();
        let mut rest = String::new();
        ra.read_to_string(&mut rest).unwrap();
        assert_eq!(
            rest,
            format!("{PONG}{PONG}{{\"ok\":false,\"error\":\"shutting_down\"}}\n")
        );
        run.join().unwrap();
        assert!(TcpStream::connect(addr).is_err(), "still accepting");
    }

    /// A connection the acceptor took just before the stop reaches its
    /// loop after that loop has closed everything else: the loop waits for
    /// the acceptor, takes it, and it hears `shutting_down` too.
    #[test]
    fn a_stopping_loop_waits_for_the_acceptor() {
        let cli = Cli::parse_from([
            "envhub",
            "--bind",
            "127.0.0.1:0",
            "--no-db",
            "--threads",
            "1",
        ]);
        let Server {
            listener,
            loops,
            shared,
        } = Server::bind(&cli).unwrap();
        let evloop = loops.into_iter().next().unwrap();
        let run = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || evloop.run(0, shared))
        };
        shared.shutdown.trigger();
        thread::sleep(Duration::from_millis(200));
        assert!(!run.is_finished(), "the loop ended while the acceptor ran");

        // This test is the acceptor: one last connection, then it stops.
        let (_client, mut reader) = connect(listener.local_addr().unwrap());
        let (sock, peer) = listener.accept().unwrap();
        sock.set_nonblocking(true).unwrap();
        shared.admission.open(peer.ip()).unwrap();
        let id = shared.hub.open();
        shared.loops[0].hand(evloop::Handoff { id, peer, sock });
        shared.accepting.store(false, Ordering::Release);
        shared.loops[0].nudge();

        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "{\"ok\":false,\"error\":\"shutting_down\"}\n");
        run.join().unwrap();
        assert_eq!(shared.hub.clients(), 0);
    }

    #[test]
    fn pipelined_lines_split_anywhere() {
        let (addr, stop, run) = server(&[]);
        let (mut a, mut ra) = connect(addr);
        let many = PING.repeat(500);
        for piece in many.chunks(7) {
            a.write_all(piece).unwrap();
        }
        for _ in 0..500 {
            assert_eq!(line(&mut ra), PONG);
        }
        // EOF answers an unterminated last line, then closes.
        a.write_all(&PING[..PING.len() - 1]).unwrap();
        a.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = String::new();
        ra.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, PONG);
        stop.trigger();
        run.join().unwrap();
    }

    #[test]
    fn connections_spread_over_every_loop() {
        let (addr, stop, run) = server(&["--threads", "3"]);
        let mut clients: Vec<_> = (0..7).map(|_| connect(addr)).collect();
        for (a, ra) in &mut clients {
            a.write_all(PING).unwrap();
            assert_eq!(line(ra), PONG);
        }
        // Each loop holds some, and a store written through one loop is
        // read through another.
        let (a, ra) = &mut clients[0];
        a.write_all(b"{\"location\":\"x\",\"temp\":1,\"hum\":2}\n")
            .unwrap();
        line(ra);
        let (b, rb) = &mut clients[1];
        b.write_all(b"{\"cmd\":\"latest\",\"location\":\"x\"}\n")
            .unwrap();
        assert!(line(rb).contains("\"temp\":1.0"));
        stop.trigger();
        for (_, r) in &mut clients {
            let mut rest = String::new();
            r.read_to_string(&mut rest).unwrap();
            assert_eq!(rest, "{\"ok\":false,\"error\":\"shutting_down\"}\n");
        }
        run.join().unwrap();
    }

    #[test]
    fn idle_timeout_fires_for_a_dribbling_client() {
        let (addr, stop, run) = server(&["--idle-timeout", "0.3"]);
        let (mut a, mut ra) = connect(addr);
        let start = Instant::now();
        for b in b"{\"cmd\":" {
            let _ = a.write_all(&[*b]);
            thread::sleep(Duration::from_millis(50));
        }
        let mut rest = String::new();
        ra.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "{\"ok\":false,\"error\":\"idle_timeout\"}\n");
        assert!(start.elapsed() >= Duration::from_millis(300));
        stop.trigger();
        run.join().unwrap();
    }

    #[test]
    fn gbk_round_trip() {
        let (addr, stop, run) = server(&["--encoding", "gbk"]);
        let (mut a, mut ra) = connect(addr);
        let (req, _, _) =
            encoding_rs::GBK.encode("{\"location\":\"客厅\",\"temp\":25.5,\"hum\":60}\n");
        a.write_all(&req).unwrap();
        let mut reply = Vec::new();
        ra.read_until(b'\n', &mut reply).unwrap();
        let (text, _, bad) = encoding_rs::GBK.decode(&reply);
        assert!(!bad);
        assert_eq!(
            text,
            "{\"ok\":true,\"location\":\"客厅\",\"temp\":25.5,\"hum\":60.0}\n"
        );
        stop.trigger();
        run.join().unwrap();
    }
}
