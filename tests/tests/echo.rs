//! Echo mode: every byte back, unchanged, and nothing else.

use std::io::Write;
use std::time::Duration;

use envhub_tests::*;

/// Deterministic pseudo-random bytes (xorshift), every value 0..=255.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Protocol lines, invalid UTF-8, overlong lines and binary noise all
/// come back byte for byte, with no replies of the server's own.
fn echo_bytes_unchanged(shell: Shell) {
    let server = Server::start(shell, Opts::default().echo());
    let mut c = server.connect();
    let mut data = Vec::new();
    data.extend_from_slice(b"{\"cmd\":\"ping\"}\n{\"cmd\":\"bye\"}\n\r\n\n \xff\xfe\x00\r");
    data.extend((0..=255u8).collect::<Vec<_>>());
    data.extend_from_slice(&[b'x'; 2000]);
    data.extend_from_slice(b"\r\n");
    data.extend(noise(64 * 1024));
    // Write from a second thread while this one reads: neither side
    // waits on the other's buffers.
    let mut writer = c.stream().try_clone().expect("clone the socket");
    let sent = data.clone();
    let handle = std::thread::spawn(move || {
        for (i, piece) in sent.chunks(1000).enumerate() {
            writer.write_all(piece).expect("write");
            if i % 16 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let back = c.recv_exact(data.len());
    handle.join().expect("writer thread");
    assert!(
        back == data,
        "echo differs: first difference at byte {:?}",
        back.iter().zip(&data).position(|(a, b)| a != b)
    );
    c.recv_nothing(Duration::from_millis(200));
}

/// After EOF the server sends the rest back, then closes.
fn echo_eof(shell: Shell) {
    let server = Server::start(shell, Opts::default().echo());
    let mut c = server.connect();
    c.send("abc\n{\"cmd\":");
    c.shutdown_write();
    assert_eq!(c.recv_until_closed(), b"abc\n{\"cmd\":");
}

/// At the connection limit echo mode closes without a word.
fn echo_busy_closes_silently(shell: Shell) {
    let server = Server::start(shell, Opts::default().echo().max_clients(1));
    let mut c1 = server.connect();
    c1.send("x");
    assert_eq!(c1.recv_exact(1), b"x");
    let mut c2 = server.connect();
    c2.recv_closed();
    c1.send("y");
    assert_eq!(c1.recv_exact(1), b"y");
}

/// On idle timeout echo mode closes without a word.
fn echo_idle_closes_silently(shell: Shell) {
    let server = Server::start(shell, Opts::default().echo().idle_timeout(1));
    let mut c = server.connect();
    c.send("abc");
    assert_eq!(c.recv_exact(3), b"abc");
    c.recv_nothing(Duration::from_millis(500));
    c.recv_closed();
}

e2e_tests! {
    echo_bytes_unchanged,
    echo_eof,
    echo_busy_closes_silently,
    echo_idle_closes_silently,
}
