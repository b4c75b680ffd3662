//! Hand-made IPv4 packets for the tests that play a hostile network: a
//! TCP SYN from a spoofed source, sent through a raw socket
//! (`IPPROTO_RAW`, so the kernel takes the IP header as given).

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

use nix::sys::socket::{sendto, socket, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn};

/// A TCP SYN from `src` to `dst` with an IPv4 header (the kernel fills in
/// the IP checksum and length; the TCP checksum is computed here).
pub fn syn(src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(24);
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes()); // ack
    tcp.push(6 << 4); // data offset: 6 words (one option)
    tcp.push(0x02); // SYN
    tcp.extend_from_slice(&64_240u16.to_be_bytes()); // window
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    let mut pseudo = Vec::with_capacity(12 + tcp.len());
    pseudo.extend_from_slice(&src.ip().octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&tcp);
    let sum = checksum(&pseudo);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());

    let mut ip = vec![
        0x45, 0, 0, 0, // version, IHL, TOS, total length (kernel)
        0, 0, 0x40, 0, // id (kernel), don't fragment
        64, 6, 0, 0, // TTL, TCP, checksum (kernel)
    ];
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    ip.extend_from_slice(&tcp);
    ip
}

/// The Internet checksum of `bytes`.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends each of `packets` (IPv4, header included) to `dst` through one
/// raw socket. Needs CAP_NET_RAW.
pub fn send_ip(packets: &[Vec<u8>], dst: Ipv4Addr) -> io::Result<()> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        nix::sys::socket::SockProtocol::Raw,
    )?;
    let to = SockaddrIn::from(SocketAddrV4::new(dst, 0));
    for packet in packets {
        sendto(fd.as_raw_fd(), packet, &to, MsgFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_of_a_packet_with_its_checksum_is_zero() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 9, 9, 9), 40_000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 1), 8080);
        let packet = syn(src, dst, 7);
        let tcp = &packet[20..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&packet[12..20]);
        pseudo.extend_from_slice(&[0, 6, 0, tcp.len() as u8]);
        pseudo.extend_from_slice(tcp);
        assert_eq!(checksum(&pseudo), 0);
    }
}
