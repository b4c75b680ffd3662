//! What the firmware serves, fixed at build time, and the command-line
//! overrides read through semihosting (feature `semihosting`), parsed by
//! the parser `envhub-tap` uses too ([`envhub_core::args`]).
//!
//! | setting | default | flag |
//! |---|---|---|
//! | address | 192.168.69.1/24 | `--ip ADDR/PREFIX` |
//! | MAC | 02:45:48:55:42:01 (locally administered, unicast) | - |
//! | TCP port | 8080 | `--port N` |
//! | clients served at once | [`MAX_CLIENTS`] (8) | `--max-clients N` (1 to 8) |
//! | clients from one address | every slot (8) | `--max-per-source N` |
//! | idle timeout | 300 s | `--idle-timeout SECS` (0: never) |
//! | mode | sensor | `--mode sensor\|echo` |
//!
//! One more socket than clients listens, to turn a client away with `busy`
//! when all the client slots are taken.

use envhub_core::args::{self, Flag};
use envhub_core::Config;

pub use envhub_core::args::ArgError;

/// Clients served at once: the firmware's client slots.
pub const MAX_CLIENTS: usize = 8;
/// TCP sockets: one per client slot and a spare that answers `busy`.
pub const SOCKETS: usize = MAX_CLIENTS + 1;
/// The default address.
pub const IP: [u8; 4] = [192, 168, 69, 1];
/// The default prefix length.
pub const PREFIX: u8 = 24;
/// The MAC address: locally administered (bit 1 of the first byte), unicast.
pub const MAC: [u8; 6] = [0x02, 0x45, 0x48, 0x55, 0x42, 0x01];
/// The default TCP port.
pub const PORT: u16 = 8080;

/// The firmware's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Its IPv4 address.
    pub ip: [u8; 4],
    /// The prefix length of its subnet.
    pub prefix: u8,
    /// Its Ethernet address.
    pub mac: [u8; 6],
    /// The TCP port it listens on.
    pub port: u16,
    /// What the core decides: mode, idle timeout, admission.
    pub config: Config,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ip: IP,
            prefix: PREFIX,
            mac: MAC,
            port: PORT,
            config: Config::embedded(MAX_CLIENTS),
        }
    }
}

impl Settings {
    /// The defaults with the flags in `args` applied. A first argument
    /// that is not a flag is the program name and is skipped. Flags take
    /// their value as the next argument or after `=`.
    pub fn from_args<'a, I>(args: I) -> Result<Self, ArgError<'a>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut settings = Settings::default();
        settings.config = args::parse(args, MAX_CLIENTS, |flag, value| {
            let taken = match flag {
                "--ip" => args::ipv4_cidr(value)
                    .map(|(ip, prefix)| (settings.ip, settings.prefix) = (ip, prefix))
                    .is_some(),
                "--port" => args::number(value, 1, u16::MAX.into())
                    .map(|n| settings.port = n as u16)
                    .is_some(),
                _ => return Flag::Unknown,
            };
            if taken {
                Flag::Taken
            } else {
                Flag::Invalid
            }
        })?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envhub_core::{ConfigError, Mode};

    fn parse(line: &str) -> Result<Settings, ArgError<'_>> {
        Settings::from_args(line.split_whitespace())
    }

    fn invalid<'a>(flag: &'a str, value: &'a str) -> Result<Settings, ArgError<'a>> {
        Err(ArgError::Invalid { flag, value })
    }

    #[test]
    fn defaults() {
        let s = parse("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.ip, [192, 168, 69, 1]);
        assert_eq!(s.prefix, 24);
        assert_eq!(s.port, 8080);
        assert_eq!(s.config.max_clients, 8);
        assert_eq!(s.config.max_per_source, 8);
        assert_eq!(s.config.idle_timeout_ms, 300_000);
        assert_eq!(s.config.mode, Mode::Sensor);
        assert_eq!(s.mac[0] & 0b11, 0b10, "locally administered unicast");
        assert_eq!(parse("envhub-fw").unwrap(), Settings::default());
    }

    #[test]
    fn every_flag() {
        let s = parse(
            "envhub-fw --port 9000 --max-clients 3 --idle-timeout 2 --mode echo --ip 10.0.0.7/8 --max-per-source 1",
        )
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.config.max_clients, 3);
        assert_eq!(s.config.max_per_source, 1);
        assert_eq!(s.config.idle_timeout_ms, 2000);
        assert_eq!(s.config.mode, Mode::Echo);
        assert_eq!((s.ip, s.prefix), ([10, 0, 0, 7], 8));
        let s = parse("--port=81 --mode=sensor --idle-timeout=0").unwrap();
        assert_eq!(
            (s.port, s.config.mode, s.config.idle_timeout_ms),
            (81, Mode::Sensor, 0)
        );
        let s = parse("--port 65535 --max-clients 1 --ip 0.0.0.255/32").unwrap();
        assert_eq!((s.port, s.config.max_clients), (65535, 1));
        assert_eq!((s.ip, s.prefix), ([0, 0, 0, 255], 32));
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(
            parse("envhub-fw --bind x"),
            Err(ArgError::Unknown("--bind"))
        );
        assert_eq!(parse("--port"), Err(ArgError::Missing("--port")));
        assert_eq!(parse("--port 0"), invalid("--port", "0"));
        assert_eq!(parse("--port 65536"), invalid("--port", "65536"));
        assert_eq!(
            parse("--max-clients 0"),
            Err(ArgError::Config(ConfigError::NoClients))
        );
        assert_eq!(
            parse("--max-clients 9"),
            Err(ArgError::Config(ConfigError::TooManyClients { most: 8 }))
        );
        assert_eq!(parse("--mode fast"), invalid("--mode", "fast"));
        assert_eq!(parse("--ip 1.2.3.4/33"), invalid("--ip", "1.2.3.4/33"));
        assert_eq!(parse("envhub-fw extra"), Err(ArgError::Unknown("extra")));
    }
}
