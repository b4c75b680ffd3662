//! Running the firmware in QEMU: the command line, how many QEMUs run at
//! once, and reading its log.
//!
//! The firmware (`envhub-fw`, built with feature `semihosting`) runs on
//! QEMU's `mps2-an386` board; its LAN9118 NIC is the namespace's TAP
//! device, its UART0 is QEMU's stdout, and it reads its flags from the
//! semihosting command line (`-semihosting-config ...,arg=FLAG,...`). It
//! logs with defmt: UART0 carries rzCOBS-encoded frames, which
//! [`LogDecoder`] turns back into text lines with the ELF's string table.

use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Condvar, Mutex, PoisonError};

/// The most QEMU instances one test process runs at once. Each emulates a
/// whole board; tests run in parallel, and a loaded machine would make
/// every instance (and its timing) slow.
pub const AT_ONCE: usize = 3;

/// The QEMU program emulating the board.
pub const PROGRAM: &str = "qemu-system-arm";

/// The board: Arm MPS2 with the AN386 image (Cortex-M4, LAN9118).
pub const MACHINE: &str = "mps2-an386";

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// The right to run one QEMU; [`AT_ONCE`] exist at a time per process.
/// Released on drop.
#[derive(Debug)]
pub struct Permit(());

impl Permit {
    /// Waits until fewer than [`AT_ONCE`] QEMUs run, then takes a turn.
    /// (Each holder runs one test's server, bounded in time by the test.)
    pub fn acquire() -> Permit {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= AT_ONCE {
            running = FREED.wait(running).unwrap_or_else(PoisonError::into_inner);
        }
        *running += 1;
        Permit(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        *running -= 1;
        FREED.notify_one();
    }
}

/// `qemu-system-arm` booting `elf` with its NIC on the TAP device `tap`
/// (which must exist: QEMU attaches to it, no scripts run) and `args` as
/// the firmware's command line (after its name, `envhub-fw`). No display,
/// no monitor: UART0 goes to stdout.
pub fn command(elf: &Path, tap: &str, args: &[String]) -> Command {
    let mut cmd = Command::new(PROGRAM);
    cmd.args(["-M", MACHINE, "-nographic", "-kernel"])
        .arg(elf)
        .arg("-nic")
        .arg(format!("tap,ifname={tap},script=no,downscript=no"))
        .arg("-semihosting-config")
        .arg(semihosting_config(args));
    cmd
}

/// `enable=on,target=native,arg=envhub-fw,arg=A,...`: QEMU's option syntax
/// separates at commas, so a comma inside an argument is doubled.
pub fn semihosting_config(args: &[String]) -> String {
    let mut config = String::from("enable=on,target=native,arg=envhub-fw");
    for arg in args {
        config.push_str(",arg=");
        config.push_str(&arg.replace(',', ",,"));
    }
    config
}

/// Decodes the firmware's defmt log into text lines, one per log call:
/// the level, padded to 5 characters, a space and the message, e.g.
/// `INFO  listening on 192.168.69.1:8080`.
#[derive(Debug)]
pub struct LogDecoder {
    table: defmt_decoder::Table,
}

impl LogDecoder {
    /// Reads the defmt table (the log's format strings) from the ELF.
    pub fn new(elf: &Path) -> Result<LogDecoder, String> {
        let bytes =
            std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
        match defmt_decoder::Table::parse(&bytes) {
            Ok(Some(table)) => Ok(LogDecoder { table }),
            Ok(None) => Err(format!("{} has no defmt table", elf.display())),
            Err(e) => Err(format!("bad defmt table in {}: {e}", elf.display())),
        }
    }

    /// Decodes `input` (the UART's bytes) until it ends, calling `line`
    /// with each decoded line. Bytes that are no frame (a frame cut short
    /// when QEMU is killed, stray output) become a `(malformed defmt
    /// frame)` line, and decoding resumes at the next frame.
    pub fn run(&self, mut input: impl Read, mut line: impl FnMut(String)) {
        let mut decoder = self.table.new_stream_decoder();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = input.read(&mut buf) {
            decoder.received(&buf[..n]);
            loop {
                match decoder.decode() {
                    Ok(frame) => {
                        let level = frame.level().map_or("PRINT", |l| l.as_str());
                        line(format!(
                            "{:<5} {}",
                            level.to_uppercase(),
                            frame.display_message()
                        ));
                    }
                    Err(defmt_decoder::DecodeError::UnexpectedEof) => break,
                    Err(defmt_decoder::DecodeError::Malformed) => {
                        line("(malformed defmt frame)".to_owned());
                    }
                }
            }
        }
    }
}

/// The message of a decoded log line (without its level), for matching.
pub fn message(line: &str) -> &str {
    match line.split_once(' ') {
        Some(("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR" | "PRINT", rest)) => rest.trim_start(),
        _ => line,
    }
}

/// The command line of `cmd`, program first, for `ip netns exec`.
pub fn argv(cmd: &Command) -> Vec<&OsStr> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semihosting_args_in_order_commas_doubled() {
        let args = ["--port", "8080", "--mode", "a,b"].map(String::from);
        assert_eq!(
            semihosting_config(&args),
            "enable=on,target=native,arg=envhub-fw,arg=--port,arg=8080,arg=--mode,arg=a,,b"
        );
    }

    #[test]
    fn command_attaches_the_tap_device() {
        let cmd = command(Path::new("/fw.elf"), "tap0", &[]);
        let argv: Vec<_> = argv(&cmd).iter().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            argv,
            [
                "qemu-system-arm",
                "-M",
                "mps2-an386",
                "-nographic",
                "-kernel",
                "/fw.elf",
                "-nic",
                "tap,ifname=tap0,script=no,downscript=no",
                "-semihosting-config",
                "enable=on,target=native,arg=envhub-fw",
            ]
        );
    }

    #[test]
    fn message_without_its_level() {
        assert_eq!(
            message("INFO  listening on 192.168.69.1:8080"),
            "listening on 192.168.69.1:8080"
        );
        assert_eq!(message("ERROR panic at src/x.rs:3"), "panic at src/x.rs:3");
        assert_eq!(message("listening on x"), "listening on x");
    }

    #[test]
    fn permits_are_returned() {
        let permits: Vec<_> = (0..AT_ONCE).map(|_| Permit::acquire()).collect();
        drop(permits);
        let again: Vec<_> = (0..AT_ONCE).map(|_| Permit::acquire()).collect();
        assert_eq!(again.len(), AT_ONCE);
    }
}
