//! The command line of the shells that run the `no_std` loop: `envhub-tap`
//! and the firmware (whose arguments come through semihosting). One parser,
//! so both have the same flags, the same defaults and the same `--mode`
//! names. It is written by hand because it must build without `std` and
//! without allocation (clap needs both), and it is small: every flag takes
//! one value, as `--flag VALUE` or `--flag=VALUE`.
//!
//! The core's flags (`--max-clients`, `--max-per-source`, `--idle-timeout`,
//! `--mode`) are parsed here; a shell's own flags (`--ip`, `--port`,
//! `--tap`...) go to its callback, which can use [`number`], [`ipv4_cidr`]
//! and [`mac`]. The host uses clap and builds the same [`Config`].

use core::fmt;

use crate::config::{Config, ConfigError, Mode};

/// What a shell's callback made of one flag and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Not one of the shell's flags.
    Unknown,
    /// Taken.
    Taken,
    /// The shell's flag, with a value it cannot take.
    Invalid,
}

/// A command line that cannot be followed: the shell prints it as one line
/// and exits with status 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgError<'a> {
    /// An argument that is no known flag.
    Unknown(&'a str),
    /// A flag without its value.
    Missing(&'a str),
    /// A flag with a value it cannot take.
    Invalid {
        /// The flag.
        flag: &'a str,
        /// Its value.
        value: &'a str,
    },
    /// Values that parse but cannot run together (see [`Config::check`]).
    Config(ConfigError),
}

impl fmt::Display for ArgError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Unknown(arg) => write!(f, "unknown argument {arg}"),
            ArgError::Missing(flag) => write!(f, "{flag} needs a value"),
            ArgError::Invalid { flag, value } => write!(f, "invalid value {value:?} for {flag}"),
            ArgError::Config(e) => write!(f, "{e}"),
        }
    }
}

/// Parses `args` for a shell with `slots` client slots: the core's flags
/// give the returned [`Config`] (defaults: [`Config::embedded`]`(slots)`),
/// every other flag goes to `shell`. A first argument that does not start
/// with `--` is the program name and is skipped.
///
/// `--max-clients N` (1 to `slots`), `--max-per-source N` (default: every
/// slot), `--idle-timeout SECS` (0: never), `--mode sensor|echo`.
pub fn parse<'a, I, F>(args: I, slots: usize, mut shell: F) -> Result<Config, ArgError<'a>>
where
    I: IntoIterator<Item = &'a str>,
    F: FnMut(&'a str, &'a str) -> Flag,
{
    let mut config = Config::embedded(slots);
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| !a.starts_with("--")) {
        args.next();
    }
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg, None),
        };
        if !flag.starts_with("--") {
            return Err(ArgError::Unknown(arg));
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or(ArgError::Missing(flag))?;
        let taken = match flag {
            "--max-clients" => number(value, 0, u32::MAX)
                .map(|n| config.max_clients = n as usize)
                .is_some(),
            "--max-per-source" => number(value, 0, u32::MAX)
                .map(|n| config.max_per_source = n as usize)
                .is_some(),
            "--idle-timeout" => number(value, 0, u32::MAX)
                .map(|secs| config.idle_timeout_ms = u64::from(secs) * 1000)
                .is_some(),
            "--mode" => Mode::from_name(value)
                .map(|mode| config.mode = mode)
                .is_some(),
            _ => match shell(flag, value) {
                Flag::Taken => true,
                Flag::Invalid => false,
                Flag::Unknown => return Err(ArgError::Unknown(flag)),
            },
        };
        if !taken {
            return Err(ArgError::Invalid { flag, value });
        }
    }
    config.check(slots).map_err(ArgError::Config)?;
    Ok(config)
}

/// A decimal number of ASCII digits only (no sign, no spaces), from `min`
/// to `max` (32 bits are enough for every flag: `--idle-timeout` counts
/// seconds). (Never inlined: the firmware calls it for every flag, and one
/// copy keeps its flash budget.)
#[inline(never)]
pub fn number(s: &str, min: u32, max: u32) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for b in s.bytes() {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n = n.checked_mul(10)?.checked_add(u32::from(digit))?;
    }
    (min..=max).contains(&n).then_some(n)
}

/// `a.b.c.d/prefix`, prefix 1 to 32.
pub fn ipv4_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let prefix = number(prefix, 1, 32)? as u8;
    let mut ip = [0u8; 4];
    let mut parts = addr.split('.');
    for byte in &mut ip {
        *byte = number(parts.next()?, 0, 255)? as u8;
    }
    parts.next().is_none().then_some((ip, prefix))
}

