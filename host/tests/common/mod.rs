//! What the HTTP tests share: a real server (sensor port and HTTP side) in
//! this process on free loopback ports, a history database in a temporary
//! directory, and a small HTTP/1.0 client.
//!
//! HTTP/1.0 keeps the client small: the server then ends every body by
//! closing, so there is no chunked encoding to undo, also for event
//! streams.

#![allow(dead_code)] // each test file uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use envhub_core::{Location, Tenths};
use envhub_host::http::{Http, Options};
use envhub_host::services::Kept;
use envhub_host::{Cli, Server, Shared, Shutdown};

/// How long any single read may take before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; stopped on drop.
pub struct Rig {
    /// The sensor port.
    pub tcp: SocketAddr,
    /// The HTTP side's address.
    pub http_addr: SocketAddr,
    /// Store, counters, feed, status.
    pub shared: Arc<Shared>,
    /// The database, when history is on.
    pub db: Option<PathBuf>,
    http: Option<Http>,
    stop: Arc<Shutdown>,
    run: Option<thread::JoinHandle<()>>,
    /// Holds the temporary directory.
    pub dir: tempfile::TempDir,
}

impl Rig {
    /// A server without history (`--no-db`).
    pub fn no_db(max_clients: usize) -> Rig {
        Rig::start(None, max_clients)
    }

    /// A server with a history database holding `rows`.
    pub fn with_db(rows: &[Row], max_clients: usize) -> Rig {
        Rig::start(Some(rows), max_clients)
    }

    fn start(rows: Option<&[Row]>, max_clients: usize) -> Rig {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = rows.map(|_| dir.path().join("envhub.db"));
        let mut argv = vec!["envhub".to_owned(), "--bind".into(), "127.0.0.1:0".into()];
        match &db {
            // The server's own history: it creates the schema and writes
            // every reading it acknowledges.
            Some(path) => argv.extend(["--db".into(), path.display().to_string()]),
            None => argv.push("--no-db".into()),
        }
        let server = Server::bind(&Cli::parse_from(argv)).expect("start the server");
        let tcp = server.local_addr().unwrap();
        let shared = server.shared();
        // Older rows, as if received before: written beside the server's
        // writer (WAL lets both), before the HTTP side reads the newest.
        if let (Some(path), Some(rows)) = (&db, rows) {
            fill(path, rows);
        }
        let opts = Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            max_clients,
            db: db.clone(),
        };
        let http = Http::start(&opts, server.shared()).expect("start the HTTP side");
        let stop = server.shutdown();
        Rig {
            tcp,
            http_addr: http.local_addr(),
            shared,
            db,
            http: Some(http),
            stop,
            run: Some(thread::spawn(move || server.run())),
            dir,
        }
    }

    /// Sends `lines` to the sensor port on one connection and returns the
    /// replies, one per line.
    pub fn send(&self, lines: &[&str]) -> Vec<String> {
        let mut s = TcpStream::connect(self.tcp).expect("connect to the sensor port");
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut replies = Vec::new();
        for line in lines {
            s.write_all(format!("{line}\n").as_bytes()).unwrap();
            let mut reply = String::new();
            r.read_line(&mut reply).expect("a reply");
            replies.push(reply);
        }
        replies
    }

    /// A row with a chosen time, beside the server's writer, published to
    /// the feed with its row id as the writer would.
    pub fn commit(&self, row: &Row) -> i64 {
        let path = self.db.as_ref().expect("history on");
        let c = rusqlite::Connection::open(path).unwrap();
        c.busy_timeout(Duration::from_secs(5)).unwrap();
        let tx = c.unchecked_transaction().unwrap();
        tx.execute(
            "INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![row.ts_ms, row.location, row.temp, row.hum, row.seq],
        )
        .unwrap();
        let id = tx.last_insert_rowid();
        // The per-minute rollup too, in the same transaction, as the
        // writer keeps it.
        envhub_host::history::rollup::add(
            &tx,
            [(row.location.as_str(), row.ts_ms, row.temp, row.hum)],
        )
        .unwrap();
        tx.commit().unwrap();
        self.shared.hub.services().feed.publish(|| row.kept(id));
        id
    }

    /// GET `target` (path and query, already encoded).
    pub fn get(&self, target: &str) -> Response {
        get(self.http_addr, target, &[])
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.http.take();
        self.stop.trigger();
        if let Some(run) = self.run.take() {
            let _ = run.join();
        }
    }
}

