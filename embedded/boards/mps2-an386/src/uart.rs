//! The Arm CMSDK APB UART, transmit side only: the log console.

use crate::regs::Regs;

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
/// `STATE`: the transmit buffer is full.
const STATE_TX_FULL: u32 = 1 << 0;
/// `CTRL`: transmitter enabled.
const CTRL_TX_EN: u32 = 1 << 0;
/// Polls of a full transmit buffer before a byte is dropped, so a stuck
/// UART cannot hang the firmware.
const POLLS: u32 = 100_000;

/// A CMSDK UART used for output.
#[derive(Debug)]
pub struct Uart<R: Regs> {
    regs: R,
}

impl<R: Regs> Uart<R> {
    /// Takes the UART without touching it (it may already be set up).
    pub const fn new(regs: R) -> Self {
        Uart { regs }
    }

    /// Sets the baud rate divider (`clock / baud`, at least 16) and
    /// enables the transmitter.
    pub fn enable(&mut self, clock_hz: u32, baud: u32) {
        self.regs.write(BAUDDIV, (clock_hz / baud).max(16));
        self.regs.write(CTRL, CTRL_TX_EN);
    }

    /// Writes one byte, waiting while the transmit buffer is full. Always
    /// inlined: the stack-overflow report calls it with no usable stack.
    #[inline(always)]
    pub fn write_byte(&mut self, byte: u8) {
        for _ in 0..POLLS {
            if self.regs.read(STATE) & STATE_TX_FULL == 0 {
                self.regs.write(DATA, u32::from(byte));
                return;
            }
        }
    }
}

impl<R: Regs> Uart<R> {
    /// Writes `bytes` in order (the defmt logger's frames).
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[derive(Default)]
    struct Fake {
        ctrl: u32,
        bauddiv: u32,
        busy_reads: u32,
        out: Vec<u8>,
    }

    impl Regs for Fake {
        fn read(&mut self, off: usize) -> u32 {
            assert_eq!(off, STATE);
            if self.busy_reads > 0 {
                self.busy_reads -= 1;
                STATE_TX_FULL
            } else {
                0
            }
        }
        fn write(&mut self, off: usize, v: u32) {
            match off {
                DATA => {
                    assert_eq!(self.ctrl & CTRL_TX_EN, CTRL_TX_EN);
                    self.out.push(v as u8)
                }
                CTRL => self.ctrl = v,
                BAUDDIV => self.bauddiv = v,
                _ => panic!("write of {off:#x}"),
            }
        }
    }

    #[test]
    fn writes_after_the_buffer_drains() {
        let mut u = Uart::new(Fake::default());
        u.enable(25_000_000, 115_200);
        assert_eq!(u.regs.bauddiv, 217);
        u.regs.busy_reads = 3;
        u.write(b"ok 42");
        assert_eq!(u.regs.out, b"ok 42");
    }

    #[test]
    fn a_stuck_uart_drops_bytes_instead_of_hanging() {
        let mut u = Uart::new(Fake::default());
        u.enable(25_000_000, 115_200);
        u.regs.busy_reads = u32::MAX;
        u.write(b"x");
        assert!(u.regs.out.is_empty());
    }
}
