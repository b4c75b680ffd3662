//! A driver for the SMSC LAN9118 Ethernet controller (and the
//! software-compatible LAN9220 of the MPS2 board), as a
//! [`smoltcp::phy::Device`].
//!
//! Written here because no published crate drives this chip. It uses the
//! controller in its simplest mode, polled, without interrupts or DMA:
//!
//! - transmit: TX command A and B words, then the frame, little-endian, in
//!   32-bit words, through the TX data FIFO port;
//! - receive: one word of the RX status FIFO per frame (length and errors),
//!   then the frame and its CRC through the RX data FIFO port;
//! - MAC registers (control, address, MII) are reached indirectly through
//!   `MAC_CSR_CMD`/`MAC_CSR_DATA`.
//!
//! What QEMU emulates (hw/net/lan9118.c) is a subset: no FIFO-level
//! interrupts, TX status entries tagged from command B, autonegotiation that
//! completes at once. The driver only relies on what both QEMU and the chip
//! do. All register access goes through [`Regs`], so every sequence here is
//! unit-tested on the host against a model of the device.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::regs::Regs;

/// Register offsets (bytes from the base).
pub mod reg {
    /// RX data FIFO port (any offset 0x00..0x1C reads it).
    pub const RX_DATA_FIFO: usize = 0x00;
    /// TX data FIFO port (any offset 0x20..0x3C writes it).
    pub const TX_DATA_FIFO: usize = 0x20;
    /// RX status FIFO port: reading pops one status word.
    pub const RX_STATUS_FIFO: usize = 0x40;
    /// TX status FIFO port: reading pops one status word.
    pub const TX_STATUS_FIFO: usize = 0x48;
    /// Chip id and revision.
    pub const ID_REV: usize = 0x50;
    /// Interrupt pin configuration.
    pub const IRQ_CFG: usize = 0x54;
    /// Interrupt status (write 1 to clear).
    pub const INT_STS: usize = 0x58;
    /// Interrupt enable.
    pub const INT_EN: usize = 0x5C;
    /// Reads 0x8765_4321 once the bus interface works.
    pub const BYTE_TEST: usize = 0x64;
    /// Receive configuration.
    pub const RX_CFG: usize = 0x6C;
    /// Transmit configuration.
    pub const TX_CFG: usize = 0x70;
    /// Hardware configuration, soft reset.
    pub const HW_CFG: usize = 0x74;
    /// RX FIFO levels.
    pub const RX_FIFO_INF: usize = 0x7C;
    /// TX FIFO levels.
    pub const TX_FIFO_INF: usize = 0x80;
    /// Power management control; bit 0 says the chip is ready.
    pub const PMT_CTRL: usize = 0x84;
    /// Free-running 25 MHz counter.
    pub const FREE_RUN: usize = 0x9C;
    /// Indirect MAC register access: command.
    pub const MAC_CSR_CMD: usize = 0xA4;
    /// Indirect MAC register access: data.
    pub const MAC_CSR_DATA: usize = 0xA8;
}

/// MAC registers, reached through `MAC_CSR_CMD`/`MAC_CSR_DATA`.
pub mod mac {
    /// MAC control.
    pub const MAC_CR: u32 = 1;
    /// MAC address, bytes 4 and 5.
    pub const ADDRH: u32 = 2;
    /// MAC address, bytes 0 to 3.
    pub const ADDRL: u32 = 3;
    /// MII (PHY) access command.
    pub const MII_ACC: u32 = 6;
    /// MII (PHY) access data.
    pub const MII_DATA: u32 = 7;
}

