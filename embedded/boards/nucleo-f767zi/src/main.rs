//! `envhub-nucleo`: the envhub server on a NUCLEO-F767ZI (STM32F767ZI
//! Cortex-M7, on-chip Ethernet MAC, LAN8742A PHY at MDIO address 0).
//!
//! Boot: the clocks (8 MHz from the ST-LINK's MCO, HSE bypass, PLL to
//! 96 MHz), the MPU stack guard, SysTick for the millisecond clock, the
//! RMII pins, the MAC and its DMA rings (stm32-eth), the PHY
//! (auto-negotiation, at most 5 s to wait for a link), then the shared
//! server loop (`envhub_fw_common::serve`). The loop sleeps until the
//! Ethernet interrupt (a frame in or out) or SysTick wakes it, and spins
//! instead when a timer of the server is due within a SysTick period.
//!
//! The log is defmt over RTT: `cargo run --release` (probe-rs) prints it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "envhub-nucleo runs on thumbv7em-none-eabihf: build it with cargo in \
         embedded/boards/nucleo-f767zi"
    );
}

#[cfg(target_os = "none")]
mod fw {
    use cortex_m::peripheral::{NVIC, SYST};
    use cortex_m_rt::entry;
    use defmt_rtt as _;
    use envhub_fw_common::clock::Clock;
    use envhub_fw_common::{fatal, rt, serve};
    use envhub_nucleo::eth::{Dma, Eth};
    use ieee802_3_miim::phy::{PhySpeed, LAN8742A};
    use ieee802_3_miim::Phy;
    use stm32_eth::dma::{EthernetDMA, RxRingEntry, TxRingEntry};
    use stm32_eth::mac::Speed;
    use stm32_eth::{EthPins, Parts, PartsIn};
    use stm32f7xx_hal::gpio::Speed as PinSpeed;
    use stm32f7xx_hal::pac::{self, interrupt};
    use stm32f7xx_hal::prelude::*;
    use stm32f7xx_hal::rcc::{HSEClock, HSEClockMode};

    /// The core clock: fast enough for the MAC (at least 25 MHz) with no
    /// over-drive; SysTick wraps every 175 ms at this rate.
    const SYSCLK_MHZ: u32 = 96;
    /// The PHY's MDIO address on the NUCLEO-144 boards.
    const PHY_ADDRESS: u8 = 0;
    /// How long to wait for the Ethernet link at boot; without one the
    /// firmware serves anyway (the link may come later, at 100 Mbit/s full
    /// duplex, the MAC's default).
    const LINK_WAIT_MS: u64 = 5000;
    /// Receive and transmit descriptors (stm32-eth: 1522-byte buffers).
    const RING: usize = 4;

    /// The descriptor rings with their buffers, in .bss (the DMA reaches
    /// all of RAM; the data cache stays off, so no cache maintenance).
    static RX_RING: static_rings::Rx = static_rings::Rx::new();
    static TX_RING: static_rings::Tx = static_rings::Tx::new();

    mod static_rings {
        //! The rings as `ConstStaticCell`s, taken once at boot.
        use super::{RxRingEntry, TxRingEntry, RING};
        use static_cell::ConstStaticCell;

        /// The receive ring.
        pub struct Rx(ConstStaticCell<[RxRingEntry; RING]>);
        impl Rx {
            pub const fn new() -> Self {
                Rx(ConstStaticCell::new([RxRingEntry::INIT; RING]))
            }
            pub fn take(&'static self) -> &'static mut [RxRingEntry; RING] {
                self.0.take()
            }
        }
        /// The transmit ring.
        pub struct Tx(ConstStaticCell<[TxRingEntry; RING]>);
        impl Tx {
            pub const fn new() -> Self {
                Tx(ConstStaticCell::new([TxRingEntry::INIT; RING]))
            }
            pub fn take(&'static self) -> &'static mut [TxRingEntry; RING] {
                self.0.take()
            }
        }
    }

    /// stm32-eth's DMA engine as the adapter's [`Dma`].
    struct StmDma(EthernetDMA<'static, 'static>);

    impl Dma for StmDma {
        fn rx_ready(&mut self) -> bool {
            self.0.rx_available()
        }

        fn tx_ready(&mut self) -> bool {
            self.0.tx_available()
        }

        fn receive(&mut self, buf: &mut [u8]) -> Option<usize> {
            // The packet's descriptor goes back to the DMA when it drops.
            let packet = self.0.recv_next(None).ok()?;
            let frame = buf.get_mut(..packet.len())?;
            frame.copy_from_slice(&packet);
            Some(frame.len())
        }

        fn transmit(&mut self, frame: &[u8]) -> bool {
            self.0
                .send(frame.len(), None, |buf| buf.copy_from_slice(frame))
                .is_ok()
        }
    }

