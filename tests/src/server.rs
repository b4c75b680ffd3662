//! Starting a real server program and stopping it again.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::client::Client;
use crate::netns::{self, Netns};
use crate::qemu;
use crate::shell::Shell;

/// The port `envhub-tap` and the firmware listen on inside their namespace.
pub const TAP_PORT: u16 = 8080;

/// The firmware's `--max-clients` when a test sets none: all its slots.
const FIRMWARE_MAX_CLIENTS: u32 = 8;
/// The firmware's `--idle-timeout` when a test sets none (the protocol's
/// default).
const FIRMWARE_IDLE_TIMEOUT_SECS: u64 = 300;

/// How long a server may take to start listening before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connecting may take (for TAP: with retries while the server's
/// sockets come up).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server speaks (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The line protocol (the default; no flag is passed).
    #[default]
    Sensor,
    /// `--mode echo`.
    Echo,
}

/// How to start a server; unset options are left to the program's defaults.
#[derive(Debug, Clone, Default)]
pub struct Opts {
    /// `--max-clients N`.
    pub max_clients: Option<u32>,
    /// `--idle-timeout SECS`.
    pub idle_timeout_secs: Option<u64>,
    /// `--mode`.
    pub mode: Mode,
    /// More arguments, appended as given.
    pub args: Vec<String>,
    /// Host: `--db PATH` (a test that restarts a server on the same file);
    /// unset, each host server gets a fresh database in a temporary
    /// directory of its own (or none with `--no-db` among `args`).
    pub db: Option<PathBuf>,
}

impl Opts {
    /// `--max-clients n`.
    pub fn max_clients(mut self, n: u32) -> Self {
        self.max_clients = Some(n);
        self
    }

    /// `--idle-timeout secs`.
    pub fn idle_timeout(mut self, secs: u64) -> Self {
        self.idle_timeout_secs = Some(secs);
        self
    }

    /// `--mode echo`.
    pub fn echo(mut self) -> Self {
        self.mode = Mode::Echo;
        self
    }

    /// Host: `--db path`.
    pub fn db(mut self, path: impl Into<PathBuf>) -> Self {
        self.db = Some(path.into());
        self
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(n) = self.max_clients {
            args.extend(["--max-clients".to_owned(), n.to_string()]);
        }
        if let Some(s) = self.idle_timeout_secs {
            args.extend(["--idle-timeout".to_owned(), s.to_string()]);
        }
        if self.mode == Mode::Echo {
            args.extend(["--mode".to_owned(), "echo".to_owned()]);
        }
        args.extend(self.args.iter().cloned());
        args
    }

