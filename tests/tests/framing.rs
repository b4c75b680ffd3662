//! Line framing: CRLF, blank lines, pipelining, split lines, the 512-byte
//! limit, UTF-8, end of input and `bye`.

use std::time::Duration;

use envhub_tests::*;

/// A `ping` line padded (with an ignored key) to exactly `len` bytes.
fn ping_of_len(len: usize) -> String {
    let base = r#"{"cmd":"ping","pad":""}"#;
    assert!(len >= base.len());
    format!(
        r#"{{"cmd":"ping","pad":"{}"}}"#,
        "x".repeat(len - base.len())
    )
}

const PING: &str = r#"{"cmd":"ping"}"#;

/// CRLF ends a line; empty and blank lines (spaces, tabs) get no reply
/// and count nothing; only one CR before the LF is dropped.
fn crlf_and_blank_lines(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    c.send(format!("\n   \n\t\n\r\n \t \r\n\n\n{PING}\r\n"));
    assert_eq!(c.recv_line(), PONG);
    c.recv_nothing(Duration::from_millis(200));
    c.send(format!("{PING}\r\r\n"));
    assert_eq!(
        c.recv_line(),
        PONG,
        "{{...}}\\r\\r\\n: the other CR is JSON whitespace"
    );
    // A CR that is not directly before the LF makes the line non-blank.
    c.send(" \r \n");
    assert_eq!(c.recv_line(), error("invalid_json"), "line \" \\r \"");
    c.send("\r\r\n");
    assert_eq!(c.recv_line(), error("invalid_json"), "line \"\\r\"");
    c.recv_nothing(Duration::from_millis(100));
    let stats = c.stats();
    assert_eq!(stats.errors, 2, "{stats:?}");
}

/// Many lines in one write: one reply each, in order.
fn pipelining_in_one_write(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let mut batch = String::new();
    let mut expected = Vec::new();
    for i in 0..300u64 {
        match i % 5 {
            0 => {
                batch += &format!(
                    r#"{{"location":"p","temp":{}.5,"hum":{},"seq":{i}}}"#,
                    i % 100,
                    i % 100
                );
                expected.push(stored(
                    "p",
                    &format!("{}.5", i % 100),
                    &format!("{}.0", i % 100),
                    Some(i),
                ));
            }
            1 => {
                batch += PING;
                expected.push(PONG.to_owned());
            }
            2 => {
                batch += &format!(r#"{{"location":"p","temp":999,"hum":1,"seq":{i}}}"#);
                expected.push(invalid("temp"));
            }
            3 => batch += "  ",
            _ => {
                batch += r#"{"cmd":"nope"}"#;
                expected.push(error("unknown_cmd"));
            }
        }
        batch.push('\n');
    }
    c.send(&batch);
    let got = c.recv_lines(expected.len());
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "reply #{i}");
    }
    c.recv_nothing(Duration::from_millis(100));
    let stats = c.stats();
    assert_eq!(
        (stats.readings, stats.errors, stats.locations),
        (60, 120, 1),
        "{stats:?}"
    );
}

/// A line may arrive split over any number of segments, down to single
/// bytes, CR and LF in separate segments included.
fn lines_split_across_writes(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    c.send_bytewise("{\"location\":\"bb\",\"temp\":-0.05,\"hum\":99.95,\"seq\":42}\r\n");
    assert_eq!(c.recv_line(), stored("bb", "-0.1", "100.0", Some(42)));
    c.send_bytewise(format!("{PING}\n"));
    assert_eq!(c.recv_line(), PONG);
    c.send(&PING[..5]);
    std::thread::sleep(Duration::from_millis(20));
    c.send(&PING[5..]);
    c.send("\r");
    c.recv_nothing(Duration::from_millis(50));
    c.send("\n");
    assert_eq!(c.recv_line(), PONG);
    // Twenty requests cut at odd places.
    let mut batch = String::new();
    let mut expected = Vec::new();
    for i in 0..20u64 {
        batch += &format!(r#"{{"location":"s{i}","temp":{i},"hum":{i},"seq":{i}}}"#);
        batch += if i % 2 == 0 { "\n" } else { "\r\n" };
        expected.push(stored(
            &format!("s{i}"),
            &format!("{i}.0"),
            &format!("{i}.0"),
            Some(i),
        ));
    }
    let bytes = batch.as_bytes();
    let mut at = 0;
    for size in [1, 2, 3, 5, 7, 11, 13, 17, 64, 100].iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        c.send(&bytes[at..end]);
        at = end;
        std::thread::sleep(Duration::from_millis(1));
    }
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(&c.recv_line(), e, "reply #{i}");
    }
}

