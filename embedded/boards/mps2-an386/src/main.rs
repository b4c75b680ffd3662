//! `envhub-fw`: the envhub server on an Arm MPS2+ with the AN386 image
//! (Cortex-M4 at 25 MHz, LAN9118 Ethernet, CMSDK UART0 console), as QEMU's
//! `mps2-an386` machine models it.
//!
//! Boot: UART0 at 115200 baud for the defmt log, the MPU stack guard,
//! SysTick free-running for the millisecond clock, timer 0 interrupting at
//! 1 kHz to wake the loop, the settings, the LAN9118, then the shared
//! server loop (`envhub_fw_common::serve`), polled on every wake-up.
//!
//! The log is defmt frames (rzCOBS-encoded, zero-terminated) on UART0,
//! decoded on the host: `defmt-print -e envhub-fw`. A panic or a fault is
//! logged, then the core halts (with feature `semihosting`: QEMU exits with
//! status 101 for a panic, 102 for a fault, 103 for a stack overflow, 2 for
//! a bad command line).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "envhub-fw runs on thumbv7em-none-eabihf: build it with cargo in embedded/boards/mps2-an386"
    );
}

#[cfg(target_os = "none")]
mod fw {
    use core::sync::atomic::{AtomicBool, Ordering};

    use cortex_m::peripheral::SYST;
    use cortex_m_rt::{entry, exception};
    use envhub_fw_common::clock::Clock;
    use envhub_fw_common::{fatal, rt, serve};
    use static_cell::ConstStaticCell;

    use envhub_mps2::lan9118::{FrameBuffers, Lan9118};
    use envhub_mps2::regs::{Mmio, Regs};
    use envhub_mps2::timer::Timer;
    use envhub_mps2::uart::Uart;

    /// The MPS2 system clock, which drives the core, SysTick and the UART.
    const SYSCLK_HZ: u32 = 25_000_000;
    /// The console's baud rate.
    const BAUD: u32 = 115_200;

    /// The Ethernet driver's frame buffers, in .bss.
    static FRAMES: ConstStaticCell<FrameBuffers> = ConstStaticCell::new(FrameBuffers::new());

    /// The wake-up timer's interrupt (CMSDK timer 0 on the MPS2).
    const TIMER0_IRQ: i16 = 8;
    /// Wake-ups per second: how often the loop polls the LAN9118.
    const POLL_HZ: u32 = 1000;

    /// Interrupts of the MPS2 AN386 (its NVIC has 32).
    const IRQS: usize = 32;

    extern "C" {
        /// cortex-m-rt's name for the `DefaultHandler` defined below.
        fn DefaultHandler();
    }

    /// The interrupt part of the vector table: every interrupt goes to
    /// `DefaultHandler`. cortex-m-rt (feature `device`) places it after the
    /// exceptions; its default table would have 240 entries (960 bytes).
    // `no_mangle` and `link_section` count as unsafe code: they are how
    // cortex-m-rt's linker script finds the table.
    #[allow(unsafe_code)]
    #[link_section = ".vector_table.interrupts"]
    #[no_mangle]
    static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = [DefaultHandler; IRQS];

    /// The only interrupt enabled besides SysTick is the wake-up timer's.
    // cortex-m-rt requires `unsafe` on this signature; the handler itself
    // does nothing unsafe.
    #[allow(unsafe_code)]
    #[exception]
    unsafe fn DefaultHandler(irqn: i16) {
        if irqn == TIMER0_IRQ {
            Timer::new(Mmio::mps2_timer0()).clear_interrupt();
        }
    }

    fn console() -> Uart<Mmio<0x1000>> {
        Uart::new(Mmio::mps2_uart0())
    }

    /// The defmt logger: frames go out on UART0, written with interrupts
    /// off (the interrupt handlers never log, but a frame must not be
    /// split by one that would).
    #[defmt::global_logger]
    struct UartLogger;

    /// A frame is being written.
    static TAKEN: AtomicBool = AtomicBool::new(false);
    /// Interrupts were enabled when the frame began.
    static RESTORE: AtomicBool = AtomicBool::new(false);
    /// The frame encoder (rzCOBS), used only between `acquire` and
    /// `release`.
    static ENCODER: EncoderCell = EncoderCell(core::cell::UnsafeCell::new(defmt::Encoder::new()));

