//! The MQTT bridge: readings into Home Assistant (issue 9).
//!
//! `--mqtt mqtt://HOST:PORT` turns it on. Every kept reading is published,
//! retained and with QoS 1, to `<prefix>/<gateway-id>/<slug>/state`; Home
//! Assistant finds the sensors through discovery configs; the gateway's
//! availability is `<prefix>/<gateway-id>/status` (`online`, last will
//! `offline`). With history on, the bridge forwards the `readings` table
//! from a cursor kept in the database, advanced only on PUBACK, so a broker
//! outage or a restart loses nothing; with `--no-db` it keeps a bounded
//! queue in memory.
//!
//! - [`settings`]: the flags, checked (bad configuration is one line).
//! - [`slug`]: topic-safe location names.
//! - [`payload`]: topics, state and discovery payloads.
//! - [`backoff`]: reconnect delays.
//! - [`window`]: readings in flight (pure).
//! - [`source`]: the database log and the in-memory queue.
//! - [`bridge`]: the threads and the loop.

pub mod backoff;
pub mod bridge;
pub mod payload;
pub mod settings;
pub mod slug;
pub mod source;
pub mod window;

pub use bridge::Bridge;
pub use settings::Settings;
