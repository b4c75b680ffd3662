//! # envhub-embedded
//!
//! The envhub server (`docs/PROTOCOL.md`) as a `no_std`, allocation-free
//! loop over [smoltcp]: one [`Server`] owns an [`Interface`], a set of TCP
//! socket slots that all listen on the port, the store and the counters, and
//! binds each connected slot to an [`envhub_core::Connection`]. The same
//! loop runs on a Linux TAP device (the `envhub-tap` binary) and on a
//! microcontroller (the firmware); only the [`smoltcp::phy::Device`] and
//! the clock differ.
//!
//! ```no_run
//! use envhub_embedded::{net, Config, Server, SocketMemory};
//! use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
//!
//! /// 9 sockets (8 clients and the spare that answers `busy`), 1 KiB
//! /// receive and 2 KiB send buffers each. On a microcontroller the memory
//! /// comes from a static, e.g. `static_cell::ConstStaticCell::new(SocketMemory::new())`.
//! fn serve<D: smoltcp::phy::Device>(
//!     device: &mut D,
//!     memory: &'static mut SocketMemory<'static, 9, 1024, 2048>,
//!     clock_ms: impl Fn() -> u64,
//!     random_seed: u64,
//! ) -> ! {
//!     let ip = Ipv4Cidr::new(Ipv4Address::new(192, 168, 69, 1), 24);
//!     let iface = net::ethernet_interface(device, [0x02, 0, 0, 0, 0, 1], ip, random_seed, clock_ms());
//!     let mut server = match Server::new(Config::new(8080, 8), iface, memory, clock_ms()) {
//!         Ok(server) => server,
//!         Err(_) => panic!("bad configuration"),
//!     };
//!     loop {
//!         let _next_ms = server.poll(clock_ms(), device);
//!         // sleep until a frame arrives or `_next_ms` is reached
//!     }
//! }
//! ```
//!
//! `no_std` by default, with no default features; it builds for
//! `thumbv7em-none-eabihf`. Features: `log` or `defmt` for logging (one of
//! them, or neither: silent) and `std`. The Linux binary is its own crate,
//! `envhub-tap` (`embedded/tap`).
//!
//! [`Interface`]: smoltcp::iface::Interface
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(all(feature = "log", feature = "defmt"))]
compile_error!("the features `log` and `defmt` are exclusive: choose one logger");

#[macro_use]
mod logging;

pub mod config;
pub mod memory;
pub mod net;
pub mod server;
mod slot;

#[cfg(test)]
mod testnet;

pub use config::{Config, ConfigError};
pub use envhub_core::Mode;
pub use memory::SocketMemory;
pub use server::Server;
