//! The shells under test, which of them run, and skipping.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::binaries::{self, Located, Program};

/// A server program speaking the protocol: every test runs against each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// `envhub`: the std host server on loopback.
    Host,
    /// `envhub-tap`: the smoltcp server on a TAP device in a network
    /// namespace of its own.
    Tap,
    /// `envhub-fw`: the firmware for the Cortex-M4 board, in QEMU
    /// (`mps2-an386`) whose NIC is a TAP device in a network namespace of
    /// its own.
    Firmware,
}

impl Shell {
    /// The name used in test names and in `ENVHUB_SHELLS`.
    pub fn name(self) -> &'static str {
        match self {
            Shell::Host => "host",
            Shell::Tap => "tap",
            Shell::Firmware => "firmware",
        }
    }

    /// The shell called `name`.
    pub fn from_name(name: &str) -> Option<Shell> {
        match name {
            "host" => Some(Shell::Host),
            "tap" => Some(Shell::Tap),
            "firmware" => Some(Shell::Firmware),
            _ => None,
        }
    }

    /// The program that implements the shell.
    pub fn program(self) -> Program {
        match self {
            Shell::Host => binaries::HOST,
            Shell::Tap => binaries::TAP,
            Shell::Firmware => binaries::FIRMWARE,
        }
    }

    /// How long bytes written by a client may take to reach the server
    /// process. On loopback a returned `write` means the bytes sit in the
    /// server's socket; over the TAP device they still cross the kernel's
    /// queue and smoltcp's poll loop. Used only where the protocol speaks of
    /// bytes "already received" (shutdown).
    pub fn settle(self) -> Duration {
        match self {
            Shell::Host => Duration::ZERO,
            Shell::Tap => Duration::from_millis(100),
            Shell::Firmware => Duration::from_millis(200),
        }
    }

    /// How many clients the server serves at once with default options
    /// (`--max-clients` left out): the protocol's connection limit. Tests
    /// that want more connections open at once than this take turns.
    pub fn max_clients(self) -> usize {
        match self {
            Shell::Host => 1024,
            Shell::Tap => 64,
            Shell::Firmware => 8,
        }
    }

    /// `Ok(program path)` when the shell can run here, else why not.
    fn availability(self) -> Result<&'static Path, String> {
        if self == Shell::Firmware {
            // Checked first: without QEMU there is no point in building.
            tap_ok()?;
            static QEMU_OK: OnceLock<Result<(), String>> = OnceLock::new();
            QEMU_OK.get_or_init(qemu_prerequisite).clone()?;
        }
        let path = match binaries::locate(self.program()) {
            Located::Found(path) => path.as_path(),
            Located::Missing(why) => return Err(why.clone()),
            Located::BuildFailed(why) => panic!("{why}"),
        };
        if self == Shell::Tap {
            tap_ok()?;
        }
        Ok(path)
    }

    /// The program's path; panics when the shell is unavailable (tests call
    /// this only after [`run`] checked).
    pub fn binary(self) -> &'static Path {
        match self.availability() {
            Ok(path) => path,
            Err(why) => panic!("{self} unavailable: {why}"),
        }
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Root, `/dev/net/tun`, the `ip` tool and network namespaces: what a TAP
/// test needs.
fn tap_prerequisites() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root for a network namespace and a TAP device".into());
    }
    if let Err(e) = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
    {
        return Err(format!("cannot open /dev/net/tun: {e}"));
    }
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match ip {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(format!("`ip -V` failed: {status}")),
        Err(e) => return Err(format!("cannot run `ip` (iproute2): {e}")),
    }
    crate::netns::Netns::probe()
}

/// [`tap_prerequisites`], checked once per test process.
fn tap_ok() -> Result<(), String> {
    static TAP_OK: OnceLock<Result<(), String>> = OnceLock::new();
    TAP_OK.get_or_init(tap_prerequisites).clone()
}

/// `qemu-system-arm` on `PATH`, the `thumbv7em-none-eabihf` target and
/// `flip-link`: what a firmware test needs besides [`tap_prerequisites`].
/// (`embedded/boards/ci.sh build` installs the last two.)
fn qemu_prerequisite() -> Result<(), String> {
    let qemu = Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match qemu {
        Ok(status) if status.success() => {}
        Ok(status) => return Err(format!("`qemu-system-arm --version` failed: {status}")),
        Err(e) => return Err(format!("cannot run `qemu-system-arm`: {e}")),
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    if !on_path("flip-link") {
        return Err("`flip-link` is not on PATH (`cargo install flip-link`)".into());
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args([
            "--print",
            "target-libdir",
            "--target",
            "thumbv7em-none-eabihf",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    match libdir {
        Some(dir) if Path::new(&dir).is_dir() => Ok(()),
        _ => Err("the thumbv7em-none-eabihf target is not installed \
             (`rustup target add thumbv7em-none-eabihf`)"
            .into()),
    }
}

/// True when `ENVHUB_SHELLS` (a comma-separated list, default all) selects
/// `shell`.
fn selected(shell: Shell) -> bool {
    match std::env::var("ENVHUB_SHELLS") {
        Ok(list) if !list.trim().is_empty() => list.split(',').any(|s| s.trim() == shell.name()),
        _ => true,
    }
}

/// True when `ENVHUB_REQUIRE_ALL=1`: a test that cannot run fails.
fn require_all() -> bool {
    std::env::var("ENVHUB_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Writes to the process's stderr directly, past the test harness's output
/// capture, so a skip is always visible.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A test (or part of one) that cannot run here: prints `SKIPPED test:
/// why` and returns, or fails under `ENVHUB_REQUIRE_ALL=1`.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    if require_all() {
        panic!("{test} cannot run ({why}) and ENVHUB_REQUIRE_ALL=1");
    }
    note(&format!("SKIPPED {test}: {why}"));
}

/// Runs one test `body` against the shell called `shell`, or skips it.
///
/// Called by [`crate::e2e_tests!`]; `test` is the full test name for messages.
pub fn run(test: &str, shell: &str, body: fn(Shell)) {
    let Some(shell) = Shell::from_name(shell) else {
        panic!("{test}: unknown shell {shell:?}");
    };
    if !selected(shell) {
        note(&format!(
            "SKIPPED {test}: shell {shell} not in ENVHUB_SHELLS"
        ));
        return;
    }
    match shell.availability() {
        Ok(_) => body(shell),
        Err(why) if require_all() => {
            panic!("{test}: shell {shell} cannot run ({why}) and ENVHUB_REQUIRE_ALL=1")
        }
        Err(why) => note(&format!("SKIPPED {test}: shell {shell} cannot run: {why}")),
    }
}
