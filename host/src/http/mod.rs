//! The HTTP side: the dashboard, its JSON API, a stream of readings as
//! Server-Sent Events, and Prometheus metrics.
//!
//! It runs axum on a small tokio runtime in a thread of its own, so the
//! sensor path (a thread per connection) is untouched. It reads the server's
//! state ([`crate::Shared`]), follows the [`crate::services::Feed`] of kept
//! readings, and reads the history database through read-only connections
//! of its own ([`history::Reader`]).
//!
//! - [`routes`]: the handlers of every endpoint.
//! - [`events`]: the event stream, `/api/events`.
//! - [`history`]: the SQL behind `/api/history` and the resumes.
//! - [`latest`]: the newest reading per location with `seq` and time.
//! - [`metrics`]: the Prometheus text format.
//! - [`assets`]: the page, compiled into the binary.

pub mod assets;
pub mod events;
pub mod history;
pub mod latest;
pub mod metrics;
pub mod routes;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{info, warn};
use tokio::sync::{broadcast, oneshot, Semaphore};

use crate::{listener, Shared};
use history::Reader;
use latest::Latest;

/// `--http`'s default: loopback only, so nothing is exposed by surprise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8081";

/// `--http-max-clients`' default: event streams open at once.
pub const DEFAULT_MAX_CLIENTS: usize = 64;

/// Worker threads for blocking database reads.
const BLOCKING_THREADS: usize = 4;

/// How the HTTP side is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Most event streams open at once.
    pub max_clients: usize,
    /// The history database, if history is on.
    pub db: Option<PathBuf>,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The server's store, counters and services.
    pub shared: Arc<Shared>,
    /// Newest reading per location, with `seq` and time.
    pub latest: Arc<Latest>,
    /// The history, if on.
    pub db: Option<Arc<Reader>>,
    /// One permit per event stream.
    pub streams: Arc<Semaphore>,
    /// Most event streams at once (for the 503's message).
    pub max_clients: usize,
}

/// The running HTTP side; stopped on drop.
#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The HTTP side could not start.
#[derive(Debug)]
pub enum StartError {
    /// Binding the address failed.
    Bind(io::Error),
    /// The history database could not be opened for reading.
    Db(rusqlite::Error),
    /// The runtime or its thread could not be made.
    Runtime(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind(e) => write!(f, "cannot listen: {e}"),
            StartError::Db(e) => write!(f, "cannot read the history database: {e}"),
            StartError::Runtime(e) => write!(f, "cannot start its runtime: {e}"),
        }
    }
}

impl Http {
    /// Binds `opts.addr`, opens the history for reading and serves in a new
    /// thread. Returns once bound, so that [`Http::local_addr`] is real.
    pub fn start(opts: &Options, shared: Arc<Shared>) -> Result<Http, StartError> {
        let std_listener = listener::bind(opts.addr).map_err(StartError::Bind)?;
        let addr = std_listener.local_addr().map_err(StartError::Bind)?;
        let db = match &opts.db {
            Some(path) => Some(Arc::new(Reader::open(path).map_err(StartError::Db)?)),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("http-blocking")
            .build()
            .map_err(StartError::Runtime)?;

        // Subscribe before reading the newest rows, so nothing falls between.
        let feed = shared.hub.services().feed.subscribe();
        let latest = Arc::new(Latest::new());
        if let Some(db) = &db {
            match db.newest(envhub_core::limits::MAX_LOCATIONS) {
                Ok(rows) => rows.into_iter().for_each(|k| latest.update(Arc::new(k))),
                Err(e) => warn!("http: cannot read the newest readings: {e}"),
            }
        }
        let state = Arc::new(AppState {
            shared,
            latest: Arc::clone(&latest),
            db,
            streams: Arc::new(Semaphore::new(opts.max_clients)),
            max_clients: opts.max_clients,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = thread::Builder::new()
            .name("http".into())
            .spawn(move || serve(runtime, std_listener, state, feed, stop_rx))
            .map_err(StartError::Runtime)?;
        info!("dashboard on http://{addr}/");
        Ok(Http {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's body: follow the feed into `latest` and serve until told
/// to stop; open event streams are dropped then.
fn serve(
    runtime: tokio::runtime::Runtime,
    std_listener: std::net::TcpListener,
    state: Arc<AppState>,
    feed: broadcast::Receiver<Arc<crate::services::Kept>>,
    stop: oneshot::Receiver<()>,
) {
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(e) => {
                warn!("http: cannot use the listening socket: {e}");
                return;
            }
        };
        tokio::spawn(follow(feed, Arc::clone(&state.latest), state.db.clone()));
        let app = routes::router(state);
        tokio::select! {
            result = axum::serve(listener, app) => {
                if let Err(e) = result {
                    warn!("http: server failed: {e}");
                }
            }
            _ = stop => {}
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(200));
}

/// Keeps `latest` up to date from the feed. Should it fall behind (a burst
/// faster than this thread), the readings it skipped may include some
/// location's newest: with history on, it reads the newest rows again.
async fn follow(
    mut feed: broadcast::Receiver<Arc<crate::services::Kept>>,
    latest: Arc<Latest>,
    db: Option<Arc<Reader>>,
) {
    loop {
        match feed.recv().await {
            Ok(kept) => latest.update(kept),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                log::debug!("http: fell {n} readings behind the feed");
                if let Some(db) = db.clone() {
                    let newest = tokio::task::spawn_blocking(move || {
                        db.newest(envhub_core::limits::MAX_LOCATIONS)
                    })
                    .await;
                    if let Ok(Ok(rows)) = newest {
                        rows.into_iter().for_each(|k| latest.update(Arc::new(k)));
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
