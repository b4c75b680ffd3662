//! Start-up, panics, faults and stopping: the same on every board.
//!
//! Every message goes through defmt (the board chooses the transport). No
//! `core::fmt`: the panic handler logs the location and a literal message
//! only, so the formatting machinery is not linked for it.

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{MPU, SYST};
use cortex_m_rt::{exception, ExceptionFrame};

use crate::clock::SYSTICK_RELOAD;
use crate::settings::Settings;

/// Exit status (under semihosting) after a panic.
pub const PANICKED: i32 = 101;
/// Exit status after a fault.
pub const FAULTED: i32 = 102;
/// Exit status after a stack overflow.
pub const OVERFLOWED: i32 = 103;
/// Exit status for a command line the firmware cannot follow.
pub const BAD_ARGUMENTS: i32 = 2;
/// Exit status for any other fatal error.
pub const FAILED: i32 = 1;

extern "C" {
    /// The top of the stack (cortex-m-rt; flip-link: just below the
    /// statics).
    static _stack_start: u32;
    /// The bottom of the stack: the start of RAM with flip-link.
    static _stack_end: u32;
}

/// Where the stack ends: the lowest address it may use.
fn stack_end() -> usize {
    // Only the symbol's address is taken; nothing is read.
    core::ptr::addr_of!(_stack_end) as usize
}

/// Logs `fatal: ...` through defmt and stops with `$code` (see [`halt`]).
///
/// `fatal!(FAILED, "LAN9118 not found")`
#[macro_export]
macro_rules! fatal {
    ($code:expr, $($arg:tt)+) => {{
        ::defmt::error!($($arg)+);
        $crate::rt::halt($code)
    }};
}

/// Starts SysTick free-running over its whole range at the core clock
/// (the [`crate::clock::Clock`]'s source); its interrupt, once per wrap,
/// wakes the core, so the clock is read at least once per wrap.
pub fn start_systick(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// SysTick wraps; its interrupt only wakes the core.
#[exception]
fn SysTick() {}

/// Makes the 32 bytes below the stack (below RAM: flip-link's stack grows
/// down to the start of RAM) inaccessible, so an overflow faults instead of
/// writing where nothing is (QEMU ignores such writes). The rest of memory
/// keeps the default map.
#[allow(unsafe_code)]
pub fn guard_stack(mpu: &mut MPU) {
    const RASR_ENABLE: u32 = 1;
    const RASR_SIZE_32: u32 = 4 << 1; // 2^(4+1) bytes
    const RASR_XN: u32 = 1 << 28; // no execution; AP = 0: no access
    const CTRL_ENABLE: u32 = 1;
    const CTRL_PRIVDEFENA: u32 = 1 << 2;
    let guard = (stack_end() as u32).wrapping_sub(32) & !31;
    // SAFETY: MPU register writes; region 0 covers only the 32 bytes below
    // RAM, which hold no data or code, and the background map stays in
    // force for everything else, so no access the firmware makes changes
    // meaning.
    unsafe {
        mpu.rnr.write(0);
        mpu.rbar.write(guard);
        mpu.rasr.write(RASR_XN | RASR_SIZE_32 | RASR_ENABLE);
        mpu.ctrl.write(CTRL_ENABLE | CTRL_PRIVDEFENA);
    }
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}

/// The settings: the build-time defaults ([`Settings::default`]).
#[cfg(not(feature = "semihosting"))]
pub fn settings() -> Settings {
    Settings::default()
}

/// The settings: the defaults with the semihosting command line applied;
/// a bad command line is reported and QEMU exits with status 2.
#[cfg(feature = "semihosting")]
pub fn settings() -> Settings {
    use crate::settings::ArgError;
    let Ok(args) = semihosting::experimental::env::args::<512>() else {
        fatal!(
            BAD_ARGUMENTS,
            "fatal: cannot read the semihosting command line"
        )
    };
    let parsed = Settings::from_args((&args).into_iter().map(|a| a.unwrap_or("(not UTF-8)")));
    match parsed {
        Ok(settings) => settings,
        Err(error) => {
            match error {
                ArgError::Unknown(arg) => defmt::error!("error: unknown argument {=str}", arg),
                ArgError::Missing(flag) => defmt::error!("error: {=str} needs a value", flag),
                ArgError::Invalid { flag, value } => {
                    defmt::error!("error: invalid value {=str} for {=str}", value, flag)
                }
                ArgError::Config(e) => defmt::error!("error: invalid value for {=str}", e.flag()),
            }
            defmt::error!(
                "usage: envhub-fw [--ip ADDR/PREFIX] [--port N] [--max-clients 1..8] \
                 [--max-per-source N] [--idle-timeout SECS] [--mode sensor|echo]"
            );
            halt(BAD_ARGUMENTS)
        }
    }
}

/// Stops: exits QEMU with `code` under semihosting, else sleeps forever
/// with interrupts off (a debugger still sees the log).
pub fn halt(code: i32) -> ! {
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

/// Logs the panic's location (and its message when it is a literal) and
/// stops. A formatted message is not rendered: that would link
/// `core::fmt`.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => defmt::error!("panic at {=str}:{=u32}", at.file(), at.line()),
        None => defmt::error!("panic"),
    }
    halt(PANICKED)
}

/// A fault. When the exception frame lies below the stack, the stack
/// overflowed into the MPU guard: the handler then moves the stack pointer
/// back to the top of the (abandoned) stack, so the report can be logged
/// like any other line.
// cortex-m-rt requires this exact signature, `unsafe` included.
#[allow(unsafe_code)]
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    if (frame as *const ExceptionFrame as usize) < stack_end() {
        let top = core::ptr::addr_of!(_stack_start) as usize;
        // SAFETY: the firmware stops after this fault and nothing on the
        // old stack is used again, so the main stack pointer may start
        // over at its top; `stack_overflow` never returns.
        unsafe {
            core::arch::asm!(
                "msr msp, {top}",
                "b {report}",
                top = in(reg) top,
                report = sym stack_overflow,
                options(noreturn)
            )
        }
    }
    defmt::error!(
        "fatal: hard fault at pc {=u32:#010x}, lr {=u32:#010x}",
        frame.pc(),
        frame.lr()
    );
    halt(FAULTED)
}

/// Reports a stack overflow on a fresh stack (see [`HardFault`]).
extern "C" fn stack_overflow() -> ! {
    defmt::error!("fatal: stack overflow");
    halt(OVERFLOWED)
}
