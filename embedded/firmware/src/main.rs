//! `envhub-fw`: the envhub server on an Arm MPS2 AN386 (Cortex-M4 at
//! 25 MHz, LAN9118 Ethernet, CMSDK UART0 console), as QEMU's `mps2-an386`
//! machine models it.
//!
//! Boot: UART0 at 115200 baud for the log, an MPU guard region below RAM
//! (flip-link puts the stack at the bottom of RAM, so an overflow hits it),
//! SysTick free-running for the millisecond clock, timer 0 interrupting at
//! 1 kHz to wake the loop, the settings (build-time defaults, or the
//! semihosting command line with feature `semihosting`), the LAN9118, then
//! the no_std server loop of `envhub-embedded`, polled on every wake-up.
//! When the server listens it prints `listening on ADDR:PORT`.
//!
//! A panic or a fault is logged on UART0, then the core halts (with
//! feature `semihosting`: QEMU exits with status 101 for a panic, 102 for
//! a fault, 2 for a bad command line, non-zero for a stack overflow).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("envhub-fw runs on thumbv7em-none-eabihf: build it with cargo in embedded/firmware");
}

#[cfg(target_os = "none")]
mod fw {
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::{MPU, SYST};
    use cortex_m_rt::{entry, exception, ExceptionFrame};
    use envhub_embedded::{net, Config, Server, SocketMemory};
    use smoltcp::wire::{Ipv4Address, Ipv4Cidr};
    use static_cell::ConstStaticCell;

    use envhub_fw::clock::{Clock, SYSTICK_RELOAD};
    use envhub_fw::lan9118::{FrameBuffers, Lan9118};
    use envhub_fw::log;
    use envhub_fw::log::{Hex, Ipv4, Mac};
    use envhub_fw::regs::Mmio;
    use envhub_fw::regs::Regs;
    use envhub_fw::settings::{Settings, SOCKETS};
    use envhub_fw::timer::Timer;
    use envhub_fw::uart::Uart;

    /// The MPS2 system clock, which drives the core, SysTick and the UART.
    const SYSCLK_HZ: u32 = 25_000_000;
    /// Where RAM starts (and the stack ends, flip-link's layout).
    const RAM_START: usize = 0x2000_0000;
    /// The console's baud rate.
    const BAUD: u32 = 115_200;

    /// Receive buffer of each TCP socket.
    const RX_BUF: usize = 1024;
    /// Send buffer of each TCP socket (a reply chunk is at most 256 bytes).
    const TX_BUF: usize = 1024;

    /// The sockets' memory, in .bss (no heap; too big for the stack).
    static SOCKET_MEMORY: ConstStaticCell<SocketMemory<'static, SOCKETS, RX_BUF, TX_BUF>> =
        ConstStaticCell::new(SocketMemory::new());
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

    /// SysTick wraps every 671 ms; its interrupt only wakes the core.
    #[exception]
    fn SysTick() {}

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

