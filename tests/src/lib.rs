//! # envhub-tests: the end-to-end suite
//!
//! The tests in `tests/tests/*.rs` start the real server programs and speak
//! the protocol (`docs/PROTOCOL.md`) to them over real sockets. Every test
//! is a plain function `fn name(shell: Shell)`, written once; the
//! [`e2e_tests!`] macro turns each into one `#[test]` per shell, named
//! `<test>::<shell>` (e.g. `ping::host`, `ping::tap`), so a failure names the
//! shell.
//!
//! ```text
//! cargo test -p envhub-tests                   # every shell that can run here
//! ENVHUB_SHELLS=host cargo test -p envhub-tests
//! cargo test -p envhub-tests -- ::tap          # only the TAP variants
//! ENVHUB_REQUIRE_ALL=1 cargo test --workspace  # a skipped shell is a failure
//! ```
//!
//! ## Shells
//!
//! - `host`: `envhub --bind 127.0.0.1:0 ...`; the port comes from the
//!   `listening on ADDR` line it prints on stdout.
//! - `tap`: `envhub-tap --tap tap0 --ip 192.168.69.1/24 --port 8080 ...`
//!   inside a fresh network namespace (`envhub-e2e-<pid>-<n>`) whose only
//!   links are `lo` and `tap0` (kernel side 192.168.69.100/24), so no packet
//!   can leave it. Clients connect from a thread that entered the namespace.
//!   Needs root and `/dev/net/tun`; without them the test prints a
//!   `SKIPPED` line and passes, unless `ENVHUB_REQUIRE_ALL=1`.
//! - `firmware`: the Cortex-M4 firmware `envhub-fw`
//!   (`embedded/boards/mps2-an386`, built with feature `semihosting`) in `qemu-system-arm -M mps2-an386`,
//!   started with `ip netns exec` in a namespace like TAP's, its NIC
//!   attached to `tap0`; its flags (`--port 8080 --max-clients N
//!   --idle-timeout SECS --mode M`, defaults 8 and 300) go on the
//!   semihosting command line. It logs with defmt on the UART (QEMU's
//!   stdout); the harness decodes the frames with the ELF's table
//!   ([`qemu::LogDecoder`]) into text lines (`INFO  client 1 connected
//!   from ...`). Ready when the log says `listening on 192.168.69.1:8080`. It has no graceful shutdown: QEMU is
//!   killed. At most [`qemu::AT_ONCE`] QEMUs run at once per test process.
//!   Needs what TAP needs and `qemu-system-arm`; the firmware build needs
//!   the `thumbv7em-none-eabihf` target and `flip-link`
//!   (`embedded/boards/ci.sh build` installs both).
//!
//! Tests that cannot apply to every shell name their shells explicitly with
//! `#[shells(...)]` and say why (signals, GBK). Tests that want more clients
//! at once than a shell serves ([`Shell::max_clients`]: 8 for the firmware)
//! take turns instead.
//!
//! ## Finding the server programs
//!
//! Integration tests only get `CARGO_BIN_EXE_<name>` for binaries of their
//! own package, and artifact dependencies are unstable. So, once per test
//! process (a `OnceLock` per program), the harness runs
//! `$CARGO build -p envhub-host --bins` (and `-p envhub-tap` for TAP)
//! with the profile of the running test executable, and takes the binary's
//! path from cargo's `--message-format=json` output. The firmware is built
//! with `cargo build --release --features semihosting` in
//! `embedded/boards/mps2-an386` (the firmware's own workspace), into
//! `<target dir>/firmware`. This was tried for real
//! with `cargo test --workspace` on a clean target directory: cargo releases
//! its build-directory lock before it runs the test executables, so the
//! nested build does not deadlock. The first run compiles the servers
//! (inside the first test that needs them); later runs cost a no-op check,
//! ~0.2 s per test executable. `ENVHUB_BIN_DIR=/path` uses the programs in that
//! directory instead (`envhub`, `envhub-tap`, and `envhub-fw`, the
//! semihosting firmware ELF) and builds nothing.
//!
//! ## Rules the suite keeps
//!
//! Traffic goes only to loopback or into namespaces it created. Every read
//! has a deadline, every loop a bound; each test runs its own server, so
//! tests run in parallel. Replies are compared byte for byte.

pub mod binaries;
pub mod client;
pub mod netns;
pub mod qemu;
pub mod raw;
pub mod reply;
pub mod server;
pub mod shell;
pub mod sockets;
pub mod tools;

pub use client::{show, Client, Closed};
pub use reply::{
    error, invalid, latest, mask, missing, reading, stored, Stats, BYE, EMPTY_LATEST, PONG,
};
pub use server::{Mode, Opts, Server};
pub use shell::{run, skip, Shell};

/// Runs test functions `fn name(shell: Shell)` against every shell.
///
/// ```text
/// /// `ping` answers `pong`.
/// fn ping(shell: Shell) {
///     let (_server, mut c) = Server::with_client(shell);
///     c.expect(r#"{"cmd":"ping"}"#, PONG);
/// }
///
/// /// Only the host has `--encoding`.
/// fn gbk(shell: Shell) { /* ... */ }
///
/// envhub_tests::e2e_tests! { ping }
/// envhub_tests::e2e_tests! {
///     #[shells(host)] // only the host has --encoding
///     gbk,
/// }
/// ```
///
/// Each function gets a module of the same name holding one `#[test]` per
/// shell (`ping::host`, `ping::tap`, `ping::firmware`), so a failure names
/// the shell. The
/// bodies are plain functions, so rustfmt and clippy see them, and a
/// function left out of the list is dead code, which clippy reports.
/// Without `#[shells(...)]` a test runs on every shell (host, tap,
/// firmware).
#[macro_export]
macro_rules! e2e_tests {
    (#[shells $shells:tt] $($name:ident),+ $(,)?) => {
        $( $crate::e2e_tests!(@one $shells $name); )+
    };
    ($($name:ident),+ $(,)?) => {
        $crate::e2e_tests!(#[shells(host, tap, firmware)] $($name),+);
    };
    (@one ($($shell:ident),+ $(,)?) $name:ident) => {
        mod $name {
            $(
                #[test]
                fn $shell() {
                    $crate::run(
                        concat!(module_path!(), "::", stringify!($shell)),
                        stringify!($shell),
                        super::$name,
                    );
                }
            )+
        }
    };
}
