//! A Linux TAP device as a smoltcp [`Device`], written here rather than
//! smoltcp's `TunTapInterface` because that one panics when a frame cannot
//! be sent (EIO while the link is down, ENOBUFS): its `TxToken::consume`
//! unwraps the write. On a real wire a frame that cannot be sent is simply
//! lost and TCP retransmits it; this device does the same, and logs an
//! outage once (with the count of dropped frames when it ends), not per
//! frame.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The largest Ethernet frame sent: a 1500-byte IP MTU and the 14-byte
/// header (a TAP interface's default).
const MTU: usize = 1514;
/// Room for any frame received, jumbo frames included.
const RX_BUF: usize = 65_536;

/// An open TAP interface (`IFF_TAP | IFF_NO_PI`), non-blocking.
#[derive(Debug)]
pub struct TapDevice {
    file: File,
    rx: Vec<u8>,
    tx: Transmit,
}

/// What the transmit side knows about an outage.
#[derive(Debug, Default)]
struct Transmit {
    /// Frames dropped since the last one that went out.
    dropped: u64,
}

impl TapDevice {
    /// Attaches to the TAP interface `name` (creating it if it does not
    /// exist and the process may).
    pub fn open(name: &str) -> io::Result<TapDevice> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")?;
        attach(&file, name)?;
        Ok(TapDevice {
            file,
            rx: vec![0; RX_BUF],
            tx: Transmit::default(),
        })
    }

    /// Waits until a frame can be read or `timeout` passes (or a signal
    /// interrupts the wait).
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// `TUNSETIFF`: binds `file` (an open `/dev/net/tun`) to the TAP interface
/// `name`, without packet information headers.
fn attach(file: &File, name: &str) -> io::Result<()> {
    // SAFETY: `ifreq` is plain old data, for which all zero bytes are valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= ifr.ifr_name.len() || name.contains('\0') {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: the fd is open for the call's duration, and TUNSETIFF reads
    // (and may write back) exactly one `ifreq`, which `ifr` is.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Device for TapDevice {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        match (&self.file).read(&mut self.rx) {
            Ok(n) if n > 0 => Some((
                RxToken {
                    frame: &self.rx[..n],
                },
                TxToken {
                    file: &self.file,
                    tx: &mut self.tx,
                },
            )),
            // Nothing to read, the link is down, or the read failed: no
            // frame this time.
            _ => None,
        }
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_>> {
        Some(TxToken {
            file: &self.file,
            tx: &mut self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}

/// One received frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

/// Room for one frame to send.
pub struct TxToken<'a> {
    file: &'a File,
    tx: &'a mut Transmit,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; MTU];
        let len = len.min(MTU);
        let result = f(&mut frame[..len]);
        let mut file = self.file;
        match file.write(&frame[..len]) {
            Ok(_) => {
                if self.tx.dropped > 0 {
                    log::info!(
                        "the TAP device sends again; {} frame(s) were dropped",
                        self.tx.dropped
                    );
                    self.tx.dropped = 0;
                }
            }
            Err(e) => {
                if self.tx.dropped == 0 {
                    log::warn!("cannot send on the TAP device ({e}): dropping frames until it can");
                }
                self.tx.dropped += 1;
            }
        }
        result
    }
}
