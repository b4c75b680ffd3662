//! smoltcp's [`Device`] over an Ethernet DMA engine with descriptor rings.
//!
//! The engine (stm32-eth's `EthernetDMA` on the board, [`tests::Rings`] in
//! the host tests) owns the receive and transmit descriptor rings; through
//! [`Dma`] the adapter takes the next received frame (which hands its
//! descriptor back to the DMA) and fills the next free transmit descriptor
//! (which hands it to the DMA to send).
//!
//! smoltcp's `receive` returns a receive and a transmit token at once, and
//! both would need the engine. So a received frame is copied out of its
//! descriptor into the adapter's own buffer first: the descriptor goes back
//! to the DMA at once, and the receive token reads the copy while the
//! transmit token holds the engine. A frame to send is written into the
//! adapter's other buffer and then copied into a descriptor, so a token
//! always has a buffer to offer even when the frame then cannot go out.
//! (One copy of at most 1518 bytes per frame each way: a few microseconds
//! at 216 MHz.)

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The largest frame, without its FCS: 14 bytes of header, 1500 of
/// payload, 4 of a VLAN tag. Longer frames are dropped on receipt.
pub const MAX_FRAME: usize = 1518;

/// The IP MTU smoltcp is given: a plain Ethernet frame's payload.
pub const MTU: usize = 1514;

/// What the adapter needs from an Ethernet DMA engine.
pub trait Dma {
    /// True when the next receive descriptor is the CPU's: it holds a
    /// frame (or an error the engine reports on [`Dma::receive`]).
    fn rx_ready(&mut self) -> bool;
    /// True when the next transmit descriptor is the CPU's: free to fill.
    fn tx_ready(&mut self) -> bool;
    /// Copies the next received frame into `buf` and gives its descriptor
    /// back to the DMA. Returns the frame's length; `None` when there is no
    /// frame, or it was bad or longer than `buf` (then it is dropped, its
    /// descriptor given back all the same).
    fn receive(&mut self, buf: &mut [u8]) -> Option<usize>;
    /// Copies `frame` into the next free transmit descriptor's buffer and
    /// gives the descriptor to the DMA to send. False when no descriptor
    /// is free or the frame does not fit its buffer.
    fn transmit(&mut self, frame: &[u8]) -> bool;
}

/// What the adapter counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to smoltcp.
    pub received: u32,
    /// Frames the engine dropped or reported bad on receipt.
    pub rx_dropped: u32,
    /// Frames given to the DMA to send.
    pub sent: u32,
    /// Frames smoltcp wrote that could not be sent (no free descriptor
    /// after all, or too long).
    pub tx_dropped: u32,
}

/// A smoltcp [`Device`] over a [`Dma`] engine.
#[derive(Debug)]
pub struct Eth<D> {
    dma: D,
    rx: [u8; MAX_FRAME],
    tx: [u8; MAX_FRAME],
    counters: Counters,
}

impl<D: Dma> Eth<D> {
    /// The adapter over `dma`, whose rings are set up and running.
    pub const fn new(dma: D) -> Self {
        Eth {
            dma,
            rx: [0; MAX_FRAME],
            tx: [0; MAX_FRAME],
            counters: Counters {
                received: 0,
                rx_dropped: 0,
                sent: 0,
                tx_dropped: 0,
            },
        }
    }

    /// What was counted so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The engine.
    pub fn dma(&mut self) -> &mut D {
        &mut self.dma
    }
}

/// A received frame, copied out of its descriptor.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// The right to send one frame.
#[derive(Debug)]
pub struct TxToken<'a, D> {
    dma: &'a mut D,
    buf: &'a mut [u8; MAX_FRAME],
    counters: &'a mut Counters,
}

impl<D: Dma> phy::TxToken for TxToken<'_, D> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp never asks for more than the MTU; a longer request gets
        // the whole buffer and is not sent.
        let n = len.min(MAX_FRAME);
        let r = f(&mut self.buf[..n]);
        if n == len && self.dma.transmit(&self.buf[..n]) {
            self.counters.sent += 1;
        } else {
            self.counters.tx_dropped += 1;
        }
        r
    }
}

