//! Decoding one line into a request.

use crate::error::ErrorCode;
use crate::reading::{Location, Reading};

/// One decoded request line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request {
    /// A reading to store.
    Reading(Reading),
    /// `{"cmd":"ping"}`
    Ping,
    /// `{"cmd":"latest"}`, optionally for one location.
    Latest(Option<Location>),
    /// `{"cmd":"stats"}`
    Stats,
    /// `{"cmd":"bye"}`
    Bye,
}

/// Decodes one line: no LF, no CR before it, at most 512 bytes, not blank.
pub fn decode(line: &[u8]) -> Result<Request, ErrorCode> {
    let _ = line;
    Err(ErrorCode::InvalidJson)
}
