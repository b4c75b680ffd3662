//! The history against real SQLite files in temporary directories.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use envhub_core::{Hub, Location, Outcome, Reading, Tenths, Ticket};
use tempfile::TempDir;

use super::*;
use crate::hub::{SharedHub, CLOCK_BASE_MS};
use crate::services;

fn options(dir: &TempDir) -> Options {
    Options {
        path: dir.path().join("envhub.db"),
        sync: Sync::Normal,
        retention_days: 30,
    }
}

fn reading(location: &str, temp: i16, seq: Option<u32>) -> Reading {
    Reading {
        location: Location::new(location).unwrap(),
        temp: Tenths(temp),
        hum: Tenths(455),
        seq,
    }
}

/// Waits (bounded) until the hub decides `ticket`.
#[track_caller]
fn decided(hub: &SharedHub, ticket: Ticket) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = hub.commits();
        match hub.for_client(1).outcome(ticket) {
            Outcome::Pending(_) if Instant::now() < deadline => {
                hub.wait_commit(seen, Duration::from_millis(50))
            }
            outcome => return outcome,
        }
    }
}

#[track_caller]
fn submit(hub: &SharedHub, r: &Reading) -> Ticket {
    match hub.for_client(1).submit(r, hub.now_ms()) {
        Outcome::Pending(ticket) => ticket,
        other => panic!("expected a ticket, got {other:?}"),
    }
}

fn rows(path: &Path) -> Vec<(i64, i64, String, f64, f64, Option<i64>)> {
    let conn = open_readonly(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, ts_ms, location, temp, hum, seq FROM readings ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

// =============================================================================================
// Acks after the commit
// =============================================================================================

#[test]
fn a_reading_is_kept_only_once_committed_then_stored_counted_and_published() {
    let dir = TempDir::new().unwrap();
    let hub = SharedHub::with_history(&options(&dir)).unwrap();
    let mut feed = hub.services().feed.subscribe();
    let before = services::unix_ms();
    let t1 = submit(&hub, &reading("hall", 215, Some(7)));
    let t2 = submit(&hub, &reading("attic", -15, None));
    assert_eq!(decided(&hub, t1), Outcome::Kept);
    assert_eq!(decided(&hub, t2), Outcome::Kept);
    assert_eq!(hub.readings(), 2);
    assert_eq!(hub.entries().len(), 2);

    let rows = rows(&options(&dir).path);
    assert_eq!(rows.len(), 2);
    let (id, ts, ref loc, temp, hum, seq) = rows[0];
    assert_eq!(
        (id, loc.as_str(), temp, hum, seq),
        (1, "hall", 21.5, 45.5, Some(7))
    );
    assert!(ts >= before && ts <= services::unix_ms(), "{ts}");
    assert_eq!((rows[1].3, rows[1].5), (-1.5, None));

    let kept = feed.try_recv().unwrap();
    assert_eq!(
        (kept.id, kept.ts_ms, kept.location.as_str()),
        (1, ts, "hall")
    );
    assert_eq!(feed.try_recv().unwrap().id, 2);
    let status = &hub.services().status;
    assert!(status.history.load(Relaxed));
    assert!(status.history_healthy.load(Relaxed));
    assert_eq!(status.history_rows.load(Relaxed), 2);
}

#[test]
fn many_threads_share_one_writer_and_every_ticket_is_decided_once() {
    let dir = TempDir::new().unwrap();
    let hub = SharedHub::with_history(&options(&dir)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let hub = &hub;
            s.spawn(move || {
                for i in 0..200 {
                    let ticket = submit(hub, &reading(&format!("t{t}"), i, Some(i as u32)));
                    assert_eq!(decided(hub, ticket), Outcome::Kept);
                }
            });
        }
    });
    assert_eq!(rows(&options(&dir).path).len(), 800);
    assert_eq!(hub.readings(), 800);
    // Each thread's readings are rows in its order.
    for t in 0..4 {
        let seqs: Vec<Option<i64>> = rows(&options(&dir).path)
            .into_iter()
            .filter(|r| r.2 == format!("t{t}"))
            .map(|r| r.5)
            .collect();
        assert_eq!(seqs, (0..200).map(Some).collect::<Vec<_>>());
    }
}

