//! History (issue 8): every acknowledged reading is a row of the host's
//! SQLite database, also after `kill -9`; a restart restores `latest`; a
//! full disk gives `storage_error` and acks resume by themselves; files that
//! are not envhub's are refused with one line and exit 2; retention deletes
//! old rows only.
//!
//! Host only: the TAP and firmware shells have no disk.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use envhub_tests::*;
use nix::sys::signal::Signal;
use tempfile::TempDir;

const PING: &str = r#"{"cmd":"ping"}"#;

/// A row of `readings`: id, ts_ms, location, temp, hum, seq.
type Row = (i64, i64, String, f64, f64, Option<i64>);

fn unix_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

/// Every row, in id order (opening the file recovers its WAL, as a restart
/// does).
fn rows(db: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
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

/// One minute of the rollup: location, minute, count, sum, min and max of
/// temp, of hum.
type Minute = (String, i64, i64, f64, f64, f64, f64, f64, f64);

/// The per-minute rollup `readings_minute` agrees with `readings`: the same
/// minutes, counts, sums (SQLite's `sum()` and the exact pair rounded once
/// are the same double), minima and maxima.
fn rollup_in_step(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let read = |sql: &str| -> Vec<Minute> {
        let mut stmt = conn.prepare(sql).unwrap();
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
    };
    let rollup = read(
        "SELECT location, minute, n, sum_temp + sum_temp_err, min_temp, max_temp, \
         sum_hum + sum_hum_err, min_hum, max_hum FROM readings_minute ORDER BY location, minute",
    );
    let from_rows = read(
        "SELECT location, (ts_ms - ((ts_ms % 60000) + 60000) % 60000) / 60000 AS m, count(*), \
         sum(temp), min(temp), max(temp), sum(hum), min(hum), max(hum) \
         FROM readings GROUP BY location, m ORDER BY location, m",
    );
    assert!(!rollup.is_empty());
    assert_eq!(
        rollup, from_rows,
        "readings_minute out of step with readings"
    );
}

/// The temperature of reading number `seq`: it varies, so a restored value
/// shows which row it came from.
fn temp(seq: u64) -> String {
    let tenths = seq % 1000;
    format!("{}.{}", tenths / 10, tenths % 10)
}

fn line(location: &str, seq: u64) -> String {
    format!(
        "{{\"location\":\"{location}\",\"temp\":{},\"hum\":50,\"seq\":{seq}}}\n",
        temp(seq)
    )
}

fn ack(location: &str, seq: u64) -> String {
    stored(location, &temp(seq), "50.0", Some(seq))
}

// =============================================================================================
// kill -9 under load, then a restart
// =============================================================================================

/// One client pipelining batches of 16 readings until the server dies or
/// stops (or 20 s, or 50 000 readings); returns the sequence numbers of the
/// readings whose complete ack it received.
fn pipeline(addr: SocketAddr, location: String) -> Vec<u64> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut acked = Vec::new();
    let mut seq = 0;
    while Instant::now() < deadline && seq < 50_000 {
        let batch: String = (seq..seq + 16).map(|q| line(&location, q)).collect();
        if writer.write_all(batch.as_bytes()).is_err() {
            break;
        }
        for q in seq..seq + 16 {
            let mut reply = String::new();
            match reader.read_line(&mut reply) {
                Ok(_) if reply.ends_with('\n') => {
                    if reply.trim_end() == error("shutting_down") {
                        return acked;
                    }
                    assert_eq!(reply.trim_end(), ack(&location, q));
                    acked.push(q);
                }
                // Killed: EOF, a reset, or half a line.
                _ => return acked,
            }
        }
        seq += 16;
    }
    acked
}

