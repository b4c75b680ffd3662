//! Many connections: concurrency, the connection limit, the idle timeout,
//! and a client that never reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envhub_tests::*;

const PING: &str = r#"{"cmd":"ping"}"#;

/// 40 clients × 50 readings, as many at once as the shell serves (all 40
/// on host and TAP, 8 at a time on the firmware), then exact counts.
fn concurrent_clients(shell: Shell) {
    const THREADS: usize = 40;
    const READINGS: u64 = 50;
    let at_once = THREADS.min(shell.max_clients());
    let server = Server::start(shell, Opts::default());
    // Each worker runs clients one after another, taking the next number;
    // a client says `bye` and waits for the close, so the server has
    // counted it gone before the worker's next client connects.
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let server = &server;
        let next = &next;
        let handles: Vec<_> = (0..at_once)
            .map(|_| {
                s.spawn(move || loop {
                    let t = next.fetch_add(1, Ordering::Relaxed);
                    if t >= THREADS {
                        break;
                    }
                    let mut c = server.connect();
                    let location = format!("c{t:02}");
                    let request = |i: u64| {
                        format!(
                            r#"{{"location":"{location}","temp":{t}.{},"hum":{i},"seq":{i}}}"#,
                            i % 10
                        )
                    };
                    let reply = |i: u64| {
                        stored(
                            &location,
                            &format!("{t}.{}", i % 10),
                            &format!("{i}.0"),
                            Some(i),
                        )
                    };
                    // Odd clients pipeline in batches of ten, even ones
                    // wait for each reply.
                    if t % 2 == 1 {
                        for batch in (0..READINGS).collect::<Vec<_>>().chunks(10) {
                            let lines: String = batch.iter().map(|&i| request(i) + "\n").collect();
                            c.send(lines);
                            for &i in batch {
                                assert_eq!(c.recv_line(), reply(i), "client {t}");
                            }
                        }
                    } else {
                        for i in 0..READINGS {
                            c.expect(request(i), reply(i));
                        }
                    }
                    c.expect(r#"{"cmd":"bye"}"#, BYE);
                    assert_eq!(c.recv_closed(), Closed::Eof, "client {t}");
                })
            })
            .collect();
        for (w, h) in handles.into_iter().enumerate() {
            if h.join().is_err() {
                panic!("client worker {w} failed");
            }
        }
    });
    let mut c = server.connect();
    let s = c.stats_until(|s| s.clients == 1);
    assert_eq!(
        (s.client, s.readings, s.errors, s.locations),
        (
            THREADS as u64 + 1,
            THREADS as u64 * READINGS,
            0,
            THREADS as u64
        ),
        "{s:?}"
    );
    let owned: Vec<(String, String)> = (0..THREADS)
        .map(|t| (format!("c{t:02}"), format!("{t}.9")))
        .collect();
    let items: Vec<(&str, &str, &str)> = owned
        .iter()
        .map(|(l, t)| (l.as_str(), t.as_str(), "49.0"))
        .collect();
    let (reply, _) = mask(&c.request(r#"{"cmd":"latest"}"#), "age_ms");
    assert_eq!(reply, latest(&items));
}

/// At `--max-clients` a new connection gets `busy` and is closed; it
/// takes no id and counts as an error; a slot frees after a close.
fn busy_at_max_clients(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(2));
    let mut c1 = server.connect();
    c1.expect(PING, PONG);
    let mut c2 = server.connect();
    c2.expect(PING, PONG);
    let mut c3 = server.connect();
    assert_eq!(c3.recv_line(), error("busy"));
    assert_eq!(c3.recv_closed(), Closed::Eof);
    let s = c1.stats();
    assert_eq!((s.client, s.clients, s.errors), (1, 2, 1), "{s:?}");
    c2.expect(r#"{"cmd":"bye"}"#, BYE);
    c2.recv_closed();
    // The server may take a moment to see the close: retry, bounded.
    let mut turned_away = 1;
    let mut c4 = None;
    for _ in 0..100 {
        let mut c = server.connect();
        c.send_line(PING);
        let line = c.recv_line();
        if line == error("busy") {
            turned_away += 1;
            c.recv_closed();
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        assert_eq!(line, PONG);
        c4 = Some(c);
        break;
    }
    let mut c4 = c4.expect("a slot never freed after a client left");
    let s = c4.stats();
    assert_eq!(
        (s.client, s.clients, s.errors),
        (3, 2, turned_away),
        "{s:?}"
    );
    let mut c5 = server.connect();
    assert_eq!(c5.recv_line(), error("busy"));
    c5.recv_closed();
    let s = c1.stats();
    assert_eq!((s.clients, s.errors), (2, turned_away + 1), "{s:?}");
}

/// A silent client gets `idle_timeout` (not before the timeout), then
/// the close; it counts as an error.
fn idle_timeout_silent_client(shell: Shell) {
    let server = Server::start(shell, Opts::default().idle_timeout(1));
    let mut c = server.connect();
    let started = Instant::now();
    c.recv_nothing(Duration::from_millis(600));
    assert_eq!(c.recv_line(), error("idle_timeout"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "idle_timeout after {waited:?}"
    );
    assert_eq!(c.recv_closed(), Closed::Eof);
    let mut c2 = server.connect();
    let s = c2.stats();
    assert_eq!((s.client, s.clients, s.errors), (2, 1, 1), "{s:?}");
}

/// A partial line dribbled byte by byte is not a complete line: the idle
/// timeout still fires, counted from the last complete line.
fn idle_timeout_dribbling_client(shell: Shell) {
    let server = Server::start(shell, Opts::default().idle_timeout(1));
    let mut c = server.connect();
    c.expect(PING, PONG);
    let last_line = Instant::now();
    let partial = br#"{"location":"dribble","temp":1,"hum":2,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"#;
    let mut got = None;
    for &b in partial.iter().take(40) {
        // Stop sending once the server has closed.
        if c.try_send(&[b], Duration::from_millis(100)).is_err() {
            break;
        }
        if let Some(line) = c.try_recv_line(Duration::from_millis(100)) {
            got = Some((line, last_line.elapsed()));
            break;
        }
    }
    let (line, after) = got.expect("no idle_timeout while dribbling a partial line for 4 s");
    assert_eq!(line, error("idle_timeout"));
    assert!(
        after >= Duration::from_millis(900),
        "idle_timeout after {after:?}"
    );
    c.recv_closed();
}

/// Blank lines (keep-alives) and requests reset the idle timer.
fn keepalive_resets_idle_timer(shell: Shell) {
    let server = Server::start(shell, Opts::default().idle_timeout(1));
    let mut c = server.connect();
    for _ in 0..6 {
        c.send("\n");
        c.recv_nothing(Duration::from_millis(300));
    }
    for _ in 0..6 {
        c.expect(PING, PONG);
        c.recv_nothing(Duration::from_millis(300));
    }
    c.expect(PING, PONG);
    assert_eq!(c.recv_line(), error("idle_timeout"));
    c.recv_closed();
}

/// A client that pipelines a lot and never reads does not break the
/// server for others.
fn non_reading_client_does_not_block_others(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let mut hog = server.connect();
    let sent = hog.flood_without_reading();
    assert!(sent > 0);
    let mut c = server.connect();
    for i in 0..50u64 {
        c.expect(
            format!(r#"{{"location":"ok","temp":1,"hum":2,"seq":{i}}}"#),
            stored("ok", "1.0", "2.0", Some(i)),
        );
    }
    let s = c.stats();
    assert_eq!((s.client, s.clients, s.readings), (2, 2, 50), "{s:?}");
    drop(hog);
    let s = c.stats_until(|s| s.clients == 1);
    assert_eq!(s.errors, 0, "{s:?}");
    c.expect(PING, PONG);
}

e2e_tests! {
    concurrent_clients,
    busy_at_max_clients,
    idle_timeout_silent_client,
    idle_timeout_dribbling_client,
    keepalive_resets_idle_timer,
    non_reading_client_does_not_block_others,
}
