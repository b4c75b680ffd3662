//! Puts `memory.x` and `device.x` where the linker finds them (the search
//! path of cortex-m-rt's `link.x`).

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    // cortex-m-rt's `device` feature includes `device.x`, where a device
    // crate names its interrupt handlers; ours are all `DefaultHandler`.
    fs::write(
        out.join("device.x"),
        "/* every interrupt: DefaultHandler */\n",
    )
    .expect("write device.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