#[test]
fn store_full_is_decided_by_the_writer_and_not_written() {
    let dir = TempDir::new().unwrap();
    let hub = SharedHub::with_history(&options(&dir)).unwrap();
    let tickets: Vec<Ticket> = (0..65)
        .map(|i| submit(&hub, &reading(&format!("l{i:02}"), 1, None)))
        .collect();
    let outcomes: Vec<Outcome> = tickets.iter().map(|t| decided(&hub, *t)).collect();
    assert!(outcomes[..64].iter().all(|o| *o == Outcome::Kept));
    assert_eq!(outcomes[64], Outcome::StoreFull);
    assert_eq!(rows(&options(&dir).path).len(), 64);
    let t = submit(&hub, &reading("l05", 2, None));
    assert_eq!(decided(&hub, t), Outcome::Kept);
}

#[test]
fn close_commits_what_is_queued_and_refuses_what_comes_after() {
    let dir = TempDir::new().unwrap();
    let hub = SharedHub::with_history(&options(&dir)).unwrap();
    let tickets: Vec<Ticket> = (0..100)
        .map(|i| submit(&hub, &reading("hall", i, None)))
        .collect();
    hub.close_history();
    for t in tickets {
        assert_eq!(hub.for_client(1).outcome(t), Outcome::Kept);
    }
    let late = submit(&hub, &reading("hall", 1, None));
    assert_eq!(hub.for_client(1).outcome(late), Outcome::StorageError);
    assert_eq!(rows(&options(&dir).path).len(), 100);
}

// =============================================================================================
// Restart
// =============================================================================================

#[test]
fn a_restart_restores_the_newest_row_of_each_location_aged_from_ts_ms() {
    let dir = TempDir::new().unwrap();
    {
        let hub = SharedHub::with_history(&options(&dir)).unwrap();
        for (loc, temp) in [("a", 1), ("b", 2), ("a", 3)] {
            let t = submit(&hub, &reading(loc, temp, None));
            assert_eq!(decided(&hub, t), Outcome::Kept);
        }
    }
    // Age the rows by hand: "a" 5 s, "b" one hour.
    let now = services::unix_ms();
    let conn = rusqlite::Connection::open(&options(&dir).path).unwrap();
    conn.execute(
        "UPDATE readings SET ts_ms = ?1 WHERE location = 'a'",
        [now - 5_000],
    )
    .unwrap();
    conn.execute(
        "UPDATE readings SET ts_ms = ?1 WHERE location = 'b'",
        [now - 3_600_000],
    )
    .unwrap();
    drop(conn);

    let hub = SharedHub::with_history(&options(&dir)).unwrap();
    let entries = hub.entries();
    let at = hub.now_ms();
    let got: Vec<(&str, i16, u64)> = entries
        .iter()
        .map(|e| (e.location.as_str(), e.temp.0, at - e.stored_at))
        .collect();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].0, got[0].1), ("a", 3), "newest row of a");
    assert!((5_000..6_000).contains(&got[0].2), "{got:?}");
    assert_eq!((got[1].0, got[1].1), ("b", 2));
    assert!((3_600_000..3_601_000).contains(&got[1].2), "{got:?}");
    assert_eq!(
        hub.readings(),
        0,
        "restored rows are not readings of this run"
    );
    assert_eq!(hub.services().status.history_rows.load(Relaxed), 3);
    assert!(hub.now_ms() >= CLOCK_BASE_MS);
}

// =============================================================================================
// Files that are not ours
// =============================================================================================

#[track_caller]
fn refused(path: &Path) -> String {
    let options = Options {
        path: path.to_owned(),
        sync: Sync::Normal,
        retention_days: 30,
    };
    let err = SharedHub::with_history(&options).unwrap_err().to_string();
    assert!(!err.contains('\n'), "{err}");
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    err
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("notes.db");
    let text = b"my shopping list, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();
    assert!(refused(&path).contains("not an SQLite database"));
    assert_eq!(std::fs::read(&path).unwrap(), text);
    assert!(!dir.path().join("notes.db-wal").exists());
}

#[test]
fn a_newer_schema_and_a_foreign_database_are_refused_and_left_untouched() {
    let dir = TempDir::new().unwrap();
    let newer = dir.path().join("newer.db");
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.execute_batch("PRAGMA user_version = 3; CREATE TABLE readings (x);")
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&newer).unwrap();
    assert!(refused(&newer).contains("schema version 3 is newer than this envhub's 2"));
    assert_eq!(std::fs::read(&newer).unwrap(), bytes);

    let foreign = dir.path().join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE recipes (name TEXT);")
        .unwrap();
    drop(conn);
    assert!(refused(&foreign).contains("without envhub's schema"));
}

