//! What the core decides for every shell: the mode, the idle timeout and
//! admission (how many connections, how many from one source).
//!
//! One type, [`Config`], built from the command line in one place per
//! environment (clap on the host; [`crate::args`] for `envhub-tap` and the
//! firmware) and checked by [`Config::check`], the one place that refuses
//! settings no shell can run with.

use core::fmt;

use crate::limits::{DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CLIENTS, MIN_DEFAULT_MAX_PER_SOURCE};

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mode {
    /// The line protocol.
    #[default]
    Sensor,
    /// Every byte back, unchanged; no replies of its own.
    Echo,
}

impl Mode {
    /// Every `--mode` name.
    pub const NAMES: [&'static str; 2] = ["sensor", "echo"];

    /// `sensor` or `echo`, as `--mode` spells them.
    pub fn from_name(name: &str) -> Option<Mode> {
        match name {
            "sensor" => Some(Mode::Sensor),
            "echo" => Some(Mode::Echo),
            _ => None,
        }
    }

    /// The `--mode` spelling.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Sensor => "sensor",
            Mode::Echo => "echo",
        }
    }
}

/// How a server's connections behave and whom it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Sensor or echo.
    pub mode: Mode,
    /// Close a connection that sends no complete line for this long;
    /// 0 never does.
    pub idle_timeout_ms: u64,
    /// Most connections open at once; one more gets `busy` and a close.
    pub max_clients: usize,
    /// Most connections open at once from one source address; one more
    /// gets `busy` and a close.
    pub max_per_source: usize,
}

impl Default for Config {
    /// The host's defaults: sensor mode, 300 s idle timeout, 1024 clients,
    /// 256 per source.
    fn default() -> Self {
        Config::host(DEFAULT_MAX_CLIENTS)
    }
}

/// Settings no shell can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// `max_clients` is 0: every client would get `busy`.
    NoClients,
    /// `max_clients` is more than the shell has slots for.
    TooManyClients {
        /// The most the shell can serve.
        most: usize,
    },
    /// `max_per_source` is 0: every client would get `busy`.
    NoClientsPerSource,
}

impl ConfigError {
    /// The flag whose value is wrong, for a shell that prints no numbers.
    pub const fn flag(self) -> &'static str {
        match self {
            ConfigError::NoClients | ConfigError::TooManyClients { .. } => "--max-clients",
            ConfigError::NoClientsPerSource => "--max-per-source",
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoClients => f.write_str("--max-clients must be at least 1"),
            ConfigError::TooManyClients { most } => {
                write!(f, "--max-clients must be between 1 and {most}")
            }
            ConfigError::NoClientsPerSource => f.write_str("--max-per-source must be at least 1"),
        }
    }
}

/// Whether a new connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Admit {
    /// Serve it.
    Accept,
    /// Send [`crate::turn_away`]'s bytes (`busy`) and close it.
    Busy(Full),
}

/// Which limit turned a connection away, for the shell's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Full {
    /// `max_clients` connections are open.
    Server,
    /// `max_per_source` connections from its source are open.
    Source,
}

impl Full {
    /// A few words for a log line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Full::Server => "server full",
            Full::Source => "too many connections from this source",
        }
    }
}

impl Config {
    /// The host's configuration for `max_clients`: its per-source limit is
    /// [`Config::host_max_per_source`].
    pub const fn host(max_clients: usize) -> Self {
        Config {
            mode: Mode::Sensor,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_clients,
            max_per_source: Config::host_max_per_source(max_clients),
        }
    }

    /// The configuration of a shell with `slots` client slots
    /// (`envhub-tap`, the firmware): every slot served, and every slot
    /// open to one source, since there are few.
    pub const fn embedded(slots: usize) -> Self {
        Config {
            mode: Mode::Sensor,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            max_clients: slots,
            max_per_source: slots,
        }
    }

    /// The host's default per-source limit: a quarter of `max_clients`,
    /// rounded up, but never below 64 (so small limits behave as if there
    /// were none).
    pub const fn host_max_per_source(max_clients: usize) -> usize {
        let quarter = max_clients.div_ceil(4);
        if quarter < MIN_DEFAULT_MAX_PER_SOURCE {
            MIN_DEFAULT_MAX_PER_SOURCE
        } else {
            quarter
        }
    }

    /// Refuses what no shell can run with (0 clients, 0 per source, more
    /// clients than the shell's `slots`). Every shell calls it before it
    /// serves; its command line then exits with status 2.
    pub fn check(&self, slots: usize) -> Result<(), ConfigError> {
        if self.max_clients == 0 {
            return Err(ConfigError::NoClients);
        }
        if self.max_clients > slots {
            return Err(ConfigError::TooManyClients { most: slots });
        }
        if self.max_per_source == 0 {
            return Err(ConfigError::NoClientsPerSource);
        }
        Ok(())
    }

    /// Decides on a new connection, with `open` connections open now and
    /// `from_source` of them from the new one's source address (both not
    /// counting the new one).
    pub fn admit(&self, open: usize, from_source: usize) -> Admit {
        if open >= self.max_clients {
            Admit::Busy(Full::Server)
        } else if from_source >= self.max_per_source {
            Admit::Busy(Full::Source)
        } else {
            Admit::Accept
        }
    }

    /// The idle deadline of a connection whose last complete line came at
    /// `now` (never, when the idle timeout is 0).
    pub(crate) fn idle_deadline(&self, now: u64) -> u64 {
        match self.idle_timeout_ms {
            0 => u64::MAX,
            ms => now.saturating_add(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_per_source_default_is_a_quarter_but_at_least_64() {
        assert_eq!(Config::host_max_per_source(1), 64);
        assert_eq!(Config::host_max_per_source(200), 64);
        assert_eq!(Config::host_max_per_source(256), 64);
        assert_eq!(Config::host_max_per_source(257), 65);
        assert_eq!(Config::host_max_per_source(1024), 256);
        assert_eq!(Config::host_max_per_source(1025), 257);
        assert_eq!(Config::default().max_per_source, 256);
        assert_eq!(Config::embedded(8).max_per_source, 8);
    }

    #[test]
    fn admission_checks_both_limits() {
        let c = Config {
            max_clients: 4,
            max_per_source: 2,
            ..Config::default()
        };
        assert_eq!(c.admit(0, 0), Admit::Accept);
        assert_eq!(c.admit(3, 1), Admit::Accept);
        assert_eq!(c.admit(4, 0), Admit::Busy(Full::Server));
        assert_eq!(c.admit(2, 2), Admit::Busy(Full::Source));
        assert_eq!(c.admit(4, 2), Admit::Busy(Full::Server));
    }

    #[test]
    fn zero_limits_are_refused() {
        assert_eq!(Config::host(0).check(10), Err(ConfigError::NoClients));
        assert_eq!(
            Config::embedded(9).check(8),
            Err(ConfigError::TooManyClients { most: 8 })
        );
        let c = Config {
            max_per_source: 0,
            ..Config::embedded(8)
        };
        assert_eq!(c.check(8), Err(ConfigError::NoClientsPerSource));
        assert_eq!(Config::embedded(8).check(8), Ok(()));
    }

    #[test]
    fn idle_timeout_zero_is_never() {
        let c = Config {
            idle_timeout_ms: 0,
            ..Config::default()
        };
        assert_eq!(c.idle_deadline(5), u64::MAX);
        assert_eq!(Config::default().idle_deadline(5), 300_005);
    }
}
