//! Benchmark (not a test): `/api/history` over 30 days of one reading per
//! second for one location (2,592,000 rows), in 500 buckets.
//!
//! ```sh
//! cargo run --release -p envhub-host --example http_history_bench [DB]
//! ```
//!
//! Fills DB (default: a fresh file in a temporary directory; an existing
//! file is reused) with schema version 1, as a database of an older envhub,
//! then opens it as the server does, which upgrades it and builds the
//! per-minute rollup (timed); starts the HTTP side on loopback and times the
//! request over HTTP 20 times after 2 warm-up requests; prints the sizes,
//! the query plans and the median, minimum and maximum.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envhub_host::history::rollup::COLUMNS;
use envhub_host::history::schema::{open_rw, READINGS};
use envhub_host::history::Sync;
use envhub_host::http::history::{raw_buckets, Reader, BUCKETS_SQL};
use envhub_host::http::{Http, Options};
use envhub_host::services::unix_ms;
use envhub_host::{Cli, Server};

const ROWS: i64 = 30 * 24 * 3600;
const LOCATION: &str = "living room";

fn size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| {
            std::fs::metadata(format!("{}{s}", path.display()))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}

fn plan(c: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn main() {
    // The upgrade's log line.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("envhub-history-bench-{}.db", std::process::id()))
        });
    let now = unix_ms();
    let from = now - ROWS * 1000;
    if !path.exists() {
        let t = Instant::now();
        let mut c = rusqlite::Connection::open(&path).expect("create the database");
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.execute_batch(&format!("{READINGS} PRAGMA user_version = 1;"))
            .unwrap();
        let tx = c.transaction().unwrap();
        {
            let mut ins = tx
                .prepare("INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)")
                .unwrap();
            for i in 0..ROWS {
                let temp = 200 + (i / 60 % 50);
                let hum = 400 + (i / 90 % 100);
                ins.execute(rusqlite::params![
                    from + i * 1000,
                    LOCATION,
                    temp as f64 / 10.0,
                    hum as f64 / 10.0,
                    i % 65_536
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        drop(c);
        println!(
            "filled {ROWS} rows (schema version 1) in {:?}: {} bytes, {:.1} bytes per reading",
            t.elapsed(),
            size(&path),
            size(&path) as f64 / ROWS as f64
        );
    }
    // As the server opens it: a version 1 file is upgraded (logged).
    let t = Instant::now();
    let opened = open_rw(&path, Sync::Normal).expect("open as the server does");
    println!("opened (and upgraded if needed) in {:?}", t.elapsed());
    drop(opened);
    println!(
        "now {} bytes, {:.1} bytes per reading",
        size(&path),
        size(&path) as f64 / ROWS as f64
    );
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        println!(
            "raw plan: {:?}",
            plan(&c, BUCKETS_SQL, rusqlite::params![LOCATION, 0, 1, 1, 1])
        );
        println!(
            "rollup plan: {:?}",
            plan(
                &c,
                &format!(
                    "SELECT minute, {COLUMNS} FROM readings_minute \
                     WHERE location = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute"
                ),
                rusqlite::params![LOCATION, 0, 1]
            )
        );
    }

    let server = Server::bind(&Cli::parse_from([
        "envhub",
        "--bind",
        "127.0.0.1:0",
        "--no-db",
    ]))
    .unwrap();
    let opts = Options {
        addr: "127.0.0.1:0".parse().unwrap(),
        max_clients: 64,
        db: Some(path.clone()),
    };
    let http = Http::start(&opts, Arc::clone(&server.shared())).unwrap();
    let addr = http.local_addr();
    let target = format!(
        "/api/history?location=living%20room&from_ms={}&to_ms={}&max_points=500",
        now - ROWS * 1000,
        now
    );
    let mut times = Vec::new();
    for i in 0..22 {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(format!("GET {target} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        let took = t.elapsed();
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
        let points = body.matches("],[").count() + 1;
        if i == 0 {
            println!("{points} buckets, {} bytes", body.len());
        }
        if i >= 2 {
            times.push(took);
        }
    }
    times.sort();
    println!(
        "/api/history, 30 days, 500 buckets: median {:?}, min {:?}, max {:?} ({} runs)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    );
    drop(http);
    // The same answer as the raw rows give (the old query, about 1 s).
    let reader = Reader::open(&path).unwrap();
    let (from_ms, to_ms) = (now - ROWS * 1000, now);
    let fast = reader.buckets(LOCATION, from_ms, to_ms, 500).unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let raw = raw_buckets(&c, LOCATION, from_ms, to_ms, 500).unwrap();
    assert_eq!(
        fast, raw,
        "the rollup's answer differs from the raw query's"
    );
    println!("same {} buckets as the raw query", raw.len());
}