    /// A frame went out or came in: the interrupt only wakes the loop.
    #[interrupt]
    fn ETH() {
        stm32_eth::eth_interrupt_handler();
    }

    #[entry]
    fn main() -> ! {
        defmt::info!("envhub-nucleo booting");
        let (Some(mut cp), Some(p)) = (cortex_m::Peripherals::take(), pac::Peripherals::take())
        else {
            fatal!(rt::FAILED, "fatal: peripherals taken twice")
        };
        rt::guard_stack(&mut cp.MPU);
        let clocks = p
            .RCC
            .constrain()
            .cfgr
            .hse(HSEClock::new(8.MHz(), HSEClockMode::Bypass))
            .sysclk(SYSCLK_MHZ.MHz())
            .hclk(SYSCLK_MHZ.MHz())
            .freeze();
        rt::start_systick(&mut cp.SYST);
        let mut clock = Clock::new(clocks.sysclk().raw());

        let gpioa = p.GPIOA.split();
        let gpiob = p.GPIOB.split();
        let gpioc = p.GPIOC.split();
        let gpiog = p.GPIOG.split();
        // RMII on the NUCLEO-144: REF_CLK PA1, CRS_DV PA7, TX_EN PG11,
        // TXD0 PG13, TXD1 PB13, RXD0 PC4, RXD1 PC5; MDIO PA2, MDC PC1.
        let pins = EthPins {
            ref_clk: gpioa.pa1.into_floating_input(),
            crs: gpioa.pa7.into_floating_input(),
            tx_en: gpiog.pg11.into_floating_input(),
            tx_d0: gpiog.pg13.into_floating_input(),
            tx_d1: gpiob.pb13.into_floating_input(),
            rx_d0: gpioc.pc4.into_floating_input(),
            rx_d1: gpioc.pc5.into_floating_input(),
        };
        let mdio = gpioa
            .pa2
            .into_alternate::<11>()
            .set_speed(PinSpeed::VeryHigh);
        let mdc = gpioc
            .pc1
            .into_alternate::<11>()
            .set_speed(PinSpeed::VeryHigh);
        let parts = PartsIn {
            dma: p.ETHERNET_DMA,
            mac: p.ETHERNET_MAC,
            mmc: p.ETHERNET_MMC,
        };
        let Ok(Parts { mac, dma }) = stm32_eth::new_with_mii(
            parts,
            &mut RX_RING.take()[..],
            &mut TX_RING.take()[..],
            clocks,
            pins,
            mdio,
            mdc,
        ) else {
            fatal!(
                rt::FAILED,
                "fatal: the Ethernet MAC needs HCLK of at least 25 MHz"
            )
        };
        dma.enable_interrupt();

        let mut phy = LAN8742A::new(mac, PHY_ADDRESS);
        phy.phy_init();
        let start = clock.now(SYST::get_current());
        while !phy.link_established() {
            if clock.now(SYST::get_current()) >= start + LINK_WAIT_MS {
                break;
            }
        }
        match phy.link_speed() {
            Some(speed) if phy.link_established() => {
                let (mac_speed, name) = match speed {
                    PhySpeed::HalfDuplexBase10T => (Speed::HalfDuplexBase10T, "10 Mbit/s half"),
                    PhySpeed::FullDuplexBase10T => (Speed::FullDuplexBase10T, "10 Mbit/s full"),
                    PhySpeed::HalfDuplexBase100Tx => {
                        (Speed::HalfDuplexBase100Tx, "100 Mbit/s half")
                    }
                    PhySpeed::FullDuplexBase100Tx => {
                        (Speed::FullDuplexBase100Tx, "100 Mbit/s full")
                    }
                };
                phy.get_miim().set_speed(mac_speed);
                defmt::info!("ethernet link up, {=str} duplex", name);
            }
            _ => defmt::warn!("no ethernet link yet; serving anyway (100 Mbit/s full duplex)"),
        }

        let settings = rt::settings();
        // No entropy source is used: SysTick's position after the link wait,
        // which varies with the PHY, and the boot time in milliseconds.
        let now = clock.now(SYST::get_current());
        let seed = (now << 32) | u64::from(SYST::get_current());
        let mut eth = Eth::new(StmDma(dma));
        unmask_eth();
        // Sleep until a frame or SysTick wakes the core, unless a timer is
        // due sooner than SysTick's next wrap: then poll again at once.
        serve::serve(&settings, &mut eth, &mut clock, seed, |now, next| {
            let soon = next.is_some_and(|due| due.saturating_sub(now) < 150);
            if !soon {
                cortex_m::asm::wfi();
            }
        })
    }

    /// Lets the Ethernet interrupt wake the core.
    #[allow(unsafe_code)]
    fn unmask_eth() {
        // SAFETY: the ETH handler above only acknowledges the interrupt; it
        // shares no data with the loop.
        unsafe { NVIC::unmask(pac::Interrupt::ETH) }
    }
}
