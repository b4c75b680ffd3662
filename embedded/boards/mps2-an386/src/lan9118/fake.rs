//! A model of the LAN9118 register file for host tests, following what
//! QEMU's hw/net/lan9118.c does. It is strict: an access to a register the
//! driver has no business touching, or a read of an empty FIFO, panics.

use std::collections::VecDeque;
use std::vec::Vec;

use super::{bits, mac, reg};
use crate::regs::Regs;

/// Where the TX data FIFO state machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    /// Waiting for command A.
    A,
    /// Waiting for command B of a frame of this many bytes.
    B(usize),
    /// Collecting data words.
    Data,
}

/// The fake device.
#[derive(Debug)]
pub struct FakeLan9118 {
    pub byte_test: u32,
    pub stuck_reset: bool,
    pub stuck_csr: bool,
    pub fail_next_tx: bool,
    pub resets: u32,
    pub hw_cfg: u32,
    pub tx_cfg: u32,
    pub rx_cfg: u32,
    pub int_en: u32,
    pub mac_cmd: u32,
    pub mac_data: u32,
    pub mac_cr: u32,
    pub mac_addr: [u8; 6],
    pub mii_acc: u32,
    pub mii_data: u32,
    pub phy_control: u16,
    pub tx_free: u32,
    tx: Tx,
    tx_len: usize,
    tx_tag: u16,
    tx_frame: Vec<u8>,
    pub sent: VecDeque<Vec<u8>>,
    pub tx_status: VecDeque<u32>,
    pub rx_status: VecDeque<u32>,
    pub rx_data: VecDeque<u32>,
}

impl FakeLan9118 {
    /// A device as it comes out of power-on.
    pub fn new() -> Self {
        FakeLan9118 {
            byte_test: bits::BYTE_TEST_MAGIC,
            stuck_reset: false,
            stuck_csr: false,
            fail_next_tx: false,
            resets: 0,
            hw_cfg: 0x0005_0004,
            tx_cfg: 0,
            rx_cfg: 0,
            int_en: 0,
            mac_cmd: 0,
            mac_data: 0,
            mac_cr: 1 << 18,
            mac_addr: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            mii_acc: 0,
            mii_data: 0,
            phy_control: 0x3000,
            tx_free: 4608,
            tx: Tx::A,
            tx_len: 0,
            tx_tag: 0,
            tx_frame: Vec::new(),
            sent: VecDeque::new(),
            tx_status: VecDeque::new(),
            rx_status: VecDeque::new(),
            rx_data: VecDeque::new(),
        }
    }

    /// A frame arrives from the wire, as QEMU queues it: little-endian
    /// words, then a CRC.
    pub fn deliver(&mut self, frame: &[u8]) {
        self.deliver_with_status(frame, 0);
    }

    /// A frame arrives, with extra RX status bits (errors).
    pub fn deliver_with_status(&mut self, frame: &[u8], extra: u32) {
        let mut bytes = frame.to_vec();
        bytes.extend_from_slice(&[0xC1, 0xC2, 0xC3, 0xC4]);
        for chunk in bytes.chunks(4) {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            self.rx_data.push_back(u32::from_le_bytes(w));
        }
        self.rx_status
            .push_back(((bytes.len() as u32) << 16) | extra);
    }

    fn reset(&mut self) {
        self.resets += 1;
        self.hw_cfg = 0x0005_0004;
        self.mac_cr = 1 << 18;
        self.tx_cfg = 0;
        self.rx_cfg = 0;
        self.tx = Tx::A;
    }

    fn mac_access(&mut self, cmd: u32) {
        let index = cmd & 0xF;
        if cmd & bits::CSR_READ != 0 {
            self.mac_data = match index {
                mac::MAC_CR => self.mac_cr,
                mac::ADDRH => u32::from_le_bytes([self.mac_addr[4], self.mac_addr[5], 0, 0]),
                mac::ADDRL => u32::from_le_bytes([
                    self.mac_addr[0],
                    self.mac_addr[1],
                    self.mac_addr[2],
                    self.mac_addr[3],
                ]),
                mac::MII_ACC => self.mii_acc,
                mac::MII_DATA => self.mii_data,
                _ => panic!("read of MAC register {index}"),
            };
            return;
        }
        let v = self.mac_data;
        match index {
            mac::MAC_CR => self.mac_cr = v,
            mac::ADDRH => self.mac_addr[4..].copy_from_slice(&v.to_le_bytes()[..2]),
            mac::ADDRL => self.mac_addr[..4].copy_from_slice(&v.to_le_bytes()),
            mac::MII_DATA => self.mii_data = v & 0xFFFF,
            mac::MII_ACC => {
                self.mii_acc = v & 0xFFC2;
                assert_eq!((v >> 11) & 0x1F, 1, "PHY address");
                let phy_reg = (v >> 6) & 0x1F;
                if v & bits::MII_WRITE != 0 {
                    match phy_reg {
                        0 => self.phy_control = (self.mii_data & 0x7980) as u16,
                        _ => panic!("write of PHY register {phy_reg}"),
                    }
                } else {
                    self.mii_data = match phy_reg {
                        0 => u32::from(self.phy_control),
                        1 => 0x782D,
                        4 => 0x01E1,
                        5 => 0x0F71,
                        _ => panic!("read of PHY register {phy_reg}"),
                    };
                }
            }
            _ => panic!("write of MAC register {index}"),
        }
    }