/// Register bits.
pub mod bits {
    /// `BYTE_TEST` reads this on a working bus.
    pub const BYTE_TEST_MAGIC: u32 = 0x8765_4321;
    /// `PMT_CTRL`: the device is ready.
    pub const PMT_READY: u32 = 1 << 0;
    /// `HW_CFG`: soft reset, self-clearing.
    pub const HW_CFG_SRST: u32 = 1 << 0;
    /// `HW_CFG`: TX FIFO size field (KiB), bits 19:16.
    pub const HW_CFG_TX_FIF_SZ_5K: u32 = 5 << 16;
    /// `HW_CFG`: must be written as one.
    pub const HW_CFG_MBO: u32 = 1 << 20;
    /// `TX_CFG`: transmitter on.
    pub const TX_CFG_TX_ON: u32 = 1 << 1;
    /// `TX_CFG`: a full TX status FIFO does not stop transmission.
    pub const TX_CFG_TXSAO: u32 = 1 << 2;
    /// `MAC_CSR_CMD`: busy; set to start an access, clears when done.
    pub const CSR_BUSY: u32 = 1 << 31;
    /// `MAC_CSR_CMD`: read (else write).
    pub const CSR_READ: u32 = 1 << 30;
    /// `MAC_CR`: receiver enable.
    pub const MAC_CR_RXEN: u32 = 1 << 2;
    /// `MAC_CR`: transmitter enable.
    pub const MAC_CR_TXEN: u32 = 1 << 3;
    /// `MAC_CR`: full duplex.
    pub const MAC_CR_FDPX: u32 = 1 << 20;
    /// `MII_ACC`: busy.
    pub const MII_BUSY: u32 = 1 << 0;
    /// `MII_ACC`: write (else read).
    pub const MII_WRITE: u32 = 1 << 1;
    /// TX command A: first segment of a frame.
    pub const TX_A_FIRST: u32 = 1 << 13;
    /// TX command A: last segment of a frame.
    pub const TX_A_LAST: u32 = 1 << 12;
    /// RX and TX status: error summary.
    pub const STATUS_ES: u32 = 1 << 15;
    /// RX status: the frame failed the address filter.
    pub const RX_STATUS_FILTER_FAIL: u32 = 1 << 30;
}

/// The internal PHY's MII address.
const PHY_ADDR: u32 = 1;
/// PHY basic control: enable and restart autonegotiation.
const BMCR_AUTONEG: u16 = 0x1000 | 0x0200;
/// PHY advertisement and link-partner ability: 100BASE-TX and 10BASE-T full duplex.
const ABILITY_FULL_DUPLEX: u16 = 0x0100 | 0x0040;

/// Largest Ethernet frame handled, without its CRC (1500 bytes of payload).
pub const MAX_FRAME: usize = 1514;
/// Shortest frame accepted: an Ethernet header.
const MIN_FRAME: usize = 14;
/// Bytes of CRC the controller appends to every received frame.
const CRC_LEN: usize = 4;
/// Register polls before a wait is declared failed. Each is a bus access of
/// at least tens of nanoseconds, so this bounds waits to some milliseconds.
const POLLS: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `BYTE_TEST` did not read its magic value: no LAN9118 there.
    NotFound(u32),
    /// The device never signalled ready, or a reset or register access
    /// never completed.
    Timeout,
}

/// Counters kept by the driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to the network stack.
    pub rx_frames: u32,
    /// Frames dropped on receive: errors, or too short or long.
    pub rx_dropped: u32,
    /// Frames given to the controller.
    pub tx_frames: u32,
    /// Frames the controller reported as not sent (TX status errors).
    pub tx_errors: u32,
    /// Frames dropped because the TX FIFO had no room.
    pub tx_dropped: u32,
}

/// What an RX status word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxStatus {
    /// Length of the frame in the data FIFO, CRC included.
    pub len: usize,
    /// The controller marked the frame bad (or it failed the filter).
    pub error: bool,
}

impl RxStatus {
    /// Decodes an RX status word.
    pub fn decode(word: u32) -> Self {
        RxStatus {
            len: ((word >> 16) & 0x3FFF) as usize,
            error: word & (bits::STATUS_ES | bits::RX_STATUS_FILTER_FAIL) != 0,
        }
    }

    /// Data FIFO words the frame occupies (no offset, no end padding).
    pub fn words(&self) -> usize {
        self.len.div_ceil(4)
    }

