//! `envhub-defmt ELF < UART-BYTES`: decodes the firmware's defmt log into
//! text, one line per log call (`INFO  listening on 192.168.69.1:8080`),
//! the same decoder and format the end-to-end tests read. The firmware's
//! CI script (`embedded/boards/ci.sh`) decodes QEMU's output with it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use envhub_tests::qemu::LogDecoder;

fn main() -> ExitCode {
    let Some(elf) = std::env::args_os().nth(1) else {
        eprintln!("usage: envhub-defmt ELF < LOG");
        return ExitCode::from(2);
    };
    let decoder = match LogDecoder::new(Path::new(&elf)) {
        Ok(decoder) => decoder,
        Err(e) => {
            eprintln!("envhub-defmt: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut ok = true;
    decoder.run(std::io::stdin().lock(), |line| {
        ok &= writeln!(out, "{line}").is_ok();
    });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
