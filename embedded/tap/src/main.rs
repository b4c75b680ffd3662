//! `envhub-tap`: the envhub server's smoltcp loop on a Linux TAP device.
//!
//! The same `no_std` loop the firmware runs, with its own TCP/IP stack
//! (smoltcp) on a TAP interface instead of the kernel's sockets. Needs the
//! right to open the TAP device (root, or a persistent TAP owned by the
//! user). Prints `listening on IP:PORT` once it is up; stops gracefully on
//! SIGINT and SIGTERM within 2 seconds.
//!
//! Its command line is the firmware's ([`envhub_core::args`], one parser
//! for both, so the flags, the defaults and the `--mode` names cannot
//! drift apart), plus `--tap` and `--mac`.

mod device;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envhub_core::args::{self, ArgError, Flag};
use envhub_core::limits::SHUTDOWN_EXIT_MS;
use envhub_embedded::{net, Config, Server, SocketMemory};
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Cidr};

use device::TapDevice;

/// Sockets: 64 client slots and the spare that answers `busy`.
const SLOTS: usize = 65;
/// Receive buffer per socket: several full request lines.
const RX: usize = 2048;
/// Send buffer per socket: a full `latest` (about 6 KiB) streams out in
/// pieces, which the core handles.
const TX: usize = 4096;
/// Longest sleep in one wait, so a signal is noticed promptly.
const MAX_WAIT_MS: u64 = 50;
/// The default TCP port.
const PORT: u16 = 8080;
/// The default MAC address (locally administered, unicast).
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x45, 0x48, 0x01];

const USAGE: &str = "\
The envhub sensor server on a Linux TAP device, over smoltcp.

Usage: envhub-tap --tap IFNAME --ip ADDR/PREFIX [OPTIONS]

Options:
  --tap IFNAME            The TAP interface to attach to (created if missing)
  --ip ADDR/PREFIX        The server's own IPv4 address and prefix on the TAP network
  --port N                TCP port to listen on [default: 8080]
  --max-clients N         Clients served at once; more get `busy` [default: 64, every client slot]
  --max-per-source N      Clients served at once from one address [default: every slot]
  --idle-timeout SECS     Close a connection that sends no complete line for this long;
                          0 never does [default: 300]
  --mode sensor|echo      What to speak [default: sensor]
  --mac MAC               The server's MAC address, unicast [default: 02:00:00:45:48:01]
  -h, --help              Print this help
  -V, --version           Print the version

Example (as root, inside a network namespace holding tap0):
  envhub-tap --tap tap0 --ip 192.168.69.1/24 --max-clients 16
";

/// The command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    tap: String,
    ip: Ipv4Cidr,
    port: u16,
    mac: EthernetAddress,
    config: envhub_core::Config,
}

/// Why the command line cannot be followed.
#[derive(Debug, PartialEq, Eq)]
enum Usage {
    /// `--help` or `--version`: print this and exit 0.
    Print(String),
    /// A mistake: print this one line and exit 2.
    Error(String),
}