    /// The frame's length without CRC, if it is a frame the stack can take.
    pub fn frame_len(&self) -> Option<usize> {
        let len = self.len.checked_sub(CRC_LEN)?;
        (!self.error && (MIN_FRAME..=MAX_FRAME).contains(&len)).then_some(len)
    }
}

/// TX command A for a frame of `len` bytes sent as one segment.
pub fn tx_command_a(len: usize) -> u32 {
    bits::TX_A_FIRST | bits::TX_A_LAST | (len as u32 & 0x7FF)
}

/// TX command B for a frame of `len` bytes carrying `tag` (echoed in its
/// TX status).
pub fn tx_command_b(tag: u16, len: usize) -> u32 {
    (u32::from(tag) << 16) | (len as u32 & 0x7FF)
}

/// The number of 32-bit words `len` bytes take in a FIFO.
pub fn words(len: usize) -> usize {
    len.div_ceil(4)
}

/// The driver's two frame buffers (3 KiB): give them a `static` home
/// (zeroed, so in .bss) rather than the stack.
#[derive(Debug)]
pub struct FrameBuffers {
    rx: [u8; MAX_FRAME],
    tx: [u8; MAX_FRAME],
}

impl FrameBuffers {
    /// Zeroed buffers, usable in a `static` initializer.
    pub const fn new() -> Self {
        FrameBuffers {
            rx: [0; MAX_FRAME],
            tx: [0; MAX_FRAME],
        }
    }
}

impl Default for FrameBuffers {
    fn default() -> Self {
        Self::new()
    }
}

/// A LAN9118 behind `R`, with one receive and one transmit frame buffer.
#[derive(Debug)]
pub struct Lan9118<'a, R: Regs> {
    regs: R,
    rx_buf: &'a mut [u8; MAX_FRAME],
    tx_buf: &'a mut [u8; MAX_FRAME],
    tx_tag: u16,
    counters: Counters,
}

impl<'a, R: Regs> Lan9118<'a, R> {
    /// Resets the controller, sets `mac` as its address and starts the
    /// transmitter and the receiver; frames pass through `buffers`.
    pub fn new(regs: R, mac: [u8; 6], buffers: &'a mut FrameBuffers) -> Result<Self, Error> {
        let mut dev = Lan9118 {
            regs,
            rx_buf: &mut buffers.rx,
            tx_buf: &mut buffers.tx,
            tx_tag: 0,
            counters: Counters::default(),
        };
        dev.init(mac)?;
        Ok(dev)
    }

    /// The driver's counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The chip's free-running 25 MHz counter: some entropy at boot.
    pub fn free_run(&mut self) -> u32 {
        self.regs.read(reg::FREE_RUN)
    }

    /// The register block, for inspection.
    pub fn regs(&mut self) -> &mut R {
        &mut self.regs
    }

    fn init(&mut self, mac: [u8; 6]) -> Result<(), Error> {
        let test = self.regs.read(reg::BYTE_TEST);
        if test != bits::BYTE_TEST_MAGIC {
            return Err(Error::NotFound(test));
        }
        self.wait_ready()?;
        self.regs.write(reg::HW_CFG, bits::HW_CFG_SRST);
        wait(&mut self.regs, reg::HW_CFG, bits::HW_CFG_SRST, 0)?;
        self.wait_ready()?;
        self.regs
            .write(reg::HW_CFG, bits::HW_CFG_MBO | bits::HW_CFG_TX_FIF_SZ_5K);
        // Polled: no interrupt source, none pending.
        self.regs.write(reg::INT_EN, 0);
        self.regs.write(reg::INT_STS, u32::MAX);
        self.regs.write(reg::IRQ_CFG, 0);

        let [a0, a1, a2, a3, a4, a5] = mac;
        self.mac_write(mac::ADDRL, u32::from_le_bytes([a0, a1, a2, a3]))?;
        self.mac_write(mac::ADDRH, u32::from_le_bytes([a4, a5, 0, 0]))?;

        self.phy_write(0, BMCR_AUTONEG)?;
        let common = self.phy_read(4)? & self.phy_read(5)?;
        let duplex = if common & ABILITY_FULL_DUPLEX != 0 {
            bits::MAC_CR_FDPX
        } else {
            0
        };

        // Frames start at offset 0 of the RX FIFO, ends aligned to 4 bytes.
        self.regs.write(reg::RX_CFG, 0);
        self.regs
            .write(reg::TX_CFG, bits::TX_CFG_TX_ON | bits::TX_CFG_TXSAO);
        // Address filtering on (not promiscuous), broadcast accepted.
        self.mac_write(mac::MAC_CR, bits::MAC_CR_TXEN | bits::MAC_CR_RXEN | duplex)
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        wait(
            &mut self.regs,
            reg::PMT_CTRL,
            bits::PMT_READY,
            bits::PMT_READY,
        )
    }

