//! History: every acknowledged reading kept in SQLite.
//!
//! - [`schema`]: the public schema, opening and checking a database file
//!   (and [`open_readonly`] for the MQTT bridge and the HTTP side).
//! - [`writer`]: the one writer thread: group commit, then the readings go
//!   into the store, the feed and the acks.
//! - [`rollup`]: the per-minute rollup `readings_minute`, kept in step
//!   with `readings` in the same transactions.
//! - [`retention`]: deleting old rows in small batches.
//! - [`restore`]: the newest row of each location, for `latest` after a
//!   restart.
//!
//! A reading handed to [`History::submit`] gets a ticket; the connection's
//! ack waits until [`History::outcome`] says the transaction holding it has
//! committed (or failed: `storage_error`). After each transaction the writer
//! bumps a generation ([`History::commits`]) and calls the hooks registered
//! with [`History::on_commit`], so the shells re-drive their waiting
//! connections.

pub mod restore;
pub mod retention;
pub mod rollup;
pub mod schema;
pub mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use envhub_core::{Outcome, Reading, Ticket};
use log::{info, warn};

pub use schema::{open_readonly, OpenError, SCHEMA, SCHEMA_VERSION};

use crate::hub::Latest;
use crate::services::unix_ms;

/// `--sync`: how hard a commit presses the data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Sync {
    /// `synchronous=NORMAL`: a commit survives a crash of the process
    /// (`kill -9`); the last commits before a power cut may be lost.
    #[default]
    Normal,
    /// `synchronous=FULL`: the write-ahead log is fsynced at every commit,
    /// so a commit also survives a power cut.
    Full,
}

impl Sync {
    /// The value of `PRAGMA synchronous`.
    pub const fn pragma(self) -> &'static str {
        match self {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        }
    }
}

/// How the history is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The database file.
    pub path: PathBuf,
    /// `--sync`.
    pub sync: Sync,
    /// Rows older than this many days are deleted; 0 keeps everything.
    pub retention_days: u32,
}

/// The running history: the database, its writer thread and the outcome of
/// every submitted reading.
pub struct History {
    path: PathBuf,
    shared: Arc<writer::Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl History {
    /// Opens (or creates) the database, checks it is envhub's, fills
    /// `latest`'s store with the newest row of each location and starts the
    /// writer. Never changes a file that is not an envhub database of a
    /// version this program knows.
    pub fn open(options: &Options, latest: Arc<Latest>) -> Result<History, OpenError> {
        let opened = schema::open_rw(&options.path, options.sync)?;
        let other = |e: rusqlite::Error| OpenError::other(&options.path, e);
        let rows = restore::count(&opened.conn).map_err(other)?;
        let newest =
            restore::newest(&opened.conn, envhub_core::limits::MAX_LOCATIONS).map_err(other)?;
        let restored = latest.restore(&newest, unix_ms());
        let status = &latest.services().status;
        status
            .history
            .store(true, std::sync::atomic::Ordering::Relaxed);
        status
            .history_rows
            .store(rows, std::sync::atomic::Ordering::Relaxed);
        info!(
            "history: {} ({} rows; latest restored for {restored} location(s); sync {}; retention {})",
            options.path.display(),
            rows,
            options.sync.pragma().to_lowercase(),
            match options.retention_days {
                0 => "off".to_owned(),
                d => format!("{d} days"),
            }
        );
        let shared = Arc::new(writer::Shared::new());
        let thread = writer::spawn(opened, options.clone(), Arc::clone(&shared), latest)
            .map_err(|e| OpenError::other(&options.path, e))?;
        Ok(History {
            path: options.path.clone(),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a reading for the next transaction; `now` is the server's
    /// clock (for `age_ms`), the row's `ts_ms` is the wall clock now.
    pub fn submit(&self, reading: &Reading, now: u64) -> Ticket {
        self.shared.submit(reading, now, unix_ms())
    }

    /// What became of the reading of `ticket`: `Pending` until the
    /// transaction holding it ended.
    pub fn outcome(&self, ticket: Ticket) -> Outcome {
        self.shared.outcome(ticket)
    }

    /// How many transactions ended (committed or failed) so far: a shell
    /// that saw this number before driving its connections waits until it
    /// changes ([`History::wait_commit`]).
    pub fn commits(&self) -> u64 {
        self.shared.commits()
    }

    /// Waits until [`History::commits`] is past `seen`, or `timeout`.
    pub fn wait_commit(&self, seen: u64, timeout: Duration) {
        self.shared.wait_commit(seen, timeout);
    }

    /// Parks the calling thread until `ticket` is decided (the transaction
    /// holding it ended), or `timeout`; only that transaction wakes it.
    pub fn wait_decided(&self, ticket: Ticket, timeout: Duration) {
        self.shared.wait_decided(ticket, timeout);
    }

    /// Calls `hook` after every transaction, on the writer thread (an
    /// event loop's waker). Keep it short; it must not block.
    pub fn on_commit(&self, hook: Box<dyn Fn() + Send + std::marker::Sync>) {
        self.shared.on_commit(hook);
    }

    /// Commits everything queued, stops the writer and waits for it. Later
    /// submissions get `storage_error`.
    pub fn close(&self) {
        self.shared.close();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                warn!("history: the writer thread panicked");
            }
        }
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