    fn tx_push(&mut self, v: u32) {
        match self.tx {
            Tx::A => {
                assert_eq!(v & 0x3000, 0x3000, "one segment per frame");
                assert_eq!(v & 0x001F_0000, 0, "no data offset");
                self.tx_len = (v & 0x7FF) as usize;
                self.tx = Tx::B(self.tx_len);
            }
            Tx::B(len) => {
                assert_eq!((v & 0x7FF) as usize, len, "command B length");
                self.tx_tag = (v >> 16) as u16;
                self.tx_frame.clear();
                self.tx = Tx::Data;
                if len == 0 {
                    self.tx_done();
                }
            }
            Tx::Data => {
                let n = (self.tx_len - self.tx_frame.len()).min(4);
                self.tx_frame.extend_from_slice(&v.to_le_bytes()[..n]);
                if self.tx_frame.len() == self.tx_len {
                    self.tx_done();
                }
            }
        }
    }

    fn tx_done(&mut self) {
        assert_ne!(self.tx_cfg & bits::TX_CFG_TX_ON, 0, "transmitter on");
        assert_ne!(self.mac_cr & bits::MAC_CR_TXEN, 0, "MAC TX enabled");
        self.sent.push_back(std::mem::take(&mut self.tx_frame));
        let es = if std::mem::take(&mut self.fail_next_tx) {
            bits::STATUS_ES
        } else {
            0
        };
        self.tx_status
            .push_back((u32::from(self.tx_tag) << 16) | es);
        self.tx = Tx::A;
    }
}

impl Regs for FakeLan9118 {
    fn read(&mut self, off: usize) -> u32 {
        match off {
            0x00..=0x1C => self
                .rx_data
                .pop_front()
                .expect("read of an empty RX data FIFO"),
            reg::RX_STATUS_FIFO => self
                .rx_status
                .pop_front()
                .expect("read of an empty RX status FIFO"),
            reg::TX_STATUS_FIFO => self
                .tx_status
                .pop_front()
                .expect("read of an empty TX status FIFO"),
            reg::ID_REV => 0x0118_0001,
            reg::BYTE_TEST => self.byte_test,
            reg::HW_CFG => self.hw_cfg,
            reg::TX_CFG => self.tx_cfg,
            reg::RX_CFG => self.rx_cfg,
            reg::INT_EN => self.int_en,
            reg::PMT_CTRL => 1,
            reg::FREE_RUN => 12_345,
            reg::RX_FIFO_INF => {
                ((self.rx_status.len() as u32) << 16) | ((self.rx_data.len() as u32) * 4)
            }
            reg::TX_FIFO_INF => ((self.tx_status.len() as u32) << 16) | self.tx_free,
            reg::MAC_CSR_CMD => self.mac_cmd,
            reg::MAC_CSR_DATA => self.mac_data,
            _ => panic!("read of register {off:#x}"),
        }
    }

    fn write(&mut self, off: usize, v: u32) {
        match off {
            0x20..=0x3C => self.tx_push(v),
            reg::IRQ_CFG => {}
            reg::INT_STS => {}
            reg::INT_EN => self.int_en = v,
            reg::RX_CFG => self.rx_cfg = v,
            reg::TX_CFG => self.tx_cfg = v & 6,
            reg::HW_CFG if v & bits::HW_CFG_SRST != 0 => {
                if self.stuck_reset {
                    self.hw_cfg |= bits::HW_CFG_SRST;
                } else {
                    self.reset();
                }
            }
            reg::HW_CFG => self.hw_cfg = v,
            reg::MAC_CSR_DATA => self.mac_data = v,
            reg::MAC_CSR_CMD => {
                if self.stuck_csr {
                    self.mac_cmd = v;
                    return;
                }
                self.mac_cmd = v & 0x4000_00FF;
                if v & bits::CSR_BUSY != 0 {
                    self.mac_access(v);
                }
            }
            _ => panic!("write of register {off:#x}"),
        }
    }
}
