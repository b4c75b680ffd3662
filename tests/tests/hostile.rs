//! Hostile and faulty clients against the host server: one source taking
//! every slot, running out of file descriptors, connection churn, floods of
//! log lines, slow readers pinning kernel memory.
//!
//! Host only: these are about the host's sockets, descriptors and log.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use envhub_tests::sockets::{connect_from, loopback_source, set_nofile};
use envhub_tests::*;

const PING: &str = r#"{"cmd":"ping"}"#;

/// With `--max-clients 200` the per-source limit is 64: the 65th
/// connection from one address gets `busy`, while other addresses are
/// still served; once one of the 64 closes, its address is served again.
fn one_source_cannot_take_every_slot(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(200));
    let from = |n: u8| {
        let s = connect_from(loopback_source(n), server.addr(), Duration::from_secs(5))
            .expect("connect from an extra loopback address");
        Client::new(s)
    };
    let mut held: Vec<Client> = (0..64).map(|_| from(0)).collect();
    for c in &mut held {
        c.expect(PING, PONG);
    }
    let mut extra = from(0);
    assert_eq!(
        extra.recv_until_closed(),
        format!("{}\n", error("busy")).as_bytes()
    );
    // Any other address is served.
    from(1).expect(PING, PONG);
    server.connect().expect(PING, PONG);
    // A slot of that source is free as soon as one of its connections is.
    let mut gone = held.pop().expect("64 held");
    gone.expect(r#"{"cmd":"bye"}"#, BYE);
    assert_eq!(gone.recv_closed(), Closed::Eof);
    from(0).expect(PING, PONG);
    // `--max-per-source` sets it.
    drop(held);
    let server = Server::start(shell, Opts::default().arg("--max-per-source").arg("2"));
    let mut a = Client::new(
        connect_from(loopback_source(2), server.addr(), Duration::from_secs(5)).expect("connect"),
    );
    let mut b = Client::new(
        connect_from(loopback_source(2), server.addr(), Duration::from_secs(5)).expect("connect"),
    );
    a.expect(PING, PONG);
    b.expect(PING, PONG);
    let mut c = Client::new(
        connect_from(loopback_source(2), server.addr(), Duration::from_secs(5)).expect("connect"),
    );
    assert_eq!(
        c.recv_until_closed(),
        format!("{}\n", error("busy")).as_bytes()
    );
}

/// Under a descriptor limit far below the clients that come, every client
/// gets its answer (`pong`, or `busy` and a close) within a second; the log
/// does not flood; once clients leave, new ones are served again.
fn out_of_descriptors_every_client_hears_within_a_second(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(1000));
    if let Err(why) = set_nofile(server.pid(), 32) {
        panic!("cannot limit the server's descriptors: {why}");
    }
    let started = Instant::now();
    let mut served = Vec::new();
    let mut busy = 0;
    for i in 0..120 {
        let mut s = TcpStream::connect(server.addr()).expect("the kernel completes the handshake");
        let connected = Instant::now();
        s.set_read_timeout(Some(Duration::from_millis(1_000)))
            .expect("timeout");
        s.write_all(b"{\"cmd\":\"ping\"}\n").expect("send ping");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        let answer = loop {
            match s.read(&mut buf) {
                Ok(0) => break got,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.ends_with(b"\n") && got != format!("{}\n", error("busy")).as_bytes() {
                        break got;
                    }
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break got,
                Err(e) => panic!(
                    "client {i}: no answer and no close within {:?} ({e}); got {:?}",
                    connected.elapsed(),
                    show(&got)
                ),
            }
        };
        let text = String::from_utf8_lossy(&answer).into_owned();
        if text == format!("{PONG}\n") {
            served.push(s);
        } else {
            assert_eq!(text, format!("{}\n", error("busy")), "client {i}");
            busy += 1;
        }
    }
    assert!(busy > 0, "the limit never bit: {} served", served.len());
    assert!(!served.is_empty(), "nobody was served");
    let secs = started.elapsed().as_secs() + 2;
    let log = server.log();
    let warnings = log.matches("accept failed").count() as u64;
    assert!(
        warnings <= secs,
        "{warnings} `accept failed` lines in {secs} s:\n{log}"
    );
    // Clients leave; once the server has seen them go, new ones are
    // served again.
    let n = served.len();
    drop(served);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut c = loop {
        let mut c = server.connect();
        let reply = c.request(PING);
        if reply == PONG {
            break c;
        }
        assert_eq!(reply, error("busy"));
        assert!(
            Instant::now() < deadline,
            "still busy 2 s after {n} clients left"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let s = c.stats_until(|s| s.clients == 1);
    assert_eq!(s.clients, 1, "after {n} served clients left");
}

/// Four clients churn (connect, ping, close, again) against
/// `--max-clients 4`, half closing with `bye`, half by closing their
/// sending side: each waits for the server's close before reconnecting,
/// so never more than 4 are open, and none may ever get `busy`.
fn closed_connections_free_their_slots_at_once(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(4));
    std::thread::scope(|s| {
        for t in 0..4 {
            let server = &server;
            s.spawn(move || {
                for i in 0..150 {
                    let mut c = server.connect();
                    let reply = c.request(PING);
                    assert_eq!(reply, PONG, "churner {t}, round {i}: turned away");
                    if (t + i) % 2 == 0 {
                        c.expect(r#"{"cmd":"bye"}"#, BYE);
                    } else {
                        c.shutdown_write();
                    }
                    assert_eq!(c.recv_closed(), Closed::Eof, "churner {t}, round {i}");
                }
            });
        }
    });
    let mut c = server.connect();
    let s = c.stats();
    assert_eq!((s.clients, s.errors), (1, 0), "the count lags: {s:?}");
}

/// 400 connections turned away within a few seconds give at most one log
/// line per second, and the next line counts the ones left out.
fn busy_log_is_rate_limited(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(1));
    let mut held = server.connect();
    held.expect(PING, PONG);
    let started = Instant::now();
    for _ in 0..400 {
        let mut c = server.connect();
        assert_eq!(
            c.recv_until_closed(),
            format!("{}\n", error("busy")).as_bytes()
        );
    }
    let secs = started.elapsed().as_secs() + 1;
    std::thread::sleep(Duration::from_millis(1_100));
    let mut c = server.connect();
    assert_eq!(
        c.recv_until_closed(),
        format!("{}\n", error("busy")).as_bytes()
    );
    std::thread::sleep(Duration::from_millis(100));
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("turned away")).collect();
    assert!(
        lines.len() as u64 <= secs + 1,
        "{} `turned away` lines for 401 busy replies in {secs} s",
        lines.len()
    );
    let last = lines.last().expect("at least one line");
    assert!(last.contains("more like this"), "no count in: {last}");
    assert_eq!(held.stats().errors, 401);
}

