//! What the servers log about connections, read as text: the host's and
//! envhub-tap's `log` lines, and the firmware's defmt frames decoded with
//! its ELF (`qemu::LogDecoder`).

use std::time::{Duration, Instant};

use envhub_tests::*;

const PING: &str = r#"{"cmd":"ping"}"#;

/// Waits (bounded) until the server's log holds every one of `wanted`;
/// fails with the log otherwise.
fn wait_for_log(server: &Server, wanted: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = server.log();
        let missing: Vec<_> = wanted.iter().filter(|w| !log.contains(*w)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} server's log lacks {missing:?}; its log:\n{log}",
            server.shell()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A connect, a client turned away with `busy`, and a disconnect with its
/// reason each make a log line, in the same words on every shell.
fn connection_events_are_logged(shell: Shell) {
    let server = Server::start(shell, Opts::default().max_clients(1));
    let mut c1 = server.connect();
    c1.expect(PING, PONG);
    let mut c2 = server.connect();
    assert_eq!(c2.recv_line(), error("busy"));
    assert_eq!(c2.recv_closed(), Closed::Eof);
    c1.expect(r#"{"cmd":"bye"}"#, BYE);
    c1.recv_closed();
    wait_for_log(
        &server,
        &[
            "client 1 connected from ",
            // The rest of the line differs: the host says `: 1 clients open
            // (limit 1)`, the smoltcp shells `(server full): 1 clients
            // open, 1 from it`.
            " turned away",
            ") disconnected: bye",
        ],
    );
}

e2e_tests! {
    connection_events_are_logged,
}