/// Checks that every acknowledged reading of `acked` is a row of `db`;
/// returns the rows.
#[track_caller]
fn all_acked_are_rows(db: &Path, acked: &[(String, Vec<u64>)]) -> Vec<Row> {
    let rows = rows(db);
    let total: usize = acked.iter().map(|(_, a)| a.len()).sum();
    assert!(total > 0, "no reading was acknowledged");
    for (location, seqs) in acked {
        let kept: std::collections::HashSet<i64> = rows
            .iter()
            .filter(|r| &r.2 == location)
            .filter_map(|r| r.5)
            .collect();
        for seq in seqs {
            assert!(
                kept.contains(&i64::try_from(*seq).unwrap()),
                "{location} #{seq} was acknowledged but is not in the database ({} rows)",
                rows.len()
            );
        }
    }
    eprintln!("{total} acknowledged readings, {} rows", rows.len());
    rows
}

/// Starts `n` clients pipelining readings to `server`, each on its own
/// location `room<i>`.
fn pipelining_clients(
    server: &Server,
    n: usize,
) -> Vec<std::thread::JoinHandle<(String, Vec<u64>)>> {
    let addr = server.addr();
    (0..n)
        .map(|c| {
            let location = format!("room{c}");
            std::thread::spawn(move || (location.clone(), pipeline(addr, location)))
        })
        .collect()
}

/// 8 clients pipeline readings; the server is killed with SIGKILL; every
/// reading whose ack a client received is a row, and the per-minute rollup
/// is in step with the rows. Then a restart restores
/// `latest` from the newest rows, with ages counted from their `ts_ms`.
fn kill_9_loses_no_acknowledged_reading(shell: Shell) {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("envhub.db");
    let mut server = Server::start(shell, Opts::default().db(&db));
    let clients = pipelining_clients(&server, 8);
    std::thread::sleep(Duration::from_millis(1500));
    server.kill9();
    let acked: Vec<(String, Vec<u64>)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let rows = all_acked_are_rows(&db, &acked);
    // The rollup was committed with the rows: in step after the kill.
    rollup_in_step(&db);

    // Restart on the same file: `latest` is the newest row of each room.
    let server = Server::start(shell, Opts::default().db(&db));
    let mut c = server.connect();
    let before = unix_ms();
    let reply = c.request(r#"{"cmd":"latest"}"#);
    let after = unix_ms();
    let json: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let items = json["readings"].as_array().unwrap();
    assert_eq!(items.len(), 8, "{reply}");
    for item in items {
        let location = item["location"].as_str().unwrap();
        let newest = rows
            .iter()
            .filter(|r| r.2 == location)
            .max_by_key(|r| (r.1, r.0))
            .unwrap();
        assert_eq!(
            item["temp"].as_f64().unwrap(),
            newest.3,
            "{location}: {reply}"
        );
        assert_eq!(item["hum"].as_f64().unwrap(), newest.4);
        let age = item["age_ms"].as_i64().unwrap();
        // The server counted the age from ts_ms by its own clock at start.
        assert!(
            age >= before - newest.1 - 50 && age <= after - newest.1 + 50,
            "{location}: age_ms {age}, received {} ms before the query",
            before - newest.1
        );
    }
}

/// SIGTERM while 4 clients pipeline readings: the server exits with 0
/// within 2 s and every acknowledged reading is a row (what was queued got
/// committed, and nothing was acknowledged that was not).
fn sigterm_commits_everything_queued(shell: Shell) {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("envhub.db");
    let mut server = Server::start(shell, Opts::default().db(&db));
    let clients = pipelining_clients(&server, 4);
    std::thread::sleep(Duration::from_millis(700));
    server.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    let status = server
        .wait_exit(Duration::from_millis(2500))
        .expect("exit within 2 s of SIGTERM");
    assert!(status.success(), "{status}");
    eprintln!("exited {:?} after SIGTERM", signalled.elapsed());
    let acked: Vec<(String, Vec<u64>)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    all_acked_are_rows(&db, &acked);
    assert!(server.log().contains("everything queued is committed"));
}

// =============================================================================================
// A full disk
// =============================================================================================

/// A small tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new().unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size}").as_str()),
        )
        .expect("mount a tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [65_536, 4096, 512, 1] {
        let zeros = vec![0u8; chunk];
        while file.write_all(&zeros).is_ok() {}
    }
    let _ = file.sync_all();
}

