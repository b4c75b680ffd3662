//! A test network: the server on one end of an in-memory Ethernet link,
//! smoltcp client sockets on the other, and a clock stepped by hand.

extern crate std;

use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec;
use std::vec::Vec;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{Ipv4Address, Ipv4Cidr};

use crate::{net, Config, Server, SocketMemory};

/// Receive buffer per server socket: small, so input arrives in pieces.
pub const RX: usize = 256;
/// Send buffer per server socket: small, so replies stream out in pieces.
pub const TX: usize = 512;
/// The server's address.
pub const SERVER_IP: Ipv4Address = Ipv4Address::new(192, 168, 69, 1);
/// The server's port.
pub const PORT: u16 = 8080;

type Queue = Rc<RefCell<VecDeque<Vec<u8>>>>;

/// One end of a point-to-point Ethernet link.
pub struct End {
    rx: Queue,
    tx: Queue,
    /// While set, frames sent from this end are lost.
    pub mute: Rc<Cell<bool>>,
}

/// The two ends of a new link.
pub fn link() -> (End, End) {
    let (a, b) = (Queue::default(), Queue::default());
    let end = |rx: &Queue, tx: &Queue| End {
        rx: rx.clone(),
        tx: tx.clone(),
        mute: Rc::default(),
    };
    (end(&a, &b), end(&b, &a))
}

/// A received frame.
pub struct RxToken(Vec<u8>);

/// Room for a frame to send.
pub struct TxToken<'a>(&'a End);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        if !self.0.mute.get() {
            self.0.tx.borrow_mut().push_back(frame);
        }
        result
    }
}

impl Device for End {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.borrow_mut().pop_front()?;
        Some((RxToken(frame), TxToken(self)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// The server with `N` slots, a client host, and the clock.
pub struct Net<const N: usize> {
    pub server: Server<'static, N>,
    server_end: End,
    client: Interface,
    client_end: End,
    pub sockets: SocketSet<'static>,
    pub now: u64,
    next_port: u16,
}

impl<const N: usize> Net<N> {
    /// A server started at time 1000 with `config`.
    pub fn new(config: Config) -> Self {
        let (mut server_end, mut client_end) = link();
        let now = 1000;
        let iface = net::ethernet_interface(
            &mut server_end,
            [0x02, 0, 0, 0, 0, 1],
            Ipv4Cidr::new(SERVER_IP, 24),
            1,
            now,
        );
        let memory = Box::leak(Box::new(SocketMemory::<N, RX, TX>::new()));
        let server = Server::new(config, iface, memory, now).unwrap();
        let client = net::ethernet_interface(
            &mut client_end,
            [0x02, 0, 0, 0, 0, 2],
            Ipv4Cidr::new(Ipv4Address::new(192, 168, 69, 2), 24),
            2,
            now,
        );
        Net {
            server,
            server_end,
            client,
            client_end,
            sockets: SocketSet::new(vec![]),
            now,
            next_port: 40_000,
        }
    }

    /// Mutes (or unmutes) the client host: its frames are lost.
    pub fn mute_client(&self, mute: bool) {
        self.client_end.mute.set(mute);
    }

    /// One millisecond: the server polls, then the client host.
    pub fn step(&mut self) {
        self.server.poll(self.now, &mut self.server_end);
        self.client.poll(
            Instant::from_millis(self.now as i64),
            &mut self.client_end,
            &mut self.sockets,
        );
        self.now += 1;
    }

    /// `ms` steps.
    pub fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }

    /// Steps until `done` or 10 s pass; true if `done`.
    pub fn run_until(&mut self, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        for _ in 0..10_000 {
            if done(self) {
                return true;
            }
            self.step();
        }
        false
    }

    /// A client socket connecting to the server (not yet connected).
    pub fn connect(&mut self) -> SocketHandle {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
            tcp::SocketBuffer::new(vec![0; 16 * 1024]),
        );
        self.next_port += 1;
        socket
            .connect(self.client.context(), (SERVER_IP, PORT), self.next_port)
            .unwrap();
        self.sockets.add(socket)
    }

    /// A connected client socket (the server has accepted it).
    pub fn connected(&mut self) -> SocketHandle {
        let handle = self.connect();
        assert!(self.run_until(|net| net.socket(handle).may_send()));
        // The handshake's last ACK reaches the server on the next poll.
        self.run(2);
        handle
    }

    /// A client socket.
    pub fn socket(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Queues `bytes` on a client socket.
    pub fn send(&mut self, handle: SocketHandle, bytes: &[u8]) {
        assert_eq!(self.socket(handle).send_slice(bytes).unwrap(), bytes.len());
    }

    /// Everything the client socket received so far.
    pub fn take(&mut self, handle: SocketHandle) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = self.socket(handle).recv_slice(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Steps until the client has `lines` complete lines; returns them.
    pub fn lines(&mut self, handle: SocketHandle, lines: usize) -> Vec<u8> {
        let mut got = Vec::new();
        self.run_until(|net| {
            got.extend(net.take(handle));
            got.iter().filter(|&&b| b == b'\n').count() >= lines
        });
        got
    }

    /// Steps until the server closed the connection (FIN or reset);
    /// returns everything received.
    pub fn until_closed(&mut self, handle: SocketHandle) -> Vec<u8> {
        let mut got = Vec::new();
        let closed = self.run_until(|net| {
            got.extend(net.take(handle));
            let socket = net.socket(handle);
            socket.state() != tcp::State::SynSent && !socket.may_recv()
        });
        assert!(
            closed,
            "not closed; got {:?}",
            std::string::String::from_utf8_lossy(&got)
        );
        got
    }

    /// Puts a SYN for the server's port from `src:port` on the wire, as
    /// if from a host that never answers anything (its MAC is made up).
    pub fn spoof_syn(&mut self, src: Ipv4Address, port: u16) {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{
            EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
            Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
        };
        let tcp = TcpRepr {
            src_port: port,
            dst_port: PORT,
            control: TcpControl::Syn,
            seq_number: TcpSeqNumber(1000),
            ack_number: None,
            window_len: 64_240,
            window_scale: None,
            max_seg_size: Some(1460),
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: None,
            payload: &[],
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: SERVER_IP,
            next_header: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            hop_limit: 64,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress([0x02, 0, 0, 0, 0x99, 0x99]),
            dst_addr: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut frame = vec![0; eth.buffer_len() + ip.buffer_len() + tcp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        let mut ether = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.emit(&mut ether);
        let mut packet = Ipv4Packet::new_unchecked(ether.payload_mut());
        ip.emit(&mut packet, &caps);
        let mut segment = TcpPacket::new_unchecked(packet.payload_mut());
        tcp.emit(
            &mut segment,
            &IpAddress::Ipv4(src),
            &IpAddress::Ipv4(SERVER_IP),
            &caps,
        );
        self.client_end.tx.borrow_mut().push_back(frame);
    }

    /// Server sockets listening now.
    pub fn listening(&self) -> usize {
        self.server.listening()
    }
}
