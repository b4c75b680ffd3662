//! Deleting rows older than `--retention-days`, a small batch at a time.
//!
//! Each sweep looks at the oldest rows by `id` (arrival order, which is
//! `ts_ms` order as long as the wall clock does not step back) and deletes
//! those older than the cutoff. The public schema has no index on `ts_ms`
//! alone, and this needs none: a batch reads [`BATCH`] rows from the front
//! of the table, so it takes a few milliseconds however large the table
//! is. Only rows older than the cutoff are ever deleted; should the clock
//! have stepped back, a younger row at the front holds the sweep until it
//! ages too. Each sweep also recomputes the minutes of the rollup it took
//! rows from, in its transaction (see [`sweep`]).

use std::collections::BTreeSet;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::rollup;

/// Rows looked at (and at most deleted) by one sweep.
pub const BATCH: i64 = 500;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The oldest `ts_ms` kept when it is `now_ms` and rows are kept `days`
/// days; `None` when everything is kept (0 days).
pub fn cutoff(now_ms: i64, days: u32) -> Option<i64> {
    (days > 0).then(|| now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS)))
}

/// Deletes rows older than `cutoff_ms` among the [`BATCH`] oldest, in one
/// transaction, and in the same transaction recomputes each minute of the
/// rollup that lost rows from the rows left in it (the minute goes when
/// none is left), so no minute counts a deleted row; returns how many rows
/// went. A full batch means more may be waiting.
pub fn sweep(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let mut minutes = BTreeSet::new();
    let mut deleted = 0;
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM readings WHERE id IN \
             (SELECT id FROM readings ORDER BY id LIMIT ?2) AND ts_ms < ?1 \
             RETURNING location, ts_ms",
        )?;
        let mut rows = delete.query((cutoff_ms, BATCH))?;
        while let Some(r) = rows.next()? {
            deleted += 1;
            minutes.insert((r.get::<_, String>(0)?, rollup::minute_of(r.get(1)?)));
        }
    }
    for (location, minute) in &minutes {
        rollup::recompute(&tx, location, *minute)?;
    }
    tx.commit()?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_keeps_everything() {
        assert_eq!(cutoff(10 * DAY_MS, 0), None);
        assert_eq!(cutoff(10 * DAY_MS, 3), Some(7 * DAY_MS));
    }

    #[test]
    fn a_sweep_deletes_old_rows_only_and_in_batches() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::history::SCHEMA).unwrap();
        let mut insert = conn
            .prepare("INSERT INTO readings (ts_ms, location, temp, hum) VALUES (?1, 'a', 1, 1)")
            .unwrap();
        // 700 old rows, then 5 young ones, then an old row written after the
        // clock stepped back (still within a batch of the front: it goes).
        for ts in 0..700 {
            insert.execute([ts]).unwrap();
        }
        for ts in 0..5 {
            insert.execute([10_000 + ts]).unwrap();
        }
        insert.execute([1]).unwrap();
        assert_eq!(sweep(&conn, 5_000).unwrap(), 500);
        assert_eq!(sweep(&conn, 5_000).unwrap(), 201);
        assert_eq!(sweep(&conn, 5_000).unwrap(), 0);
        let young: i64 = conn
            .query_row(
                "SELECT count(*) FROM readings WHERE ts_ms >= 5000",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT count(*) FROM readings", [], |r| r.get(0))
            .unwrap();
        assert_eq!((young, left), (5, 5));
    }
}
