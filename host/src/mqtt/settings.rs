//! The bridge's configuration, checked once at start: `--mqtt URL` and the
//! flags around it. Every problem is one line for the user (the server then
//! exits with status 2).

use crate::cli::Cli;
use crate::mqtt::slug::is_safe;

/// `--mqtt-prefix` when not given.
pub const DEFAULT_PREFIX: &str = "envhub";
/// `--ha-prefix` when not given.
pub const DEFAULT_HA_PREFIX: &str = "homeassistant";
/// `--mqtt-queue` when not given: readings kept in memory with `--no-db`.
pub const DEFAULT_QUEUE: usize = 10_000;
/// The broker's port when the URL names none.
pub const DEFAULT_PORT: u16 = 1883;
/// The environment variable holding the password for `--mqtt-user`.
pub const PASSWORD_ENV: &str = "ENVHUB_MQTT_PASSWORD";

/// Everything the bridge needs to know, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The broker's host name or address (IPv6 without brackets).
    pub host: String,
    /// The broker's port.
    pub port: u16,
    /// This gateway's id: `[A-Za-z0-9_-]+`.
    pub gateway_id: String,
    /// First level of the state and availability topics.
    pub prefix: String,
    /// Home Assistant's discovery prefix.
    pub ha_prefix: String,
    /// Whether to publish Home Assistant discovery configs.
    pub discovery: bool,
    /// User name and password, if the broker wants them.
    pub credentials: Option<(String, String)>,
    /// Readings kept in memory while the broker is away (`--no-db` only).
    pub queue: usize,
}

impl Settings {
    /// The bridge's settings from the command line and the environment;
    /// `Ok(None)` when `--mqtt` is absent.
    pub fn from_cli(cli: &Cli) -> Result<Option<Settings>, String> {
        let flags = &cli.mqtt;
        let Some(url) = &flags.url else {
            return Ok(None);
        };
        let (host, port) = parse_url(url)?;
        let gateway_id = match &flags.gateway_id {
            Some(id) => reduce(id)
                .ok_or_else(|| format!("--gateway-id {id:?} has no character in [A-Za-z0-9_-]"))?,
            None => {
                let name = host_name();
                reduce(&name).ok_or_else(|| {
                    format!("the host name {name:?} has no character in [A-Za-z0-9_-]: give --gateway-id")
                })?
            }
        };
        check_prefix("--mqtt-prefix", &flags.mqtt_prefix)?;
        check_prefix("--ha-prefix", &flags.ha_prefix)?;
        if flags.mqtt_queue == 0 {
            return Err("--mqtt-queue must be at least 1".into());
        }
        let credentials = flags.mqtt_user.as_ref().map(|user| {
            let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
            (user.clone(), password)
        });
        Ok(Some(Settings {
            host,
            port,
            gateway_id,
            prefix: flags.mqtt_prefix.clone(),
            ha_prefix: flags.ha_prefix.clone(),
            discovery: !flags.no_ha_discovery,
            credentials,
            queue: flags.mqtt_queue,
        }))
    }

    /// The MQTT client id: `envhub-<gateway-id>`, stable and unique per
    /// gateway.
    pub fn client_id(&self) -> String {
        format!("envhub-{}", self.gateway_id)
    }

