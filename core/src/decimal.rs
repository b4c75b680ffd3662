//! Exact decimal handling of JSON numbers, with no floating point.
//!
//! Written by hand: the JSON crates that run without `std` and without an
//! allocator turn numbers into `f32`/`f64`, which rounds `0.15` and `25.55`
//! the wrong way and costs kilobytes of flash on the firmware. The protocol
//! only needs three facts about a number: its sign, whether it lies inside a
//! small range, and its value rounded to tenths. All three come out of one
//! pass over the digits as written, with no big integers: a digit whose
//! weight is 10^5 tenths or more makes the number "huge" (outside every
//! range), and digits below a hundredth only matter as "something nonzero".

use core::fmt;

/// A value in tenths: `255` is 25.5. Temperatures and humidities fit an `i16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Tenths(pub i16);

impl Tenths {
    /// Sign, whole part and tenths digit, as printed: never a negative zero.
    pub fn parts(self) -> (bool, u16, u8) {
        let v = self.0;
        let mag = v.unsigned_abs();
        (v < 0, mag / 10, (mag % 10) as u8)
    }
}

impl fmt::Display for Tenths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (neg, whole, frac) = self.parts();
        write!(f, "{}{}.{}", if neg { "-" } else { "" }, whole, frac)
    }
}

/// The exact value of a JSON number, reduced to what the protocol needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    /// A nonzero digit weighs 10^5 tenths or more: |value| ≥ 10000.
    huge: bool,
    /// |value| × 10, truncated (meaningful when not `huge`).
    trunc: u32,
    /// The first digit below the tenths.
    round_digit: u8,
    /// Any nonzero digit below `round_digit`.
    sticky: bool,
}

/// Largest exponent magnitude kept; beyond it every nonzero number is huge or
/// rounds to zero anyway (a line holds at most 512 digits).
const EXP_CLAMP: i64 = 1_000_000;

impl Decimal {
    /// Reads a JSON number (RFC 8259 grammar: `-? int frac? exp?`).
    /// `None` if `text` is not exactly one such number.
    pub fn parse(text: &[u8]) -> Option<Decimal> {
        match Decimal::scan_prefix(text) {
            Some((d, len)) if len == text.len() => Some(d),
            _ => None,
        }
    }