    /// The firmware's flags: every one of the contract given, defaults
    /// included, then the extra arguments.
    fn to_firmware_args(&self) -> Vec<String> {
        let mode = match self.mode {
            Mode::Sensor => "sensor",
            Mode::Echo => "echo",
        };
        let mut args = vec![
            "--port".to_owned(),
            TAP_PORT.to_string(),
            "--max-clients".to_owned(),
            self.max_clients.unwrap_or(FIRMWARE_MAX_CLIENTS).to_string(),
            "--idle-timeout".to_owned(),
            self.idle_timeout_secs
                .unwrap_or(FIRMWARE_IDLE_TIMEOUT_SECS)
                .to_string(),
            "--mode".to_owned(),
            mode.to_owned(),
        ];
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A running server; killed (and its namespace deleted) on drop, also when
/// the test panics. On a failing test its output is printed.
#[derive(Debug)]
pub struct Server {
    shell: Shell,
    child: Child,
    addr: SocketAddr,
    /// Everything the server wrote to stdout and stderr.
    log: Arc<Mutex<Vec<u8>>>,
    exited: Option<ExitStatus>,
    /// Dropped after the child is gone.
    netns: Option<Netns>,
    /// The firmware's turn to run QEMU; dropped last, once QEMU and its
    /// namespace are gone.
    _qemu: Option<qemu::Permit>,
    /// Host: the database file it was started with, if any.
    db: Option<PathBuf>,
    /// The temporary directory of a fresh database; removed after the
    /// server is gone.
    _db_dir: Option<TempDir>,
}

impl Server {
    /// Starts the program of `shell` with `opts` and waits until it listens.
    pub fn start(shell: Shell, opts: Opts) -> Server {
        match shell {
            Shell::Host => Self::start_host(opts),
            Shell::Tap => Self::start_tap(opts),
            Shell::Firmware => Self::start_firmware(opts),
        }
    }

    /// Starts a server with default options and connects one client.
    pub fn with_client(shell: Shell) -> (Server, Client) {
        let server = Server::start(shell, Opts::default());
        let client = server.connect();
        (server, client)
    }

    fn start_host(opts: Opts) -> Server {
        let mut cmd = Command::new(Shell::Host.binary());
        cmd.args(["--bind", "127.0.0.1:0"]);
        // The dashboard on a free port too (its default, 8081, is one port
        // for every server), unless the test chooses.
        if !opts.args.iter().any(|a| a.starts_with("--http")) {
            cmd.args(["--http", "127.0.0.1:0"]);
        }
        cmd.args(opts.to_args());
        let (db, db_dir) = host_db(&opts);
        if let Some(path) = &db {
            cmd.arg("--db").arg(path);
        }
        let (child, log, listening) = spawn(cmd);
        let mut server = Server {
            shell: Shell::Host,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            exited: None,
            netns: None,
            _qemu: None,
            db,
            _db_dir: db_dir,
        };
        match listening.recv_timeout(START_TIMEOUT) {
            Ok(text) => match text.trim().parse::<SocketAddr>() {
                Ok(addr) => server.addr = addr,
                Err(e) => server.fail(&format!("bad address in `listening on {text}`: {e}")),
            },
            Err(_) => server.fail("never printed `listening on ADDR`"),
        }
        server
    }

    fn start_tap(opts: Opts) -> Server {
        let ns = Netns::create();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(Shell::Tap.binary())
            .args(["--tap", netns::TAP_DEV])
            .arg("--ip")
            .arg(format!("{}/{}", netns::SERVER_IP, netns::SERVER_PREFIX))
            .args(["--port", &TAP_PORT.to_string()])
            .args(opts.to_args());
        let (child, log, _listening) = spawn(cmd);
        let mut server = Server {
            shell: Shell::Tap,
            child,
            addr: SocketAddr::V4(SocketAddrV4::new(netns::SERVER_IP, TAP_PORT)),
            log,
            exited: None,
            netns: Some(ns),
            _qemu: None,
            db: None,
            _db_dir: None,
        };
        // Ready once the program holds the TAP device; the first connect
        // retries while its sockets come up. (A probe connection would take
        // a client id and spoil `stats`.)
        let deadline = Instant::now() + START_TIMEOUT;
        while !server.netns.as_ref().is_some_and(Netns::tap_attached) {
            if server.has_exited() {
                server.fail("exited before opening the TAP device");
            }
            if Instant::now() >= deadline {
                server.fail("did not open the TAP device");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Boots the firmware in QEMU, in a fresh namespace whose `tap0` QEMU
    /// attaches to (the firmware owns 192.168.69.1), and waits for its
    /// `listening on 192.168.69.1:8080` line on the UART.
    fn start_firmware(opts: Opts) -> Server {
        let elf = Shell::Firmware.binary();
        let permit = qemu::Permit::acquire();
        let ns = Netns::create();
        let qemu = qemu::command(elf, netns::TAP_DEV, &opts.to_firmware_args());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .args(qemu::argv(&qemu));
        let (child, log, listening) = spawn_with(cmd, Some(firmware_log()));
        let addr = SocketAddrV4::new(netns::SERVER_IP, TAP_PORT);
        let mut server = Server {
            shell: Shell::Firmware,
            child,
            addr: SocketAddr::V4(addr),
            log,
            exited: None,
            netns: Some(ns),
            _qemu: Some(permit),
            db: None,
            _db_dir: None,
        };
        // The first connect still retries while ARP and the LAN9118 settle.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match listening.recv_timeout(Duration::from_millis(50)) {
                Ok(text) if text.trim() == addr.to_string() => break,
                Ok(text) => server.fail(&format!("listens on {text}, not on {addr}")),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    server.fail("closed its output before `listening on ADDR`")
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if server.has_exited() {
                server.fail("exited before `listening on ADDR`");
            }
            if Instant::now() >= deadline {
                server.fail("never printed `listening on ADDR`");
            }
        }
        server
    }

    /// Starts the program of `shell` with `opts` expecting it to exit (a
    /// command line it refuses); waits at most `limit`. Returns its exit
    /// status (`None`: still running, then killed) and its output.
    pub fn run_to_exit(shell: Shell, opts: Opts, limit: Duration) -> (Option<ExitStatus>, String) {
        let (db, db_dir) = match shell {
            Shell::Host => host_db(&opts),
            _ => (None, None),
        };
        let (cmd, netns, permit, decoder) = match shell {
            Shell::Host => {
                let mut cmd = Command::new(Shell::Host.binary());
                cmd.args(["--bind", "127.0.0.1:0"]).args(opts.to_args());
                if let Some(path) = &db {
                    cmd.arg("--db").arg(path);
                }
                (cmd, None, None, None)
            }
            Shell::Tap => {
                let ns = Netns::create();
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns.name()])
                    .arg(Shell::Tap.binary())
                    .args(["--tap", netns::TAP_DEV])
                    .arg("--ip")
                    .arg(format!("{}/{}", netns::SERVER_IP, netns::SERVER_PREFIX))
                    .args(opts.to_args());
                (cmd, Some(ns), None, None)
            }
            Shell::Firmware => {
                let permit = qemu::Permit::acquire();
                let ns = Netns::create();
                let qemu = qemu::command(
                    Shell::Firmware.binary(),
                    netns::TAP_DEV,
                    &opts.to_firmware_args(),
                );
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns.name()])
                    .args(qemu::argv(&qemu));
                (cmd, Some(ns), Some(permit), Some(firmware_log()))
            }
        };
        let (child, log, _listening) = spawn_with(cmd, decoder);
        let mut server = Server {
            shell,
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            exited: None,
            netns,
            _qemu: permit,
            db,
            _db_dir: db_dir,
        };
        let status = server.wait_exit(limit);
        // Let the log readers see the end of the output.
        std::thread::sleep(Duration::from_millis(100));
        (status, server.log())
    }

