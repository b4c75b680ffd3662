//! Finding the server programs, building them first when needed.
//!
//! See the crate documentation for why a nested `cargo build` is used.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where a server program is, or why there is none.
#[derive(Debug, Clone)]
pub enum Located {
    /// The program, ready to run.
    Found(PathBuf),
    /// The package builds but has no such binary (yet): tests skip.
    Missing(String),
    /// Building the package failed: tests fail.
    BuildFailed(String),
}

/// A server program: the package that holds it and the binary's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    /// Cargo package, e.g. `envhub-host`.
    pub package: &'static str,
    /// Binary target, e.g. `envhub`.
    pub binary: &'static str,
}

/// The host server.
pub const HOST: Program = Program {
    package: "envhub-host",
    binary: "envhub",
};

/// The smoltcp server over a Linux TAP device.
pub const TAP: Program = Program {
    package: "envhub-embedded",
    binary: "envhub-tap",
};

/// Locates `program`, building its package once per test process.
pub fn locate(program: Program) -> &'static Located {
    static HOST_BIN: OnceLock<Located> = OnceLock::new();
    static TAP_BIN: OnceLock<Located> = OnceLock::new();
    let cell = if program == HOST { &HOST_BIN } else { &TAP_BIN };
    cell.get_or_init(|| find(program))
}

fn find(program: Program) -> Located {
    if let Some(dir) = env::var_os("ENVHUB_BIN_DIR") {
        let path = Path::new(&dir).join(program.binary);
        return if path.is_file() {
            Located::Found(path)
        } else {
            Located::Missing(format!(
                "no {} in ENVHUB_BIN_DIR ({})",
                program.binary,
                Path::new(&dir).display()
            ))
        };
    }
    build(program)
}

/// Runs `cargo build -p PACKAGE --bins` in the workspace, with the profile of
/// this test executable, and takes the binary's path from cargo's JSON
/// messages (so a custom target or build directory needs no guessing).
fn build(program: Program) -> Located {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--message-format=json-render-diagnostics",
    ])
    .args(["-p", program.package, "--bins"])
    .arg("--manifest-path")
    .arg(&manifest);
    match profile_of_current_exe().as_deref() {
        None | Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) => return Located::BuildFailed(format!("cannot run cargo: {e}")),
    };
    if !output.status.success() {
        return Located::BuildFailed(format!(
            "`cargo build -p {}` failed ({}):\n{}",
            program.package,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" || msg["target"]["name"] != program.binary {
            continue;
        }
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
        if let (true, Some(exe)) = (is_bin, msg["executable"].as_str()) {
            return Located::Found(PathBuf::from(exe));
        }
    }
    Located::Missing(format!(
        "package {} has no binary {} (yet)",
        program.package, program.binary
    ))
}

/// The name of the output directory this test runs from
/// (`target/<profile>/deps/<test>`): `debug`, `release` or a custom profile.
fn profile_of_current_exe() -> Option<String> {
    let exe = env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.file_name()?.to_str()?.to_owned())
}