    /// Reads the JSON number at the start of `text` and says where it ends:
    /// grammar and value in one pass over the bytes. `None` if `text` does
    /// not start with a number. Without an exponent (nearly every reading)
    /// each digit's weight is known as it is read; with one, the mantissa's
    /// digits are weighed again once the exponent is known.
    #[inline]
    pub(crate) fn scan_prefix(text: &[u8]) -> Option<(Decimal, usize)> {
        let negative = text.first() == Some(&b'-');
        let start = usize::from(negative);
        let mut p = start;
        let mut d = Decimal {
            negative,
            huge: false,
            trunc: 0,
            round_digit: 0,
            sticky: false,
        };
        match text.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                // The whole part, exact while below 10^4; a fifth digit
                // (never a leading zero) makes the number huge.
                let mut whole: u32 = 0;
                while let Some(&b @ b'0'..=b'9') = text.get(p) {
                    if p - start < 4 {
                        whole = whole * 10 + u32::from(b - b'0');
                    } else {
                        d.huge = true;
                    }
                    p += 1;
                }
                d.trunc = whole * 10;
            }
            _ => return None,
        }
        let int_len = p - start;
        if text.get(p) == Some(&b'.') {
            p += 1;
            let frac_start = p;
            while let Some(&b @ b'0'..=b'9') = text.get(p) {
                let digit = b - b'0';
                match p - frac_start {
                    0 => d.trunc += u32::from(digit),
                    1 => d.round_digit = digit,
                    _ => d.sticky |= digit != 0,
                }
                p += 1;
            }
            if p == frac_start {
                return None;
            }
        }
        let mantissa_end = p;
        if !matches!(text.get(p), Some(b'e' | b'E')) {
            return Some((d, p));
        }
        p += 1;
        let exp_negative = match text.get(p) {
            Some(b'-') => {
                p += 1;
                true
            }
            Some(b'+') => {
                p += 1;
                false
            }
            _ => false,
        };
        let exp_start = p;
        let mut exp: i64 = 0;
        while let Some(&b @ b'0'..=b'9') = text.get(p) {
            exp = (exp * 10 + i64::from(b - b'0')).min(EXP_CLAMP);
            p += 1;
        }
        if p == exp_start {
            return None;
        }
        if exp_negative {
            exp = -exp;
        }
        let mantissa = text.get(start..mantissa_end)?;
        Some((Decimal::weighed(negative, mantissa, int_len, exp), p))
    }

    /// The value of a checked mantissa (digits and at most one point) with
    /// `int_len` digits before the point, times 10^`exp`: each digit is
    /// weighed in tenths. Out of line: exponents are rare.
    #[inline(never)]
    fn weighed(negative: bool, mantissa: &[u8], int_len: usize, exp: i64) -> Decimal {
        let mut d = Decimal {
            negative,
            huge: false,
            trunc: 0,
            round_digit: 0,
            sticky: false,
        };
        let mut i: i64 = 0;
        for &b in mantissa {
            if b == b'.' {
                continue;
            }
            let digit = b - b'0';
            // Weight of this digit in tenths: 10^w.
            let w = int_len as i64 - i + exp;
            i += 1;
            if digit == 0 {
                continue;
            }
            if w >= 5 {
                d.huge = true;
            } else if w >= 0 {
                d.trunc += u32::from(digit) * 10u32.pow(w as u32);
            } else if w == -1 {
                d.round_digit = digit;
            } else {
                d.sticky = true;
            }
        }
        d
    }

    /// True if the number as written is zero (`0`, `-0.0`, `0e5`).
    fn is_zero(&self) -> bool {
        !self.huge && self.trunc == 0 && self.round_digit == 0 && !self.sticky
    }

    /// True if anything lies below the tenths digit.
    fn inexact(&self) -> bool {
        self.round_digit != 0 || self.sticky
    }

    /// |value| × 10 ≤ `bound` (exactly).
    fn magnitude_at_most(&self, bound: u32) -> bool {
        !self.huge && (self.trunc < bound || (self.trunc == bound && !self.inexact()))
    }

    /// |value| × 10 ≥ `bound` (exactly).
    fn magnitude_at_least(&self, bound: u32) -> bool {
        self.huge || self.trunc >= bound
    }

    /// True if `lo/10 ≤ value ≤ hi/10`, compared exactly as written.
    pub fn within(&self, lo: i32, hi: i32) -> bool {
        if self.is_zero() {
            return lo <= 0 && 0 <= hi;
        }
        if self.negative {
            // value = -m: lo ≤ -m ⟺ m ≤ -lo, and -m ≤ hi ⟺ m ≥ -hi.
            lo < 0
                && self.magnitude_at_most(lo.unsigned_abs())
                && (hi >= 0 || self.magnitude_at_least(hi.unsigned_abs()))
        } else {
            hi > 0
                && self.magnitude_at_most(hi.unsigned_abs())
                && (lo <= 0 || self.magnitude_at_least(lo.unsigned_abs()))
        }
    }

    /// The value rounded to tenths, ties away from zero; saturates at the
    /// ends of `i16` (only meaningful for a number inside a small range).
    pub fn rounded(&self) -> Tenths {
        if self.huge {
            return Tenths(if self.negative { i16::MIN } else { i16::MAX });
        }
        let mag = self.trunc + u32::from(self.round_digit >= 5);
        let mag = mag.min(i16::MAX as u32) as i16;
        Tenths(if self.negative { -mag } else { mag })
    }
}

