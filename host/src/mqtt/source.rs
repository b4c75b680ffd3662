//! Where the bridge takes readings from.
//!
//! - [`Log`]: the history's `readings` table, forwarded in `id` order from a
//!   cursor kept in the same database (table `mqtt_cursor`), advanced only
//!   once the broker has acknowledged every reading up to it.
//! - [`Queue`]: with `--no-db`, a bounded queue in memory filled from the
//!   feed; when full, the oldest reading is dropped and counted.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use envhub_core::Tenths;
use rusqlite::{params, Connection, OptionalExtension};

use crate::mqtt::payload::Row;

/// Rows read from the database at once.
const READ_AHEAD: usize = 512;
/// How often, at most, the cursor is written while readings are acked. A
/// crash loses at most this much progress: those readings go out again
/// (at least once, never zero times).
const SAVE_EVERY: Duration = Duration::from_millis(200);

/// The bridge's own table in the history database.
const CURSOR_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS mqtt_cursor (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    last_id INTEGER NOT NULL   -- every reading with id <= last_id was acknowledged by the broker
)";

/// The `readings` table, read from a cursor.
#[derive(Debug)]
pub struct Log {
    conn: Connection,
    /// Every reading up to here is acknowledged.
    acked: i64,
    /// What the table holds at `acked`'s row.
    saved: i64,
    last_save: Instant,
    /// Every reading up to here was taken (published or in `ready`).
    read: i64,
    ready: VecDeque<Row>,
    /// The newest id known to exist.
    newest: i64,
    /// The table may hold rows after `read`.
    more: bool,
}

impl Log {
    /// Opens the database at `path` (its `readings` table must exist) and
    /// the cursor; the first time, the cursor starts at the newest row: the
    /// bridge forwards what arrives from then on.
    pub fn open(path: &Path) -> rusqlite::Result<Log> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute(CURSOR_SCHEMA, [])?;
        let newest: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM readings", [], |r| {
            r.get(0)
        })?;
        let cursor: Option<i64> = conn
            .query_row("SELECT last_id FROM mqtt_cursor WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        let acked = match cursor {
            Some(c) => c,
            None => {
                conn.execute(
                    "INSERT INTO mqtt_cursor (id, last_id) VALUES (1, ?1)",
                    params![newest],
                )?;
                newest
            }
        };
        Ok(Log {
            conn,
            acked,
            saved: acked,
            last_save: Instant::now(),
            read: acked,
            ready: VecDeque::new(),
            newest,
            more: true,
        })
    }

    /// Every distinct location in the table (for discovery after a restart).
    pub fn locations(&self) -> rusqlite::Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT location FROM readings ORDER BY location")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    /// A reading with this id was committed.
    pub fn committed(&mut self, id: i64) {
        self.newest = self.newest.max(id);
        self.more = true;
    }

    /// The next reading to publish, if any.
    pub fn take(&mut self) -> rusqlite::Result<Option<Row>> {
        if self.ready.is_empty() && self.more {
            self.fill()?;
        }
        let row = self.ready.pop_front();
        if let Some(r) = &row {
            self.read = r.id;
        }
        Ok(row)
    }

    fn fill(&mut self) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, ts_ms, location, temp, hum, seq FROM readings
             WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let after = self.ready.back().map_or(self.read, |r| r.id);
        let rows = stmt.query_map(params![after, READ_AHEAD as i64], |r| {
            Ok(Row {
                id: r.get(0)?,
                ts_ms: r.get(1)?,
                location: r.get(2)?,
                temp: tenths(r.get(3)?),
                hum: tenths(r.get(4)?),
                seq: r
                    .get::<_, Option<i64>>(5)?
                    .and_then(|s| u32::try_from(s).ok()),
            })
        })?;
        let before = self.ready.len();
        for row in rows {
            self.ready.push_back(row?);
        }
        let got = self.ready.len() - before;
        if let Some(r) = self.ready.back() {
            self.newest = self.newest.max(r.id);
        }
        self.more = got == READ_AHEAD;
        Ok(())
    }

    /// The broker acknowledged every reading up to `id`.
    pub fn acked(&mut self, id: i64) {
        self.acked = self.acked.max(id);
    }

    /// Writes the cursor if it moved and the last write is old enough (or
    /// `now` is set).
    pub fn save(&mut self, now: bool) -> rusqlite::Result<()> {
        if self.acked != self.saved && (now || self.last_save.elapsed() >= SAVE_EVERY) {
            self.conn.execute(
                "UPDATE mqtt_cursor SET last_id = ?1 WHERE id = 1",
                params![self.acked],
            )?;
            self.saved = self.acked;
            self.last_save = Instant::now();
        }
        Ok(())
    }

    /// The connection is gone: start again after the last acknowledged
    /// reading.
    pub fn rewind(&mut self) {
        self.read = self.acked;
        self.ready.clear();
        self.more = true;
    }

    /// Readings not yet acknowledged (those in flight included).
    pub fn backlog(&self) -> u64 {
        u64::try_from(self.newest - self.acked).unwrap_or(0)
    }

    /// The cursor as it is now in memory (for tests and logs).
    pub fn cursor(&self) -> i64 {
        self.acked
    }
}

