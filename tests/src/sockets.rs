//! Client sockets from chosen loopback source addresses, and descriptor
//! limits: what the host's load and exhaustion tests need.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use socket2::{Domain, Socket, Type};

/// The `n`th extra loopback source address: 127.0.0.2, 127.0.0.3, … (one
/// source address has only ~28,000 ephemeral ports towards one server).
pub fn loopback_source(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + n))
}

/// Connects to `addr` from `source` (any free port), within `timeout`.
pub fn connect_from(source: IpAddr, addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.bind(&SocketAddr::new(source, 0).into())?;
    s.connect_timeout(&addr.into(), timeout)?;
    let s: TcpStream = s.into();
    s.set_nodelay(true)?;
    Ok(s)
}

/// Raises this process's RLIMIT_NOFILE (soft and, if need be, hard) to at
/// least `n`. Raising the hard limit needs root (CAP_SYS_RESOURCE).
pub fn raise_own_nofile(n: u64) -> Result<(), String> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    if soft >= n {
        return Ok(());
    }
    setrlimit(Resource::RLIMIT_NOFILE, n, hard.max(n))
        .map_err(|e| format!("cannot raise RLIMIT_NOFILE to {n} (hard limit {hard}): {e}"))
}

/// This process's hard RLIMIT_NOFILE: the most descriptors it (and a
/// server it starts) can be given without CAP_SYS_RESOURCE.
pub fn hard_nofile() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(_, hard)| hard)
}

/// Sets the RLIMIT_NOFILE of process `pid` to `n` (soft and hard) with
/// util-linux's `prlimit`.
pub fn set_nofile(pid: u32, n: u64) -> Result<(), String> {
    let out = Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={n}:{n}"))
        .output()
        .map_err(|e| format!("cannot run prlimit (util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "prlimit --nofile={n} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The resident set of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
