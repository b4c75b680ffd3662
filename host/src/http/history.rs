//! Reading the history database (the `readings` table of the History
//! issue) for the HTTP side: its own read-only connections, never the
//! writer's. WAL lets them read while the writer commits.
//!
//! Every query here is a blocking call: handlers run them with
//! `tokio::task::spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use envhub_core::{Location, Tenths};

use crate::services::Kept;

/// Connections kept open for reuse; more are opened when needed.
const POOL: usize = 4;

/// How long a reader waits for a lock (e.g. a checkpoint) before failing.
const BUSY_MS: u64 = 2_000;

/// One bucket of `/api/history`: `[ts_ms, temp_avg, temp_min, temp_max,
/// hum_avg, hum_min, hum_max]`, the time being the bucket's start.
pub type Point = (i64, f64, f64, f64, f64, f64, f64);

/// Read-only access to the history database.
#[derive(Debug)]
pub struct Reader {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl Reader {
    /// Opens one read-only connection to `path` to check that it is there
    /// and is a history database.
    pub fn open(path: &Path) -> rusqlite::Result<Reader> {
        let reader = Reader {
            path: path.to_owned(),
            pool: Mutex::new(Vec::new()),
        };
        let conn = reader.connect()?;
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'readings'",
            [],
            |_| Ok(()),
        )?;
        reader.give_back(conn);
        Ok(reader)
    }

    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_millis(BUSY_MS))?;
        Ok(conn)
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(conn) => Ok(conn),
            None => self.connect(),
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL {
            pool.push(conn);
        }
    }

    /// Runs `f` on a pooled connection.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let conn = self.take()?;
        let result = f(&conn);
        self.give_back(conn);
        result
    }

    /// Whether any row of `location` was ever kept (uses the index).
    pub fn knows(&self, location: &str) -> rusqlite::Result<bool> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM readings WHERE location = ?1 LIMIT 1",
                [location],
                |_| Ok(()),
            )
            .optional()
            .map(|row| row.is_some())
        })
    }

    /// At most `max_points` buckets of equal width over `from_ms..=to_ms`
    /// for `location`, oldest first; empty buckets are left out. The
    /// aggregation runs in SQL over the `readings_by_location` index.
    pub fn buckets(
        &self,
        location: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: u32,
    ) -> rusqlite::Result<Vec<Point>> {
        let width = bucket_width(from_ms, to_ms, max_points);
        let span = i128::from(to_ms) - i128::from(from_ms) + 1;
        let buckets = i64::try_from((span + i128::from(width) - 1) / i128::from(width))
            .unwrap_or(i64::from(max_points));
        self.with(|c| {
            let mut stmt = c.prepare_cached(BUCKETS_SQL)?;
            let rows = stmt.query_map(params![location, from_ms, to_ms, width, buckets], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })?;
            let mut points = Vec::new();
            for row in rows {
                let (b, agg) = row?;
                // An empty bucket has no aggregates.
                let Some(agg) = agg else { continue };
                let [ta, tmin, tmax, ha, hmin, hmax]: [f64; 6] = serde_json::from_str(&agg)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                let ts = from_ms.saturating_add(b.saturating_mul(width));
                points.push((ts, round2(ta), tmin, tmax, round2(ha), hmin, hmax));
            }
            points.sort_by_key(|p| p.0);
            Ok(points)
        })
    }

    /// The newest row of every location (at most `limit` locations).
    pub fn newest(&self, limit: usize) -> rusqlite::Result<Vec<Kept>> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, ts_ms, location, temp, hum, seq FROM readings \
                 WHERE id IN (SELECT max(id) FROM readings GROUP BY location) \
                 ORDER BY location LIMIT ?1",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map([limit], row_to_kept)?;
            Ok(rows.filter_map(Result::ok).flatten().collect())
        })
    }

    /// Rows after `after_id`, oldest first, at most the newest `limit` of
    /// them, and how many older ones were left out.
    pub fn after(&self, after_id: i64, limit: usize) -> rusqlite::Result<(Vec<Kept>, u64)> {
        self.with(|c| {
            let total: i64 = c.query_row(
                "SELECT count(*) FROM readings WHERE id > ?1",
                [after_id],
                |r| r.get(0),
            )?;
            let mut stmt = c.prepare(
                "SELECT id, ts_ms, location, temp, hum, seq FROM readings \
                 WHERE id > ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![after_id, limit_sql], row_to_kept)?;
            let mut kept: Vec<Kept> = rows.filter_map(Result::ok).flatten().collect();
            kept.reverse();
            let skipped = u64::try_from(total)
                .unwrap_or(0)
                .saturating_sub(kept.len() as u64);
            Ok((kept, skipped))
        })
    }
}