/// A stored REAL back to tenths (the history stores exactly `tenths / 10`).
fn tenths(value: f64) -> Tenths {
    let t = (value * 10.0).round();
    Tenths(t.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16)
}

/// The bounded in-memory queue of `--no-db`.
#[derive(Debug)]
pub struct Queue {
    rows: VecDeque<Row>,
    cap: usize,
    /// Dropped since the count was last taken.
    dropped: u64,
}

impl Queue {
    /// An empty queue holding at most `cap` readings.
    pub fn new(cap: usize) -> Self {
        Queue {
            rows: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// A new reading at the back; the oldest is dropped if the queue is full.
    pub fn push(&mut self, row: Row) {
        self.rows.push_back(row);
        self.trim();
    }

    /// Readings that were in flight come back to the front, in order.
    pub fn requeue(&mut self, rows: Vec<Row>) {
        for row in rows.into_iter().rev() {
            self.rows.push_front(row);
        }
        self.trim();
    }

    /// `n` readings were lost before they reached the queue.
    pub fn lost(&mut self, n: u64) {
        self.dropped += n;
    }

    fn trim(&mut self) {
        while self.rows.len() > self.cap {
            self.rows.pop_front();
            self.dropped += 1;
        }
    }

    /// The oldest reading.
    pub fn take(&mut self) -> Option<Row> {
        self.rows.pop_front()
    }

    /// Readings waiting.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Readings dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The history's own schema (issue 8), for tests that drive the log
    /// without the history writer.
    fn create_readings(conn: &Connection) {
        conn.execute_batch(crate::history::SCHEMA).unwrap();
    }

    fn row(id: i64) -> Row {
        Row {
            id,
            ts_ms: 5,
            location: format!("loc{}", id % 3),
            temp: Tenths(id as i16),
            hum: Tenths(-(id as i16)),
            seq: (id % 2 == 0).then_some(id as u32),
        }
    }

    fn insert(conn: &Connection, r: &Row) {
        conn.execute(
            "INSERT INTO readings (id, ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.id, r.ts_ms, r.location, f64::from(r.temp.0) / 10.0, f64::from(r.hum.0) / 10.0, r.seq],
        )
        .unwrap();
    }

    fn temp_db(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("envhub-mqtt-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("h.db")
    }

    #[test]
    fn the_cursor_survives_a_reopen_and_starts_at_the_newest_row() {
        let path = temp_db("cursor");
        let conn = Connection::open(&path).unwrap();
        create_readings(&conn);
        insert(&conn, &row(1));
        let mut log = Log::open(&path).unwrap();
        assert_eq!(
            log.cursor(),
            1,
            "history before the bridge is not forwarded"
        );
        for id in 2..=1200 {
            insert(&conn, &row(id));
        }
        log.committed(1200);
        assert_eq!(log.backlog(), 1199);
        let mut got = Vec::new();
        while let Some(r) = log.take().unwrap() {
            got.push(r);
        }
        assert_eq!(got.len(), 1199);
        assert_eq!(got[0], row(2));
        assert_eq!(got[1198], row(1200));
        // Only acknowledged readings move the cursor.
        log.acked(700);
        log.save(true).unwrap();
        log.rewind();
        assert_eq!(log.take().unwrap().unwrap().id, 701);
        drop(log);
        let mut log = Log::open(&path).unwrap();
        assert_eq!(log.cursor(), 700);
        assert_eq!(log.take().unwrap().unwrap().id, 701);
        assert_eq!(log.locations().unwrap(), ["loc0", "loc1", "loc2"]);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn the_queue_drops_the_oldest_and_counts() {
        let mut q = Queue::new(3);
        for id in 1..=5 {
            q.push(row(id));
        }
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_dropped(), 0);
        let a = q.take().unwrap();
        let b = q.take().unwrap();
        q.push(row(6));
        q.push(row(7));
        // In flight, then the connection went: they come back first, and
        // the oldest go when that overflows.
        q.requeue(vec![a, b]);
        assert_eq!(q.take_dropped(), 2);
        let ids: Vec<_> = std::iter::from_fn(|| q.take()).map(|r| r.id).collect();
        assert_eq!(ids, [5, 6, 7]);
        q.push(row(8));
        assert_eq!(q.len(), 1);
        q.lost(4);
        assert_eq!(q.take_dropped(), 4);
    }
}