#[test]
fn a_second_server_on_the_same_file_is_refused_and_the_first_keeps_working() {
    let dir = TempDir::new().unwrap();
    let first = SharedHub::with_history(&options(&dir)).unwrap();
    assert!(refused(&options(&dir).path).contains("in use by another envhub"));
    let t = submit(&first, &reading("hall", 1, None));
    assert_eq!(decided(&first, t), Outcome::Kept);
    // A reader is no second server.
    assert_eq!(rows(&options(&dir).path).len(), 1);
}

#[test]
fn open_readonly_needs_the_schema() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.db");
    rusqlite::Connection::open(&path).unwrap();
    assert!(open_readonly(&path).is_err());
    assert!(open_readonly(&dir.path().join("missing.db")).is_err());
}

// =============================================================================================
// The per-minute rollup
// =============================================================================================

/// Every minute of `readings_minute`, sorted: (location, minute, n,
/// exact sum of temp, min, max, exact sum of hum, min, max).
type MinuteRow = (String, i64, i64, f64, f64, f64, f64, f64, f64);

fn minutes(conn: &rusqlite::Connection) -> Vec<MinuteRow> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT location, minute, {} FROM readings_minute ORDER BY location, minute",
            rollup::COLUMNS
        ))
        .unwrap();
    stmt.query_map([], |r| {
        let a = rollup::Aggregate::from_row(r, 2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            a.n,
            a.temp.sum.value(),
            a.temp.min,
            a.temp.max,
            a.hum.sum.value(),
            a.hum.min,
            a.hum.max,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The rollup as it should be: computed here from `readings` with SQL
/// (`sum()` rounds once, as the exact sums do).
fn minutes_from_rows(conn: &rusqlite::Connection) -> Vec<MinuteRow> {
    let mut stmt = conn
        .prepare(
            "SELECT location, (ts_ms - ((ts_ms % 60000) + 60000) % 60000) / 60000 AS m, count(*), \
             sum(temp), min(temp), max(temp), sum(hum), min(hum), max(hum) \
             FROM readings GROUP BY location, m ORDER BY location, m",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn the_writer_keeps_the_rollup_in_step_with_the_rows() {
    let dir = TempDir::new().unwrap();
    let hub = SharedHub::with_history(&options(&dir)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let hub = &hub;
            s.spawn(move || {
                for i in 0..300 {
                    let r = reading(&format!("t{t}"), (i * 7 % 1650 - 400) as i16, None);
                    let ticket = submit(hub, &r);
                    assert_eq!(decided(hub, ticket), Outcome::Kept);
                }
            });
        }
    });
    hub.close_history();
    let conn = open_readonly(&options(&dir).path).unwrap();
    let got = minutes(&conn);
    assert_eq!(got, minutes_from_rows(&conn));
    assert_eq!(got.iter().map(|m| m.2).sum::<i64>(), 1_200);
    assert!(got.iter().any(|m| m.0 == "t3"));
}

/// The schema of version 1, as envhub wrote it before the rollup.
const SCHEMA_V1: &str = "\
CREATE TABLE readings (
  id       INTEGER PRIMARY KEY,   -- arrival order
  ts_ms    INTEGER NOT NULL,      -- server wall clock when received, Unix milliseconds
  location TEXT    NOT NULL,
  temp     REAL    NOT NULL,      -- °C, exactly as acknowledged (tenths)
  hum      REAL    NOT NULL,      -- %, exactly as acknowledged (tenths)
  seq      INTEGER                -- as sent, or NULL
);
CREATE INDEX readings_by_location ON readings(location, ts_ms);
PRAGMA user_version = 1;
";

#[test]
fn a_version_1_file_is_upgraded_with_its_rollup_built_from_the_rows() {
    let dir = TempDir::new().unwrap();
    // Retention off: the rows before 1970 stay.
    let opts = Options {
        retention_days: 0,
        ..options(&dir)
    };
    let path = opts.path.clone();
    let now = services::unix_ms();
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..5_000i64 {
            // Two locations, ten hours back, a reading every 7 s, some
            // before 1970 by a broken clock.
            let ts = if i < 10 {
                -i * 7_001
            } else {
                now - 36_000_000 + i * 7_000
            };
            tx.execute(
                "INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    ts,
                    ["hall", "attic é"][(i % 2) as usize],
                    f64::from((i * 13 % 1651 - 400) as i16) / 10.0,
                    f64::from((i % 1001) as i16) / 10.0,
                    i
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let hub = SharedHub::with_history(&opts).unwrap();
    let t = submit(&hub, &reading("hall", 215, Some(1)));
    assert_eq!(decided(&hub, t), Outcome::Kept);
    hub.close_history();
    drop(hub);

    let conn = open_readonly(&path).unwrap();
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let got = minutes(&conn);
    assert_eq!(got, minutes_from_rows(&conn));
    assert_eq!(got.iter().map(|m| m.2).sum::<i64>(), 5_001);
    assert!(
        got.iter().any(|m| m.1 < 0),
        "minutes before 1970 round down"
    );
    assert_eq!(rows(&path).len(), 5_001);
    drop(conn);

    // Opening again changes nothing; version 1 set back by hand rebuilds.
    let before = minutes(&open_readonly(&path).unwrap());
    drop(SharedHub::with_history(&opts).unwrap());
    assert_eq!(minutes(&open_readonly(&path).unwrap()), before);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DELETE FROM readings_minute WHERE location = 'hall'; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    drop(SharedHub::with_history(&opts).unwrap());
    assert_eq!(minutes(&open_readonly(&path).unwrap()), before);
}

#[test]
fn an_upgrade_that_fails_leaves_version_1_and_says_why_in_one_line() {
    let dir = TempDir::new().unwrap();
    let path = options(&dir).path;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    // A view of that name blocks the table (DROP TABLE does not drop it).
    conn.execute_batch("CREATE VIEW readings_minute AS SELECT 1;")
        .unwrap();
    drop(conn);
    let err = refused(&path);
    assert!(err.contains("readings_minute"), "{err}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
}

#[test]
fn retention_takes_deleted_rows_out_of_their_minutes() {
    let dir = TempDir::new().unwrap();
    let path = options(&dir).path;
    let opened = schema::open_rw(&path, Sync::Normal).unwrap();
    let conn = &opened.conn;
    // 1,000 rows, one every 1.5 s from minute 100 on, so minutes hold 40
    // rows and the cutoff falls inside one; written as the writer does.
    let start = 100 * rollup::MINUTE_MS;
    let rows: Vec<(i64, f64, f64)> = (0..1_000i64)
        .map(|i| {
            (
                start + i * 1_500,
                f64::from((i % 300) as i16) / 10.0,
                50.0 - i as f64 / 100.0,
            )
        })
        .collect();
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    for (ts, t, h) in &rows {
        tx.execute(
            "INSERT INTO readings (ts_ms, location, temp, hum) VALUES (?1, 'a', ?2, ?3)",
            rusqlite::params![ts, t, h],
        )
        .unwrap();
    }
    rollup::add(&tx, rows.iter().map(|&(ts, t, h)| ("a", ts, t, h))).unwrap();
    tx.commit().unwrap();
    assert_eq!(minutes(conn), minutes_from_rows(conn));

    // The cutoff in the middle of minute 110: a batch of 500 deletes rows
    // up to it; minute 110 keeps only its younger rows, older minutes go.
    let cutoff = 110 * rollup::MINUTE_MS + 30_000;
    assert_eq!(retention::sweep(conn, cutoff).unwrap(), 420);
    let got = minutes(conn);
    assert_eq!(got, minutes_from_rows(conn));
    assert_eq!(got[0].1, 110);
    assert_eq!(got[0].2, 20, "the 20 younger rows of minute 110");
    assert_eq!(got.iter().map(|m| m.2).sum::<i64>(), 580);
    assert_eq!(retention::sweep(conn, cutoff).unwrap(), 0);
    // Everything goes: no minute is left.
    assert_eq!(retention::sweep(conn, i64::MAX).unwrap(), 500);
    assert_eq!(retention::sweep(conn, i64::MAX).unwrap(), 80);
    assert!(minutes(conn).is_empty());
}

#[test]
fn the_protocol_reference_shows_the_schema_as_it_is() {
    let protocol = include_str!("../../../docs/PROTOCOL.md");
    assert!(
        protocol.contains(&format!("```sql\n{SCHEMA}```")),
        "docs/PROTOCOL.md must show SCHEMA word for word"
    );
    assert!(protocol.contains(&format!("`PRAGMA user_version` ({SCHEMA_VERSION})")));
}
