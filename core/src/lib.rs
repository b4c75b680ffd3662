//! # envhub-core
//!
//! The envhub line protocol (`docs/PROTOCOL.md`) as pure logic: framing,
//! decoding, validation, replies, per-connection state, the store of
//! readings and the counters. No I/O, no clock (time comes in as
//! milliseconds), no allocation, no floating point, no panics on any input.
//! Every shell (the std host server, the smoltcp loop, the firmware) drives
//! the same [`Connection`] and so speaks the protocol byte for byte alike.
//!
//! A shell's loop, in short:
//!
//! ```
//! use envhub_core::{Config, Connection, LocalHub, Stats, Store};
//!
//! let (mut store, mut stats) = (Store::new(), Stats::new(0));
//! let mut hub = LocalHub { store: &mut store, stats: &mut stats };
//! let mut conn = Connection::new(1, 0, Config::default());
//! let mut out = [0u8; 256];
//! let p = conn.handle_input(5, b"{\"cmd\":\"ping\"}\n", &mut out, &mut hub);
//! assert_eq!(&out[..p.written], b"{\"ok\":true,\"pong\":true}\n");
//! ```
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod args;
pub mod config;
pub mod connection;
pub mod decimal;
pub mod error;
pub mod hub;
mod json;
pub mod limits;
pub mod reading;
mod reply;
pub mod request;
mod sink;
pub mod stats;
pub mod store;
mod swar;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{Admit, Config, ConfigError, Full, Mode};
pub use connection::{turn_away, Close, Connection, Progress, Reason};
pub use decimal::Tenths;
pub use error::{ErrorCode, Field};
pub use hub::{Hub, LocalHub, Outcome, Ticket};
pub use reading::{Location, Reading};
pub use reply::BUSY;
pub use request::{decode, Request};
pub use stats::{Counters, Stats};
pub use store::{Entry, Store, StoreFull};
