//! The public schema and opening a database file.
//!
//! The schema is versioned with `PRAGMA user_version`. A file is used only
//! if it is an SQLite database that is empty (it is given the schema) or
//! holds envhub's schema of a version this program knows; anything else is
//! an [`OpenError`] and the file is left exactly as it was.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::info;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, TransactionBehavior};

use super::{rollup, Sync};

/// The schema version this program writes and reads (`PRAGMA user_version`).
/// Version 2 added the rollup `readings_minute`; a version 1 file is
/// upgraded when the server opens it ([`open_rw`]).
pub const SCHEMA_VERSION: i32 = 2;

/// The text of [`READINGS`], spelled once for it and [`SCHEMA`].
macro_rules! readings_sql {
    () => {
        "\
CREATE TABLE readings (
  id       INTEGER PRIMARY KEY,   -- arrival order
  ts_ms    INTEGER NOT NULL,      -- server wall clock when received, Unix milliseconds
  location TEXT    NOT NULL,
  temp     REAL    NOT NULL,      -- °C, exactly as acknowledged (tenths)
  hum      REAL    NOT NULL,      -- %, exactly as acknowledged (tenths)
  seq      INTEGER                -- as sent, or NULL
);
CREATE INDEX readings_by_location ON readings(location, ts_ms);
"
    };
}

/// The text of [`ROLLUP`], spelled once for it and [`SCHEMA`].
macro_rules! rollup_sql {
    () => {
        "\
CREATE TABLE readings_minute (     -- derived from readings, kept in step by envhub
  location     TEXT    NOT NULL,
  minute       INTEGER NOT NULL,  -- floor(ts_ms / 60000)
  n            INTEGER NOT NULL,  -- rows of readings in this minute (at least 1)
  sum_temp     REAL    NOT NULL,  -- sum of temp, rounded to a double
  sum_temp_err REAL    NOT NULL,  -- sum_temp + sum_temp_err is the exact sum
  min_temp     REAL    NOT NULL,
  max_temp     REAL    NOT NULL,
  sum_hum      REAL    NOT NULL,
  sum_hum_err  REAL    NOT NULL,
  min_hum      REAL    NOT NULL,
  max_hum      REAL    NOT NULL,
  PRIMARY KEY (location, minute)
) WITHOUT ROWID;
"
    };
}

/// The table `readings` and its index: the whole public schema of version
/// 1, unchanged since.
pub const READINGS: &str = readings_sql!();

/// The per-minute rollup of `readings`, added in version 2 (see
/// [`super::rollup`]).
pub const ROLLUP: &str = rollup_sql!();

/// The public schema, version 2, exactly as documented in
/// `docs/PROTOCOL.md`: [`READINGS`] and [`ROLLUP`].
pub const SCHEMA: &str = concat!(readings_sql!(), rollup_sql!());

/// How long a statement waits for a lock another connection holds (a
/// reader's checkpoint, say) before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// The write-ahead log is cut back to this size after a checkpoint, so a
/// burst does not keep its disk space for good.
const JOURNAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;

/// Why a database file cannot be used. Its `Display` is one line naming
/// the file.
#[derive(Debug)]
pub enum OpenError {
    /// Not an SQLite database (or damaged beyond reading its header).
    NotSqlite(PathBuf),
    /// An SQLite database with tables, but not envhub's.
    Foreign(PathBuf),
    /// envhub's schema, of a newer version than this program knows.
    Newer {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i32,
    },
    /// Another envhub serves from this file.
    Locked(PathBuf),
    /// Anything else (permissions, a missing directory, I/O).
    Other {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: String,
    },
}

impl OpenError {
    pub(crate) fn other(path: &Path, error: impl fmt::Display) -> OpenError {
        OpenError::Other {
            path: path.to_owned(),
            error: error.to_string(),
        }
    }

