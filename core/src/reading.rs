//! What a sensor reports: a location and its values.

use crate::decimal::Tenths;
use crate::limits::MAX_LOCATION;

/// A location name: 1 to 32 bytes of UTF-8, no control characters
/// (U+0000 to U+001F, U+007F), no `"` and no `\`. Such a name is safe to
/// echo inside a JSON string as its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Location(heapless::String<MAX_LOCATION>);

impl Location {
    /// Checks `name` against the rules and copies it; `None` if it breaks one.
    pub fn new(name: &str) -> Option<Location> {
        if name.bytes().any(forbidden_byte) {
            return None;
        }
        Location::with_checked_chars(name)
    }

    /// Copies `name`, checking only its length (1 to 32 bytes). The caller
    /// guarantees that no byte of `name` is [`forbidden_byte`], having
    /// checked that already while reading it.
    pub(crate) fn with_checked_chars(name: &str) -> Option<Location> {
        debug_assert!(!name.bytes().any(forbidden_byte), "{name:?}");
        if name.is_empty() {
            return None;
        }
        let mut s = heapless::String::new();
        // More than `MAX_LOCATION` bytes do not fit.
        s.push_str(name).ok()?;
        Some(Location(s))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The name's bytes; locations sort bytewise.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// True for a byte no location may hold: a control character (U+0000 to
/// U+001F, U+007F), `"` or `\`. (No byte of a multi-byte UTF-8 character is
/// one of these.)
pub(crate) fn forbidden_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || b == b'"' || b == b'\\'
}

/// One valid reading, its values rounded to tenths.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Reading {
    /// Where it was measured.
    pub location: Location,
    /// Temperature in tenths of a degree Celsius, −400 to 1250.
    pub temp: Tenths,
    /// Relative humidity in tenths of a percent, 0 to 1000.
    pub hum: Tenths,
    /// The sensor's sequence number, echoed in the reply.
    pub seq: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_length_edges() {
        assert!(Location::new("").is_none());
        assert!(Location::new("a").is_some());
        assert!(Location::new(&"x".repeat(32)).is_some());
        assert!(Location::new(&"x".repeat(33)).is_none());
        // 16 two-byte characters are 32 bytes; one more is 34.
        assert!(Location::new(&"é".repeat(16)).is_some());
        assert!(Location::new(&"é".repeat(17)).is_none());
    }

    #[test]
    fn location_forbidden_characters() {
        for bad in ["a\"b", "a\\b", "a\u{0}", "tab\there", "\u{1f}", "del\u{7f}"] {
            assert!(Location::new(bad).is_none(), "{bad:?}");
        }
        for good in ["living room", "küche", "客厅", "a/b:c", "\u{80}"] {
            assert!(Location::new(good).is_some(), "{good:?}");
        }
    }
}
