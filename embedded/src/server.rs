//! The server loop: an interface, `N` socket slots, the store, the counters.

use envhub_core::{LocalHub, Stats, Store};
use smoltcp::iface::{Interface, PollIngressSingleResult, PollResult, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::tcp::{Socket, SocketBuffer};
use smoltcp::wire::IpAddress;

use crate::config::{Config, ConfigError};
use crate::memory::SocketMemory;
use crate::net::{instant, millis};
use crate::slot::{Context, Slot};

/// Packets taken from the device per [`Server::poll`] before the sockets
/// are served (a flood cannot starve the connections).
const INGRESS_BUDGET: usize = 256;
/// Egress passes per [`Server::poll`]; each sends at most one segment per
/// socket. What is left waits for the next poll, which is then due at once.
const EGRESS_ROUNDS: usize = 16;

/// The envhub server over smoltcp with `N` TCP socket slots.
///
/// All free slots listen on the port (smoltcp has no backlog: one socket
/// per concurrent client). Up to `max_clients` (at most `N - 1`) connected
/// slots are served; a client connecting beyond that lands in a spare slot
/// and gets `busy` and a close. A slot listens again as soon as its
/// connection is closed. Single-threaded: one [`Server::poll`] step does
/// all the work, and says when the next one is due.
pub struct Server<'a, const N: usize> {
    config: Config,
    iface: Interface,
    sockets: SocketSet<'a>,
    slots: &'a mut [Slot],
    scratch: &'a mut [u8],
    sources: &'a mut [Option<IpAddress>],
    store: &'a mut Store,
    stats: Stats,
    stopping: bool,
}

impl<'a, const N: usize> Server<'a, N> {
    /// A server on `iface` whose `N` sockets live in `memory`, started at
    /// `now_ms` (the clock later given to [`Server::poll`]; uptime counts
    /// from here). Every slot listens on `config.port` at once.
    ///
    /// Fails when `max_clients` is 0 or more than `N - 1`, the port is 0,
    /// or `TX` is too small for a `busy` reply.
    pub fn new<const RX: usize, const TX: usize>(
        config: Config,
        iface: Interface,
        memory: &'a mut SocketMemory<'a, N, RX, TX>,
        now_ms: u64,
    ) -> Result<Self, ConfigError> {
        config.check(N, TX)?;
        let SocketMemory {
            storage,
            buffers,
            scratch,
            slots,
            store,
            sources,
        } = memory;
        storage.clear();
        slots.clear();
        *store = Store::new();
        while storage.push(SocketStorage::EMPTY).is_ok() {}
        let mut sockets = SocketSet::new(&mut storage[..]);
        let mut listening = Ok(());
        sources.fill(None);
        for (index, buffers) in buffers.iter_mut().enumerate() {
            let mut socket = Socket::new(
                SocketBuffer::new(&mut buffers.rx[..]),
                SocketBuffer::new(&mut buffers.tx[..]),
            );
            Slot::tune(&mut socket);
            if socket.listen(config.port).is_err() {
                listening = Err(ConfigError::PortZero);
            }
            let _ = slots.push(Slot::new(sockets.add(socket), index));
        }
        listening?;
        Ok(Server {
            config,
            iface,
            sockets,
            slots: &mut slots[..],
            scratch: &mut scratch[..],
            sources: &mut sources[..],
            store,
            stats: Stats::new(now_ms),
            stopping: false,
        })
    }

    /// Does all that is due at `now_ms`: takes the packets `device` has
    /// received, accepts new connections (in arrival order; ids from 1),
    /// answers every complete line received (the replies of one read go
    /// out together), fires timers, sends, and recycles closed slots.
    ///
    /// Returns when to call again at the latest (milliseconds, same clock;
    /// `<= now_ms` means at once), or `None` when only a packet can bring
    /// work. Call it again earlier whenever the device has received
    /// something. `now_ms` must never go backwards.
    pub fn poll<D: Device + ?Sized>(&mut self, now_ms: u64, device: &mut D) -> Option<u64> {
        let now = now_ms;
        let timestamp = instant(now);
        self.iface.poll_maintenance(timestamp);
        let mut again = false;
        let mut budget = INGRESS_BUDGET;
        loop {
            if budget == 0 {
                again = true;
                break;
            }
            budget -= 1;
            match self
                .iface
                .poll_ingress_single(timestamp, device, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    // Only a listening slot can have a new connection: the
                    // others are skipped before their socket is looked up
                    // (this runs for every packet).
                    self.each(false, Slot::is_listening, |slot, socket, cx| {
                        slot.accept(socket, cx, now);
                        false
                    });
                }
            }
        }
        again |= self.each(
            false,
            |_| true,
            |slot, socket, cx| slot.service(socket, cx, now),
        );
        for _ in 0..EGRESS_ROUNDS {
            if self.iface.poll_egress(timestamp, device, &mut self.sockets) == PollResult::None {
                break;
            }
        }
        // Sending may have finished a reset, a timeout or the last ACK of a
        // close: recycle those slots at once.
        again |= self.each(
            true,
            |_| true,
            |slot, socket, cx| slot.service(socket, cx, now),
        );

