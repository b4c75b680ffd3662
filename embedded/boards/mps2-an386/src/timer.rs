//! The Arm CMSDK APB timer, used as a periodic wake-up: each period it
//! raises an interrupt that ends the core's WFI, so the server loop polls
//! the Ethernet controller (which it does not take interrupts from).

use crate::regs::Regs;

const CTRL: usize = 0x00;
const RELOAD: usize = 0x08;
const INTCLEAR: usize = 0x0C;
const CTRL_ENABLE: u32 = 1 << 0;
const CTRL_IRQ_ENABLE: u32 = 1 << 3;

/// A CMSDK APB timer.
#[derive(Debug)]
pub struct Timer<R: Regs> {
    regs: R,
}

impl<R: Regs> Timer<R> {
    /// Takes the timer without touching it.
    pub const fn new(regs: R) -> Self {
        Timer { regs }
    }

    /// Starts interrupting every `cycles` clock cycles.
    pub fn start_periodic(&mut self, cycles: u32) {
        self.regs.write(CTRL, 0);
        self.regs.write(RELOAD, cycles.saturating_sub(1));
        self.regs.write(INTCLEAR, 1);
        self.regs.write(CTRL, CTRL_ENABLE | CTRL_IRQ_ENABLE);
    }

    /// Acknowledges the interrupt.
    pub fn clear_interrupt(&mut self) {
        self.regs.write(INTCLEAR, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[derive(Default)]
    struct Log(Vec<(usize, u32)>);

    impl Regs for Log {
        fn read(&mut self, off: usize) -> u32 {
            panic!("read of {off:#x}")
        }
        fn write(&mut self, off: usize, v: u32) {
            self.0.push((off, v));
        }
    }

    #[test]
    fn periodic_start_and_clear() {
        let mut t = Timer::new(Log::default());
        t.start_periodic(25_000);
        t.clear_interrupt();
        assert_eq!(
            t.regs.0,
            [
                (CTRL, 0),
                (RELOAD, 24_999),
                (INTCLEAR, 1),
                (CTRL, 9),
                (INTCLEAR, 1)
            ]
        );
    }
}
