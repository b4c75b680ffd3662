//! `envhub-smoltcp-ack`: the floor under `envhub-tap` in the TAP benchmark.
//!
//! smoltcp on a Linux TAP device with the same sockets as `envhub-tap` (65
//! slots, 2 KiB receive and 4 KiB send buffers, Nagle off, 10 ms delayed
//! ACK), answering every received LF with `{"ok":true}` and doing nothing
//! else: no framing rules, no JSON, no store. What `envhub-tap` costs above
//! this is the protocol; this is the price of the stack and the TAP device.
//! Run it inside a network namespace holding the TAP device, as
//! `benches/run-tap-matrix.sh` does; measure with `envhub-load --mode ack`.
//! Not shipped. Stops on SIGINT/SIGTERM (the default action: nothing to save).

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::io::AsRawFd;
use std::time::Instant as StdInstant;

use clap::Parser;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Medium, TunTapInterface};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

/// Sockets, as `envhub-tap`.
const SLOTS: usize = 65;
/// Receive buffer per socket, as `envhub-tap`.
const RX: usize = 2048;
/// Send buffer per socket, as `envhub-tap`.
const TX: usize = 4096;
/// Delayed-ACK time, as `envhub-tap`.
const ACK_DELAY_MS: u64 = 10;
/// The answer to every line.
const ACK: &[u8] = b"{\"ok\":true}\n";
/// Longest sleep in one wait.
const MAX_WAIT_MS: u64 = 50;

/// smoltcp TAP server answering each line with `{"ok":true}`.
#[derive(Debug, Parser)]
struct Args {
    /// TAP interface to attach to.
    #[arg(long)]
    tap: String,
    /// Own IPv4 address and prefix, e.g. 192.168.69.1/24.
    #[arg(long)]
    ip: String,
    /// TCP port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

/// One socket and the acknowledgements it still owes.
struct Slot {
    handle: SocketHandle,
    owed: usize,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let (addr, prefix) = args
        .ip
        .split_once('/')
        .ok_or_else(|| format!("--ip {:?} is not ADDR/PREFIX", args.ip))?;
    let addr: Ipv4Addr = addr.parse().map_err(|e| format!("--ip: {e}"))?;
    let prefix: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or("--ip: bad prefix")?;

    let mut device = TunTapInterface::new(&args.tap, Medium::Ethernet)
        .map_err(|e| format!("cannot open TAP device {}: {e}", args.tap))?;
    let clock = StdInstant::now();
    let now = || Instant::from_micros(clock.elapsed().as_micros() as i64);

    let mac = EthernetAddress([0x02, 0, 0, 0x41, 0x43, 0x4b]);
    let mut config = Config::new(HardwareAddress::Ethernet(mac));
    config.random_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        ^ u64::from(std::process::id());
    let mut iface = Interface::new(config, &mut device, now());
    iface.update_ip_addrs(|ips| {
        let _ = ips.push(IpCidr::Ipv4(Ipv4Cidr::new(addr, prefix)));
    });

    let mut sockets = SocketSet::new(Vec::with_capacity(SLOTS));
    let mut slots: Vec<Slot> = (0..SLOTS)
        .map(|_| {
            let socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; RX]),
                tcp::SocketBuffer::new(vec![0; TX]),
            );
            Slot {
                handle: sockets.add(socket),
                owed: 0,
            }
        })
        .collect();

    println!("listening on {addr}:{}", args.port);
    let _ = std::io::stdout().flush();
    let fd = device.as_raw_fd();
    loop {
        iface.poll(now(), &mut device, &mut sockets);
        let mut worked = false;
        for slot in &mut slots {
            let socket = sockets.get_mut::<tcp::Socket>(slot.handle);
            worked |= serve(socket, slot, args.port);
        }
        if worked {
            // Poll again at once: it sends what was just queued.
            continue;
        }
        let wait = iface
            .poll_delay(now(), &sockets)
            .unwrap_or(Duration::from_millis(MAX_WAIT_MS))
            .min(Duration::from_millis(MAX_WAIT_MS));
        match phy::wait(fd, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("waiting on {}: {e}", args.tap)),
        }
    }
}

/// Listens, reads, counts LFs, answers them; true if it queued output or
/// changed the socket.
fn serve(socket: &mut tcp::Socket<'_>, slot: &mut Slot, port: u16) -> bool {
    if !socket.is_open() {
        slot.owed = 0;
        if socket.listen(port).is_ok() {
            socket.set_ack_delay(Some(Duration::from_millis(ACK_DELAY_MS)));
            socket.set_nagle_enabled(false);
        }
        return false;
    }
    let mut worked = false;
    loop {
        while slot.owed > 0 && socket.send_capacity() - socket.send_queue() >= ACK.len() {
            if socket.send_slice(ACK).is_err() {
                break;
            }
            slot.owed -= 1;
            worked = true;
        }
        if slot.owed > 0 || !socket.can_recv() {
            break;
        }
        match socket.recv(|buf| (buf.len(), buf.iter().filter(|&&b| b == b'\n').count())) {
            Ok(lines) => slot.owed += lines,
            Err(_) => break,
        }
    }
    if socket.state() == State::CloseWait && slot.owed == 0 && !socket.can_recv() {
        socket.close();
        worked = true;
    }
    worked
}