    /// `host:port` for log lines.
    pub fn broker(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// `mqtt://HOST[:PORT][/]` into host and port. Parsed by hand: the grammar
/// is this one line, and a URL crate would accept much that we must refuse
/// (user info, paths, other schemes).
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("--mqtt {url:?}: expected mqtt://HOST:PORT"));
    };
    if !scheme.eq_ignore_ascii_case("mqtt") {
        return Err(format!(
            "--mqtt {url:?}: unknown scheme {scheme:?} (only mqtt:// is supported; no TLS)"
        ));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains('@') {
        return Err(format!(
            "--mqtt {url:?}: give the user with --mqtt-user and the password in {PASSWORD_ENV}"
        ));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(format!(
            "--mqtt {url:?}: expected mqtt://HOST:PORT, without a path"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("--mqtt {url:?}: missing ']' after the IPv6 address"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or_else(|| {
                    format!("--mqtt {url:?}: expected ':PORT' after the IPv6 address")
                })?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains([':', '[', ']']) && !authority.starts_with('[') {
        return Err(format!("--mqtt {url:?}: expected mqtt://HOST:PORT"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => return Err(format!("--mqtt {url:?}: {p:?} is not a port (1-65535)")),
        },
    };
    Ok((host.to_string(), port))
}

/// `text` with every byte outside `[A-Za-z0-9_-]` removed; `None` if
/// nothing is left.
pub fn reduce(text: &str) -> Option<String> {
    let kept: String = text
        .bytes()
        .filter(|b| is_safe(*b))
        .map(char::from)
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// A prefix is one or more topic levels: not empty, no wildcard, no empty
/// level.
fn check_prefix(flag: &str, prefix: &str) -> Result<(), String> {
    if prefix.is_empty()
        || prefix.contains(['+', '#', '\0'])
        || prefix.split('/').any(str::is_empty)
    {
        return Err(format!(
            "{flag} {prefix:?}: expected topic levels such as \"envhub\" or \"home/envhub\" (no '+', '#' or empty level)"
        ));
    }
    Ok(())
}

/// This machine's host name ("" if it cannot be read).
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Option<Settings>, String> {
        let cli = Cli::try_parse_from(std::iter::once("envhub").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Settings::from_cli(&cli)
    }

    #[test]
    fn off_without_mqtt() {
        assert_eq!(settings(&[]).unwrap(), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://localhost:1884").unwrap(),
            ("localhost".into(), 1884)
        );
        assert_eq!(
            parse_url("MQTT://10.0.0.2").unwrap(),
            ("10.0.0.2".into(), 1883)
        );
        assert_eq!(
            parse_url("mqtt://broker/").unwrap(),
            ("broker".into(), 1883)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1885").unwrap(),
            ("::1".into(), 1885)
        );
        assert_eq!(parse_url("mqtt://[::1]").unwrap(), ("::1".into(), 1883));
        for bad in [
            "localhost:1883",
            "mqtts://broker:8883",
            "http://broker",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://broker:0",
            "mqtt://broker:99999",
            "mqtt://broker:x",
            "mqtt://user:pw@broker",
            "mqtt://broker/topic",
            "mqtt://[::1",
            "mqtt://::1:1883",
        ] {
            let err = parse_url(bad).unwrap_err();
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn defaults_and_flags() {
        let s = settings(&["--mqtt", "mqtt://127.0.0.1:1883", "--gateway-id", "gw.1"])
            .unwrap()
            .unwrap();
        assert_eq!(s.gateway_id, "gw1");
        assert_eq!(s.client_id(), "envhub-gw1");
        assert_eq!(s.prefix, DEFAULT_PREFIX);
        assert_eq!(s.ha_prefix, DEFAULT_HA_PREFIX);
        assert!(s.discovery);
        assert_eq!(s.queue, DEFAULT_QUEUE);
        assert_eq!(s.credentials, None);
        let s = settings(&[
            "--mqtt=mqtt://b",
            "--mqtt-prefix=home/env",
            "--ha-prefix=ha",
            "--no-ha-discovery",
            "--mqtt-queue=5",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.prefix.as_str(), s.ha_prefix.as_str()),
            ("home/env", "ha")
        );
        assert!(!s.discovery);
        assert_eq!(s.queue, 5);
        // The default id is the host name, reduced.
        assert!(!s.gateway_id.is_empty());
        assert!(s.gateway_id.bytes().all(is_safe));
    }

    #[test]
    fn bad_configuration_is_one_line() {
        for args in [
            &["--mqtt", "tcp://b"][..],
            &["--mqtt", "mqtt://b", "--gateway-id", "..."],
            &["--mqtt", "mqtt://b", "--mqtt-prefix", "a/+/b"],
            &["--mqtt", "mqtt://b", "--ha-prefix", ""],
            &["--mqtt", "mqtt://b", "--ha-prefix", "ha/"],
            &["--mqtt", "mqtt://b", "--mqtt-queue", "0"],
        ] {
            let err = settings(args).unwrap_err();
            assert!(!err.contains('\n'), "{args:?}: {err}");
        }
    }
}
