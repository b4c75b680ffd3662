//! Benchmark (not a test): `/api/history` over 30 days of one reading per
//! second for one location (2,592,000 rows), in 500 buckets.
//!
//! ```sh
//! cargo run --release -p envhub-host --example http_history_bench [DB]
//! ```
//!
//! Fills DB (default: a fresh file in a temporary directory; an existing
//! file is reused), starts the HTTP side on loopback, and times the request
//! over HTTP 20 times after 2 warm-up requests; prints the query plan and
//! the median, minimum and maximum.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use envhub_host::history::schema::SCHEMA;
use envhub_host::http::history::BUCKETS_SQL;
use envhub_host::http::{Http, Options};
use envhub_host::services::unix_ms;
use envhub_host::{Cli, Server};

const ROWS: i64 = 30 * 24 * 3600;
const LOCATION: &str = "living room";

fn main() {
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
        c.execute_batch(SCHEMA).unwrap();
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
        println!(
            "filled {ROWS} rows in {:?} ({} MB)",
            t.elapsed(),
            std::fs::metadata(&path).map(|m| m.len() >> 20).unwrap_or(0)
        );
    }
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut plan = c
            .prepare(&format!("EXPLAIN QUERY PLAN {BUCKETS_SQL}"))
            .unwrap();
        let rows: Vec<String> = plan
            .query_map(rusqlite::params![LOCATION, 0, 1, 1, 1], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        println!("plan: {rows:?}");
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
}