    /// Writes MAC register `index` through the CSR interface.
    pub fn mac_write(&mut self, index: u32, value: u32) -> Result<(), Error> {
        wait(&mut self.regs, reg::MAC_CSR_CMD, bits::CSR_BUSY, 0)?;
        self.regs.write(reg::MAC_CSR_DATA, value);
        self.regs
            .write(reg::MAC_CSR_CMD, bits::CSR_BUSY | (index & 0xFF));
        // The chip wants a short delay before the busy bit is valid; a
        // read of BYTE_TEST provides it.
        self.regs.read(reg::BYTE_TEST);
        wait(&mut self.regs, reg::MAC_CSR_CMD, bits::CSR_BUSY, 0)
    }

    /// Reads MAC register `index` through the CSR interface.
    pub fn mac_read(&mut self, index: u32) -> Result<u32, Error> {
        wait(&mut self.regs, reg::MAC_CSR_CMD, bits::CSR_BUSY, 0)?;
        self.regs.write(
            reg::MAC_CSR_CMD,
            bits::CSR_BUSY | bits::CSR_READ | (index & 0xFF),
        );
        self.regs.read(reg::BYTE_TEST);
        wait(&mut self.regs, reg::MAC_CSR_CMD, bits::CSR_BUSY, 0)?;
        Ok(self.regs.read(reg::MAC_CSR_DATA))
    }

    fn mii_wait(&mut self) -> Result<(), Error> {
        for _ in 0..POLLS {
            if self.mac_read(mac::MII_ACC)? & bits::MII_BUSY == 0 {
                return Ok(());
            }
        }
        Err(Error::Timeout)
    }

    fn mii_command(register: u32) -> u32 {
        (PHY_ADDR << 11) | ((register & 0x1F) << 6) | bits::MII_BUSY
    }

    /// Writes PHY register `register` through the MII interface.
    pub fn phy_write(&mut self, register: u32, value: u16) -> Result<(), Error> {
        self.mii_wait()?;
        self.mac_write(mac::MII_DATA, u32::from(value))?;
        self.mac_write(mac::MII_ACC, Self::mii_command(register) | bits::MII_WRITE)?;
        self.mii_wait()
    }

    /// Reads PHY register `register` through the MII interface.
    pub fn phy_read(&mut self, register: u32) -> Result<u16, Error> {
        self.mii_wait()?;
        self.mac_write(mac::MII_ACC, Self::mii_command(register))?;
        self.mii_wait()?;
        Ok(self.mac_read(mac::MII_DATA)? as u16)
    }

    /// Reads the next good frame into the RX buffer and returns its length,
    /// dropping bad ones on the way; `None` when no frame is waiting.
    pub fn receive_frame(&mut self) -> Option<usize> {
        // Bounded: the status FIFO holds at most a few hundred entries.
        for _ in 0..256 {
            let waiting = (self.regs.read(reg::RX_FIFO_INF) >> 16) & 0xFF;
            if waiting == 0 {
                return None;
            }
            let status = RxStatus::decode(self.regs.read(reg::RX_STATUS_FIFO));
            match status.frame_len() {
                Some(len) => {
                    read_words(&mut self.regs, status.words(), &mut self.rx_buf[..len]);
                    self.counters.rx_frames = self.counters.rx_frames.wrapping_add(1);
                    return Some(len);
                }
                None => {
                    // Read the frame out and forget it: this works for any
                    // length, where the chip's fast-forward needs 4 words.
                    read_words(&mut self.regs, status.words(), &mut []);
                    self.counters.rx_dropped = self.counters.rx_dropped.wrapping_add(1);
                }
            }
        }
        None
    }

