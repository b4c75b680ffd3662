//! The monotonic millisecond clock, from SysTick.
//!
//! SysTick runs free over its whole 24-bit range at the core clock
//! (25 MHz: one wrap every 671 ms). The time is read from its current
//! value, and [`Clock`] counts the wraps it observes, so the clock does not
//! depend on how promptly interrupts are taken. (Counting 1 ms SysTick
//! interrupts instead loses time whenever one is late: under QEMU such a
//! clock ran 16% slow.) The SysTick interrupt only wakes the core once per
//! wrap; the server loop reads the clock far more often than that.

/// SysTick's reload value: the full 24-bit range.
pub const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// Milliseconds from SysTick's current value.
#[derive(Debug, Clone)]
pub struct Clock {
    ticks_per_ms: u64,
    /// Core clock cycles counted at the last reading.
    cycles: u64,
    /// The counter's position (cycles into the period) at the last reading.
    position: u32,
}

impl Clock {
    /// A clock over a SysTick counting `hz` cycles per second, started at
    /// zero (the counter at its reload value).
    pub const fn new(hz: u32) -> Self {
        Clock {
            ticks_per_ms: hz as u64 / 1000,
            cycles: 0,
            position: 0,
        }
    }

    /// Milliseconds since start, given SysTick's current value (which
    /// counts down from [`SYSTICK_RELOAD`]). Must be called at least once
    /// per wrap; it never goes backwards.
    pub fn now(&mut self, current: u32) -> u64 {
        let position = SYSTICK_RELOAD - (current & SYSTICK_RELOAD);
        let advanced = if position >= self.position {
            position - self.position
        } else {
            // Wrapped since the last reading.
            SYSTICK_RELOAD - self.position + 1 + position
        };
        self.position = position;
        self.cycles += u64::from(advanced);
        self.cycles / self.ticks_per_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u32 = 25_000_000;

    /// The counter value `cycles` after start.
    fn current(cycles: u64) -> u32 {
        SYSTICK_RELOAD - (cycles % (u64::from(SYSTICK_RELOAD) + 1)) as u32
    }

    #[test]
    fn counts_milliseconds_across_wraps() {
        let mut c = Clock::new(HZ);
        assert_eq!(c.now(SYSTICK_RELOAD), 0);
        assert_eq!(c.now(current(24_999)), 0);
        assert_eq!(c.now(current(25_000)), 1);
        let mut last = 1;
        // Readings every 0.3 s for a day: through many wraps.
        for step in 1..=288_000u64 {
            let cycles = step * 7_500_000;
            let ms = c.now(current(cycles));
            assert_eq!(ms, cycles / 25_000);
            assert!(ms >= last);
            last = ms;
        }
    }

    #[test]
    fn a_reading_just_after_the_wrap() {
        let mut c = Clock::new(HZ);
        let period = u64::from(SYSTICK_RELOAD) + 1;
        assert_eq!(c.now(current(period - 1)), (period - 1) / 25_000);
        assert_eq!(c.now(current(period)), period / 25_000);
        assert_eq!(c.now(current(period + 1)), (period + 1) / 25_000);
    }
}