/// One row of the `readings` table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Unix ms.
    pub ts_ms: i64,
    /// Location.
    pub location: String,
    /// °C.
    pub temp: f64,
    /// %.
    pub hum: f64,
    /// As sent.
    pub seq: Option<i64>,
}

impl Row {
    /// A row without seq.
    pub fn new(ts_ms: i64, location: &str, temp: f64, hum: f64) -> Row {
        Row {
            ts_ms,
            location: location.into(),
            temp,
            hum,
            seq: None,
        }
    }

    /// As the feed carries it, with row id `id`.
    pub fn kept(&self, id: i64) -> Kept {
        Kept {
            id,
            ts_ms: self.ts_ms,
            location: Location::new(&self.location).expect("a valid location"),
            temp: Tenths((self.temp * 10.0).round() as i16),
            hum: Tenths((self.hum * 10.0).round() as i16),
            seq: self.seq.map(|s| s as u32),
        }
    }
}

/// Inserts `rows` in order into the server's database at `path`, with
/// their per-minute rollup.
pub fn fill(path: &Path, rows: &[Row]) {
    let mut c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    let tx = c.transaction().unwrap();
    {
        let mut ins = tx
            .prepare("INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for r in rows {
            ins.execute(rusqlite::params![r.ts_ms, r.location, r.temp, r.hum, r.seq])
                .unwrap();
        }
    }
    // The per-minute rollup too, in the same transaction, as the writer
    // keeps it.
    envhub_host::history::rollup::add(
        &tx,
        rows.iter()
            .map(|r| (r.location.as_str(), r.ts_ms, r.temp, r.hum)),
    )
    .unwrap();
    tx.commit().unwrap();
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_str(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): {:?}", self.body),
        }
    }
}

fn request(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP side");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut req = format!("GET {target} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    BufReader::new(s)
}

fn head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("a status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("a header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    (status, headers)
}

/// GET `target` from `addr` with extra `headers`, reading the whole body.
pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut r = request(addr, target, headers);
    let (status, headers) = head(&mut r);
    let mut body = String::new();
    r.read_to_string(&mut body).expect("a body");
    Response {
        status,
        headers,
        body,
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `event:`.
    pub event: String,
    /// `id:`, if any.
    pub id: Option<String>,
    /// `data:`.
    pub data: String,
}

/// An open event stream.
pub struct Events {
    /// Status and headers.
    pub status: u16,
    /// Headers, lowercased names.
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
}

impl Events {
    /// Opens `/api/events` with extra `headers`.
    pub fn open(addr: SocketAddr, headers: &[(&str, &str)]) -> Events {
        let mut reader = request(addr, "/api/events", headers);
        let (status, headers) = head(&mut reader);
        Events {
            status,
            headers,
            reader,
        }
    }

    /// The next event (comment lines are skipped).
    pub fn next(&mut self) -> Event {
        let mut ev = Event {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut seen = false;
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("an event line in time");
            assert!(n > 0, "the stream ended");
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if seen {
                    return ev;
                }
                continue;
            }
            if l.starts_with(':') {
                continue;
            }
            seen = true;
            let (k, v) = l.split_once(':').unwrap_or((l, ""));
            let v = v.strip_prefix(' ').unwrap_or(v);
            match k {
                "event" => ev.event = v.into(),
                "id" => ev.id = Some(v.into()),
                "data" => ev.data.push_str(v),
                _ => {}
            }
        }
    }

    /// The raw socket (e.g. to leave it unread).
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

/// Percent-encodes `s` for a query value (everything but unreserved
/// characters).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