    /// Maps an SQLite error met while reading the file's header or schema.
    fn from_sqlite(path: &Path, error: rusqlite::Error) -> OpenError {
        match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                OpenError::NotSqlite(path.to_owned())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                OpenError::Locked(path.to_owned())
            }
            _ => OpenError::other(path, error),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotSqlite(p) => write!(
                f,
                "{}: not an SQLite database (or damaged); left untouched",
                p.display()
            ),
            OpenError::Foreign(p) => write!(
                f,
                "{}: an SQLite database without envhub's schema; left untouched",
                p.display()
            ),
            OpenError::Newer { path, found } => write!(
                f,
                "{}: schema version {found} is newer than this envhub's {SCHEMA_VERSION}; left untouched",
                path.display()
            ),
            OpenError::Locked(p) => write!(
                f,
                "{}: in use by another envhub (one server per database)",
                p.display()
            ),
            OpenError::Other { path, error } => {
                write!(f, "{}: cannot open the database: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// A database opened for writing, with the lock that keeps a second envhub
/// out. Drop the connection before the lock (field order).
pub struct Opened {
    /// The writer's connection.
    pub conn: Connection,
    /// An exclusive `flock(2)` on the database file, held while envhub
    /// runs. SQLite's own locks are `fcntl(2)` locks, which this does not
    /// touch, so readers (sqlite3, the MQTT and HTTP sides) are not
    /// affected; and the descriptor stays open until after the connection
    /// closes, so closing it cannot drop SQLite's locks.
    pub lock: Flock<File>,
}

/// Opens `path` for the server: takes the lock, checks the file, switches it
/// to WAL and creates the schema in an empty file.
pub fn open_rw(path: &Path, sync: Sync) -> Result<Opened, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| OpenError::other(path, e))?;
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => return Err(OpenError::Locked(path.to_owned())),
        Err((_, e)) => return Err(OpenError::other(path, e)),
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| OpenError::from_sqlite(path, e))?;
    let sqlite = |e| OpenError::from_sqlite(path, e);
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    // Reading the header first: a file that is not a database fails here,
    // before anything is written to it.
    let version = check(path, &conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::other(
            path,
            format!("cannot switch to WAL (journal mode {mode})"),
        ));
    }
    conn.pragma_update(None, "synchronous", sync.pragma())
        .map_err(sqlite)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(sqlite)?;
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(sqlite)?;
    } else if version < SCHEMA_VERSION {
        upgrade(path, &conn).map_err(sqlite)?;
    }
    Ok(Opened { conn, lock })
}

/// Upgrades a version 1 file to [`SCHEMA_VERSION`] in one transaction
/// (all or nothing: a crash leaves version 1): creates the rollup, builds
/// it from `readings` and logs one line with the count and the time.
/// Setting `user_version` back to 1 by hand makes the next start rebuild
/// the rollup the same way (after `readings` was edited by hand, say).
fn upgrade(path: &Path, conn: &Connection) -> rusqlite::Result<()> {
    let start = Instant::now();
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!("DROP TABLE IF EXISTS readings_minute; {ROLLUP}"))?;
    let (rows, minutes) = rollup::rebuild(&tx)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    info!(
        "history: {}: schema upgraded from version 1 to {SCHEMA_VERSION}: \
         per-minute rollup of {rows} rows ({minutes} minutes) built in {} ms",
        path.display(),
        start.elapsed().as_millis()
    );
    Ok(())
}

/// Opens `path` read-only for a side service (the MQTT bridge, the HTTP
/// API): the file must hold envhub's schema of a version this program
/// knows. The server itself must have created it (it runs WAL, so this
/// connection reads while the writer commits).
pub fn open_readonly(path: &Path) -> Result<Connection, OpenError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| OpenError::from_sqlite(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| OpenError::from_sqlite(path, e))?;
    match check(path, &conn)? {
        0 => Err(OpenError::other(path, "no envhub schema yet")),
        _ => Ok(conn),
    }
}

/// The file's schema version if this program can use it: 0 for an empty
/// database (no tables), [`SCHEMA_VERSION`] for envhub's.
fn check(path: &Path, conn: &Connection) -> Result<i32, OpenError> {
    let sqlite = |e| OpenError::from_sqlite(path, e);
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite)?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::Newer {
            path: path.to_owned(),
            found: version,
        });
    }
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite)?;
    if version == 0 {
        return match tables {
            0 => Ok(0),
            _ => Err(OpenError::Foreign(path.to_owned())),
        };
    }
    // Version 1 and later: the columns must be there; from version 2 also
    // the rollup's.
    conn.prepare("SELECT id, ts_ms, location, temp, hum, seq FROM readings LIMIT 0")
        .map_err(|_| OpenError::Foreign(path.to_owned()))?;
    if version >= 2 {
        conn.prepare(&format!(
            "SELECT location, minute, {} FROM readings_minute LIMIT 0",
            rollup::COLUMNS
        ))
        .map_err(|_| OpenError::Foreign(path.to_owned()))?;
    }
    Ok(version)
}
