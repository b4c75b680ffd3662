//! `envhub-tokio-server`: the benchmark opponent of the host server.
//!
//! The same protocol through the same `envhub_core::Connection`, served the
//! way a tokio user would write it: one task per connection, the store behind
//! a mutex held for one call, the counters in atomics, TCP_NODELAY, and all
//! the replies to one read sent with one write. Flags as the host's:
//! `--bind`, `--max-clients`, `--idle-timeout`, `--mode`, plus the runtime
//! flavor and worker count. Not shipped: it only exists to be measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use envhub_core::{
    turn_away, Close, Config, Connection, Counters, Entry, Hub, Location, Mode, Reading, Store,
    StoreFull,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Receive buffer per connection, as the host's.
const IN_BUF: usize = 1024;
/// Send buffer per connection, as the host's.
const OUT_BUF: usize = 2048;
/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Sensor,
    Echo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Flavor {
    /// `new_multi_thread` with `--workers` threads.
    Multi,
    /// `new_current_thread`: everything on the main thread.
    Current,
}

/// A tokio server of the envhub line protocol, for benchmarks.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Most connections served at once; more get `busy`.
    #[arg(long, default_value_t = 1024)]
    max_clients: u64,
    /// Seconds without a complete line before `idle_timeout`.
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
    /// Protocol or echo.
    #[arg(long, value_enum, default_value_t = ModeArg::Sensor)]
    mode: ModeArg,
    /// Runtime flavor.
    #[arg(long, value_enum, default_value_t = Flavor::Multi)]
    flavor: Flavor,
    /// Worker threads of the multi-thread runtime.
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// What every connection shares.
struct Shared {
    store: Mutex<Store>,
    started: Instant,
    last_id: AtomicU64,
    clients: AtomicU64,
    readings: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves a consistent store: every
        // mutation is one call.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The [`Hub`] of one connection over the shared state.
struct SharedHub<'a>(&'a Shared);

impl Hub for SharedHub<'_> {
    fn store(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        self.0.store().insert(reading, now)?;
        self.0.readings.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn get(&mut self, location: &Location) -> Option<Entry> {
        self.0.store().get(location).cloned()
    }

    fn visit_after(&mut self, after: Option<&Location>, visit: &mut dyn FnMut(&Entry) -> bool) {
        let store = self.0.store();
        for entry in store.after(after) {
            if !visit(entry) {
                break;
            }
        }
    }

    fn counters(&mut self, now: u64) -> Counters {
        Counters {
            clients: self.0.clients.load(Ordering::Relaxed),
            readings: self.0.readings.load(Ordering::Relaxed),
            errors: self.0.errors.load(Ordering::Relaxed),
            locations: self.0.store().len() as u64,
            uptime_ms: now,
        }
    }

    fn count_error(&mut self) {
        self.0.errors.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut builder = match args.flavor {
        Flavor::Multi => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(args.workers.max(1));
            b
        }
        Flavor::Current => tokio::runtime::Builder::new_current_thread(),
    };
    builder.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> std::io::Result<()> {
    let listener = TcpListener::bind(args.bind).await?;
    println!("listening on {}", listener.local_addr()?);
    let config = Config {
        mode: match args.mode {
            ModeArg::Sensor => Mode::Sensor,
            ModeArg::Echo => Mode::Echo,
        },
        idle_timeout_ms: args.idle_timeout.saturating_mul(1000),
        ..Config::default()
    };
    let shared = Arc::new(Shared {
        store: Mutex::new(Store::new()),
        started: Instant::now(),
        last_id: AtomicU64::new(0),
        clients: AtomicU64::new(0),
        readings: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                if shared.clients.load(Ordering::Relaxed) >= args.max_clients {
                    let busy = turn_away(config.mode, &mut SharedHub(&shared));
                    tasks.spawn(refuse(stream, busy));
                    continue;
                }
                shared.clients.fetch_add(1, Ordering::Relaxed);
                let id = shared.last_id.fetch_add(1, Ordering::Relaxed) + 1;
                tasks.spawn(connection(stream, id, config, shared.clone(), stop_rx.clone()));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Sends `busy` (or nothing) and closes.
async fn refuse(mut stream: TcpStream, busy: &'static [u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(busy)).await;
    let _ = stream.shutdown().await;
}

/// Serves one connection to its end.
async fn connection(
    stream: TcpStream,
    id: u64,
    config: Config,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
) {
    run(stream, id, config, &shared, stop).await;
    shared.clients.fetch_sub(1, Ordering::Relaxed);
}

async fn run(
    mut stream: TcpStream,
    id: u64,
    config: Config,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Option<Close> {
    let mut conn = Connection::new(id, shared.now(), config);
    let mut input = vec![0u8; IN_BUF];
    let mut have = 0;
    let mut out = vec![0u8; OUT_BUF];
    let mut eof = false;
    let mut stopping = *stop.borrow();
    if stopping {
        conn.handle_shutdown();
    }
    loop {
        // Answer what was received; one write for all of it when it fits.
        loop {
            let now = shared.now();
            let p = conn.handle_input(now, &input[..have], &mut out, &mut SharedHub(shared));
            input.copy_within(p.consumed..have, 0);
            have -= p.consumed;
            if p.written > 0 && !send(&mut stream, &out[..p.written], &mut conn, shared).await {
                return close(stream, conn.poll_close().unwrap_or(Close::Abort)).await;
            }
            if (p.written == 0 && p.consumed == 0) || (have == 0 && !conn.has_output()) {
                break;
            }
        }
        if let Some(how) = conn.poll_close() {
            return close(stream, how).await;
        }
        let deadline = conn
            .poll_timeout()
            .map(|t| shared.started + Duration::from_millis(t))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = stream.read(&mut input[have..]), if conn.wants_input() && !eof && have < input.len() => {
                match r {
                    Ok(0) => { eof = true; conn.handle_eof(); }
                    Ok(n) => have += n,
                    Err(_) => return close(stream, Close::Abort).await,
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                conn.handle_timeout(shared.now(), &mut SharedHub(shared));
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.handle_shutdown();
            }
        }
    }
}

/// Writes `bytes` whole; while the peer does not read, the connection's
/// timers still run. False when the connection must end instead.
async fn send(
    stream: &mut TcpStream,
    bytes: &[u8],
    conn: &mut Connection,
    shared: &Shared,
) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        let deadline = conn
            .poll_timeout()
            .map(|t| shared.started + Duration::from_millis(t))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = stream.write(&bytes[at..]) => match r {
                Ok(0) | Err(_) => return false,
                Ok(n) => at += n,
            },
            _ = tokio::time::sleep_until(deadline.into()) => {
                conn.handle_timeout(shared.now(), &mut SharedHub(shared));
                if conn.poll_close() == Some(Close::Abort) {
                    return false;
                }
            }
        }
    }
    true
}

/// Ends the connection as the core asks.
async fn close(mut stream: TcpStream, how: Close) -> Option<Close> {
    match how {
        Close::Graceful => {
            let _ = stream.shutdown().await;
        }
        Close::Abort => {
            let _ = stream.set_zero_linger();
        }
    }
    Some(how)
}
