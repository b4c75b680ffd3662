//! # envhub-fw-common
//!
//! What every envhub firmware board shares, once:
//!
//! - [`clock`]: the millisecond clock from a free-running SysTick;
//! - [`settings`]: the build-time settings in one place, and the
//!   semihosting command line that overrides them under QEMU;
//! - `rt` (on the target): start-up helpers (SysTick, the MPU stack
//!   guard), the panic handler (its location through defmt, no
//!   `core::fmt`), the HardFault handler (stack overflows included), and
//!   how the firmware stops;
//! - `serve` (on the target): the glue to [`envhub_embedded::Server`]: the
//!   interface, the socket memory, the readiness line and the loop.
//!
//! A board crate adds its Ethernet driver, its wake-up source and its defmt
//! transport (`defmt-rtt` on the NUCLEO, the UART on the MPS2), and links
//! this crate with `use envhub_fw_common as _;`.
//!
//! [`envhub_embedded::Server`]: https://docs.rs/envhub-embedded
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod clock;
#[cfg(any(target_os = "none", test))]
mod mem;
#[cfg(target_os = "none")]
pub mod rt;
#[cfg(target_os = "none")]
pub mod serve;
pub mod settings;