/// A unicast MAC address, six hex bytes separated by `:`.
pub fn mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    let unicast = mac[0] & 1 == 0;
    (parts.next().is_none() && unicast).then_some(mac)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::config::Full;
    use std::format;

    /// A shell with one flag of its own, `--port`.
    fn parse_line(line: &str) -> Result<(Config, u16), ArgError<'_>> {
        let mut port = 8080;
        let config = parse(line.split_whitespace(), 8, |flag, value| match flag {
            "--port" => match number(value, 1, 65535) {
                Some(n) => {
                    port = n as u16;
                    Flag::Taken
                }
                None => Flag::Invalid,
            },
            _ => Flag::Unknown,
        })?;
        Ok((config, port))
    }

    #[test]
    fn defaults_are_every_slot() {
        let (c, port) = parse_line("envhub-fw").unwrap();
        assert_eq!(c, Config::embedded(8));
        assert_eq!((c.max_clients, c.max_per_source, port), (8, 8, 8080));
        assert_eq!(c.idle_timeout_ms, 300_000);
        assert_eq!(c.mode, Mode::Sensor);
        assert_eq!(parse_line("").unwrap().0, Config::embedded(8));
    }

    #[test]
    fn every_flag() {
        let (c, port) = parse_line(
            "x --port 9000 --max-clients 3 --max-per-source=2 --idle-timeout 2 --mode echo",
        )
        .unwrap();
        assert_eq!(port, 9000);
        assert_eq!(
            (c.max_clients, c.max_per_source, c.idle_timeout_ms, c.mode),
            (3, 2, 2000, Mode::Echo)
        );
        assert_eq!(c.admit(1, 2), Admit::Busy(Full::Source));
        let (c, _) = parse_line("--idle-timeout 0").unwrap();
        assert_eq!(c.idle_timeout_ms, 0);
    }

    use crate::config::Admit;

    #[test]
    fn bad_command_lines() {
        assert_eq!(parse_line("x --bind y"), Err(ArgError::Unknown("--bind")));
        assert_eq!(parse_line("x extra"), Err(ArgError::Unknown("extra")));
        assert_eq!(parse_line("--port"), Err(ArgError::Missing("--port")));
        assert_eq!(
            parse_line("--port 0"),
            Err(ArgError::Invalid {
                flag: "--port",
                value: "0"
            })
        );
        assert_eq!(
            parse_line("--max-clients 0"),
            Err(ArgError::Config(ConfigError::NoClients))
        );
        assert_eq!(
            parse_line("--max-clients 9"),
            Err(ArgError::Config(ConfigError::TooManyClients { most: 8 }))
        );
        assert_eq!(
            parse_line("--max-per-source 0"),
            Err(ArgError::Config(ConfigError::NoClientsPerSource))
        );
        for bad in [
            "--mode fast",
            "--idle-timeout -1",
            "--idle-timeout 99999999999999999",
            "--max-clients +1",
        ] {
            assert!(
                matches!(parse_line(bad), Err(ArgError::Invalid { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            format!("{}", parse_line("--max-clients 0").unwrap_err()),
            "--max-clients must be at least 1"
        );
    }

    #[test]
    fn numbers_addresses_and_macs() {
        assert_eq!(number("0", 0, 1), Some(0));
        assert_eq!(number("4294967295", 0, u32::MAX), Some(u32::MAX));
        for bad in [
            "",
            "+80",
            "-1",
            "8o",
            "4294967296",
            "99999999999999999999999",
        ] {
            assert_eq!(number(bad, 0, u32::MAX), None, "{bad:?}");
        }
        assert_eq!(ipv4_cidr("10.0.0.7/8"), Some(([10, 0, 0, 7], 8)));
        assert_eq!(ipv4_cidr("0.0.0.255/32"), Some(([0, 0, 0, 255], 32)));
        for bad in [
            "1.2.3/24",
            "1.2.3.4",
            "1.2.3.4/0",
            "1.2.3.4/33",
            "1.2.3.256/24",
            "1.2.3.4.5/24",
            "+1.2.3.4/24",
        ] {
            assert_eq!(ipv4_cidr(bad), None, "{bad}");
        }
        assert_eq!(mac("02:00:00:45:48:01"), Some([2, 0, 0, 0x45, 0x48, 1]));
        for bad in [
            "03:00:00:00:00:01",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:zz:00:00:00:01",
            "02:+1:00:00:00:01",
        ] {
            assert_eq!(mac(bad), None, "{bad}");
        }
    }
}
