//! The command line (PROTOCOL.md, "Command-line contract"), parsed with clap.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, ValueEnum};
use envhub_core::limits::DEFAULT_MAX_CLIENTS;
use envhub_core::{Config, Mode};

use crate::history::{self, Sync};

/// The envhub server: sensors send JSON lines over TCP, envhub validates
/// them, keeps the newest reading per location and answers every line.
///
/// Stops gracefully on SIGINT and SIGTERM. Logs go to stderr; set RUST_LOG
/// (e.g. RUST_LOG=debug) to change how much is logged (default: info).
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "envhub", version)]
pub struct Cli {
    /// Where to listen: an IPv4 address and port (127.0.0.1:8080), or an
    /// IPv6 address in brackets ([::1]:8080). Port 0 picks a free port; the
    /// address actually bound is printed on stdout as `listening on ADDR`.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8080", value_parser = parse_bind)]
    pub bind: SocketAddr,

    /// Most connections served at once. A connection beyond it gets the
    /// `busy` reply and is closed at once (in echo mode: closed silently).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CLIENTS as u64)]
    pub max_clients: u64,

    /// Most connections served at once from one source address; one more
    /// gets the `busy` reply and is closed. Default: a quarter of
    /// --max-clients, rounded up, but at least 64.
    #[arg(long, value_name = "N")]
    pub max_per_source: Option<u64>,

    /// Event-loop threads serving the connections. Default: the number of
    /// CPUs this process may run on.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// Close a connection that sends no complete line for this many seconds
    /// (fractions allowed, e.g. 0.5), after an `idle_timeout` reply; 0 never
    /// closes an idle connection.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_secs)]
    pub idle_timeout: Duration,

    /// What the server speaks: `sensor` is the envhub line protocol; `echo`
    /// sends every received byte back unchanged (a benchmark ceiling).
    #[arg(long, value_name = "MODE", default_value = "sensor", value_parser = parse_mode())]
    pub mode: Mode,

    /// The clients' text encoding. `gbk` decodes requests from GBK before
    /// the protocol sees them and encodes replies to GBK; the 512-byte line
    /// limit then counts the UTF-8 bytes after decoding. Ignored in echo
    /// mode, which returns bytes unchanged.
    #[arg(long, value_enum, default_value_t = Encoding::Utf8)]
    pub encoding: Encoding,

    /// The history: every acknowledged reading is kept in this SQLite file
    /// (created if missing; WAL mode). A reading is acknowledged only once
    /// it is committed there, and a restart restores `latest` from it. One
    /// envhub per file. Echo mode never opens it.
    #[arg(long, value_name = "PATH", default_value = "envhub.db")]
    pub db: PathBuf,

    /// Keep no history: readings live only in memory and are acknowledged
    /// as soon as they are stored there.
    #[arg(long, conflicts_with_all = ["db", "sync", "retention_days"])]
    pub no_db: bool,

    /// `normal`: an acknowledged reading survives a crash of envhub
    /// (kill -9). `full`: it also survives a power cut (fsync per commit).
    #[arg(long, value_enum, default_value_t = Sync::Normal)]
    pub sync: Sync,

    /// Delete rows older than this many days, a few hundred at a time;
    /// 0 keeps everything.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub retention_days: u32,

    /// Where the dashboard, its JSON API and the Prometheus metrics listen
    /// (HTTP), or `off`. The default is loopback only: use 0.0.0.0:8081 to
    /// open the page from other devices (anyone who can reach the port then
    /// sees every reading; there is no login). Once bound, the server prints
    /// `dashboard on http://ADDR/` on stdout.
    #[arg(long, value_name = "ADDR:PORT|off", default_value = crate::http::DEFAULT_ADDR, value_parser = parse_http)]
    pub http: HttpAddr,

    /// Most dashboard event streams (`/api/events`) open at once; one more
    /// gets HTTP 503.
    #[arg(long, value_name = "N", default_value_t = crate::http::DEFAULT_MAX_CLIENTS as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub http_max_clients: u64,

    /// The MQTT bridge (boxed: a large group of flags most runs leave
    /// unset).
    #[command(flatten)]
    pub mqtt: Box<MqttFlags>,
}

