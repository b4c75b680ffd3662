//! # envhub-nucleo-f767zi
//!
//! The board-specific, target-independent part of the envhub firmware for
//! the NUCLEO-F767ZI (STM32F767ZI, on-chip Ethernet MAC, LAN8742A PHY):
//! [`eth`], the adapter that makes an Ethernet DMA engine with descriptor
//! rings (the published `stm32-eth` driver on the board) a smoltcp 0.14
//! `phy::Device`, unit-tested on the host against a model of the rings. The
//! binary (`src/main.rs`) adds clocks, pins, the PHY, the defmt logger
//! (RTT) and the shared firmware crate (`envhub-fw-common`).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod eth;
