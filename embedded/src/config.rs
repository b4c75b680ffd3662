//! How a [`crate::Server`] behaves.

use core::fmt;

use envhub_core::limits::DEFAULT_IDLE_TIMEOUT_MS;
use envhub_core::Mode;

/// The server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The TCP port every slot listens on.
    pub port: u16,
    /// Clients served at once; further clients get `busy`. At most the
    /// number of slots minus one: one slot stays spare to say `busy`.
    pub max_clients: usize,
    /// Close a connection that sends no complete line for this long.
    pub idle_timeout_ms: u64,
    /// Sensor (the line protocol) or echo.
    pub mode: Mode,
}

impl Config {
    /// `port`, `max_clients`, the default idle timeout (300 s), sensor mode.
    pub const fn new(port: u16, max_clients: usize) -> Self {
        Config {
            port,
            max_clients,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            mode: Mode::Sensor,
        }
    }

    /// The per-connection settings of the core.
    pub(crate) fn connection(&self) -> envhub_core::Config {
        envhub_core::Config {
            mode: self.mode,
            idle_timeout_ms: self.idle_timeout_ms,
        }
    }

    /// Checks the settings against `slots` sockets with `tx`-byte send
    /// buffers.
    pub(crate) fn check(&self, slots: usize, tx: usize) -> Result<(), ConfigError> {
        if self.port == 0 {
            return Err(ConfigError::PortZero);
        }
        if self.max_clients == 0 || self.max_clients >= slots {
            return Err(ConfigError::MaxClients { slots });
        }
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
    /// `max_clients` must be between 1 and `slots - 1`.
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
                "max clients must be between 1 and {} ({slots} sockets, one kept spare for busy)",
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