/// The MQTT bridge's flags (`--mqtt` and the flags around it).
#[derive(Debug, Clone, PartialEq, Args)]
pub struct MqttFlags {
    /// Publish every kept reading to this MQTT broker for Home Assistant:
    /// mqtt://HOST:PORT (port 1883 when left out; no TLS). Off when absent.
    /// A broker that is down or refuses is not fatal: readings wait and go
    /// out when it is back.
    #[arg(long = "mqtt", value_name = "URL")]
    pub url: Option<String>,

    /// This gateway's id in MQTT topics and Home Assistant ids, reduced to
    /// [A-Za-z0-9_-] (default: the host name, reduced). The MQTT client id
    /// is envhub-<ID>.
    #[arg(long, value_name = "ID")]
    pub gateway_id: Option<String>,

    /// First level(s) of the state and availability topics:
    /// <P>/<gateway-id>/<location>/state and <P>/<gateway-id>/status.
    #[arg(long, value_name = "P", default_value = crate::mqtt::settings::DEFAULT_PREFIX)]
    pub mqtt_prefix: String,

    /// Home Assistant's MQTT discovery prefix.
    #[arg(long, value_name = "P", default_value = crate::mqtt::settings::DEFAULT_HA_PREFIX)]
    pub ha_prefix: String,

    /// Do not publish Home Assistant discovery configs (state and
    /// availability still go out).
    #[arg(long)]
    pub no_ha_discovery: bool,

    /// User name for the MQTT broker; the password is read from the
    /// environment variable ENVHUB_MQTT_PASSWORD, never from the command
    /// line.
    #[arg(long, value_name = "U")]
    pub mqtt_user: Option<String>,

    /// Without history (--no-db): readings held in memory while the broker
    /// is away; when full, the oldest is dropped (counted and logged once
    /// per outage).
    #[arg(long, value_name = "N", default_value_t = crate::mqtt::settings::DEFAULT_QUEUE)]
    pub mqtt_queue: usize,
}

/// `--http`: where the HTTP side listens, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpAddr {
    /// `--http off`.
    Off,
    /// `--http ADDR:PORT`.
    On(SocketAddr),
}

/// `--encoding`: the text encoding spoken on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Encoding {
    /// UTF-8, as the protocol defines.
    #[default]
    Utf8,
    /// GBK (decoded as GB18030, as the WHATWG Encoding Standard does).
    Gbk,
}

impl Cli {
    /// `--threads`, or the CPUs this process may run on.
    pub fn threads(&self) -> usize {
        self.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        )
    }

    /// How to keep the history; `None` with `--no-db` and in echo mode.
    pub fn history(&self) -> Option<history::Options> {
        (!self.no_db && self.mode == Mode::Sensor).then(|| history::Options {
            path: self.db.clone(),
            sync: self.sync,
            retention_days: self.retention_days,
        })
    }

    /// The core's configuration (mode, idle timeout, admission). Check it
    /// with [`Config::check`] before serving: `run` refuses 0 clients.
    pub fn config(&self) -> Config {
        let max_clients = usize::try_from(self.max_clients).unwrap_or(usize::MAX);
        Config {
            mode: self.mode,
            idle_timeout_ms: u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX),
            max_clients,
            max_per_source: self
                .max_per_source
                .map_or(Config::host_max_per_source(max_clients), |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
        }
    }
}

/// `ADDR:PORT`: a socket address, or failing that a name to resolve
/// (`localhost:8080`), first address found.
fn parse_bind(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("expected ADDR:PORT such as 0.0.0.0:8080 or [::1]:8080 ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// `off`, or an address as for `--bind`.
fn parse_http(text: &str) -> Result<HttpAddr, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(HttpAddr::Off);
    }
    parse_bind(text).map(HttpAddr::On)
}

/// `--mode`: the core's names ([`Mode::NAMES`]), one mapping for every
/// shell.
fn parse_mode() -> impl clap::builder::TypedValueParser<Value = Mode> {
    clap::builder::PossibleValuesParser::new(Mode::NAMES)
        .map(|name| Mode::from_name(&name).unwrap_or_default())
}