    /// Connects a new client from a second source address of the shell's
    /// network (127.0.0.2 on loopback,
    /// 192.168.69.101 inside the namespace, added on first use).
    #[track_caller]
    pub fn connect_from_second_source(&self) -> Client {
        let result = match &self.netns {
            None => netns::connect_from(self.addr, [127, 0, 0, 2].into()),
            Some(ns) => {
                static ADDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
                let mut added = ADDED.lock().unwrap_or_else(|e| e.into_inner());
                if !added.iter().any(|n| n == ns.name()) {
                    ns.add_address("192.168.69.101/24");
                    added.push(ns.name().to_owned());
                }
                drop(added);
                ns.connect_from(self.addr, [192, 168, 69, 101].into())
            }
        };
        match result {
            Ok(stream) => Client::new(stream),
            Err(e) => panic!("cannot connect from the second source: {e}"),
        }
    }

    /// The network namespace the server runs in (TAP, firmware).
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// The shell this server belongs to.
    pub fn shell(&self) -> Shell {
        self.shell
    }

    /// The host server's database file (`None`: no history).
    pub fn db(&self) -> Option<&Path> {
        self.db.as_deref()
    }

    /// Kills the server with SIGKILL (no chance to clean up) and waits for
    /// it to be gone.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            self.fail("survived SIGKILL for 5 s");
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host server's dashboard address, from its `dashboard on
    /// http://ADDR/` line (printed before `listening on`).
    pub fn dashboard(&self) -> Option<SocketAddr> {
        self.log().lines().find_map(|l| {
            l.strip_prefix("dashboard on http://")?
                .strip_suffix('/')?
                .parse()
                .ok()
        })
    }

    /// Connects a new client (inside the namespace for TAP).
    #[track_caller]
    pub fn connect(&self) -> Client {
        match self.try_connect() {
            Ok(client) => client,
            Err(e) => panic!(
                "cannot connect to {} server at {}: {e}",
                self.shell, self.addr
            ),
        }
    }

