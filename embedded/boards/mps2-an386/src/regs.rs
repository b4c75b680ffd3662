//! Register access, behind a trait so the driver logic runs on the host
//! against a fake register file, and the memory-mapped implementations, the
//! only `unsafe` code of the firmware.

/// A block of 32-bit registers addressed by byte offset.
///
/// Reads take `&mut self`: reading a FIFO port pops it.
pub trait Regs {
    /// Reads the register at byte offset `off`.
    fn read(&mut self, off: usize) -> u32;
    /// Writes `value` to the register at byte offset `off`.
    fn write(&mut self, off: usize, value: u32);
}

/// A memory-mapped register block of `SIZE` bytes at a fixed address.
///
/// Offsets are masked to the block (`off % SIZE`, word-aligned), so no
/// access leaves it whatever the caller passes.
#[derive(Debug)]
pub struct Mmio<const SIZE: usize> {
    base: usize,
}

/// The LAN9118 of the MPS2 AN385/AN386 (256 bytes of registers).
pub const LAN9118_BASE: usize = 0x4020_0000;
/// The CMSDK APB UART0 of the MPS2 AN385/AN386 (4 KiB window).
pub const UART0_BASE: usize = 0x4000_4000;
/// The CMSDK APB timer 0 of the MPS2 AN385/AN386 (4 KiB window, IRQ 8).
pub const TIMER0_BASE: usize = 0x4000_0000;
/// The NVIC's interrupt set-enable registers (ISER0..ISER7) of every
/// Cortex-M.
pub const NVIC_ISER_BASE: usize = 0xE000_E100;

impl Mmio<0x100> {
    /// The LAN9118 Ethernet controller of the MPS2 AN386.
    pub const fn mps2_lan9118() -> Self {
        Mmio { base: LAN9118_BASE }
    }
}

impl Mmio<0x1000> {
    /// The UART0 of the MPS2 AN386.
    pub const fn mps2_uart0() -> Self {
        Mmio { base: UART0_BASE }
    }

    /// The timer 0 of the MPS2 AN386.
    pub const fn mps2_timer0() -> Self {
        Mmio { base: TIMER0_BASE }
    }
}

impl Mmio<0x20> {
    /// The NVIC interrupt set-enable registers: writing bit `n % 32` of
    /// the register at offset `4 * (n / 32)` enables interrupt `n`.
    /// (Enabling is all the firmware does with the NVIC; it masks nothing
    /// and uses no critical section that relies on NVIC masks.)
    pub const fn nvic_iser() -> Self {
        Mmio {
            base: NVIC_ISER_BASE,
        }
    }
}

impl<const SIZE: usize> Mmio<SIZE> {
    #[inline(always)]
    fn addr(&self, off: usize) -> *mut u32 {
        (self.base + ((off % SIZE) & !3)) as *mut u32
    }
}

#[allow(unsafe_code)]
impl<const SIZE: usize> Regs for Mmio<SIZE> {
    #[inline(always)]
    fn read(&mut self, off: usize) -> u32 {
        // SAFETY: `Mmio` values exist only for the device windows above
        // (their constructors are the only way to make one); `addr` keeps
        // the access inside the window and word-aligned, and a volatile
        // 32-bit read is how these devices are accessed.
        unsafe { core::ptr::read_volatile(self.addr(off)) }
    }

    #[inline(always)]
    fn write(&mut self, off: usize, value: u32) {
        // SAFETY: as for `read`: an aligned 32-bit volatile store inside the
        // device's register window, which no Rust object overlaps.
        unsafe { core::ptr::write_volatile(self.addr(off), value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_stay_inside_the_window() {
        let m = Mmio::mps2_lan9118();
        assert_eq!(m.addr(0xA4) as usize, 0x4020_00A4);
        assert_eq!(m.addr(0x1A6) as usize, 0x4020_00A4);
        let u = Mmio::mps2_uart0();
        assert_eq!(u.addr(0x10) as usize, 0x4000_4010);
        assert_eq!(u.addr(0x1003) as usize, 0x4000_4000);
    }
}
