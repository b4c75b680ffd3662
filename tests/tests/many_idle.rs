//! 20,000 idle connections held by the host server at once, all answered
//! afterwards; the server's memory is printed (measured, not asserted: the
//! benchmark `benches/run-matrix.sh` reports it for release builds).
//!
//! Where the hard descriptor limit is fixed below what 20,000 connections
//! need (a container without CAP_SYS_RESOURCE, e.g. a hard limit of exactly
//! 20,000), the test holds as many as the limit allows, 64 fewer than it,
//! and says so.
//!
//! One source address has only ~28,000 ephemeral ports, so the clients come
//! from 127.0.0.2 … 127.0.0.9. Both this process and the server need more
//! descriptors than the usual 1024: this test raises both limits (raising a
//! hard limit needs root).

use std::io::{BufRead, BufReader, Write};

/// Writes past the test harness's capture, so CI logs show the figures.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
use std::net::TcpStream;
use std::time::{Duration, Instant};

use envhub_tests::sockets::{
    connect_from, hard_nofile, loopback_source, raise_own_nofile, rss_kib, set_nofile,
};
use envhub_tests::*;

/// Connections held at once, where the descriptor limits allow.
const WANTED: usize = 20_000;
/// Source addresses they come from.
const SOURCES: usize = 8;

fn twenty_thousand_idle_connections(shell: Shell) {
    // The server needs one descriptor per connection and a few of its own.
    let most = usize::try_from(hard_nofile().saturating_sub(64)).unwrap_or(usize::MAX);
    let per_source = WANTED.min(most) / SOURCES;
    let held_n = per_source * SOURCES;
    if held_n < WANTED {
        say(&format!(
            "NOTE twenty_thousand_idle_connections: the hard RLIMIT_NOFILE is {}, so {held_n} connections instead of {WANTED}",
            hard_nofile()
        ));
    }
    let need = (held_n as u64 + 64).max(hard_nofile().min(WANTED as u64 + 1_000));
    if let Err(why) = raise_own_nofile(need) {
        if std::env::var("ENVHUB_REQUIRE_ALL").is_ok_and(|v| v == "1") {
            panic!("{why}, and ENVHUB_REQUIRE_ALL=1");
        }
        say(&format!("SKIPPED twenty_thousand_idle_connections: {why}"));
        return;
    }
    let server = Server::start(shell, Opts::default().max_clients(held_n as u32 + 16));
    set_nofile(server.pid(), need).expect("raise the server's descriptor limit");
    let before = rss_kib(server.pid()).unwrap_or(0);
    let started = Instant::now();
    let groups: Vec<Vec<TcpStream>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SOURCES)
            .map(|t| {
                let addr = server.addr();
                s.spawn(move || {
                    let source = loopback_source(t as u8);
                    (0..per_source)
                        .map(|i| {
                            connect_from(source, addr, Duration::from_secs(10))
                                .unwrap_or_else(|e| panic!("connection {i} from {source}: {e}"))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("connecting thread"))
            .collect()
    });
    let connected = started.elapsed();
    // Every one is open at the server at once.
    let mut probe = server.connect();
    let stats = probe.stats_until(|s| s.clients == held_n as u64 + 1);
    assert_eq!(stats.clients, held_n as u64 + 1);
    let held = rss_kib(server.pid()).unwrap_or(0);
    say(&format!(
        "{held_n} idle connections held after {connected:?}: server RSS {before} KiB before, {held} KiB with them ({:.2} KiB each, debug build)",
        held.saturating_sub(before) as f64 / held_n as f64
    ));
    // Then every one is answered.
    std::thread::scope(|s| {
        for (t, group) in groups.iter().enumerate() {
            s.spawn(move || {
                for mut sock in group {
                    sock.write_all(b"{\"cmd\":\"ping\"}\n").expect("send ping");
                }
                for (i, sock) in group.iter().enumerate() {
                    sock.set_read_timeout(Some(Duration::from_secs(10)))
                        .expect("timeout");
                    let mut line = String::new();
                    BufReader::new(sock)
                        .read_line(&mut line)
                        .unwrap_or_else(|e| panic!("source {t}, connection {i}: {e}"));
                    assert_eq!(line, format!("{PONG}\n"), "source {t}, connection {i}");
                }
            });
        }
    });
    say(&format!(
        "all {held_n} answered after {:?}",
        started.elapsed()
    ));
    drop(groups);
    let s = probe.stats_until(|s| s.clients == 1);
    assert_eq!(s.clients, 1);
}

e2e_tests! {
    #[shells(host)] // the host's event loops; TAP and the firmware have a few slots
    twenty_thousand_idle_connections,
}