fn parse(argv: &[&str]) -> Result<Args, Usage> {
    if argv.iter().any(|a| matches!(*a, "-h" | "--help")) {
        return Err(Usage::Print(USAGE.to_owned()));
    }
    if argv.iter().any(|a| matches!(*a, "-V" | "--version")) {
        return Err(Usage::Print(format!(
            "envhub-tap {}\n",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let (mut tap, mut ip, mut port, mut mac) = (None, None, PORT, MAC);
    let config = args::parse(argv.iter().copied(), SLOTS - 1, |flag, value| {
        let ok = match flag {
            "--tap" => {
                tap = Some(value.to_owned());
                true
            }
            "--ip" => args::ipv4_cidr(value).map(|c| ip = Some(c)).is_some(),
            "--port" => args::number(value, 1, u16::MAX.into())
                .map(|n| port = n as u16)
                .is_some(),
            "--mac" => args::mac(value).map(|m| mac = m).is_some(),
            _ => return Flag::Unknown,
        };
        if ok {
            Flag::Taken
        } else {
            Flag::Invalid
        }
    })
    .map_err(|e: ArgError<'_>| Usage::Error(e.to_string()))?;
    let tap = tap.ok_or_else(|| Usage::Error("--tap IFNAME is required".into()))?;
    let ([a, b, c, d], prefix) =
        ip.ok_or_else(|| Usage::Error("--ip ADDR/PREFIX is required".into()))?;
    Ok(Args {
        tap,
        ip: Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), prefix),
        port,
        mac: EthernetAddress(mac),
        config,
    })
}

/// A seed that differs on every start: OS randomness (through std's hash
/// keys), the clock and the process id.
fn random_seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .hash(&mut hasher);
    std::process::id().hash(&mut hasher);
    hasher.finish()
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match parse(&argv) {
        Ok(args) => args,
        Err(Usage::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(Usage::Error(line)) => {
            eprintln!("envhub-tap: {line} (see --help)");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .map_err(|e| format!("cannot handle signals: {e}"))?;

    let mut device = TapDevice::open(&args.tap)
        .map_err(|e| format!("cannot open TAP device {}: {e}", args.tap))?;
    let clock = Instant::now();
    let now = || u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);

    let iface = net::ethernet_interface(&mut device, args.mac.0, args.ip, random_seed(), now());
    let config = Config {
        port: args.port,
        core: args.config,
    };
    // Leaked once: the server lives as long as the process.
    let memory = Box::leak(Box::new(SocketMemory::<SLOTS, RX, TX>::new()));
    let mut server: Server<'_, SLOTS> =
        Server::new(config, iface, memory, now()).map_err(|e| e.to_string())?;

    log::info!(
        "envhub-tap on {} ({}): {}:{}, up to {} clients ({} per source), idle timeout {} ms, {} mode",
        args.tap,
        args.mac,
        args.ip.address(),
        args.port,
        config.core.max_clients,
        config.core.max_per_source,
        config.core.idle_timeout_ms,
        config.core.mode.name()
    );
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}:{}", args.ip.address(), args.port)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;

    let mut give_up_at = None;
    loop {
        if give_up_at.is_none() && stop.load(Ordering::SeqCst) {
            log::info!("shutting down");
            let t = now();
            // The core aborts every connection still open after the
            // shutdown grace; the process exits once every slot is closed,
            // or at the latest after SHUTDOWN_EXIT_MS.
            server.shutdown(t);
            give_up_at = Some(t + SHUTDOWN_EXIT_MS);
        }
        let next = server.poll(now(), &mut device);
        if let Some(limit) = give_up_at {
            if server.is_idle() {
                log::info!("all connections closed");
                return Ok(());
            }
            if now() >= limit {
                log::warn!("connections still closing after {SHUTDOWN_EXIT_MS} ms: exiting anyway");
                return Ok(());
            }
        }
        let wait = next.map_or(MAX_WAIT_MS, |due| {
            due.saturating_sub(now()).min(MAX_WAIT_MS)
        });
        device
            .wait(Duration::from_millis(wait))
            .map_err(|e| format!("waiting on {}: {e}", args.tap))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envhub_core::Mode;

    fn parse_line(line: &str) -> Result<Args, Usage> {
        let argv: Vec<&str> = line.split_whitespace().collect();
        parse(&argv)
    }

    #[test]
    fn defaults() {
        let args = parse_line("envhub-tap --tap tap0 --ip 10.0.0.1/24").unwrap();
        assert_eq!(args.tap, "tap0");
        assert_eq!(
            (args.ip.address(), args.ip.prefix_len()),
            (Ipv4Address::new(10, 0, 0, 1), 24)
        );
        assert_eq!(args.port, 8080);
        assert_eq!(args.mac.0, MAC);
        assert_eq!(args.config, envhub_core::Config::embedded(64));
    }

    #[test]
    fn every_flag() {
        let args = parse_line(
            "envhub-tap --tap=t --ip 10.0.0.1/8 --port 81 --max-clients 64 --max-per-source 3 \
             --idle-timeout 0 --mode echo --mac 02:00:00:00:00:09",
        )
        .unwrap();
        assert_eq!(args.port, 81);
        assert_eq!(args.mac.0, [2, 0, 0, 0, 0, 9]);
        let c = args.config;
        assert_eq!(
            (c.max_clients, c.max_per_source, c.idle_timeout_ms, c.mode),
            (64, 3, 0, Mode::Echo)
        );
    }

    #[test]
    fn mistakes_are_one_line_errors() {
        for (line, message) in [
            ("x --ip 10.0.0.1/24", "--tap IFNAME is required"),
            ("x --tap t", "--ip ADDR/PREFIX is required"),
            (
                "x --tap t --ip 10.0.0.1/24 --max-clients 0",
                "--max-clients must be at least 1",
            ),
            (
                "x --tap t --ip 10.0.0.1/24 --max-clients 65",
                "--max-clients must be between 1 and 64",
            ),
            (
                "x --tap t --ip 10.0.0.1/33",
                "invalid value \"10.0.0.1/33\" for --ip",
            ),
            (
                "x --tap t --ip 10.0.0.1/24 --mac 03:00:00:00:00:01",
                "invalid value \"03:00:00:00:00:01\" for --mac",
            ),
            (
                "x --tap t --ip 10.0.0.1/24 --bind y",
                "unknown argument --bind",
            ),
        ] {
            assert_eq!(
                parse_line(line),
                Err(Usage::Error(message.into())),
                "{line}"
            );
        }
        assert!(matches!(parse_line("x --help"), Err(Usage::Print(_))));
    }
}