    /// Free bytes in the TX data FIFO.
    fn tx_free(&mut self) -> usize {
        (self.regs.read(reg::TX_FIFO_INF) & 0xFFFF) as usize
    }

    /// True when a whole frame fits in the TX data FIFO.
    pub fn can_transmit(&mut self) -> bool {
        self.tx_free() >= MAX_FRAME + 8
    }

    fn token_pair(&mut self, len: usize) -> (RxToken<'_>, TxToken<'_, R>) {
        let Lan9118 {
            regs,
            rx_buf,
            tx_buf,
            tx_tag,
            counters,
        } = self;
        (
            RxToken {
                frame: &rx_buf[..len],
            },
            TxToken {
                regs,
                buf: tx_buf,
                tag: tx_tag,
                counters,
            },
        )
    }
}

/// Sends `frame` as one frame, collecting the TX
/// statuses of earlier frames first.
fn send<R: Regs>(regs: &mut R, frame: &[u8], tag: &mut u16, counters: &mut Counters) {
    let used = (regs.read(reg::TX_FIFO_INF) >> 16) & 0xFF;
    for _ in 0..used {
        if regs.read(reg::TX_STATUS_FIFO) & bits::STATUS_ES != 0 {
            counters.tx_errors = counters.tx_errors.wrapping_add(1);
        }
    }
    if (regs.read(reg::TX_FIFO_INF) & 0xFFFF) < (frame.len() + 8) as u32 {
        counters.tx_dropped = counters.tx_dropped.wrapping_add(1);
        return;
    }
    *tag = tag.wrapping_add(1);
    regs.write(reg::TX_DATA_FIFO, tx_command_a(frame.len()));
    regs.write(reg::TX_DATA_FIFO, tx_command_b(*tag, frame.len()));
    for chunk in frame.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        regs.write(reg::TX_DATA_FIFO, u32::from_le_bytes(word));
    }
    counters.tx_frames = counters.tx_frames.wrapping_add(1);
}

/// Pops `count` words from the RX data FIFO, storing their bytes
/// (little-endian) into `out` as far as it goes.
fn read_words<R: Regs>(regs: &mut R, count: usize, out: &mut [u8]) {
    let mut at = 0;
    for _ in 0..count {
        let word = regs.read(reg::RX_DATA_FIFO).to_le_bytes();
        let n = out.len().saturating_sub(at).min(4);
        out[at..at + n].copy_from_slice(&word[..n]);
        at += n;
    }
}

/// Polls register `off` until `value & mask == want`.
fn wait<R: Regs>(regs: &mut R, off: usize, mask: u32, want: u32) -> Result<(), Error> {
    for _ in 0..POLLS {
        if regs.read(off) & mask == want {
            return Ok(());
        }
    }
    Err(Error::Timeout)
}

/// A received frame, lent to the network stack.
#[derive(Debug)]
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        f(self.frame)
    }
}

/// Room for one frame to send.
#[derive(Debug)]
pub struct TxToken<'a, R: Regs> {
    regs: &'a mut R,
    buf: &'a mut [u8; MAX_FRAME],
    tag: &'a mut u16,
    counters: &'a mut Counters,
}

impl<R: Regs> phy::TxToken for TxToken<'_, R> {
    fn consume<T, F>(self, len: usize, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        // smoltcp never asks for more than the MTU given in capabilities.
        let len = len.min(MAX_FRAME);
        let result = f(&mut self.buf[..len]);
        send(self.regs, &self.buf[..len], self.tag, self.counters);
        result
    }
}

