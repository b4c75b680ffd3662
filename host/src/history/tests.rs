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
    conn.execute_batch("PRAGMA user_version = 2; CREATE TABLE readings (x);")
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&newer).unwrap();
    assert!(refused(&newer).contains("schema version 2 is newer"));
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