/// The `skmem` of the server's end of the connection to `client` (`ss
/// -tm`): (wmem_queued `w`, sndbuf `tb`).
fn server_send_memory(server: &Server, client: &TcpStream) -> Option<(u64, u64)> {
    let local = client.local_addr().ok()?;
    let out = Command::new("ss")
        .args(["-tmnH", "state", "established"])
        .arg(format!(
            "( sport = :{} and dport = :{} )",
            server.addr().port(),
            local.port()
        ))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let skmem = text.split("skmem:(").nth(1)?.split(')').next()?.to_owned();
    let field = |name: &str| {
        skmem
            .split(',')
            .find_map(|f| {
                f.strip_prefix(name)
                    .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
            })
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("w")?, field("tb")?))
}

/// A client that asks for large `latest` replies and never reads them: the
/// server's kernel send buffer stays small (capped), so the replies wait in
/// the server where the write-stall rule sees them, and the connection is
/// reset within the stall timeout.
fn slow_reader_is_reset_with_little_kernel_memory(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let mut filler = server.connect();
    for i in 0..64 {
        filler.expect(
            format!(r#"{{"location":"room_with_a_long_name_{i:02}","temp":21.5,"hum":40}}"#),
            stored(
                &format!("room_with_a_long_name_{i:02}"),
                "21.5",
                "40.0",
                None,
            ),
        );
    }
    let mut slow = server.connect();
    let sent = Instant::now();
    // ~5 MB of replies asked for; a write that blocks means the server
    // stopped reading.
    let burst = "{\"cmd\":\"latest\"}\n".repeat(1000);
    for _ in 0..10 {
        if slow
            .try_send(burst.as_bytes(), Duration::from_millis(300))
            .is_err()
        {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1_000));
    let (queued, sndbuf) =
        server_send_memory(&server, slow.stream()).expect("ss shows the server's socket");
    assert!(
        sndbuf <= 64 * 1024 && queued <= 64 * 1024,
        "the server's send buffer is {sndbuf} B with {queued} B queued"
    );
    // Reset by the write-stall rule (5 s without progress).
    let deadline = sent + Duration::from_secs(12);
    while !server.log().contains("client stopped reading its replies") {
        assert!(
            Instant::now() < deadline,
            "not reset within 12 s:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    filler.expect(PING, PONG);
}

e2e_tests! {
    #[shells(host)] // the host's own sockets, descriptors and log
    one_source_cannot_take_every_slot,
    out_of_descriptors_every_client_hears_within_a_second,
    closed_connections_free_their_slots_at_once,
    busy_log_is_rate_limited,
    slow_reader_is_reset_with_little_kernel_memory,
}
