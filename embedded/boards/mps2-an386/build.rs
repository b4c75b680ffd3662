//! Writes the linker's `memory.x` and `device.x` where cortex-m-rt's
//! `link.x` finds them.
//!
//! `memory.x` declares the footprint budget, not the board, so the link
//! itself fails when the budget is broken:
//!
//! - release board build: flash (vector table + .text + .rodata + .data)
//!   at most [`FLASH_BUDGET`], static RAM (.data + .bss + .uninit) at most
//!   [`STATIC_RAM_BUDGET`], and at least [`MIN_STACK`] of stack, which
//!   flip-link puts below the statics with the MPU guard under it;
//! - release QEMU test build (feature `semihosting`: the command-line
//!   parser and the exit call, never flashed to a board): flash at most
//!   [`QEMU_TEST_FLASH`], RAM as above;
//! - debug builds (overflow checks and debug assertions on, which do not
//!   fit the budget): the board's whole memories, 4 MiB each.

use std::{env, fs, path::PathBuf};

/// Flash of the board build, in KiB.
const FLASH_BUDGET: u32 = 40;
/// Flash of the QEMU test build (feature `semihosting`), in KiB.
const QEMU_TEST_FLASH: u32 = 48;
/// Static RAM (.data + .bss + .uninit), in KiB.
const STATIC_RAM_BUDGET: u32 = 40;
/// The least stack, in KiB.
const MIN_STACK: u32 = 4;
/// The MPS2 AN386's memories as QEMU models them (hw/arm/mps2.c): 4 MiB
/// ZBT SSRAM1 at 0 (code), 4 MiB ZBT SSRAM2/3 at 0x2000_0000 (data).
const BOARD_MEMORY: u32 = 4 * 1024;

fn memory_x(flash_k: u32, ram_k: u32, budget: bool) -> String {
    let mut text = format!(
        "/* Written by build.rs: the Arm MPS2 AN386's memories for this build. */\n\
         MEMORY\n{{\n  FLASH : ORIGIN = 0x00000000, LENGTH = {flash_k}K\n  \
         RAM   : ORIGIN = 0x20000000, LENGTH = {ram_k}K\n}}\n"
    );
    if budget {
        text.push_str(&format!(
            "/* The statics take at most {STATIC_RAM_BUDGET} KiB, which leaves the stack \
             at least {MIN_STACK} KiB. */\n\
             ASSERT(__sheap - __sdata <= {STATIC_RAM_BUDGET}K, \"envhub-fw: static RAM over \
             {STATIC_RAM_BUDGET} KiB (or a stack under {MIN_STACK} KiB)\");\n"
        ));
    }
    text
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let qemu_test = env::var_os("CARGO_FEATURE_SEMIHOSTING").is_some();
    let memory = match (release, qemu_test) {
        (false, _) => memory_x(BOARD_MEMORY, BOARD_MEMORY, false),
        (true, false) => memory_x(FLASH_BUDGET, STATIC_RAM_BUDGET + MIN_STACK, true),
        (true, true) => memory_x(QEMU_TEST_FLASH, STATIC_RAM_BUDGET + MIN_STACK, true),
    };
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    // cortex-m-rt's `device` feature includes `device.x`, where a device
    // crate names its interrupt handlers; ours are all `DefaultHandler`.
    fs::write(
        out.join("device.x"),
        "/* every interrupt: DefaultHandler */\n",
    )
    .expect("write device.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
}
