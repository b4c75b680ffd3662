//! `envhub-tap`: the envhub server's smoltcp loop on a Linux TAP device.
//!
//! The same `no_std` loop the firmware runs, with its own TCP/IP stack
//! (smoltcp) on a TAP interface instead of the kernel's sockets. Needs the
//! right to open the TAP device (root, or a persistent TAP owned by the
//! user). Prints `listening on IP:PORT` once it is up; stops gracefully on
//! SIGINT and SIGTERM within 2 seconds.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use envhub_embedded::{net, Config, Mode, Server, SocketMemory};
use smoltcp::phy::{self, Medium, TunTapInterface};
use smoltcp::wire::{EthernetAddress, Ipv4Cidr};

/// Sockets: 64 client slots and the spare that answers `busy`.
const SLOTS: usize = 65;
/// Receive buffer per socket: several full request lines.
const RX: usize = 2048;
/// Send buffer per socket: a full `latest` (about 6 KiB) streams out in
/// pieces, which the core handles.
const TX: usize = 4096;
/// Longest sleep in one wait, so a signal is noticed promptly.
const MAX_WAIT_MS: u64 = 50;
/// How long a graceful shutdown may take before the process exits anyway
/// (the protocol allows 2 s from the signal).
const SHUTDOWN_GRACE_MS: u64 = 1_500;

/// The envhub sensor server on a Linux TAP device, over smoltcp.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Example (as root, inside a network namespace holding tap0):\n  envhub-tap --tap tap0 --ip 192.168.69.1/24 --max-clients 16"
)]
struct Args {
    /// The TAP interface to attach to (created if missing)
    #[arg(long, value_name = "IFNAME")]
    tap: String,

    /// The server's own IPv4 address and prefix on the TAP network
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    ip: Ipv4Cidr,

    /// TCP port to listen on
    #[arg(long, value_name = "N", default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,

    /// Clients served at once; more get `busy` [default: 64, all client slots]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=(SLOTS as u64 - 1)))]
    max_clients: Option<u64>,

    /// Close a connection that sends no complete line for this many seconds
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    idle_timeout: u64,

    /// What to speak
    #[arg(long, value_enum, default_value_t = ModeArg::Sensor)]
    mode: ModeArg,

    /// The server's MAC address (must be unicast)
    #[arg(long, value_name = "MAC", default_value = "02:00:00:45:48:01", value_parser = parse_mac)]
    mac: EthernetAddress,
}

/// What the server speaks.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// The envhub line protocol
    Sensor,
    /// Every byte back, unchanged
    Echo,
}

fn parse_cidr(text: &str) -> Result<Ipv4Cidr, String> {
    let (addr, prefix) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not ADDR/PREFIX"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("bad prefix {prefix:?}: expected 0 to 32"))?;
    Ok(Ipv4Cidr::new(addr, prefix))
}

fn parse_mac(text: &str) -> Result<EthernetAddress, String> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or("expected six hex bytes")?;
        *byte = u8::from_str_radix(part, 16).map_err(|_| format!("bad byte {part:?}"))?;
    }
    if parts.next().is_some() {
        return Err("expected six hex bytes".into());
    }
    let mac = EthernetAddress(mac);
    if !mac.is_unicast() {
        return Err("not a unicast address".into());
    }
    Ok(mac)
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
    let args = Args::parse();
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

    let mut device = TunTapInterface::new(&args.tap, Medium::Ethernet)
        .map_err(|e| format!("cannot open TAP device {}: {e}", args.tap))?;
    let clock = Instant::now();
    let now = || u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);

    let iface = net::ethernet_interface(&mut device, args.mac.0, args.ip, random_seed(), now());
    let mut config = Config::new(
        args.port,
        args.max_clients.map_or(SLOTS - 1, |n| n as usize),
    );
    config.idle_timeout_ms = args.idle_timeout.saturating_mul(1000);
    config.mode = match args.mode {
        ModeArg::Sensor => Mode::Sensor,
        ModeArg::Echo => Mode::Echo,
    };
    // Leaked once: the server lives as long as the process.
    let memory = Box::leak(Box::new(SocketMemory::<SLOTS, RX, TX>::new()));
    let mut server: Server<'_, SLOTS> =
        Server::new(config, iface, memory, now()).map_err(|e| e.to_string())?;

    log::info!(
        "envhub-tap on {} ({}): {}:{}, up to {} clients, idle timeout {} s, {:?} mode",
        args.tap,
        args.mac,
        args.ip.address(),
        args.port,
        config.max_clients,
        args.idle_timeout,
        config.mode
    );
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}:{}", args.ip.address(), args.port)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;

    let fd = device.as_raw_fd();
    let mut give_up_at = None;
    loop {
        if give_up_at.is_none() && stop.load(Ordering::SeqCst) {
            log::info!("shutting down");
            let t = now();
            server.shutdown(t);
            give_up_at = Some(t + SHUTDOWN_GRACE_MS);
        }
        let next = server.poll(now(), &mut device);
        if let Some(limit) = give_up_at {
            if server.is_idle() {
                log::info!("all connections closed");
                return Ok(());
            }
            if now() >= limit {
                log::warn!(
                    "connections still closing after {SHUTDOWN_GRACE_MS} ms: exiting anyway"
                );
                return Ok(());
            }
        }
        let wait = next.map_or(MAX_WAIT_MS, |due| {
            due.saturating_sub(now()).min(MAX_WAIT_MS)
        });
        match phy::wait(fd, Some(smoltcp::time::Duration::from_millis(wait))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("waiting on {}: {e}", args.tap)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let cidr = parse_cidr("192.168.69.1/24").unwrap();
        assert_eq!(
            (cidr.address(), cidr.prefix_len()),
            (Ipv4Addr::new(192, 168, 69, 1), 24)
        );
        for bad in [
            "192.168.69.1",
            "192.168.69.1/33",
            "192.168.69/24",
            "x/24",
            "1.2.3.4/",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mac() {
        assert_eq!(
            parse_mac("02:00:00:45:48:01").unwrap().0,
            [2, 0, 0, 0x45, 0x48, 1]
        );
        for bad in [
            "03:00:00:00:00:01",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "02:zz:00:00:00:01",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags() {
        let args =
            Args::try_parse_from(["envhub-tap", "--tap", "tap0", "--ip", "10.0.0.1/24"]).unwrap();
        assert_eq!(
            (args.port, args.max_clients, args.idle_timeout),
            (8080, None, 300)
        );
        assert!(Args::try_parse_from([
            "envhub-tap",
            "--tap",
            "t",
            "--ip",
            "10.0.0.1/24",
            "--max-clients",
            "65"
        ])
        .is_err());
        assert!(Args::try_parse_from([
            "envhub-tap",
            "--tap",
            "t",
            "--ip",
            "10.0.0.1/24",
            "--max-clients",
            "64"
        ])
        .is_ok());
        assert!(Args::try_parse_from([
            "envhub-tap",
            "--tap",
            "t",
            "--ip",
            "10.0.0.1/24",
            "--mode",
            "echo"
        ])
        .is_ok());
    }
}
