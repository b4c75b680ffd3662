//! How a [`crate::Server`] behaves.

use core::fmt;

/// The server's settings: its port and what the core decides (mode, idle
/// timeout, admission), built by [`envhub_core::args::parse`] in both
/// shells (`envhub-tap` and the firmware).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The TCP port every slot listens on.
    pub port: u16,
    /// Mode, idle timeout, `max_clients` (at most the number of slots minus
    /// one: one slot stays spare to say `busy`) and `max_per_source`.
    pub core: envhub_core::Config,
}

impl Config {
    /// `port` and `max_clients` with the core's defaults for a shell with
    /// few slots ([`envhub_core::Config::embedded`]): every slot open to one
    /// source, 300 s idle timeout, sensor mode.
    pub const fn new(port: u16, max_clients: usize) -> Self {
        Config {
            port,
            core: envhub_core::Config::embedded(max_clients),
        }
    }

    /// Checks the settings against `slots` sockets with `tx`-byte send
    /// buffers.
    pub(crate) fn check(&self, slots: usize, tx: usize) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(ConfigError::PortZero);
        }
        self.core
            .check(slots.saturating_sub(1))
            .map_err(|_| ConfigError::MaxClients { slots })?;
        if tx < envhub_core::BUSY.len() {
            return Err(ConfigError::SendBufferTooSmall);
        }
        Ok(())
    }
}

/// Settings a [`crate::Server`] cannot run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// Port 0 cannot be listened on.
    PortZero,
    /// `max_clients` must be between 1 and `slots - 1`, and
    /// `max_per_source` at least 1.
    MaxClients {
        /// The sockets the server has.
        slots: usize,
    },
    /// A send buffer cannot hold even a `busy` reply.
    SendBufferTooSmall,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::PortZero => f.write_str("port 0 cannot be listened on"),
            ConfigError::MaxClients { slots } => write!(
                f,
                "max clients must be between 1 and {} ({slots} sockets, one kept spare for busy), \
                 max per source at least 1",
                slots.saturating_sub(1)
            ),
            ConfigError::SendBufferTooSmall => f.write_str("socket send buffers are too small"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_slot_stays_spare() {
        assert_eq!(Config::new(8080, 8).check(9, 2048), Ok(()));
        assert_eq!(
            Config::new(8080, 9).check(9, 2048),
            Err(ConfigError::MaxClients { slots: 9 })
        );
        assert_eq!(
            Config::new(8080, 0).check(9, 2048),
            Err(ConfigError::MaxClients { slots: 9 })
        );
        assert_eq!(Config::new(0, 1).check(9, 2048), Err(ConfigError::PortZero));
        assert_eq!(
            Config::new(1, 1).check(2, 8),
            Err(ConfigError::SendBufferTooSmall)
        );
    }
}
