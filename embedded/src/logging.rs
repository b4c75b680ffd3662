//! One set of logging macros over `log`, `defmt`, or nothing.
//!
//! Messages use only `{}` placeholders so that the same format string is
//! valid for both back ends. With neither feature, the arguments are still
//! type-checked (and so "used") but nothing is emitted.

use core::fmt;

use smoltcp::wire::IpEndpoint;

/// Logs an event at `$level` (`info`, `warn`, `debug`...).
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "log")]
        ::log::$level!($($arg)+);
        #[cfg(feature = "defmt")]
        ::defmt::$level!($($arg)+);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        let _ = ::core::format_args!($($arg)+);
    }};
}

/// A peer's address for the log, `?` when unknown.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpEndpoint>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(endpoint) => write!(f, "{endpoint}"),
            None => f.write_str("?"),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Peer {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self.0 {
            Some(endpoint) => defmt::write!(f, "{}", endpoint),
            None => defmt::write!(f, "?"),
        }
    }
}