    #[entry]
    fn main() -> ! {
        let mut uart = console();
        uart.enable(SYSCLK_HZ, BAUD);
        log!(uart, "envhub-fw ", env!("CARGO_PKG_VERSION"), " booting");
        let Some(mut cp) = cortex_m::Peripherals::take() else {
            fatal("core peripherals taken twice")
        };
        guard_stack(&mut cp.MPU);
        start_systick(&mut cp.SYST);
        let mut clock = Clock::new(SYSCLK_HZ);
        #[cfg(feature = "overflow-test")]
        overflow_the_stack();
        start_wakeups();

        let settings = settings();
        let mut eth = match Lan9118::new(Mmio::mps2_lan9118(), settings.mac, FRAMES.take()) {
            Ok(eth) => eth,
            Err(_) => fatal("LAN9118 not found or not responding"),
        };
        log!(uart, "lan9118 up, mac ", Mac(settings.mac));
        // No RNG on this board: the chip's free-running counter and SysTick
        // both depend on how long the boot took.
        let seed = (u64::from(eth.free_run()) << 32) | u64::from(SYST::get_current());

        let now = clock.now(SYST::get_current());
        let [a, b, c, d] = settings.ip;
        let ip = Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), settings.prefix);
        let iface = net::ethernet_interface(&mut eth, settings.mac, ip, seed, now);
        let config = Config {
            port: settings.port,
            core: settings.config,
        };
        let memory = SOCKET_MEMORY.take();
        let mut server = match Server::new(config, iface, memory, now) {
            Ok(server) => server,
            Err(_) => fatal("invalid server settings"),
        };
        log!(uart, "listening on ", Ipv4(settings.ip), ":", settings.port);
        loop {
            let now = clock.now(SYST::get_current());
            let next = server.poll(now, &mut eth);
            // Nothing due now: sleep until the next wake-up (1 ms), then
            // poll again (the LAN9118 raises no interrupt here).
            if next.is_none_or(|due| due > now) {
                cortex_m::asm::wfi();
            }
        }
    }

    /// The settings: the build-time defaults, with the semihosting command
    /// line applied when the feature is on.
    #[cfg(not(feature = "semihosting"))]
    fn settings() -> Settings {
        Settings::default()
    }

    #[cfg(feature = "semihosting")]
    fn settings() -> Settings {
        use envhub_fw::settings::ArgError;
        let Ok(args) = semihosting::experimental::env::args::<512>() else {
            fatal_code("cannot read the semihosting command line", 2)
        };
        let parsed = Settings::from_args((&args).into_iter().map(|a| a.unwrap_or("(not UTF-8)")));
        match parsed {
            Ok(settings) => settings,
            Err(error) => {
                let mut uart = console();
                match error {
                    ArgError::Unknown(arg) => log!(uart, "error: unknown argument ", arg),
                    ArgError::Missing(flag) => log!(uart, "error: ", flag, " needs a value"),
                    ArgError::Invalid { flag, .. } => log!(uart, "error: invalid value for ", flag),
                    ArgError::Config(e) => log!(uart, "error: invalid value for ", e.flag()),
                }
                log!(
                    uart,
                    "usage: envhub-fw [--ip ADDR/PREFIX] [--port N] [--max-clients 1..8] ",
                    "[--idle-timeout SECS] [--mode sensor|echo]"
                );
                halt(2)
            }
        }
    }

    fn start_systick(syst: &mut SYST) {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYSTICK_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
    }

    /// Starts the periodic wake-up of the loop: timer 0 and its interrupt.
    fn start_wakeups() {
        Timer::new(Mmio::mps2_timer0()).start_periodic(SYSCLK_HZ / POLL_HZ);
        Mmio::nvic_iser().write(0, 1 << TIMER0_IRQ);
    }

    /// Makes the 32 bytes below RAM (where flip-link's stack overflows to)
    /// inaccessible. The rest of memory keeps the default map.
    #[allow(unsafe_code)]
    fn guard_stack(mpu: &mut MPU) {
        const GUARD: u32 = 0x1FFF_FFE0;
        const RASR_ENABLE: u32 = 1;
        const RASR_SIZE_32: u32 = 4 << 1; // 2^(4+1) bytes
        const RASR_XN: u32 = 1 << 28; // no execution; AP = 0: no access
        const CTRL_ENABLE: u32 = 1;
        const CTRL_PRIVDEFENA: u32 = 1 << 2;
        // SAFETY: MPU register writes; region 0 covers only the guard below
        // RAM, which holds no data or code, and the background map stays in
        // force for everything else, so no access the firmware makes
        // changes meaning.
        unsafe {
            mpu.rnr.write(0);
            mpu.rbar.write(GUARD);
            mpu.rasr.write(RASR_XN | RASR_SIZE_32 | RASR_ENABLE);
            mpu.ctrl.write(CTRL_ENABLE | CTRL_PRIVDEFENA);
        }
        cortex_m::asm::dsb();
        cortex_m::asm::isb();
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
        let mut uart = console();
        log!(uart, "overflow test: recursing");
        let depth = recurse(core::hint::black_box(0));
        log!(uart, "overflow test: not caught, ", depth);
    }

    /// Logs `what` and halts.
    fn fatal(what: &str) -> ! {
        fatal_code(what, 1)
    }

    fn fatal_code(what: &str, code: i32) -> ! {
        let mut uart = console();
        log!(uart, "fatal: ", what);
        halt(code)
    }

    /// Stops: exits QEMU with `code` under semihosting, else sleeps forever
    /// with interrupts off.
    fn halt(code: i32) -> ! {
        #[cfg(feature = "semihosting")]
        semihosting::process::exit(code);
        #[cfg(not(feature = "semihosting"))]
        {
            let _ = code;
            cortex_m::interrupt::disable();
            loop {
                cortex_m::asm::wfi();
            }
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let mut uart = console();
        let message = info.message().as_str().unwrap_or("(formatted message)");
        match info.location() {
            Some(at) => log!(uart, "panic at ", at.file(), ":", at.line(), ": ", message),
            None => log!(uart, "panic: ", message),
        }
        halt(101)
    }

    // cortex-m-rt requires this exact signature, `unsafe` included; the
    // handler itself does nothing unsafe.
    #[allow(unsafe_code)]
    #[exception]
    unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
        // The exception frame below RAM: the stack overflowed into the MPU
        // guard. The stack is unusable, so report without calls.
        if (frame as *const ExceptionFrame as usize) < RAM_START {
            let mut uart = console();
            for &b in b"fatal: stack overflow\r\n" {
                uart.write_byte(b);
            }
            // Under semihosting the exit call may itself fault for want of
            // a stack; QEMU stops either way (status 103, or a lockup).
            halt(103)
        }
        let mut uart = console();
        log!(
            uart,
            "hard fault at pc ",
            Hex(frame.pc()),
            ", lr ",
            Hex(frame.lr())
        );
        halt(102)
    }
}