        let mut next = self.iface.poll_at(timestamp, &self.sockets).map(millis);
        for slot in self.slots.iter() {
            let socket = self.sockets.get::<Socket>(slot.handle);
            next = earliest(next, slot.deadline(socket));
        }
        if again {
            next = Some(now);
        }
        next.map(|due| due.max(now))
    }

    /// Starts a graceful shutdown: no slot listens any more (new clients
    /// are refused), every client gets the replies to the complete lines it
    /// already sent, then `shutting_down` (nothing in echo mode) and a
    /// close. Keep calling [`Server::poll`] until [`Server::is_idle`] (or
    /// the shell's own deadline).
    pub fn shutdown(&mut self, now_ms: u64) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        for slot in self.slots.iter_mut() {
            slot.shutdown(self.sockets.get_mut::<Socket>(slot.handle), now_ms);
        }
    }

    /// True once, after [`Server::shutdown`], every slot is closed.
    pub fn is_idle(&self) -> bool {
        self.slots.iter().all(Slot::is_stopped)
    }

    /// True after [`Server::shutdown`].
    pub fn is_shutting_down(&self) -> bool {
        self.stopping
    }

    /// The counters (clients connected now, readings, errors, ...).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The interface (its addresses, for instance).
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// Sockets listening now.
    #[cfg(test)]
    pub(crate) fn listening(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| self.sockets.get::<Socket>(slot.handle).is_listening())
            .count()
    }

    /// Runs `step` on every slot that is `wanted`, with its socket (`sent`:
    /// after this poll's egress); true if any returned true.
    fn each(
        &mut self,
        sent: bool,
        wanted: impl Fn(&Slot) -> bool,
        mut step: impl FnMut(&mut Slot, &mut Socket<'a>, &mut Context<'_>) -> bool,
    ) -> bool {
        let Server {
            config,
            sockets,
            slots,
            scratch,
            store,
            stats,
            stopping,
            sources,
            ..
        } = self;
        let mut cx = Context {
            hub: LocalHub { store, stats },
            config,
            scratch,
            stopping: *stopping,
            sent,
            sources,
        };
        let mut any = false;
        for slot in slots.iter_mut().filter(|slot| wanted(slot)) {
            any |= step(slot, sockets.get_mut::<Socket>(slot.handle), &mut cx);
        }
        any
    }
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;
    use std::string::String;
    use std::vec::Vec;

    use envhub_core::Mode;
    use smoltcp::socket::tcp::State;
    use smoltcp::wire::Ipv4Address;

    use crate::slot::CLOSE_TIMEOUT_MS;
    use crate::testnet::Net;
    use crate::Config;
    use envhub_core::limits::HANDSHAKE_TIMEOUT_MS as SYN_TIMEOUT_MS;

    const PONG: &[u8] = b"{\"ok\":true,\"pong\":true}\n";
    const BUSY: &[u8] = b"{\"ok\":false,\"error\":\"busy\"}\n";

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn answers_every_line_and_numbers_clients_from_one() {
        let mut net = Net::<4>::new(Config::new(8080, 3));
        let a = net.connected();
        let b = net.connected();
        net.send(a, b"{\"cmd\":\"ping\"}\n\n{\"cmd\":\"stats\"}\n");
        let got = text(&net.lines(a, 2));
        assert!(
            got.starts_with(
                "{\"ok\":true,\"pong\":true}\n{\"ok\":true,\"client\":1,\"clients\":2,"
            ),
            "{got}"
        );
        net.send(b, b"{\"cmd\":\"stats\"}\n");
        assert!(text(&net.lines(b, 1)).starts_with("{\"ok\":true,\"client\":2,\"clients\":2,"));
        assert_eq!(net.server.stats().clients, 2);
    }

    #[test]
    fn a_line_split_over_segments_and_pipelined_lines() {
        let mut net = Net::<2>::new(Config::new(8080, 1));
        let a = net.connected();
        net.send(a, b"{\"cmd\":");
        net.run(20);
        assert_eq!(net.take(a), b"");
        let mut rest = Vec::from(&b"\"ping\"}\r\n"[..]);
        for _ in 0..40 {
            rest.extend_from_slice(b"{\"cmd\":\"ping\"}\n");
        }
        net.send(a, &rest);
        assert_eq!(net.lines(a, 41), PONG.repeat(41));
    }

    #[test]
    fn busy_in_the_spare_slot_then_it_listens_again() {
        let mut net = Net::<3>::new(Config::new(8080, 2));
        let a = net.connected();
        let _b = net.connected();
        for i in 0..3 {
            let c = net.connect();
            assert_eq!(
                net.until_closed(c),
                BUSY,
                "{i}: {:?}",
                net.socket(c).state()
            );
            net.socket(c).close();
            assert!(net.run_until(|net| net.listening() == 1));
        }
        assert_eq!(net.server.stats().errors, 3);
        // A served client leaves: its slot serves the next one.
        net.send(a, b"{\"cmd\":\"bye\"}\n");
        assert_eq!(net.until_closed(a), b"{\"ok\":true,\"bye\":true}\n");
        net.socket(a).close();
        let d = net.connected();
        net.send(d, b"{\"cmd\":\"stats\"}\n");
        // Turned-away clients took no id.
        assert!(text(&net.lines(d, 1))
            .starts_with("{\"ok\":true,\"client\":3,\"clients\":2,\"readings\":0,\"errors\":3,"));
    }

    #[test]
    fn idle_timeout_closes_and_the_slot_listens_again() {
        let mut config = Config::new(8080, 1);
        config.core.idle_timeout_ms = 500;
        let mut net = Net::<2>::new(config);
        let a = net.connected();
        let start = net.now;
        assert_eq!(
            net.until_closed(a),
            b"{\"ok\":false,\"error\":\"idle_timeout\"}\n"
        );
        assert!(
            (490..600).contains(&(net.now - start)),
            "{}",
            net.now - start
        );
        assert_eq!(net.server.stats().clients, 0);
        net.socket(a).close();
        assert!(net.run_until(|net| net.listening() == 2));
    }

    #[test]
    fn poll_says_when_the_idle_timeout_is_due() {
        let mut config = Config::new(8080, 1);
        config.core.idle_timeout_ms = 60_000;
        let mut net = Net::<2>::new(config);
        let _a = net.connected();
        net.run(100);
        let due = net.server.poll(net.now, &mut crate::testnet::link().0);
        assert!(
            due.is_some_and(|due| due > net.now && due <= net.now + 60_000),
            "{due:?}"
        );
    }

    #[test]
    fn half_open_handshakes_do_not_keep_a_slot() {
        let mut net = Net::<2>::new(Config::new(8080, 1));
        // A first connection, so the client knows the server's MAC address.
        let warm = net.connected();
        net.socket(warm).close();
        assert!(net.run_until(|net| net.listening() == 2));
        // The client's SYN goes out; nothing it sends after that arrives.
        let a = net.connect();
        net.step();
        net.mute_client(true);
        net.run(5);
        assert_eq!(net.listening(), 1);
        let start = net.now;
        assert!(net.run_until(|net| net.listening() == 2));
        assert!(
            net.now - start >= SYN_TIMEOUT_MS - 10,
            "{}",
            net.now - start
        );
        net.mute_client(false);
        net.sockets.remove(a);
        let b = net.connected();
        net.send(b, b"{\"cmd\":\"ping\"}\n");
        assert_eq!(net.lines(b, 1), PONG);
        assert_eq!(net.server.stats().last_id, 2);
    }

    #[test]
    fn handshakes_from_unreachable_peers_are_dropped_in_time() {
        // On the link but never answering ARP, and off the link (no route).
        for (i, src) in [
            Ipv4Address::new(192, 168, 69, 77),
            Ipv4Address::new(10, 9, 9, 9),
        ]
        .into_iter()
        .enumerate()
        {
            let mut net = Net::<3>::new(Config::new(8080, 2));
            for port in 0..5 {
                net.spoof_syn(src, 50_000 + port);
            }
            net.run(5);
            assert_eq!(net.listening(), 0, "{i}: every slot took a SYN");
            let start = net.now;
            assert!(net.run_until(|net| net.listening() == 3), "{i}");
            let took = net.now - start;
            assert!(
                (SYN_TIMEOUT_MS - 10..SYN_TIMEOUT_MS + 300).contains(&took),
                "{i}: {took}"
            );
            // Nothing of them is left: a real client is served.
            let b = net.connected();
            net.send(b, b"{\"cmd\":\"ping\"}\n");
            assert_eq!(net.lines(b, 1), PONG);
            assert_eq!(net.server.stats().last_id, 1);
        }
    }

    #[test]
    fn a_client_that_never_reads_is_reset_after_the_write_stall() {
        let mut net = Net::<2>::new(Config::new(8080, 1));
        let a = net.connected();
        let start = net.now;
        // 16 KiB of pings, whose 26 KiB of pongs fill every buffer on the
        // way back, since the client never reads.
        let pings = b"{\"cmd\":\"ping\"}\n".repeat(16 * 1024 / 15);
        net.send(a, &pings);
        assert!(net.run_until(|net| net.socket(a).state() == State::Closed));
        let took = net.now - start;
        assert!(
            (envhub_core::limits::WRITE_STALL_MS..8_000).contains(&took),
            "{took}"
        );
        assert_eq!(net.server.stats().clients, 0);
        assert!(net.run_until(|net| net.listening() == 2));
    }

    #[test]
    fn one_source_gets_busy_beyond_its_limit() {
        let mut config = Config::new(8080, 3);
        config.core.max_per_source = 2;
        let mut net = Net::<4>::new(config);
        let _a = net.connected();
        let b = net.connected();
        let c = net.connect();
        assert_eq!(net.until_closed(c), BUSY);
        // One leaves: the source may connect again.
        net.send(b, b"{\"cmd\":\"bye\"}\n");
        net.until_closed(b);
        net.socket(b).close();
        assert!(net.run_until(|net| net.server.stats().clients == 1));
        let d = net.connected();
        net.send(d, b"{\"cmd\":\"ping\"}\n");
        assert_eq!(net.lines(d, 1), PONG);
        assert_eq!(net.server.stats().errors, 1);
    }

    #[test]
    fn a_vanished_peer_is_reclaimed() {
        let mut config = Config::new(8080, 1);
        config.core.idle_timeout_ms = 1_000;
        let mut net = Net::<2>::new(config);
        let _a = net.connected();
        net.mute_client(true);
        let start = net.now;
        assert!(net.run_until(|net| net.server.stats().clients == 0));
        assert!(net.run_until(|net| net.listening() == 2));
        let took = net.now - start;
        assert!(
            (990 + CLOSE_TIMEOUT_MS..1_100 + CLOSE_TIMEOUT_MS).contains(&took),
            "{took}"
        );
    }

    #[test]
    fn eof_answers_an_unterminated_last_line() {
        let mut net = Net::<2>::new(Config::new(8080, 1));
        let a = net.connected();
        net.send(a, b"{\"cmd\":\"ping\"}\n{\"cmd\":\"ping\"}");
        net.socket(a).close();
        assert_eq!(net.until_closed(a), PONG.repeat(2));
        // The peer closed first: the server's side ends in LAST-ACK, then
        // listens at once.
        assert!(net.run_until(|net| net.listening() == 2));
    }

    #[test]
    fn a_big_latest_streams_through_small_buffers() {
        let mut net = Net::<2>::new(Config::new(8080, 1));
        let a = net.connected();
        let mut batch = Vec::new();
        for i in 0..64 {
            batch.extend_from_slice(
                format!(
                    "{{\"location\":\"{:0>32}\",\"temp\":{},\"hum\":50}}\n",
                    i,
                    i - 40
                )
                .as_bytes(),
            );
        }
        net.send(a, &batch);
        let stored = text(&net.lines(a, 64));
        assert_eq!(stored.matches("\"ok\":true").count(), 64, "{stored}");
        net.send(a, b"{\"cmd\":\"latest\"}\n{\"cmd\":\"ping\"}\n");
        let got = net.lines(a, 2);
        assert!(got.len() > 4 * crate::testnet::TX, "{}", got.len());
        let reply = text(&got);
        let (latest, ping) = reply.split_at(reply.len() - PONG.len());
        assert_eq!(ping.as_bytes(), PONG);
        assert!(latest.starts_with("{\"ok\":true,\"readings\":[{\"location\":\"00000000000000000000000000000000\",\"temp\":-40.0,"));
        assert!(latest.contains("{\"location\":\"00000000000000000000000000000063\",\"temp\":23.0,\"hum\":50.0,\"age_ms\":"));
        assert!(latest.ends_with("}]}\n"));
        assert_eq!(latest.matches("\"location\"").count(), 64);
    }

    #[test]
    fn shutdown_answers_complete_lines_then_closes_everything() {
        let mut net = Net::<3>::new(Config::new(8080, 2));
        let a = net.connected();
        let b = net.connected();
        net.send(a, b"{\"cmd\":\"ping\"}\n{\"cmd\":\"ping\"}\n{\"cmd\":");
        net.run(1); // the data reaches the server's receive buffer...
        net.server.shutdown(net.now); // ...and shutdown comes before it is read
        assert!(net.server.is_shutting_down() && !net.server.is_idle());
        let mut owed = PONG.repeat(2);
        owed.extend_from_slice(b"{\"ok\":false,\"error\":\"shutting_down\"}\n");
        assert_eq!(net.until_closed(a), owed);
        assert_eq!(
            net.until_closed(b),
            b"{\"ok\":false,\"error\":\"shutting_down\"}\n"
        );
        assert_eq!(net.listening(), 0);
        // Clients that keep their side open do not hold the server.
        assert!(net.run_until(|net| net.server.is_idle()));
        // New clients are refused.
        let c = net.connect();
        assert!(net.run_until(|net| net.socket(c).state() == State::Closed));
        assert_eq!(net.server.stats().errors, 2);
    }

    #[test]
    fn many_short_connections_reuse_the_slots() {
        let mut net = Net::<3>::new(Config::new(8080, 2));
        for i in 1..=60u64 {
            let a = net.connected();
            if i % 2 == 0 {
                // Server closes first (TIME-WAIT on its side).
                net.send(a, b"{\"cmd\":\"stats\"}\n{\"cmd\":\"bye\"}\n");
                let got = text(&net.until_closed(a));
                assert!(
                    got.starts_with(&format!("{{\"ok\":true,\"client\":{i},\"clients\":1,")),
                    "{got}"
                );
                net.socket(a).close();
            } else {
                // Client closes first.
                net.send(a, b"{\"cmd\":\"ping\"}\n");
                assert_eq!(net.lines(a, 1), PONG);
                net.socket(a).close();
                assert_eq!(net.until_closed(a), b"");
            }
            assert!(net.run_until(|net| net.listening() == 3));
            net.sockets.remove(a);
        }
        assert_eq!(net.server.stats().last_id, 60);
        assert_eq!(net.server.stats().clients, 0);
    }

    #[test]
    fn echo_mode_echoes_and_turns_away_silently() {
        let mut config = Config::new(8080, 1);
        config.core.mode = Mode::Echo;
        let mut net = Net::<2>::new(config);
        let a = net.connected();
        net.send(a, b"hello\nno newline");
        net.run(30);
        assert_eq!(net.take(a), b"hello\nno newline");
        let b = net.connect();
        assert_eq!(net.until_closed(b), b"");
        assert_eq!(net.server.stats().errors, 0);
    }

    #[test]
    fn a_reset_connection_frees_its_slot() {
        let mut net = Net::<2>::new(Config::new(8080, 1));
        let a = net.connected();
        net.socket(a).abort();
        assert!(net.run_until(|net| net.server.stats().clients == 0 && net.listening() == 2));
    }

    #[test]
    fn config_is_checked() {
        use crate::{ConfigError, SocketMemory};
        let (mut end, _) = crate::testnet::link();
        let iface = crate::net::ethernet_interface(
            &mut end,
            [2, 0, 0, 0, 0, 1],
            smoltcp::wire::Ipv4Cidr::new(crate::testnet::SERVER_IP, 24),
            0,
            0,
        );
        let memory = std::boxed::Box::leak(std::boxed::Box::new(SocketMemory::<2, 64, 64>::new()));
        let result = super::Server::new(Config::new(8080, 2), iface, memory, 0);
        assert_eq!(result.err(), Some(ConfigError::MaxClients { slots: 2 }));
    }
}
