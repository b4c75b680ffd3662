//! What the firmware serves, fixed at build time, and the command-line
//! overrides read through semihosting (feature `semihosting`).
//!
//! | setting | default | flag |
//! |---|---|---|
//! | address | 192.168.69.1/24 | `--ip ADDR/PREFIX` |
//! | MAC | 02:45:48:55:42:01 (locally administered, unicast) | - |
//! | TCP port | 8080 | `--port N` |
//! | clients served at once | [`MAX_CLIENTS`] (8) | `--max-clients N` (1 to 8) |
//! | idle timeout | 300 s | `--idle-timeout SECS` |
//! | mode | sensor | `--mode sensor\|echo` |
//!
//! One more socket than clients listens, to turn a client away with `busy`
//! when all the client slots are taken.

use envhub_core::limits::DEFAULT_IDLE_TIMEOUT_MS;
use envhub_core::Mode;

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
    /// Clients served at once, 1 to [`MAX_CLIENTS`].
    pub max_clients: usize,
    /// Idle timeout in milliseconds.
    pub idle_timeout_ms: u64,
    /// Sensor or echo.
    pub mode: Mode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ip: IP,
            prefix: PREFIX,
            mac: MAC,
            port: PORT,
            max_clients: MAX_CLIENTS,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            mode: Mode::Sensor,
        }
    }
}

/// A command line the firmware cannot follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgError<'a> {
    /// An argument that is no known flag.
    Unknown(&'a str),
    /// A flag without its value.
    Missing(&'static str),
    /// A flag with a value it cannot take.
    Invalid(&'static str),
}

const FLAGS: [&str; 5] = [
    "--ip",
    "--port",
    "--max-clients",
    "--idle-timeout",
    "--mode",
];

impl Settings {
    /// The defaults with the flags in `args` applied. A first argument
    /// that is not a flag is the program name and is skipped. Flags take
    /// their value as the next argument or after `=`.
    pub fn from_args<'a, I>(args: I) -> Result<Self, ArgError<'a>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut settings = Settings::default();
        let mut args = args.into_iter().peekable();
        if args.peek().is_some_and(|a| !a.starts_with("--")) {
            args.next();
        }
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg, None),
            };
            let flag = *FLAGS
                .iter()
                .find(|f| **f == name)
                .ok_or(ArgError::Unknown(arg))?;
            let value = inline
                .or_else(|| args.next())
                .ok_or(ArgError::Missing(flag))?;
            settings.apply(flag, value).ok_or(ArgError::Invalid(flag))?;
        }
        Ok(settings)
    }

    fn apply(&mut self, flag: &str, value: &str) -> Option<()> {
        match flag {
            "--ip" => (self.ip, self.prefix) = parse_cidr(value)?,
            "--port" => self.port = number(value, 1, u64::from(u16::MAX))? as u16,
            "--max-clients" => self.max_clients = number(value, 1, MAX_CLIENTS as u64)? as usize,
            "--idle-timeout" => {
                self.idle_timeout_ms = number(value, 1, u64::MAX / 1000)? * 1000;
            }
            "--mode" => {
                self.mode = match value {
                    "sensor" => Mode::Sensor,
                    "echo" => Mode::Echo,
                    _ => return None,
                }
            }
            _ => return None,
        }
        Some(())
    }
}

/// A decimal number of ASCII digits only (no sign), from `min` to `max`.
/// One parser for every flag: each `str::parse` type would add its own
/// code to the firmware.
fn number(s: &str, min: u64, max: u64) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
    }
    (min..=max).contains(&n).then_some(n)
}

/// Parses `a.b.c.d/prefix`.
fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let prefix = number(prefix, 1, 32)? as u8;
    let mut ip = [0u8; 4];
    let mut parts = addr.split('.');
    for byte in &mut ip {
        *byte = number(parts.next()?, 0, 255)? as u8;
    }
    parts.next().is_none().then_some((ip, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Settings, ArgError<'_>> {
        Settings::from_args(line.split_whitespace())
    }

    #[test]
    fn defaults() {
        let s = parse("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.ip, [192, 168, 69, 1]);
        assert_eq!(s.prefix, 24);
        assert_eq!(s.port, 8080);
        assert_eq!(s.max_clients, 8);
        assert_eq!(s.idle_timeout_ms, 300_000);
        assert_eq!(s.mode, Mode::Sensor);
        assert_eq!(s.mac[0] & 0b11, 0b10, "locally administered unicast");
        assert_eq!(parse("envhub-fw").unwrap(), Settings::default());
    }

    #[test]
    fn every_flag() {
        let s = parse(
            "envhub-fw --port 9000 --max-clients 3 --idle-timeout 2 --mode echo --ip 10.0.0.7/8",
        )
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.max_clients, 3);
        assert_eq!(s.idle_timeout_ms, 2000);
        assert_eq!(s.mode, Mode::Echo);
        assert_eq!((s.ip, s.prefix), ([10, 0, 0, 7], 8));
        let s = parse("--port=81 --mode=sensor").unwrap();
        assert_eq!((s.port, s.mode), (81, Mode::Sensor));
        let s = parse("--port 65535 --max-clients 1 --ip 0.0.0.255/32").unwrap();
        assert_eq!((s.port, s.max_clients), (65535, 1));
        assert_eq!((s.ip, s.prefix), ([0, 0, 0, 255], 32));
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(
            parse("envhub-fw --bind x"),
            Err(ArgError::Unknown("--bind"))
        );
        assert_eq!(parse("--port"), Err(ArgError::Missing("--port")));
        assert_eq!(parse("--port 0"), Err(ArgError::Invalid("--port")));
        assert_eq!(parse("--port 65536"), Err(ArgError::Invalid("--port")));
        assert_eq!(
            parse("--max-clients 0"),
            Err(ArgError::Invalid("--max-clients"))
        );
        assert_eq!(
            parse("--max-clients 9"),
            Err(ArgError::Invalid("--max-clients"))
        );
        assert_eq!(
            parse("--idle-timeout 0"),
            Err(ArgError::Invalid("--idle-timeout"))
        );
        assert_eq!(
            parse("--idle-timeout 99999999999999999"),
            Err(ArgError::Invalid("--idle-timeout"))
        );
        assert_eq!(parse("--mode fast"), Err(ArgError::Invalid("--mode")));
        for port in ["", "+80", "-1", "8o", "99999999999999999999999"] {
            assert_eq!(
                Settings::from_args(["--port", port]),
                Err(ArgError::Invalid("--port")),
                "{port:?}"
            );
        }
        for ip in [
            "1.2.3/24",
            "1.2.3.4",
            "1.2.3.4/0",
            "1.2.3.4/33",
            "1.2.3.256/24",
            "1.2.3.4.5/24",
            "+1.2.3.4/24",
        ] {
            assert_eq!(
                parse(&format!("--ip {ip}")),
                Err(ArgError::Invalid("--ip")),
                "{ip}"
            );
        }
        assert_eq!(parse("envhub-fw extra"), Err(ArgError::Unknown("extra")));
    }
}