    /// Connects, retrying (TAP: while the server comes up) for a bounded
    /// time.
    pub fn try_connect(&self) -> std::io::Result<Client> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = match &self.netns {
                None => std::net::TcpStream::connect_timeout(&self.addr, left),
                Some(ns) => ns.connect(self.addr, left.min(Duration::from_secs(1))),
            };
            match attempt {
                Ok(stream) => return Ok(Client::new(stream)),
                Err(e) if self.netns.is_none() || Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(30)),
            }
        }
    }

    /// The server process's id (for `prlimit --pid`, `/proc/PID`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, signal).expect("send signal to the server");
    }

    /// Waits at most `limit` for the server to exit; `None` if it still
    /// runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if self.has_exited() {
                return self.exited;
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn has_exited(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited.is_some()
    }

    /// Fails the test, showing the server's output.
    #[track_caller]
    fn fail(&mut self, why: &str) -> ! {
        std::thread::sleep(Duration::from_millis(50)); // let the log readers catch up
        panic!("{} server {why}; its output:\n{}", self.shell, self.log());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.has_exited() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- {} server ({}) output ---\n{}--- end ---",
                self.shell,
                self.exited
                    .map_or_else(|| "still running".to_owned(), |s| s.to_string()),
                self.log()
            );
        }
        // Then `netns` drops: the namespace goes once nothing runs in it.
    }
}

/// The decoder of the firmware's defmt log (its ELF's table).
fn firmware_log() -> qemu::LogDecoder {
    match qemu::LogDecoder::new(Shell::Firmware.binary()) {
        Ok(decoder) => decoder,
        Err(e) => panic!("firmware log: {e}"),
    }
}

/// The database a host server started with `opts` gets: the test's own
/// file, none (`--no-db` among the arguments, or echo mode), or a fresh one
/// in a temporary directory (tests never write a database into the source
/// tree), returned with that directory.
fn host_db(opts: &Opts) -> (Option<PathBuf>, Option<TempDir>) {
    let no_db = opts.args.iter().any(|a| a == "--no-db") || opts.mode == Mode::Echo;
    match (&opts.db, no_db) {
        (_, true) => (None, None),
        (Some(path), false) => (Some(path.clone()), None),
        (None, false) => {
            let dir = tempfile::Builder::new()
                .prefix("envhub-e2e-db-")
                .tempdir()
                .expect("create a temporary directory for the database");
            (Some(dir.path().join("envhub.db")), Some(dir))
        }
    }
}

/// Spawns `cmd` with its output captured into a log; the receiver gets the
/// address of the first `listening on ADDR` line on stdout.
fn spawn(cmd: Command) -> (Child, Arc<Mutex<Vec<u8>>>, mpsc::Receiver<String>) {
    spawn_with(cmd, None)
}

/// [`spawn`], with stdout decoded by `decoder` (the firmware's defmt log)
/// when given.
fn spawn_with(
    mut cmd: Command,
    decoder: Option<qemu::LogDecoder>,
) -> (Child, Arc<Mutex<Vec<u8>>>, mpsc::Receiver<String>) {
    // Servers log to stderr; the log is shown when a test fails.
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => panic!("cannot start {cmd:?}: {e}"),
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    match (child.stdout.take(), decoder) {
        (Some(stdout), Some(decoder)) => {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                // Ends when QEMU closes stdout (it exits or is killed).
                decoder.run(stdout, |line| {
                    if let Some(addr) = qemu::message(&line).strip_prefix("listening on ") {
                        let _ = tx.send(addr.to_owned());
                    }
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    log.extend_from_slice(line.as_bytes());
                    log.push(b'\n');
                });
            });
        }
        (Some(stdout), None) => {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = Vec::new();
                // Ends when the server closes stdout (it exits or is killed).
                while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let text = String::from_utf8_lossy(&line);
                    if let Some(addr) = text.trim_end().strip_prefix("listening on ") {
                        let _ = tx.send(addr.to_owned());
                    }
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&line);
                    line.clear();
                }
            });
        }
        (None, _) => {}
    }
    if let Some(mut stderr) = child.stderr.take() {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                log.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
    }
    (child, log, rx)
}