/// The bucket query (public for the benchmark's query plan): one row per bucket number `i` (`0..?5`), with the
/// six aggregates of the rows in it as a JSON array, or NULL for an empty
/// bucket. Each bucket is its own range search of the index on
/// `(location, ts_ms)` (`INDEXED BY`: SQLite uses it or fails loudly), so
/// the rows come in index order and are never sorted; a single
/// `GROUP BY (ts_ms - from) / width` would sort every row in a temporary
/// B-tree (2 to 3 times slower over 30 days).
pub const BUCKETS_SQL: &str = "\
WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i + 1 < ?5) \
SELECT i, (SELECT json_array(avg(temp), min(temp), max(temp), avg(hum), min(hum), max(hum)) \
           FROM readings INDEXED BY readings_by_location \
           WHERE location = ?1 AND ts_ms >= ?2 + i * ?4 AND ts_ms < ?2 + (i + 1) * ?4 \
             AND ts_ms <= ?3 \
           HAVING count(*) > 0) \
FROM b";

/// The width in ms of each of at most `max_points` buckets covering
/// `from_ms..=to_ms` (at least 1).
pub fn bucket_width(from_ms: i64, to_ms: i64, max_points: u32) -> i64 {
    let span = i128::from(to_ms) - i128::from(from_ms) + 1;
    let n = i128::from(max_points.max(1));
    let width = (span + n - 1) / n;
    i64::try_from(width.max(1)).unwrap_or(i64::MAX)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A row as a [`Kept`]; `None` for a row the server could not have written
/// (a location that does not validate, a value out of range).
fn row_to_kept(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Kept>> {
    let location: String = r.get(2)?;
    let temp: f64 = r.get(3)?;
    let hum: f64 = r.get(4)?;
    let seq: Option<i64> = r.get(5)?;
    Ok(Location::new(&location).map(|location| Kept {
        id: r.get(0).unwrap_or(0),
        ts_ms: r.get(1).unwrap_or(0),
        location,
        temp: tenths(temp),
        hum: tenths(hum),
        seq: seq.and_then(|s| u32::try_from(s).ok()),
    }))
}

fn tenths(x: f64) -> Tenths {
    let t = (x * 10.0).round();
    // In range by construction; clamp anything else.
    Tenths(t.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(dir: &Path) -> (PathBuf, Connection) {
        let path = dir.join("h.db");
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(crate::history::schema::SCHEMA).unwrap();
        (path, c)
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "envhub-http-history-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn widths_never_make_more_buckets_than_asked() {
        assert_eq!(bucket_width(0, 999, 10), 100);
        assert_eq!(bucket_width(0, 1000, 10), 101);
        assert_eq!(bucket_width(5, 5, 500), 1);
        assert_eq!(bucket_width(i64::MIN, i64::MAX, 1), i64::MAX);
        for (from, to, n) in [(0, 86_399_999, 500), (17, 123_456, 7), (0, 3, 5000)] {
            let w = bucket_width(from, to, n);
            assert!((to - from) / w < i64::from(n), "{from} {to} {n} {w}");
        }
    }

    #[test]
    fn buckets_newest_and_after_read_what_was_written() {
        let dir = tempdir();
        let (path, c) = db(&dir);
        let mut ins = c
            .prepare("INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for i in 0..100i64 {
            ins.execute(params![i * 10, "a 'b' é", i as f64 / 10.0, 50.0, i])
                .unwrap();
            ins.execute(params![i * 10, "z", -1.5, 99.9, Option::<i64>::None])
                .unwrap();
        }
        let r = Reader::open(&path).unwrap();
        assert!(r.knows("a 'b' é").unwrap());
        assert!(!r.knows("a").unwrap());

        // 0..=999 in 10 buckets of 100 ms: 10 rows each.
        let b = r.buckets("a 'b' é", 0, 999, 10).unwrap();
        assert_eq!(b.len(), 10);
        assert_eq!(b[0], (0, 0.45, 0.0, 0.9, 50.0, 50.0, 50.0));
        assert_eq!(b[9].0, 900);
        assert_eq!((b[9].2, b[9].3), (9.0, 9.9));
        // A range inside the data, and one with none.
        let b = r.buckets("z", 500, 549, 500).unwrap();
        assert_eq!(
            b.iter().map(|p| p.0).collect::<Vec<_>>(),
            [500, 510, 520, 530, 540]
        );
        assert!(r.buckets("z", 5_000, 6_000, 5).unwrap().is_empty());

        let newest = r.newest(64).unwrap();
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[0].location.as_str(), "a 'b' é");
        assert_eq!(
            (newest[0].id, newest[0].temp, newest[0].seq),
            (199, Tenths(99), Some(99))
        );
        assert_eq!(
            (newest[1].temp, newest[1].hum, newest[1].seq),
            (Tenths(-15), Tenths(999), None)
        );

        let (rows, skipped) = r.after(195, 10).unwrap();
        assert_eq!(
            rows.iter().map(|k| k.id).collect::<Vec<_>>(),
            [196, 197, 198, 199, 200]
        );
        assert_eq!(skipped, 0);
        let (rows, skipped) = r.after(0, 3).unwrap();
        assert_eq!(
            rows.iter().map(|k| k.id).collect::<Vec<_>>(),
            [198, 199, 200]
        );
        assert_eq!(skipped, 197);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_bucket_query_uses_the_index() {
        let dir = tempdir();
        let (_path, c) = db(&dir);
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {BUCKETS_SQL}"))
            .unwrap()
            .query_map(params!["x", 0, 1, 1, 1], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|p| p
                .contains("USING INDEX readings_by_location (location=? AND ts_ms>? AND ts_ms<?)")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
