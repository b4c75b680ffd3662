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

use crate::history::rollup::{self, Aggregate};
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
    /// for `location`, oldest first; empty buckets are left out. Bucket
    /// `i` starts at `from_ms + i * width`. Whole minutes come from the
    /// rollup `readings_minute`, the partial minutes at the edges of each
    /// bucket from `readings` ([`rollup_buckets`]); the answer is the same
    /// as [`raw_buckets`] over the raw rows, which serves buckets narrower
    /// than a minute and databases without the rollup.
    pub fn buckets(
        &self,
        location: &str,
        from_ms: i64,
        to_ms: i64,
        max_points: u32,
    ) -> rusqlite::Result<Vec<Point>> {
        self.with(|c| {
            let version: i32 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
            let plan = (version >= 2)
                .then(|| Plan::new(from_ms, to_ms, max_points))
                .flatten();
            match plan {
                Some(plan) => rollup_buckets(c, location, &plan),
                None => raw_buckets(c, location, from_ms, to_ms, max_points),
            }
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

/// The buckets of a request that the rollup can serve: every bound fits
/// an `i64`, and buckets are at least a minute wide (a narrower one holds
/// no whole minute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The first bucket's start.
    pub from_ms: i64,
    /// Bucket width, ms.
    pub width: i64,
    /// `(start, end)` of each bucket, end inclusive (the last one ends at
    /// `to_ms`).
    pub bounds: Vec<(i64, i64)>,
}

impl Plan {
    /// The plan of `/api/history`'s buckets, or `None` when the rollup
    /// cannot help (see the type).
    pub fn new(from_ms: i64, to_ms: i64, max_points: u32) -> Option<Plan> {
        let width = bucket_width(from_ms, to_ms, max_points);
        if width < rollup::MINUTE_MS || from_ms > to_ms {
            return None;
        }
        let mut bounds = Vec::new();
        let mut start = from_ms;
        loop {
            let end = start.checked_add(width - 1)?.min(to_ms);
            bounds.push((start, end));
            if end == to_ms {
                break;
            }
            start = end + 1;
        }
        Some(Plan {
            from_ms,
            width,
            bounds,
        })
    }
}

/// The whole minutes `lo..hi` inside `start..=end`, if any.
fn whole_minutes(start: i64, end: i64) -> Option<(i64, i64)> {
    let lo = rollup::minute_of(start.checked_add(rollup::MINUTE_MS - 1)?);
    let hi = rollup::minute_of(end.checked_add(1)?);
    (lo < hi).then_some((lo, hi))
}

/// `/api/history` from the rollup: the rows of the minutes that straddle a
/// bucket's edges (at most two per bucket) from `readings`, the whole
/// minutes between from `readings_minute` (one range scan for all
/// buckets), combined exactly ([`rollup::Sum`]), all in one read
/// transaction so that both tables are seen at the same commit.
pub fn rollup_buckets(c: &Connection, location: &str, plan: &Plan) -> rusqlite::Result<Vec<Point>> {
    let tx = c.unchecked_transaction()?;
    let mut aggs: Vec<Option<Aggregate>> = vec![None; plan.bounds.len()];
    let mut whole = Vec::with_capacity(plan.bounds.len());
    for (i, &(start, end)) in plan.bounds.iter().enumerate() {
        let minutes = whole_minutes(start, end);
        whole.push(minutes);
        let edges = match minutes {
            Some((lo, hi)) => [
                (start, lo * rollup::MINUTE_MS - 1),
                (hi * rollup::MINUTE_MS, end),
            ],
            None => [(start, end), (1, 0)],
        };
        for (from, to) in edges {
            if from <= to {
                if let Some(raw) = rollup::raw(&tx, location, from, to)? {
                    Aggregate::merge_into(&mut aggs[i], &raw);
                }
            }
        }
    }
    let (first, last) = (whole.iter().flatten().next(), whole.iter().flatten().last());
    if let (Some(&(lo, _)), Some(&(_, hi))) = (first, last) {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT minute, {} FROM readings_minute \
             WHERE location = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute",
            rollup::COLUMNS
        ))?;
        let mut rows = stmt.query(params![location, lo, hi])?;
        while let Some(r) = rows.next()? {
            let minute: i64 = r.get(0)?;
            // The bucket holding the minute's start; the minute counts only
            // when it is whole inside it (else its rows were read above).
            let offset =
                i128::from(minute) * i128::from(rollup::MINUTE_MS) - i128::from(plan.from_ms);
            let Ok(i) = usize::try_from(offset / i128::from(plan.width)) else {
                continue;
            };
            match whole.get(i) {
                Some(Some((lo, hi))) if (*lo..*hi).contains(&minute) => {
                    Aggregate::merge_into(&mut aggs[i], &Aggregate::from_row(r, 1)?);
                }
                _ => {}
            }
        }
    }
    drop(tx);
    Ok(plan
        .bounds
        .iter()
        .zip(aggs)
        .filter_map(|(&(start, _), agg)| {
            let a = agg?;
            Some((
                start,
                round2(a.temp.avg(a.n)),
                a.temp.min,
                a.temp.max,
                round2(a.hum.avg(a.n)),
                a.hum.min,
                a.hum.max,
            ))
        })
        .collect())
}