/// The disk fills up: readings get `storage_error` and are not kept,
/// queries keep working, the log says why once; once space is freed, acks
/// resume by themselves; every acknowledged reading is a row.
fn a_full_disk_gives_storage_error_and_acks_resume(shell: Shell) {
    if !nix::unistd::geteuid().is_root() {
        skip(
            "history::a_full_disk_gives_storage_error_and_acks_resume",
            "mounting a tmpfs needs root",
        );
        return;
    }
    let tmpfs = Tmpfs::mount("2m");
    let db = tmpfs.path().join("envhub.db");
    let filler = tmpfs.path().join("filler");
    let mut server = Server::start(shell, Opts::default().db(&db));
    let mut c = server.connect();
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for seq in 0..10 {
        c.expect(line("hall", seq).trim_end(), ack("hall", seq));
        acked.push(seq);
    }

    fill(&filler);
    let mut seq = 10;
    while failed.is_empty() && seq < 20_000 {
        c.send((seq..seq + 16).map(|q| line("hall", q)).collect::<String>());
        for q in seq..seq + 16 {
            let reply = c.recv_line();
            if reply == ack("hall", q) {
                acked.push(q);
            } else {
                assert_eq!(reply, error("storage_error"), "reading #{q}");
                failed.push(q);
            }
        }
        seq += 16;
    }
    assert!(!failed.is_empty(), "the disk never filled up");
    // More of them, and queries in between, all answered.
    for _ in 0..20 {
        c.expect(line("hall", seq).trim_end(), error("storage_error"));
        failed.push(seq);
        seq += 1;
        c.expect(PING, PONG);
    }
    let latest = c.request(r#"{"cmd":"latest"}"#);
    let last_acked = *acked.last().unwrap();
    assert_eq!(
        mask(&latest, "age_ms").0,
        mask(
            &envhub_tests::latest(&[("hall", &temp(last_acked), "50.0")]),
            "age_ms"
        )
        .0,
        "a reading that got storage_error is not in the store"
    );

    // Space again: acks resume without anyone doing anything else.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = false;
    for _ in 0..200 {
        let reply = c.request(line("hall", seq).trim_end());
        if reply == ack("hall", seq) {
            acked.push(seq);
            resumed = true;
            seq += 1;
            break;
        }
        assert_eq!(reply, error("storage_error"));
        failed.push(seq);
        seq += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(resumed, "acks did not resume after space was freed");
    for _ in 0..50 {
        c.expect(line("hall", seq).trim_end(), ack("hall", seq));
        acked.push(seq);
        seq += 1;
    }

    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(3)).is_some());
    let log = server.log();
    assert_eq!(
        log.matches("cannot write to").count(),
        1,
        "the log says why once per outage:\n{log}"
    );
    assert_eq!(log.matches("works again").count(), 1, "{log}");

    let kept: std::collections::HashSet<i64> = rows(&db).iter().filter_map(|r| r.5).collect();
    for q in &acked {
        assert!(kept.contains(&(*q as i64)), "acknowledged #{q} is missing");
    }
    for q in &failed {
        assert!(
            !kept.contains(&(*q as i64)),
            "#{q} got storage_error but is a row"
        );
    }
}

// =============================================================================================
// Files that are not envhub's
// =============================================================================================

/// Starts `envhub --db db` and expects it to exit with status 2 and one
/// line on stderr, naming the file; returns that line.
#[track_caller]
fn refused(shell: Shell, db: &Path) -> String {
    let mut child = Command::new(shell.binary())
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("envhub --db {} did not exit", db.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stdout, "", "it must not listen");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(&db.display().to_string()), "{stderr}");
    stderr
}

