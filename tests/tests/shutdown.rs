//! Graceful stop on SIGINT and SIGTERM.
//!
//! Host and TAP only: the firmware has no signals.

use std::time::{Duration, Instant};

use envhub_tests::*;
use nix::sys::signal::Signal;

const PING: &str = r#"{"cmd":"ping"}"#;

/// The protocol's deadline for exiting after the signal.
const EXIT_DEADLINE: Duration = Duration::from_secs(2);
/// Slack for this test process being scheduled late on a busy machine.
const SLACK: Duration = Duration::from_millis(500);

/// Waits for the exit the protocol requires: status 0 within 2 s of
/// `signalled`.
#[track_caller]
fn expect_clean_exit(server: &mut Server, signalled: Instant) {
    let left = (EXIT_DEADLINE + SLACK).saturating_sub(signalled.elapsed());
    match server.wait_exit(left) {
        Some(status) => assert!(
            status.success(),
            "exit status {status} after the signal; output:\n{}",
            server.log()
        ),
        None => panic!("still running {:?} after the signal", signalled.elapsed()),
    }
}

/// Idle clients, a client with a partial line, and lines sent just before
/// the signal: every complete line is answered, each connection gets
/// `shutting_down` and the close, and the server exits with 0.
fn graceful(shell: Shell, signal: Signal) {
    let mut server = Server::start(shell, Opts::default());
    let mut idle = server.connect();
    idle.expect(PING, PONG);
    let mut partial = server.connect();
    partial.expect(PING, PONG);
    partial.send(r#"{"cmd":"#);
    let mut busy = server.connect();
    busy.expect(PING, PONG);
    busy.send(format!("{PING}\n").repeat(20));
    std::thread::sleep(shell.settle());
    server.signal(signal);
    let signalled = Instant::now();
    for i in 0..20 {
        assert_eq!(
            busy.recv_line(),
            PONG,
            "reply #{i} to lines sent before the signal"
        );
    }
    for c in [&mut busy, &mut idle, &mut partial] {
        assert_eq!(c.recv_line(), error("shutting_down"));
        c.recv_closed();
    }
    expect_clean_exit(&mut server, signalled);
}

/// SIGINT stops the server gracefully.
fn sigint_graceful(shell: Shell) {
    graceful(shell, Signal::SIGINT);
}

/// SIGTERM stops the server gracefully.
fn sigterm_graceful(shell: Shell) {
    graceful(shell, Signal::SIGTERM);
}

/// A client that never reads does not keep the server from exiting in
/// time, nor others from getting `shutting_down`.
fn sigterm_with_client_that_never_reads(shell: Shell) {
    let mut server = Server::start(shell, Opts::default());
    let mut hog = server.connect();
    assert!(hog.flood_without_reading() > 0);
    let mut other = server.connect();
    other.expect(PING, PONG);
    server.signal(Signal::SIGTERM);
    let signalled = Instant::now();
    assert_eq!(other.recv_line(), error("shutting_down"));
    other.recv_closed();
    expect_clean_exit(&mut server, signalled);
}

/// In echo mode shutdown closes connections without a word.
fn sigint_echo_mode(shell: Shell) {
    let mut server = Server::start(shell, Opts::default().echo());
    let mut c = server.connect();
    c.send("hello\n");
    assert_eq!(c.recv_exact(6), b"hello\n");
    server.signal(Signal::SIGINT);
    let signalled = Instant::now();
    c.recv_closed();
    expect_clean_exit(&mut server, signalled);
}

e2e_tests! {
    #[shells(host, tap)] // not the firmware: it gets no signals
    sigint_graceful,
    sigterm_graceful,
    sigterm_with_client_that_never_reads,
    sigint_echo_mode,
}