impl<D: Dma> Device for Eth<D> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, D>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_, D>)> {
        // An answer (an ACK, an ARP reply) may need a descriptor: take a
        // frame only when one is free, as smoltcp expects.
        if !self.dma.tx_ready() {
            return None;
        }
        loop {
            if !self.dma.rx_ready() {
                return None;
            }
            match self.dma.receive(&mut self.rx) {
                Some(len) => {
                    self.counters.received += 1;
                    return Some((
                        RxToken {
                            frame: &self.rx[..len],
                        },
                        TxToken {
                            dma: &mut self.dma,
                            buf: &mut self.tx,
                            counters: &mut self.counters,
                        },
                    ));
                }
                // A bad frame: its descriptor is back with the DMA; look
                // at the next one.
                None => self.counters.rx_dropped += 1,
            }
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, D>> {
        if !self.dma.tx_ready() {
            return None;
        }
        Some(TxToken {
            dma: &mut self.dma,
            buf: &mut self.tx,
            counters: &mut self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}

#[cfg(test)]
pub mod tests {
    //! The adapter against [`Rings`], a model of the STM32 Ethernet DMA's
    //! descriptor rings (RM0410 §42.6): each descriptor has an OWN bit
    //! (set: the DMA's), a buffer, and for received frames the
    //! first/last-descriptor, error-summary and frame-length fields.

    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};
    use std::collections::VecDeque;
    use std::vec::Vec;

    /// RDES0 / TDES0 OWN: the descriptor belongs to the DMA.
    const OWN: u32 = 1 << 31;
    /// RDES0 ES: error summary (CRC, overrun, watchdog, ...).
    const RDES0_ES: u32 = 1 << 15;
    /// RDES0 FS / LS: first and last descriptor of a frame.
    const RDES0_FS: u32 = 1 << 9;
    const RDES0_LS: u32 = 1 << 8;
    /// RDES0 FL: frame length including the 4-byte FCS, bits 29:16.
    const RDES0_FL_SHIFT: u32 = 16;
    const RDES0_FL_MASK: u32 = 0x3FFF;
    /// TDES0 FS / LS: the frame is in this one descriptor.
    const TDES0_FS: u32 = 1 << 28;
    const TDES0_LS: u32 = 1 << 29;
    /// Bytes of the FCS the MAC leaves in a received frame's length.
    const FCS: usize = 4;
    /// Each descriptor's buffer (stm32-eth: 1522 bytes).
    const BUF: usize = 1522;

    #[derive(Clone)]
    struct Desc {
        status: u32,
        /// TDES1 TBS1: bytes to send.
        len: usize,
        buf: Vec<u8>,
    }

    /// Descriptor rings of `N` receive and `N` transmit descriptors, the
    /// CPU's side (`rx_next`, `tx_next`) and the DMA's side (what it has
    /// received, what it has sent).
    pub struct Rings {
        rx: Vec<Desc>,
        tx: Vec<Desc>,
        rx_next: usize,
        tx_next: usize,
        /// Where the DMA writes the next received frame.
        dma_rx: usize,
        /// Where the DMA looks for the next frame to send.
        dma_tx: usize,
        /// Frames on the wire, in the order the DMA sent them.
        wire: VecDeque<Vec<u8>>,
        /// Frames the MAC dropped because no descriptor was the DMA's.
        overruns: u32,
    }

    impl Rings {
        fn new(n: usize) -> Rings {
            let desc = |status| Desc {
                status,
                len: 0,
                buf: vec![0; BUF],
            };
            Rings {
                // Receive descriptors start as the DMA's, transmit ones
                // as the CPU's.
                rx: vec![desc(OWN); n],
                tx: vec![desc(0); n],
                rx_next: 0,
                tx_next: 0,
                dma_rx: 0,
                dma_tx: 0,
                wire: VecDeque::new(),
                overruns: 0,
            }
        }

        /// The MAC receives `frame` (the FCS appended): the DMA writes it
        /// into its next descriptor and gives that to the CPU; `bad` sets
        /// the error summary. A frame longer than the buffer leaves this
        /// descriptor as its first but not its last (the rest would go to
        /// the next; the model drops it).
        fn arrive(&mut self, frame: &[u8], bad: bool) {
            let d = &mut self.rx[self.dma_rx];
            if d.status & OWN == 0 {
                self.overruns += 1;
                return;
            }
            let whole = frame.len() + FCS <= BUF;
            let n = frame.len().min(BUF - FCS);
            d.buf[..n].copy_from_slice(&frame[..n]);
            let fl = (n + FCS) as u32;
            let last = if whole { RDES0_LS } else { 0 };
            let error = if bad { RDES0_ES } else { 0 };
            d.status = RDES0_FS | last | (fl << RDES0_FL_SHIFT) | error;
            self.dma_rx = (self.dma_rx + 1) % self.rx.len();
        }

        /// The DMA sends every descriptor it owns, in ring order, and gives
        /// each back.
        fn send_all(&mut self) {
            while self.tx[self.dma_tx].status & OWN != 0 {
                let d = &mut self.tx[self.dma_tx];
                assert_eq!(d.status & (TDES0_FS | TDES0_LS), TDES0_FS | TDES0_LS);
                self.wire.push_back(d.buf[..d.len].to_vec());
                d.status = 0;
                self.dma_tx = (self.dma_tx + 1) % self.tx.len();
            }
        }

        fn cpu_rx_owned(&self) -> usize {
            self.rx.iter().filter(|d| d.status & OWN == 0).count()
        }
    }

    /// The CPU's side, as stm32-eth's `recv_next` and `send` do it.
    impl Dma for Rings {
        fn rx_ready(&mut self) -> bool {
            self.rx[self.rx_next].status & OWN == 0
        }

        fn tx_ready(&mut self) -> bool {
            self.tx[self.tx_next].status & OWN == 0
        }

        fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
            let d = &mut self.rx[self.rx_next];
            if d.status & OWN != 0 {
                return None;
            }
            let status = d.status;
            let whole = status & (RDES0_FS | RDES0_LS) == RDES0_FS | RDES0_LS;
            let len = ((status >> RDES0_FL_SHIFT) & RDES0_FL_MASK) as usize;
            let frame = len.checked_sub(FCS).filter(|n| *n <= buf.len());
            let result = match frame {
                Some(n) if whole && status & RDES0_ES == 0 => {
                    buf[..n].copy_from_slice(&d.buf[..n]);
                    Some(n)
                }
                _ => None,
            };
            // Back to the DMA, good frame or bad.
            d.status = OWN;
            self.rx_next = (self.rx_next + 1) % self.rx.len();
            result
        }

        fn transmit(&mut self, frame: &[u8]) -> bool {
            let d = &mut self.tx[self.tx_next];
            if d.status & OWN != 0 || frame.len() > BUF {
                return false;
            }
            d.buf[..frame.len()].copy_from_slice(frame);
            d.len = frame.len();
            d.status = OWN | TDES0_FS | TDES0_LS;
            self.tx_next = (self.tx_next + 1) % self.tx.len();
            true
        }
    }

    fn frame(n: usize, tag: u8) -> Vec<u8> {
        (0..n).map(|i| tag.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn nothing_received_no_token() {
        let mut eth = Eth::new(Rings::new(4));
        assert!(eth.receive(Instant::ZERO).is_none());
        assert_eq!(eth.counters(), Counters::default());
    }

    #[test]
    fn frames_come_out_whole_and_in_order_and_descriptors_go_back() {
        let mut eth = Eth::new(Rings::new(4));
        // Around the ring twice, lengths from the minimum to the maximum.
        for (i, len) in [60, 1514, 64, 1518, 333, 60, 1000, 1514]
            .into_iter()
            .enumerate()
        {
            let sent = frame(len, i as u8);
            eth.dma().arrive(&sent, false);
            assert_eq!(eth.dma().cpu_rx_owned(), 1);
            let (rx, _tx) = eth.receive(Instant::ZERO).expect("a frame");
            let got = rx.consume(|f| f.to_vec());
            assert_eq!(got.len(), len, "the FCS is not part of the frame");
            assert_eq!(got, sent);
            assert_eq!(eth.dma().cpu_rx_owned(), 0, "descriptor back with the DMA");
        }
        assert_eq!(eth.counters().received, 8);
        assert_eq!(eth.dma().overruns, 0);
    }

    #[test]
    fn a_full_ring_is_drained_in_order() {
        let mut eth = Eth::new(Rings::new(3));
        for tag in 0..4 {
            eth.dma().arrive(&frame(100, tag), false);
        }
        assert_eq!(
            eth.dma().overruns,
            1,
            "the fourth frame found no descriptor"
        );
        for tag in 0..3 {
            let (rx, _) = eth.receive(Instant::ZERO).expect("a frame");
            assert_eq!(rx.consume(|f| f[0]), tag);
        }
        assert!(eth.receive(Instant::ZERO).is_none());
        // Every descriptor is the DMA's again: three more fit.
        for tag in 10..13 {
            eth.dma().arrive(&frame(100, tag), false);
        }
        assert_eq!(eth.dma().overruns, 1);
    }

    #[test]
    fn bad_and_oversized_frames_are_dropped_and_their_descriptors_returned() {
        let mut eth = Eth::new(Rings::new(4));
        eth.dma().arrive(&frame(200, 1), true);
        eth.dma().arrive(&frame(MAX_FRAME + 1, 2), false);
        eth.dma().arrive(&frame(80, 3), false);
        let (rx, _) = eth.receive(Instant::ZERO).expect("the good frame");
        assert_eq!(rx.consume(|f| (f.len(), f[0])), (80, 3));
        assert_eq!(eth.counters().rx_dropped, 2);
        assert_eq!(eth.counters().received, 1);
        assert_eq!(eth.dma().cpu_rx_owned(), 0);
    }

    #[test]
    fn transmit_fills_one_descriptor_and_hands_it_over() {
        let mut eth = Eth::new(Rings::new(2));
        let tx = eth.transmit(Instant::ZERO).expect("a free descriptor");
        tx.consume(60, |buf| buf.copy_from_slice(&frame(60, 7)));
        assert_eq!(eth.dma().tx[0].status & OWN, OWN);
        eth.dma().send_all();
        assert_eq!(eth.dma().wire.pop_front(), Some(frame(60, 7)));
        assert_eq!(eth.counters().sent, 1);
    }

    #[test]
    fn no_token_while_every_transmit_descriptor_is_the_dmas() {
        let mut eth = Eth::new(Rings::new(2));
        for tag in 0..2 {
            let tx = eth.transmit(Instant::ZERO).expect("free");
            tx.consume(MTU, |buf| buf.fill(tag));
        }
        assert!(eth.transmit(Instant::ZERO).is_none());
        // A received frame waits too: its answer would need a descriptor.
        eth.dma().arrive(&frame(60, 1), false);
        assert!(eth.receive(Instant::ZERO).is_none());
        eth.dma().send_all();
        assert_eq!(eth.dma().wire.len(), 2);
        assert!(eth.dma().wire.iter().all(|f| f.len() == MTU));
        let (rx, tx) = eth.receive(Instant::ZERO).expect("now both");
        let len = rx.consume(|f| f.len());
        tx.consume(len, |buf| buf.fill(9));
        eth.dma().send_all();
        assert_eq!(eth.dma().wire.back().map(Vec::len), Some(60));
    }

    #[test]
    fn a_frame_too_long_is_counted_and_dropped() {
        let mut eth = Eth::new(Rings::new(2));
        let tx = eth.transmit(Instant::ZERO).expect("free");
        let wrote = tx.consume(MAX_FRAME + 1, |buf| buf.len());
        assert_eq!(wrote, MAX_FRAME, "smoltcp still got a buffer to write");
        assert_eq!(eth.counters().tx_dropped, 1);
        eth.dma().send_all();
        assert!(eth.dma().wire.is_empty());
        // The descriptor is still free.
        let tx = eth.transmit(Instant::ZERO).expect("free");
        tx.consume(MAX_FRAME, |buf| buf.fill(1));
        eth.dma().send_all();
        assert_eq!(eth.dma().wire.pop_front().map(|f| f.len()), Some(MAX_FRAME));
    }

    #[test]
    fn capabilities() {
        let eth = Eth::new(Rings::new(1));
        let caps = eth.capabilities();
        assert_eq!(caps.max_transmission_unit, MTU);
        assert_eq!(caps.medium, Medium::Ethernet);
    }
}