/// A file that is not SQLite, a newer schema and a database that another
/// envhub serves: exit 2 with one line; the files are left as they were and
/// the first server keeps working.
fn bad_files_exit_2_with_one_line(shell: Shell) {
    let dir = TempDir::new().unwrap();

    let text = dir.path().join("text.db");
    let bytes = b"this is not a database\n".repeat(100);
    std::fs::write(&text, &bytes).unwrap();
    assert!(refused(shell, &text).contains("not an SQLite database"));
    assert_eq!(std::fs::read(&text).unwrap(), bytes, "never overwritten");

    let newer = dir.path().join("newer.db");
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.execute_batch("CREATE TABLE readings (id INTEGER PRIMARY KEY); PRAGMA user_version = 9;")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&newer).unwrap();
    assert!(refused(shell, &newer).contains("newer"));
    assert_eq!(std::fs::read(&newer).unwrap(), before);

    let shared: PathBuf = dir.path().join("envhub.db");
    let first = Server::start(shell, Opts::default().db(&shared));
    let mut c = first.connect();
    c.expect(line("hall", 1).trim_end(), ack("hall", 1));
    assert!(refused(shell, &shared).contains("another envhub"));
    c.expect(line("hall", 2).trim_end(), ack("hall", 2));
    assert_eq!(rows(&shared).len(), 2);
}

/// Echo mode never opens a database, even when given one.
fn echo_mode_opens_no_database(shell: Shell) {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("echo.db");
    let server = Server::start(
        shell,
        Opts::default()
            .echo()
            .arg("--db")
            .arg(db.display().to_string()),
    );
    let mut c = server.connect();
    c.send("hello\n");
    assert_eq!(c.recv_line(), "hello");
    assert!(!db.exists(), "echo mode created {}", db.display());
}

// =============================================================================================
// Retention
// =============================================================================================

/// Rows older than `--retention-days` go, in batches; younger rows stay.
fn retention_deletes_old_rows_and_only_those(shell: Shell) {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("envhub.db");
    // The server creates the schema; then rows are aged by hand.
    let mut server = Server::start(shell, Opts::default().db(&db));
    server
        .connect()
        .expect(line("fresh", 1).trim_end(), ack("fresh", 1));
    server.signal(Signal::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(3)).is_some());
    drop(server);

    let day: i64 = 24 * 3600 * 1000;
    let now = unix_ms();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..1200 {
        // Older than 30 days, then younger ones, interleaved in id order
        // the way a clock that steps back would leave them.
        let ts = if i % 100 == 99 {
            now - 29 * day
        } else {
            now - 31 * day - i
        };
        conn.execute(
            "INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, 'attic', 1.5, 40, ?2)",
            (ts, i),
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    let old = |db: &Path| {
        rows(db)
            .iter()
            .filter(|r| r.1 < unix_ms() - 30 * day)
            .count()
    };
    assert_eq!(old(&db), 1188);

    let server = Server::start(
        shell,
        Opts::default().db(&db).arg("--retention-days").arg("30"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while old(&db) > 0 {
        assert!(
            Instant::now() < deadline,
            "old rows still there: {}",
            old(&db)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = rows(&db);
    assert_eq!(
        left.len(),
        12 + 1,
        "the 12 younger rows and the fresh one stay"
    );
    assert!(left.iter().all(|r| r.1 >= now - 29 * day));
    // Restored from the newest row.
    let mut c = server.connect();
    let (latest, _) = mask(&c.request(r#"{"cmd":"latest"}"#), "age_ms");
    assert!(latest.contains("\"location\":\"fresh\""), "{latest}");
}

e2e_tests! {
    #[shells(host)]
    kill_9_loses_no_acknowledged_reading,
    sigterm_commits_everything_queued,
    a_full_disk_gives_storage_error_and_acks_resume,
    bad_files_exit_2_with_one_line,
    echo_mode_opens_no_database,
    retention_deletes_old_rows_and_only_those,
}
