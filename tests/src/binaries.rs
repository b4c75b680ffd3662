//! Finding the server programs, building them first when needed.
//!
//! See the crate documentation for why a nested `cargo build` is used. The
//! firmware is a board crate of the firmware's own workspace
//! (`embedded/boards/mps2-an386`, target `thumbv7em-none-eabihf`), built by
//! [`build_firmware`].

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
    package: "envhub-tap",
    binary: "envhub-tap",
};

/// The firmware for the Cortex-M4 board, an ELF for QEMU's `mps2-an386`
/// (built with feature `semihosting`, so it reads its flags from QEMU).
pub const FIRMWARE: Program = Program {
    package: "envhub-mps2-an386",
    binary: "envhub-fw",
};

/// The firmware crate's target: its ELF is
/// `<target dir>/thumbv7em-none-eabihf/release/envhub-fw`.
const FIRMWARE_TARGET: &str = "thumbv7em-none-eabihf";

/// Locates `program`, building its package once per test process.
pub fn locate(program: Program) -> &'static Located {
    static HOST_BIN: OnceLock<Located> = OnceLock::new();
    static TAP_BIN: OnceLock<Located> = OnceLock::new();
    static FIRMWARE_BIN: OnceLock<Located> = OnceLock::new();
    let cell = match program {
        HOST => &HOST_BIN,
        TAP => &TAP_BIN,
        _ => &FIRMWARE_BIN,
    };
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
    if program == FIRMWARE {
        build_firmware()
    } else {
        build(program)
    }
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

/// Runs `cargo build --release --features semihosting` in
/// `embedded/boards/mps2-an386`, a member of the firmware's own workspace
/// whose `.cargo/config.toml` files (read from the working directory up)
/// select the target, flip-link as the linker and the defmt log level. Its
/// target directory is `<workspace target dir>/firmware`; `ci.sh` builds
/// the semihosting ELF with the same features, so neither spoils the
/// other's.
fn build_firmware() -> Located {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../embedded/boards/mps2-an386");
    let target_dir = workspace_target_dir().join("firmware");
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir)
        .args(["build", "--release", "--features", "semihosting"])
        .args(["--quiet", "--message-format=json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", &target_dir);
    // Settings meant for the host build would override the firmware's
    // `.cargo/config.toml` (its target and `-Tlink.x`).
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) => return Located::BuildFailed(format!("cannot run cargo: {e}")),
    };
    if !output.status.success() {
        return Located::BuildFailed(format!(
            "building the firmware (`cargo build --release --features semihosting` in {}) \
             failed ({}); `embedded/boards/ci.sh build` installs the target and flip-link:\n{}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let elf = target_dir
        .join(FIRMWARE_TARGET)
        .join("release")
        .join(FIRMWARE.binary);
    if elf.is_file() {
        Located::Found(elf)
    } else {
        Located::BuildFailed(format!(
            "the firmware built, but there is no {}",
            elf.display()
        ))
    }
}

/// The workspace's target directory, from where this test executable is
/// (`<target dir>[/<triple>]/<profile>/deps/<test>`): the nearest ancestor
/// holding cargo's `CACHEDIR.TAG`; else `$CARGO_TARGET_DIR`, else
/// `<workspace>/target`.
fn workspace_target_dir() -> PathBuf {
    let from_exe = env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(2) // the executable and `deps`
            .take(3)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(Path::to_path_buf)
    });
    from_exe
        .or_else(|| env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
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
