//! The stop signal: a flag for cheap checks and a pipe for waking every
//! blocked `poll(2)` at once.
//!
//! Triggering writes one byte into the pipe and nobody ever reads it, so the
//! read end stays readable for good: the acceptor and every event loop
//! include it in their `poll` (or `mio` registry) and all wake, however many
//! there are.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::unistd::{pipe2, write};

/// The server's stop signal.
#[derive(Debug)]
pub struct Shutdown {
    flag: AtomicBool,
    rx: OwnedFd,
    tx: OwnedFd,
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> io::Result<Self> {
        let (rx, tx) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Shutdown {
            flag: AtomicBool::new(false),
            rx,
            tx,
        })
    }

    /// Asks the server to stop; safe to call any number of times, from any
    /// thread.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::Release);
        // Non-blocking: should the pipe ever be full it is readable anyway.
        let _ = write(&self.tx, &[1]);
    }

    /// True once [`Shutdown::trigger`] ran.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// The read end of the pipe: readable once triggered. Poll it, never
    /// read it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.rx.as_fd()
    }

    /// Triggers `this` on SIGINT and SIGTERM (and SIGHUP). Only one handler
    /// can be installed per process.
    pub fn on_signals(this: &Arc<Shutdown>) -> Result<(), ctrlc::Error> {
        let this = Arc::clone(this);
        ctrlc::set_handler(move || {
            if !this.is_triggered() {
                log::info!("signal received: shutting down");
            }
            this.trigger();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

    fn readable(s: &Shutdown) -> bool {
        let mut fds = [PollFd::new(s.fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn trigger_wakes_every_poller_for_good() {
        let s = Shutdown::new().unwrap();
        assert!(!s.is_triggered());
        assert!(!readable(&s));
        s.trigger();
        s.trigger();
        assert!(s.is_triggered());
        // Stays readable: nobody consumes the byte.
        assert!(readable(&s));
        assert!(readable(&s));
    }

    #[test]
    fn a_blocked_thread_wakes() {
        let s = Arc::new(Shutdown::new().unwrap());
        let waiter = {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                let mut fds = [PollFd::new(s.fd(), PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::NONE).unwrap();
                s.is_triggered()
            })
        };
        s.trigger();
        assert!(waiter.join().unwrap());
    }
}