/// Reads an integer literal (no fraction, no exponent) from 0 to 4294967295.
/// `-0` is the integer zero. `None` for anything else, including a valid
/// JSON number of another form.
pub fn parse_u32_literal(text: &[u8]) -> Option<u32> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, text),
    };
    // No digits, a leading zero, or more digits than `u32::MAX` has.
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') || digits.len() > 10 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    if negative && v != 0 {
        return None;
    }
    u32::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[track_caller]
    fn round(text: &str) -> i16 {
        Decimal::parse(text.as_bytes()).expect(text).rounded().0
    }

    #[track_caller]
    fn within(text: &str, lo: i32, hi: i32) -> bool {
        Decimal::parse(text.as_bytes()).expect(text).within(lo, hi)
    }

    #[test]
    fn rounding_ties_away_from_zero() {
        assert_eq!(round("0.05"), 1);
        assert_eq!(round("-0.05"), -1);
        assert_eq!(round("0.15"), 2);
        assert_eq!(round("-0.15"), -2);
        assert_eq!(round("25.55"), 256);
        assert_eq!(round("2.5e-1"), 3);
        assert_eq!(round("99.95"), 1000);
        assert_eq!(round("0.04999999999999999999"), 0);
        assert_eq!(round("0.25"), 3);
        assert_eq!(round("1.45"), 15);
    }

    #[test]
    fn number_forms() {
        assert_eq!(round("60"), 600);
        assert_eq!(round("-0.5"), -5);
        assert_eq!(round("2.5e1"), 250);
        assert_eq!(round("1E-1"), 1);
        assert_eq!(round("1e+2"), 1000);
        assert_eq!(round("0.0125e3"), 125);
        assert_eq!(round("125"), 1250);
        assert_eq!(round("0"), 0);
        assert_eq!(round("-0"), 0);
        assert_eq!(round("1e-400"), 0);
        assert_eq!(round("0e99999999999999999999"), 0);
    }

    #[test]
    fn negative_zero_prints_as_zero() {
        for t in ["-0", "-0.0", "-0.04", "-0e3", "-1e-9"] {
            assert_eq!(Tenths(round(t)).to_string(), "0.0", "{t}");
        }
        assert_eq!(Tenths(-5).to_string(), "-0.5");
        assert_eq!(Tenths(1250).to_string(), "125.0");
        assert_eq!(Tenths(-400).to_string(), "-40.0");
    }

    #[test]
    fn range_is_checked_as_written() {
        // temp: −40 ≤ v ≤ 125
        assert!(within("125", -400, 1250));
        assert!(within("125.0000", -400, 1250));
        assert!(!within("125.00001", -400, 1250));
        assert!(!within("125.04", -400, 1250));
        assert!(within("-40", -400, 1250));
        assert!(!within("-40.01", -400, 1250));
        assert!(!within("-40.0000000000000000001", -400, 1250));
        assert!(within("1.25e2", -400, 1250));
        assert!(!within("1e400", -400, 1250));
        assert!(!within("-1e400", -400, 1250));
        assert!(!within("10000", -400, 1250));
        // hum: 0 ≤ v ≤ 100
        assert!(within("-0", 0, 1000));
        assert!(within("-0.0e7", 0, 1000));
        assert!(!within("-0.01", 0, 1000));
        assert!(!within("-1e-400", 0, 1000));
        assert!(within("100", 0, 1000));
        assert!(!within("100.01", 0, 1000));
        assert!(within("1e-400", 0, 1000));
    }

    #[test]
    fn grammar_is_enforced() {
        for bad in [
            "", "-", "+1", "01", "1.", ".5", "1e", "1e+", "--1", "1.5.2", "0x10", "1 ", " 1",
            "Infinity", "NaN", "1e5.5",
        ] {
            assert!(Decimal::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn seq_literals() {
        assert_eq!(parse_u32_literal(b"0"), Some(0));
        assert_eq!(parse_u32_literal(b"-0"), Some(0));
        assert_eq!(parse_u32_literal(b"7"), Some(7));
        assert_eq!(parse_u32_literal(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32_literal(b"4294967296"), None);
        assert_eq!(parse_u32_literal(b"99999999999999999999999"), None);
        assert_eq!(parse_u32_literal(b"-1"), None);
        assert_eq!(parse_u32_literal(b"1.0"), None);
        assert_eq!(parse_u32_literal(b"1e2"), None);
        assert_eq!(parse_u32_literal(b"007"), None);
        assert_eq!(parse_u32_literal(b""), None);
    }
}