/// Seconds, whole or with a fraction; not negative.
fn parse_secs(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {text:?}"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{text} is not a usable number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("envhub").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let cli = parse(&[]).unwrap();
        assert_eq!(cli.bind, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(cli.max_clients, 1024);
        assert_eq!(cli.idle_timeout, Duration::from_secs(300));
        assert_eq!(cli.mode, Mode::Sensor);
        assert_eq!(cli.encoding, Encoding::Utf8);
        assert_eq!(cli.config(), Config::default());
        assert_eq!(cli.http, HttpAddr::On("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(cli.http_max_clients, 64);
        let history = cli.history().unwrap();
        assert_eq!(history.path, PathBuf::from("envhub.db"));
        assert_eq!((history.sync, history.retention_days), (Sync::Normal, 30));
    }

    #[test]
    fn history_flags() {
        let cli = parse(&[
            "--db",
            "/tmp/x.db",
            "--sync",
            "full",
            "--retention-days",
            "0",
        ])
        .unwrap();
        let history = cli.history().unwrap();
        assert_eq!(history.path, PathBuf::from("/tmp/x.db"));
        assert_eq!((history.sync, history.retention_days), (Sync::Full, 0));
        assert_eq!(parse(&["--no-db"]).unwrap().history(), None);
        assert_eq!(
            parse(&["--mode", "echo"]).unwrap().history(),
            None,
            "echo never opens a db"
        );
        for args in [
            &["--no-db", "--db", "x.db"][..],
            &["--sync", "sometimes"],
            &["--retention-days", "-1"],
        ] {
            assert_eq!(parse(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn every_flag_parses() {
        let cli = parse(&[
            "--bind",
            "[::1]:0",
            "--max-clients",
            "3",
            "--idle-timeout",
            "1.5",
            "--mode",
            "echo",
            "--encoding",
            "gbk",
        ])
        .unwrap();
        assert_eq!(cli.bind, "[::1]:0".parse().unwrap());
        assert_eq!(cli.max_clients, 3);
        assert_eq!(cli.config().idle_timeout_ms, 1500);
        assert_eq!(cli.config().mode, Mode::Echo);
        assert_eq!(cli.config().max_per_source, 64);
        assert_eq!(cli.encoding, Encoding::Gbk);
        let cli = parse(&["--http", "off", "--http-max-clients", "2"]).unwrap();
        assert_eq!((cli.http, cli.http_max_clients), (HttpAddr::Off, 2));
        let cli = parse(&["--http", "[::1]:0"]).unwrap();
        assert_eq!(cli.http, HttpAddr::On("[::1]:0".parse().unwrap()));
        let cli = parse(&["--bind=127.0.0.1:9000", "--idle-timeout=2"]).unwrap();
        assert_eq!(cli.bind.port(), 9000);
        assert_eq!(cli.config().idle_timeout_ms, 2000);
        let cli = parse(&["--max-clients=2000", "--max-per-source=3"]).unwrap();
        assert_eq!(
            (cli.config().max_clients, cli.config().max_per_source),
            (2000, 3)
        );
        let cli = parse(&["--max-clients=2000", "--idle-timeout=0"]).unwrap();
        assert_eq!(
            (cli.config().max_per_source, cli.config().idle_timeout_ms),
            (500, 0)
        );
        assert!(parse(&["--max-clients=0"])
            .unwrap()
            .config()
            .check(usize::MAX)
            .is_err());
    }

    #[test]
    fn names_resolve() {
        let cli = parse(&["--bind", "localhost:0"]).unwrap();
        assert!(cli.bind.ip().is_loopback());
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["--bind", "nonsense"][..],
            &["--bind", "127.0.0.1"],
            &["--bind", "127.0.0.1:99999"],
            &["--max-clients", "-1"],
            &["--max-clients", "lots"],
            &["--idle-timeout", "-1"],
            &["--idle-timeout", "NaN"],
            &["--idle-timeout", "inf"],
            &["--mode", "loud"],
            &["--encoding", "latin1"],
            &["--http", "on"],
            &["--http", "127.0.0.1"],
            &["--http-max-clients", "0"],
            &["--frobnicate"],
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn help_explains_every_flag() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--bind",
            "--max-clients",
            "--idle-timeout",
            "--mode",
            "--encoding",
            "--http",
            "--http-max-clients",
            "--db",
            "--no-db",
            "--sync",
            "--retention-days",
            "--mqtt",
            "--gateway-id",
            "--mqtt-prefix",
            "--ha-prefix",
            "--no-ha-discovery",
            "--mqtt-user",
            "ENVHUB_MQTT_PASSWORD",
            "--mqtt-queue",
            "busy",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }
}