impl<R: Regs> Device for Lan9118<'_, R> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, R>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let len = self.receive_frame()?;
        Some(self.token_pair(len))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        if !self.can_transmit() {
            return None;
        }
        let (_, tx) = self.token_pair(0);
        Some(tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(1);
        caps
    }
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests {
    use super::fake::FakeLan9118;
    use super::*;
    use smoltcp::phy::{RxToken as _, TxToken as _};
    use std::boxed::Box;
    use std::vec::Vec;

    const MAC: [u8; 6] = [0x02, 0x45, 0x48, 0x55, 0x42, 0x01];

    fn frame(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
            .collect()
    }

    fn up() -> Lan9118<'static, FakeLan9118> {
        Lan9118::new(FakeLan9118::new(), MAC, buffers()).unwrap()
    }

    fn buffers() -> &'static mut FrameBuffers {
        Box::leak(Box::new(FrameBuffers::new()))
    }

    #[test]
    fn status_words_decode() {
        let s = RxStatus::decode((64 << 16) | 0x2000);
        assert_eq!(
            s,
            RxStatus {
                len: 64,
                error: false
            }
        );
        assert_eq!(s.words(), 16);
        assert_eq!(s.frame_len(), Some(60));
        let s = RxStatus::decode((67 << 16) | bits::STATUS_ES);
        assert!(s.error);
        assert_eq!(s.words(), 17);
        assert_eq!(s.frame_len(), None);
        assert_eq!(
            RxStatus::decode(17 << 16).frame_len(),
            None,
            "shorter than a header"
        );
        assert_eq!(RxStatus::decode(18 << 16).frame_len(), Some(14));
        assert_eq!(RxStatus::decode(1518 << 16).frame_len(), Some(1514));
        assert_eq!(RxStatus::decode(1519 << 16).frame_len(), None, "too long");
        assert_eq!(
            RxStatus::decode(2 << 16).frame_len(),
            None,
            "no room for a CRC"
        );
        assert!(RxStatus::decode(bits::RX_STATUS_FILTER_FAIL | (64 << 16)).error);
    }

    #[test]
    fn tx_command_words() {
        assert_eq!(tx_command_a(60), 0x3000 | 60);
        assert_eq!(tx_command_b(0xBEEF, 1514), 0xBEEF_0000 | 1514);
        assert_eq!(words(0), 0);
        assert_eq!(words(5), 2);
        assert_eq!(words(8), 2);
    }

    #[test]
    fn init_resets_sets_the_address_and_enables_tx_and_rx() {
        let mut dev = up();
        let f = dev.regs();
        assert_eq!(f.resets, 1);
        assert_eq!(f.mac_addr, MAC);
        let cr = f.mac_cr;
        assert_ne!(cr & bits::MAC_CR_TXEN, 0);
        assert_ne!(cr & bits::MAC_CR_RXEN, 0);
        assert_ne!(
            cr & bits::MAC_CR_FDPX,
            0,
            "QEMU's PHY partner does 100 full duplex"
        );
        assert_eq!(cr & (1 << 18), 0, "not promiscuous");
        assert_ne!(f.tx_cfg & bits::TX_CFG_TX_ON, 0);
        assert_eq!(f.phy_control & 0x1000, 0x1000, "autonegotiation on");
        assert_eq!(dev.mac_read(mac::ADDRL).unwrap(), 0x5548_4502);
        assert_eq!(dev.mac_read(mac::ADDRH).unwrap(), 0x0142);
    }

    #[test]
    fn init_fails_cleanly_without_a_device() {
        let mut f = FakeLan9118::new();
        f.byte_test = 0xFFFF_FFFF;
        assert_eq!(
            Lan9118::new(f, MAC, buffers()).err(),
            Some(Error::NotFound(0xFFFF_FFFF))
        );
        let mut f = FakeLan9118::new();
        f.stuck_reset = true;
        assert_eq!(Lan9118::new(f, MAC, buffers()).err(), Some(Error::Timeout));
        let mut f = FakeLan9118::new();
        f.stuck_csr = true;
        assert_eq!(Lan9118::new(f, MAC, buffers()).err(), Some(Error::Timeout));
    }

    #[test]
    fn transmit_sends_command_words_then_the_frame() {
        let mut dev = up();
        for len in [14, 15, 16, 17, 60, 61, 62, 63, 1513, 1514] {
            let data = frame(len, len as u8);
            let tx = dev.transmit(Instant::ZERO).unwrap();
            tx.consume(len, |buf| buf.copy_from_slice(&data));
            assert_eq!(dev.regs().sent.pop_front().unwrap(), data, "len {len}");
            assert!(dev.regs().sent.is_empty());
        }
        assert_eq!(dev.counters().tx_frames, 10);
        assert_eq!(dev.counters().tx_errors, 0);
    }

    #[test]
    fn transmit_collects_statuses_and_counts_errors() {
        let mut dev = up();
        dev.regs().fail_next_tx = true;
        for _ in 0..3 {
            let tx = dev.transmit(Instant::ZERO).unwrap();
            tx.consume(60, |buf| buf.fill(1));
        }
        assert_eq!(dev.counters().tx_errors, 1);
        assert_eq!(
            dev.regs().tx_status.len(),
            1,
            "the last one is still queued"
        );
    }

    #[test]
    fn no_tx_token_without_room() {
        let mut dev = up();
        dev.regs().tx_free = 100;
        assert!(dev.transmit(Instant::ZERO).is_none());
    }

    #[test]
    fn receive_returns_frames_in_order_without_crc() {
        let mut dev = up();
        assert!(dev.receive(Instant::ZERO).is_none());
        let frames: Vec<Vec<u8>> = [14, 15, 16, 17, 60, 64, 1513, 1514]
            .iter()
            .map(|&len| frame(len, 3))
            .collect();
        for f in &frames {
            dev.regs().deliver(f);
        }
        for f in &frames {
            let (rx, _tx) = dev.receive(Instant::ZERO).unwrap();
            rx.consume(|got| assert_eq!(got, &f[..]));
        }
        assert!(dev.receive(Instant::ZERO).is_none());
        assert!(dev.regs().rx_data.is_empty(), "every word was read");
        assert_eq!(dev.counters().rx_frames, frames.len() as u32);
    }

    #[test]
    fn bad_frames_are_read_out_and_dropped() {
        let mut dev = up();
        dev.regs()
            .deliver_with_status(&frame(70, 1), bits::STATUS_ES);
        dev.regs().deliver(&frame(1600, 2)); // longer than the stack takes
        dev.regs().deliver(&frame(10, 3)); // shorter than a header
        let good = frame(99, 4);
        dev.regs().deliver(&good);
        let (rx, _tx) = dev.receive(Instant::ZERO).unwrap();
        rx.consume(|got| assert_eq!(got, &good[..]));
        assert!(dev.regs().rx_data.is_empty());
        assert_eq!(dev.counters().rx_dropped, 3);
        assert!(dev.receive(Instant::ZERO).is_none());
    }

    #[test]
    fn the_tx_token_of_a_receive_answers() {
        let mut dev = up();
        let request = frame(42, 9);
        dev.regs().deliver(&request);
        let (rx, tx) = dev.receive(Instant::ZERO).unwrap();
        let reply: Vec<u8> = rx.consume(|got| got.iter().rev().copied().collect());
        tx.consume(reply.len(), |buf| buf.copy_from_slice(&reply));
        let sent = dev.regs().sent.pop_front().unwrap();
        assert_eq!(sent, request.iter().rev().copied().collect::<Vec<_>>());
    }

    #[test]
    fn capabilities_are_ethernet_with_a_1514_byte_mtu() {
        let dev = up();
        let caps = dev.capabilities();
        assert_eq!(caps.medium, Medium::Ethernet);
        assert_eq!(caps.max_transmission_unit, 1514);
    }
}
