//! # envhub-firmware
//!
//! The target-independent parts of the envhub firmware for the Arm MPS2
//! AN386 board (Cortex-M4, LAN9118 Ethernet), unit-tested on the host:
//! the LAN9118 driver, the SysTick millisecond clock, the wake-up timer, the build-time settings and
//! their semihosting overrides, and the UART log text. The binary
//! (`src/main.rs`) adds the boot, SysTick, the stack guard and the server
//! loop of `envhub-embedded`.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod clock;
pub mod lan9118;
pub mod log;
pub mod regs;
pub mod settings;
pub mod timer;
pub mod uart;