    struct EncoderCell(core::cell::UnsafeCell<defmt::Encoder>);
    // SAFETY: only touched by the logger between `acquire` and `release`,
    // with interrupts off and `TAKEN` set, on a single core.
    #[allow(unsafe_code)]
    unsafe impl Sync for EncoderCell {}

    fn write(bytes: &[u8]) {
        console().write(bytes);
    }

    // SAFETY: `acquire` disables interrupts and refuses re-entry, so one
    // frame at a time is written; `release` ends it.
    #[allow(unsafe_code)]
    unsafe impl defmt::Logger for UartLogger {
        fn acquire() {
            let enabled = cortex_m::register::primask::read().is_active();
            cortex_m::interrupt::disable();
            if TAKEN.swap(true, Ordering::Acquire) {
                // A log call inside a log call (a panic while logging):
                // drop the nested frame's bytes rather than corrupt both.
                return;
            }
            RESTORE.store(enabled, Ordering::Relaxed);
            // SAFETY: exclusive, see `EncoderCell`.
            unsafe { (*ENCODER.0.get()).start_frame(write) }
        }

        unsafe fn flush() {}

        unsafe fn release() {
            // SAFETY: exclusive, see `EncoderCell`.
            unsafe { (*ENCODER.0.get()).end_frame(write) };
            TAKEN.store(false, Ordering::Release);
            if RESTORE.load(Ordering::Relaxed) {
                // SAFETY: interrupts were on when the frame began.
                unsafe { cortex_m::interrupt::enable() }
            }
        }

        unsafe fn write(bytes: &[u8]) {
            // SAFETY: exclusive, see `EncoderCell`.
            unsafe { (*ENCODER.0.get()).write(bytes, write) }
        }
    }

    #[entry]
    fn main() -> ! {
        console().enable(SYSCLK_HZ, BAUD);
        defmt::info!("envhub-fw {=str} booting", env!("CARGO_PKG_VERSION"));
        let Some(mut cp) = cortex_m::Peripherals::take() else {
            fatal!(rt::FAILED, "fatal: core peripherals taken twice")
        };
        rt::guard_stack(&mut cp.MPU);
        rt::start_systick(&mut cp.SYST);
        let mut clock = Clock::new(SYSCLK_HZ);
        #[cfg(feature = "overflow-test")]
        overflow_the_stack();
        #[cfg(feature = "panic-test")]
        if core::hint::black_box(true) {
            panic!("panic test");
        }
        start_wakeups();

        let settings = rt::settings();
        let mut eth = match Lan9118::new(Mmio::mps2_lan9118(), settings.mac, FRAMES.take()) {
            Ok(eth) => eth,
            Err(_) => fatal!(rt::FAILED, "fatal: LAN9118 not found or not responding"),
        };
        defmt::info!("lan9118 up, mac {=[u8]:02x}", settings.mac);
        // No RNG on this board: the chip's free-running counter and SysTick
        // both depend on how long the boot took.
        let seed = (u64::from(eth.free_run()) << 32) | u64::from(SYST::get_current());
        // Nothing due now: sleep until the next wake-up (1 ms), then poll
        // again (the LAN9118 raises no interrupt here).
        serve::serve(&settings, &mut eth, &mut clock, seed, |_, _| {
            cortex_m::asm::wfi()
        })
    }

    /// Starts the periodic wake-up of the loop: timer 0 and its interrupt.
    fn start_wakeups() {
        Timer::new(Mmio::mps2_timer0()).start_periodic(SYSCLK_HZ / POLL_HZ);
        Mmio::nvic_iser().write(0, 1 << TIMER0_IRQ);
    }

    /// Recurses until the stack overflows into the guard (feature
    /// `overflow-test`, for CI: the firmware must report it and stop).
    #[cfg(feature = "overflow-test")]
    fn overflow_the_stack() {
        #[inline(never)]
        fn recurse(n: u32) -> u32 {
            let mut frame = [n as u8; 64];
            core::hint::black_box(&mut frame);
            if core::hint::black_box(n) == u32::MAX {
                return 0;
            }
            recurse(n + 1).wrapping_add(u32::from(frame[1]))
        }
        defmt::info!("overflow test: recursing");
        let depth = recurse(core::hint::black_box(0));
        defmt::error!("overflow test: not caught, {=u32}", depth);
    }
}
