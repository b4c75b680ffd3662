//! # envhub-mps2-an386
//!
//! The board-specific, target-independent parts of the envhub firmware for
//! the Arm MPS2+ with the AN386 image (Cortex-M4, LAN9118 Ethernet),
//! unit-tested on the host: the LAN9118 driver, the wake-up timer and the
//! UART. The binary (`src/main.rs`) adds the boot, the defmt logger on the
//! UART, and the shared firmware crate (`envhub-fw-common`: clock,
//! settings, panics, faults, the server loop).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod lan9118;
pub mod regs;
pub mod timer;
pub mod uart;
