//! Programs a test needs from the system (python3, systemd-analyze, …):
//! found, or a skip with the reason, which `ENVHUB_REQUIRE_ALL=1` turns
//! into a failure.

use std::io::Write;
use std::process::{Command, Stdio};

/// True when `name ARGS` runs and exits 0. Otherwise prints a `SKIPPED`
/// line for `test` naming the Debian package `package` (returning false),
/// or panics under `ENVHUB_REQUIRE_ALL=1`.
pub fn require(test: &str, name: &str, args: &[&str], package: &str) -> bool {
    let found = Command::new(name)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let why = format!("{name} is missing (apt-get install {package})");
    if std::env::var("ENVHUB_REQUIRE_ALL").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} and ENVHUB_REQUIRE_ALL=1");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    false
}
