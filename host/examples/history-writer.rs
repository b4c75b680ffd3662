//! How many rows per second the history writer sustains, and the bytes per
//! reading on disk, without the network: 16 threads each submit batches of
//! 16 readings (as 16 connections pipelining 16 deep would) and wait for
//! their outcomes.
//!
//! ```sh
//! cargo run --release -p envhub-host --example history-writer -- [ROWS] [DIR] [full]
//! ```
//!
//! ROWS defaults to 1 000 000; DIR (default: a temporary directory under
//! /tmp) holds the database, removed afterwards. `full` uses `--sync full`.

use std::time::{Duration, Instant};

use envhub_core::{Hub, Location, Outcome, Reading, Tenths};
use envhub_host::history::{Options, Sync};
use envhub_host::SharedHub;

const THREADS: usize = 16;
const BATCH: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = args.get(2).map_or_else(std::env::temp_dir, Into::into);
    let sync = match args.get(3).map(String::as_str) {
        Some("full") => Sync::Full,
        _ => Sync::Normal,
    };
    let path = dir.join(format!("envhub-writer-bench-{}.db", std::process::id()));
    let options = Options {
        path: path.clone(),
        sync,
        retention_days: 0,
    };
    let hub = SharedHub::with_history(&options).expect("open the database");
    let per_thread = rows / THREADS / BATCH;
    let commits = hub.commits();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let hub = &hub;
            s.spawn(move || {
                let reading = Reading {
                    location: Location::new(&format!("room_{t:02}")).unwrap(),
                    temp: Tenths(215),
                    hum: Tenths(455),
                    seq: Some(7),
                };
                let mut client = hub.for_client(t as u64);
                for _ in 0..per_thread {
                    let tickets: Vec<Outcome> = (0..BATCH)
                        .map(|_| client.submit(&reading, hub.now_ms()))
                        .collect();
                    for outcome in tickets {
                        let Outcome::Pending(ticket) = outcome else {
                            panic!("not pending: {outcome:?}");
                        };
                        loop {
                            match client.outcome(ticket) {
                                Outcome::Pending(_) => {
                                    hub.wait_decided(ticket, Duration::from_millis(100))
                                }
                                Outcome::Kept => break,
                                other => panic!("{other:?}"),
                            }
                        }
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let written = per_thread * THREADS * BATCH;
    let transactions = hub.commits() - commits;
    hub.close_history();
    drop(hub);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "rows={written} secs={secs:.2} rows_per_s={:.0} transactions={transactions} rows_per_tx={:.1} sync={sync:?} db_bytes={bytes} bytes_per_row={:.1}",
        written as f64 / secs,
        written as f64 / transactions.max(1) as f64,
        bytes as f64 / written as f64
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