/// 512 bytes is a line; 513 is `line_too_long`, and the connection
/// stays usable; the CR before the LF does not count.
fn line_length_limit(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let too_long = error("line_too_long");
    assert_eq!(ping_of_len(512).len(), 512);
    c.check(&[
        (ping_of_len(512), PONG.to_owned()),
        (ping_of_len(513), too_long.clone()),
        (PING.to_owned(), PONG.to_owned()),
        (ping_of_len(511) + "\r", PONG.to_owned()),
        (ping_of_len(512) + "\r", PONG.to_owned()),
        (ping_of_len(513) + "\r", too_long.clone()),
        // 512 bytes and a CR, then the CR before the LF: 513.
        (ping_of_len(512) + "\r\r", too_long.clone()),
        (ping_of_len(514), too_long.clone()),
        (ping_of_len(1024), too_long.clone()),
    ]);
    // A 512-byte reading.
    let base = r#"{"location":"big","temp":1,"hum":2,"pad":""}"#;
    let big = format!(
        r#"{{"location":"big","temp":1,"hum":2,"pad":"{}"}}"#,
        "y".repeat(512 - base.len())
    );
    assert_eq!(big.len(), 512);
    c.expect(&big, stored("big", "1.0", "2.0", None));
    // The rest of an overlong line is discarded up to its LF, even if it
    // looks like a request.
    c.send(format!("{}{PING}\n", "x".repeat(600)));
    assert_eq!(c.recv_line(), too_long);
    c.recv_nothing(Duration::from_millis(200));
    // An overlong line sent in pieces: still one reply.
    let long = ping_of_len(513);
    for piece in long.as_bytes().chunks(100) {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(2));
    }
    c.send("\n");
    assert_eq!(c.recv_line(), too_long);
    c.expect(PING, PONG);
    let stats = c.stats();
    assert_eq!(stats.errors, 7, "{stats:?}");
}

/// A 100 KB line: exactly one `line_too_long`, then business as usual.
fn very_long_line(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let chunk = "a".repeat(10_000);
    for _ in 0..10 {
        c.send(&chunk);
    }
    c.send(format!("\n{PING}\n"));
    assert_eq!(c.recv_line(), error("line_too_long"));
    assert_eq!(c.recv_line(), PONG);
    c.recv_nothing(Duration::from_millis(100));
}

/// A line that is not UTF-8 gets `invalid_utf8`; length is checked
/// first.
fn invalid_utf8(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let bad: [&[u8]; 11] = [
        b"{\"location\":\"\xff\",\"temp\":1,\"hum\":1}",
        b"\xff",
        b"\xfe\xff{\"cmd\":\"ping\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xc3\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xc3(\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xc0\xaf\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xe0\x80\xaf\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xed\xa0\x80\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xf4\x90\x80\x80\"}",
        b"{\"cmd\":\"ping\",\"x\":\"\xf8\x88\x80\x80\x80\"}",
        b"{\"location\":\"caf\xe9\",\"temp\":1,\"hum\":1}",
    ];
    let mut cases: Vec<(Vec<u8>, String)> = bad
        .iter()
        .map(|b| (b.to_vec(), error("invalid_utf8")))
        .collect();
    cases.push((b"{\"cmd\":\"ping\"}\xc3".to_vec(), error("invalid_utf8")));
    let mut long = b"{\"cmd\":\"ping\",\"x\":\"\xff".to_vec();
    long.resize(600, b'x');
    cases.push((long, error("line_too_long")));
    // Valid multi-byte UTF-8 in ignored values is fine.
    cases.push((
        "{\"cmd\":\"ping\",\"x\":\"é😀\u{10ffff}\"}".into(),
        PONG.to_owned(),
    ));
    c.check(&cases);
}

/// EOF after an unterminated line: the line is answered, then the
/// server closes.
fn eof_answers_unterminated_line(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let cases: [(&[u8], &[&str]); 9] = [
        (PING.as_bytes(), &[PONG]),
        (b"{\"cmd\":\"ping\"}\r", &[PONG]),
        (
            b"{\"cmd\":\"ping\"}\n{\"location\":\"e\",\"temp\":1,\"hum\":2}",
            &[PONG, r#"{"ok":true,"location":"e","temp":1.0,"hum":2.0}"#],
        ),
        (b"{\"cmd\":\"ping\"}\n", &[PONG]),
        (b"", &[]),
        (b"   ", &[]),
        (b"{\"cmd\":", &[r#"{"ok":false,"error":"invalid_json"}"#]),
        (b"\xff", &[r#"{"ok":false,"error":"invalid_utf8"}"#]),
        (b"{\"cmd\":\"bye\"}", &[BYE]),
    ];
    for (sent, replies) in cases {
        let mut c = server.connect();
        c.send(sent);
        c.shutdown_write();
        for reply in replies {
            assert_eq!(
                c.recv_line(),
                *reply,
                "after sending \"{}\" and EOF",
                show(sent)
            );
        }
        assert_eq!(
            c.recv_closed(),
            Closed::Eof,
            "after sending \"{}\" and EOF",
            show(sent)
        );
    }
    let mut c = server.connect();
    c.send(ping_of_len(513));
    c.shutdown_write();
    assert_eq!(c.recv_line(), error("line_too_long"));
    assert_eq!(c.recv_closed(), Closed::Eof);
}

/// `bye` is answered, then the server closes; nothing after it is
/// answered.
fn bye(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let mut watcher = server.connect();
    let mut c = server.connect();
    c.expect(r#"{"cmd":"bye"}"#, BYE);
    assert_eq!(c.recv_closed(), Closed::Eof);
    let stats = watcher.stats_until(|s| s.clients == 1);
    assert_eq!((stats.client, stats.errors), (1, 0), "{stats:?}");

    let mut c = server.connect();
    c.send(format!("{PING}\n{{\"cmd\":\"bye\"}}\n{PING}\n{PING}\n"));
    assert_eq!(c.recv_line(), PONG);
    assert_eq!(c.recv_line(), BYE);
    // Closed (FIN, or RST since unread lines were left), no more pongs.
    c.recv_closed();
    watcher.stats_until(|s| s.clients == 1);
}

e2e_tests! {
    crlf_and_blank_lines,
    pipelining_in_one_write,
    lines_split_across_writes,
    line_length_limit,
    very_long_line,
    invalid_utf8,
    eof_answers_unterminated_line,
    bye,
}
