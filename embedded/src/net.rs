//! Setting up the smoltcp interface, and the loop's clock.

use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::phy::Device;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Cidr};

/// An Ethernet interface on `device` with MAC address `mac` (must be
/// unicast, e.g. locally administered `02:…`) and the address `ip`.
///
/// `random_seed` seeds smoltcp's initial sequence numbers and ephemeral
/// choices: it must differ on every start (take it from a hardware RNG or
/// the clock). `now_ms` is the caller's clock, the same one later given to
/// [`crate::Server::poll`].
///
/// # Panics
///
/// If `mac` is not a unicast address (smoltcp refuses it).
pub fn ethernet_interface<D: Device + ?Sized>(
    device: &mut D,
    mac: [u8; 6],
    ip: Ipv4Cidr,
    random_seed: u64,
    now_ms: u64,
) -> Interface {
    let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
    config.random_seed = random_seed;
    let mut iface = Interface::new(config, device, instant(now_ms));
    iface.update_ip_addrs(|addrs| {
        // A fresh interface has room for at least one address.
        let _ = addrs.push(IpCidr::Ipv4(ip));
    });
    iface
}

/// The latest time the loop handles (about 146 000 years): smoltcp counts
/// microseconds in an `i64` and adds timeouts to it.
const MAX_MS: u64 = (i64::MAX / 1000 / 2) as u64;

/// The caller's milliseconds as a smoltcp instant.
pub(crate) fn instant(ms: u64) -> Instant {
    Instant::from_millis(ms.min(MAX_MS) as i64)
}

/// A smoltcp instant as the caller's milliseconds.
pub(crate) fn millis(instant: Instant) -> u64 {
    u64::try_from(instant.total_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_round_trips() {
        assert_eq!(millis(instant(0)), 0);
        assert_eq!(millis(instant(123_456)), 123_456);
        assert_eq!(millis(Instant::from_millis(-5)), 0);
        assert_eq!(millis(instant(u64::MAX)), MAX_MS);
    }
}