/// `/api/history` from the raw rows alone ([`BUCKETS_SQL`]), as before
/// the rollup (public for the benchmark's check).
pub fn raw_buckets(
    c: &Connection,
    location: &str,
    from_ms: i64,
    to_ms: i64,
    max_points: u32,
) -> rusqlite::Result<Vec<Point>> {
    let width = bucket_width(from_ms, to_ms, max_points);
    let span = i128::from(to_ms) - i128::from(from_ms) + 1;
    let buckets = i64::try_from((span + i128::from(width) - 1) / i128::from(width))
        .unwrap_or(i64::from(max_points));
    let mut stmt = c.prepare_cached(BUCKETS_SQL)?;
    let rows = stmt.query_map(params![location, from_ms, to_ms, width, buckets], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut points = Vec::new();
    for row in rows {
        let (b, agg) = row?;
        // An empty bucket has no aggregates.
        let Some(agg) = agg else { continue };
        let [ta, tmin, tmax, ha, hmin, hmax] = floats(&agg).ok_or_else(|| {
            rusqlite::Error::ToSqlConversionFailure(format!("not 6 numbers: {agg}").into())
        })?;
        let ts = from_ms.saturating_add(b.saturating_mul(width));
        points.push((ts, round2(ta), tmin, tmax, round2(ha), hmin, hmax));
    }
    points.sort_by_key(|p| p.0);
    Ok(points)
}

/// The six numbers of a JSON array `[a,b,c,d,e,f]` as SQLite writes it
/// (`%!.17g`: each number reads back as the very double it was), each
/// read with Rust's correctly rounded parser. Written by hand because
/// serde_json's default float parser may land one ulp off for 17 digits
/// (its exact one is a crate-wide feature), and one ulp moves an average
/// that sits on x.xx5 to the other side of `round2`: the average of 79.4,
/// 72.0, 0.2 and 0.1 is `37.925000000000004`, and read one ulp low it
/// became 37.92 instead of 37.93.
fn floats(text: &str) -> Option<[f64; 6]> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = [0.0; 6];
    let mut parts = inner.split(',');
    for slot in &mut out {
        *slot = parts.next()?.trim().parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The bucket query over the raw rows (public for the benchmark's query
/// plan): one row per bucket number `i` (`0..?5`), with the
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
    use proptest::prelude::*;

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

    // =========================================================================================
    // The rollup path against the raw query
    // =========================================================================================

    /// The raw query as it was before the rollup, kept here word for word
    /// as the reference: every answer of [`Reader::buckets`] must equal it.
    const REFERENCE_SQL: &str = "\
WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i + 1 < ?5) \
SELECT i, (SELECT json_array(avg(temp), min(temp), max(temp), avg(hum), min(hum), max(hum)) \
           FROM readings INDEXED BY readings_by_location \
           WHERE location = ?1 AND ts_ms >= ?2 + i * ?4 AND ts_ms < ?2 + (i + 1) * ?4 \
             AND ts_ms <= ?3 \
           HAVING count(*) > 0) \
FROM b";

    /// The answer of [`REFERENCE_SQL`]: SQLite's `avg()`, `min()` and
    /// `max()` per bucket, each number read back exactly, averages rounded
    /// with `round2` as ever.
    fn reference(c: &Connection, location: &str, from: i64, to: i64, max: u32) -> Vec<Point> {
        let width = bucket_width(from, to, max);
        let span = i128::from(to) - i128::from(from) + 1;
        let buckets = i64::try_from((span + i128::from(width) - 1) / i128::from(width))
            .unwrap_or(i64::from(max));
        let mut stmt = c.prepare(REFERENCE_SQL).unwrap();
        let mut points: Vec<Point> = stmt
            .query_map(params![location, from, to, width, buckets], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .unwrap()
            .map(Result::unwrap)
            .filter_map(|(b, agg)| {
                let agg = agg?;
                let v: Vec<f64> = agg
                    .trim_matches(['[', ']'])
                    .split(',')
                    .map(|x| x.parse::<f64>().unwrap())
                    .collect();
                let ts = from.saturating_add(b.saturating_mul(width));
                Some((ts, round2(v[0]), v[1], v[2], round2(v[3]), v[4], v[5]))
            })
            .collect();
        points.sort_by_key(|p| p.0);
        points
    }

    /// A database made by the server's own open (schema version 2), in
    /// `dir`, and the writer's connection.
    fn server_db(dir: &tempfile::TempDir) -> (PathBuf, crate::history::schema::Opened) {
        let path = dir.path().join("envhub.db");
        let opened = crate::history::schema::open_rw(&path, crate::history::Sync::Normal).unwrap();
        (path, opened)
    }

    /// Rows `(location, ts_ms, temp tenths, hum tenths)` written as the
    /// writer does: one transaction per batch, the rows and then
    /// [`rollup::add`] over them.
    fn write_batches(conn: &mut Connection, rows: &[(&str, i64, i16, i16)], batch: usize) {
        for chunk in rows.chunks(batch.max(1)) {
            let tx = conn.transaction().unwrap();
            for &(loc, ts, t, h) in chunk {
                tx.execute(
                    "INSERT INTO readings (ts_ms, location, temp, hum) VALUES (?1, ?2, ?3, ?4)",
                    params![ts, loc, f64::from(t) / 10.0, f64::from(h) / 10.0],
                )
                .unwrap();
            }
            rollup::add(
                &tx,
                chunk
                    .iter()
                    .map(|&(l, ts, t, h)| (l, ts, f64::from(t) / 10.0, f64::from(h) / 10.0)),
            )
            .unwrap();
            tx.commit().unwrap();
        }
    }

    /// 2026-11-30 00:00 UTC, plus 17 s so minutes and buckets do not align.
    const T0: i64 = 1_764_460_800_000 + 17_000;

    #[test]
    fn the_rollup_is_what_the_answer_is_read_from() {
        let dir = tempfile::TempDir::new().unwrap();
        let (path, mut opened) = server_db(&dir);
        // An hour of one reading per second, 20.0 °C and 50.0 %.
        let rows: Vec<(&str, i64, i16, i16)> = (0..3_600)
            .map(|i| ("hall", T0 + i * 1_000, 200, 500))
            .collect();
        write_batches(&mut opened.conn, &rows, 250);
        let r = Reader::open(&path).unwrap();
        let (from, to) = (T0, T0 + 3_599_999);
        let before = r.buckets("hall", from, to, 6).unwrap();
        assert_eq!(before, reference(&opened.conn, "hall", from, to, 6));
        assert_eq!(before.len(), 6);
        // A minute wholly inside the second bucket, changed in the rollup
        // only: the answer follows it, so it came from there.
        let minute = rollup::minute_of(T0 + 15 * 60_000);
        opened
            .conn
            .execute(
                "UPDATE readings_minute SET max_temp = 99.5 WHERE location = 'hall' AND minute = ?1",
                [minute],
            )
            .unwrap();
        let after = r.buckets("hall", from, to, 6).unwrap();
        assert_eq!(after[1].3, 99.5, "{after:?}");
        assert_eq!(after[0], before[0]);
        // Narrower than a minute: the raw rows alone.
        assert_eq!(
            r.buckets("hall", from, from + 600_000, 500).unwrap(),
            reference(&opened.conn, "hall", from, from + 600_000, 500)
        );
    }

    #[test]
    fn averages_on_x_xx5_round_as_sqlite_computes_them() {
        // 79.4 + 72.0 + 0.2 + 0.1 in doubles is 151.70000000000002, so
        // SQLite's avg() is 37.925000000000004: 37.93, from the rollup
        // and from the raw rows alike.
        assert_eq!(
            floats("[21.55,21.5,21.6,37.925000000000004,0.1,79.4]").map(|f| round2(f[3])),
            Some(37.93)
        );
        assert_eq!(floats("[1,2,3,4,5]"), None);
        assert_eq!(floats("[1,2,3,4,5,6,7]"), None);
        let dir = tempfile::TempDir::new().unwrap();
        let (path, mut opened) = server_db(&dir);
        let four = [(0, 794), (25_000, 720), (70_000, 2), (100_000, 1)];
        let rows: Vec<(&str, i64, i16, i16)> = four
            .iter()
            .map(|&(dt, h)| ("x", T0 + 43_000 + dt, 215, h))
            .collect();
        write_batches(&mut opened.conn, &rows, 1);
        let r = Reader::open(&path).unwrap();
        // Whole minutes plus edges, and raw rows alone (narrow buckets).
        for (max, width) in [(1, 1), (2, 2), (500, 500)] {
            let got = r.buckets("x", T0, T0 + 299_999, max).unwrap();
            assert_eq!(got, reference(&opened.conn, "x", T0, T0 + 299_999, max));
            if width == 1 {
                assert_eq!(got[0].4, 37.93, "{got:?}");
            }
        }
        // Averages that fall exactly on x.xx5 (0.1 + 0.2 ... in doubles),
        // in buckets of whole minutes and partial ones.
        let mut rows = Vec::new();
        for i in 0..2_000i64 {
            let t = [1, 2, 3, 215, 216, -1, 7][(i % 7) as usize];
            let h = [1, 2, 999, 1000, 5, 794, 720][(i % 7) as usize];
            rows.push(("y", T0 + i * 2_500, t, h));
        }
        write_batches(&mut opened.conn, &rows, 37);
        let end = T0 + 2_000 * 2_500;
        for max in [1, 2, 3, 4, 7, 10, 16, 33, 64, 80, 100, 5_000] {
            for from in [T0 - 59_999, T0, T0 + 1, T0 + 43_000] {
                let got = r.buckets("y", from, end, max).unwrap();
                assert_eq!(
                    got,
                    reference(&opened.conn, "y", from, end, max),
                    "{from} {max}"
                );
            }
        }
    }

    fn rows_strategy() -> impl Strategy<Value = Vec<(u8, i64, i16, i16)>> {
        proptest::collection::vec(
            (
                0u8..3,
                // Within about three hours, some on a minute's first ms.
                prop_oneof![0i64..10_800_000, (0i64..180).prop_map(|s| s * 60_000)],
                prop_oneof![-400i16..=1250, 0i16..=3, 215i16..=216],
                prop_oneof![0i16..=1000, 0i16..=2, 719i16..=721],
            ),
            0..600,
        )
    }

    fn query_strategy() -> impl Strategy<Value = (i64, i64, u32)> {
        (
            -600_000i64..11_000_000,
            prop_oneof![
                0i64..60_000,       // shorter than a minute
                60_000i64..600_000, // a few minutes
                0i64..12_000_000,   // up to all of it
            ],
            prop_oneof![1u32..=8, 1u32..=300, Just(500u32), Just(5_000u32)],
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random rows in random batches, random ranges and widths
        /// (shorter than a minute, narrower than a minute, not aligned to
        /// minutes): the answer is the raw query's, bit for bit.
        #[test]
        fn the_rollup_answers_exactly_as_the_raw_query(
            rows in rows_strategy(),
            batch in 1usize..300,
            queries in proptest::collection::vec(query_strategy(), 12),
        ) {
            let dir = tempfile::TempDir::new().unwrap();
            let (path, mut opened) = server_db(&dir);
            let names = ["a", "b é", "c 'q'"];
            let rows: Vec<(&str, i64, i16, i16)> = rows
                .iter()
                .map(|&(l, ts, t, h)| (names[usize::from(l)], T0 + ts, t, h))
                .collect();
            write_batches(&mut opened.conn, &rows, batch);
            let r = Reader::open(&path).unwrap();
            for (from, len, max) in queries {
                let (from, to) = (T0 + from, T0 + from + len);
                for loc in ["a", "b é"] {
                    let want = reference(&opened.conn, loc, from, to, max);
                    prop_assert_eq!(
                        r.buckets(loc, from, to, max).unwrap(),
                        want.clone(),
                        "{} {}..={} in {}", loc, from, to, max
                    );
                    if let Some(plan) = Plan::new(from, to, max) {
                        let got = rollup_buckets(&opened.conn, loc, &plan).unwrap();
                        prop_assert_eq!(got, want);
                    }
                }
            }
        }
    }

    #[test]
    fn plans_cover_the_range_in_buckets_of_the_width() {
        assert_eq!(Plan::new(0, 59_999, 500), None, "narrower than a minute");
        let p = Plan::new(10, 300_009, 5).unwrap();
        assert_eq!(p.width, 60_000);
        assert_eq!(p.bounds.first(), Some(&(10, 60_009)));
        assert_eq!(p.bounds.last(), Some(&(240_010, 300_009)));
        let p = Plan::new(0, 130_000, 2).unwrap();
        assert_eq!(p.bounds, [(0, 65_000), (65_001, 130_000)]);
        // Bounds past i64: the raw query serves it.
        assert_eq!(
            Plan::new(i64::MAX - 100_000, i64::MAX, 1).map(|p| p.bounds.len()),
            Some(1)
        );
        assert_eq!(Plan::new(i64::MIN, i64::MAX, 1), None);
        assert_eq!(whole_minutes(1, 119_999), Some((1, 2)));
        assert_eq!(whole_minutes(1, 119_998), None);
        assert_eq!(whole_minutes(0, 59_999), Some((0, 1)));
    }
}
