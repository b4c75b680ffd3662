//! A throw-away network namespace holding one TAP device, for `envhub-tap`.
//!
//! The namespace has no link but `lo` and `tap0`, so nothing sent inside it
//! can leave it. The kernel side of the TAP device is [`KERNEL_ADDR`]; the
//! server (smoltcp) owns [`SERVER_IP`] on the same /24.

use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

/// The TAP device's name inside the namespace.
pub const TAP_DEV: &str = "tap0";
/// The kernel's address on the TAP device, with its prefix.
pub const KERNEL_ADDR: &str = "192.168.69.100/24";
/// The server's address (passed as `--ip`).
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 69, 1);
/// The server's prefix length.
pub const SERVER_PREFIX: u8 = 24;

/// Prefix of every namespace this harness creates: `envhub-e2e-<pid>-<n>`.
const PREFIX: &str = "envhub-e2e-";

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with `lo` up and `tap0` up at [`KERNEL_ADDR`].
    pub fn create() -> Netns {
        static CLEANUP: Once = Once::new();
        CLEANUP.call_once(remove_stale);
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        // From here on, drop deletes the namespace, also if a step panics.
        let ns = Netns { name };
        let name = ns.name.as_str();
        ip(&["-n", name, "link", "set", "lo", "up"]);
        ip(&["-n", name, "tuntap", "add", "dev", TAP_DEV, "mode", "tap"]);
        ip(&["-n", name, "addr", "add", KERNEL_ADDR, "dev", TAP_DEV]);
        ip(&["-n", name, "link", "set", TAP_DEV, "up"]);
        ns
    }

    /// Whether namespaces with a TAP device can be made here (root alone
    /// is not enough in some containers): makes one and deletes it.
    pub fn probe() -> Result<(), String> {
        let name = format!("{PREFIX}{}-probe", std::process::id());
        let steps: [&[&str]; 2] = [
            &["netns", "add", &name],
            &["-n", &name, "tuntap", "add", "dev", TAP_DEV, "mode", "tap"],
        ];
        let mut result = Ok(());
        for args in steps {
            match ip_output(args) {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    result = Err(format!(
                        "`ip {}` failed: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                    break;
                }
                Err(e) => {
                    result = Err(format!("cannot run `ip`: {e}"));
                    break;
                }
            }
        }
        let _ = ip_output(&["netns", "del", &name]);
        result
    }

    /// The namespace's name, for `ip netns exec`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True once a process holds the TAP device open (carrier on).
    pub fn tap_attached(&self) -> bool {
        ip_output(&["-n", &self.name, "-o", "link", "show", TAP_DEV]).is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("LOWER_UP")
        })
    }

    /// Connects to `addr` from inside the namespace: a short-lived thread
    /// enters it and makes the socket, which stays in the namespace.
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        let ns = File::open(self.path())?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                TcpStream::connect_timeout(&addr, timeout)
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("connect thread panicked")))
        })
    }

    /// Adds `cidr` (e.g. `192.168.69.101/24`) to the kernel side of the
    /// TAP device, a second source address for clients.
    pub fn add_address(&self, cidr: &str) {
        ip(&["-n", &self.name, "addr", "add", cidr, "dev", TAP_DEV]);
    }

    /// Sets the kernel side of the TAP device down or up.
    pub fn set_link(&self, up: bool) {
        ip(&[
            "-n",
            &self.name,
            "link",
            "set",
            TAP_DEV,
            if up { "up" } else { "down" },
        ]);
    }

    /// Runs `f` on a short-lived thread inside the namespace.
    pub fn inside<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        let ns = File::open(self.path())?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("thread in the namespace panicked")))
        })
    }

    /// Connects to `addr` from the source address `src`, inside the
    /// namespace (the kernel's own connect timeout applies).
    pub fn connect_from(&self, addr: SocketAddr, src: IpAddr) -> io::Result<TcpStream> {
        self.inside(|| connect_from(addr, src))
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Never panic in drop: a test may already be unwinding.
        match ip_output(&["netns", "del", &self.name]) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: cannot run `ip netns del {}`: {e}", self.name),
        }
    }
}

/// Connects to `addr` from the source address `src` (an address of this
/// host, port chosen by the kernel). IPv4 only.
pub fn connect_from(addr: SocketAddr, src: IpAddr) -> io::Result<TcpStream> {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let (SocketAddr::V4(addr), IpAddr::V4(src)) = (addr, src) else {
        return Err(io::Error::other("IPv4 only"));
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(src, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    Ok(TcpStream::from(fd))
}

/// Deletes namespaces left by earlier test processes that were killed
/// (their pid is gone), so a crash does not leak them forever.
fn remove_stale() {
    let Ok(entries) = fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = ip_output(&["netns", "del", &name]);
        }
    }
}

/// Runs `ip ARGS` and panics if it fails.
fn ip(args: &[&str]) {
    let out = ip_output(args).unwrap_or_else(|e| panic!("cannot run `ip`: {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip ARGS` (none of the commands used here can block).
fn ip_output(args: &[&str]) -> io::Result<Output> {
    Command::new("ip").args(args).output()
}
