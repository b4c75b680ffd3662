//! The glue to [`envhub_embedded::Server`]: the interface from the
//! settings, the socket memory, the readiness line and the loop. The same
//! on every board; only the device and how to wait differ.

use cortex_m::peripheral::SYST;
use envhub_embedded::{net, Config, Server, SocketMemory};
use smoltcp::phy::Device;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
use static_cell::ConstStaticCell;

use crate::clock::Clock;
use crate::rt::{halt, FAILED};
use crate::settings::{Settings, SOCKETS};

/// Receive buffer of each TCP socket.
pub const RX_BUF: usize = 1024;
/// Send buffer of each TCP socket (a reply chunk is at most 256 bytes).
pub const TX_BUF: usize = 1024;

/// The sockets' memory, in .bss (no heap; too big for the stack).
static SOCKET_MEMORY: ConstStaticCell<SocketMemory<'static, SOCKETS, RX_BUF, TX_BUF>> =
    ConstStaticCell::new(SocketMemory::new());

/// Serves `settings` on `device` for ever: logs `listening on ADDR:PORT`
/// once the sockets listen, then polls the server whenever `clock` (read
/// from SysTick) says something is due. In between it calls
/// `wait(now, next)`, which returns after at most the time until `next`
/// (`None`: only a received frame brings work), or earlier.
///
/// Call once (the socket memory is taken); stops the firmware when the
/// settings do not fit the server.
pub fn serve<D: Device>(
    settings: &Settings,
    device: &mut D,
    clock: &mut Clock,
    random_seed: u64,
    mut wait: impl FnMut(u64, Option<u64>),
) -> ! {
    let now = clock.now(SYST::get_current());
    let [a, b, c, d] = settings.ip;
    let ip = Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), settings.prefix);
    let iface = net::ethernet_interface(device, settings.mac, ip, random_seed, now);
    let config = Config {
        port: settings.port,
        core: settings.config,
    };
    let mut server = match Server::new(config, iface, SOCKET_MEMORY.take(), now) {
        Ok(server) => server,
        Err(error) => {
            defmt::error!("fatal: invalid server settings: {}", error);
            halt(FAILED)
        }
    };
    defmt::info!(
        "listening on {=u8}.{=u8}.{=u8}.{=u8}:{=u16}",
        a,
        b,
        c,
        d,
        settings.port
    );
    loop {
        let now = clock.now(SYST::get_current());
        let next = server.poll(now, device);
        if next.is_none_or(|due| due > now) {
            wait(now, next);
        }
    }
}
