//! Bytes tested eight at a time ("SWAR": the bit tricks of Hacker's
//! Delight 6-1), for the scans of JSON strings and of locations.
//!
//! Each test marks, in one 64-bit word holding eight bytes of the line, the
//! bytes it is true for by their high bit. A test may also mark bytes above
//! the lowest true one (a borrow only runs upward from it), never below, so
//! the lowest mark, and the lowest mark of several tests OR-ed together, is
//! exact. That is all [`run`] uses.

/// 0x01 in every byte.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// 0x80 in every byte.
const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);

/// Marks the bytes of `x` equal to `b`.
pub(crate) fn equal(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    y.wrapping_sub(ONES) & !y & HIGH
}

/// Marks the bytes of `x` below `n`, for `n` at most 0x80.
pub(crate) fn below(x: u64, n: u8) -> u64 {
    debug_assert!(n <= 0x80);
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// Marks the bytes of `x` from 0x80 on (not ASCII).
pub(crate) fn non_ascii(x: u64) -> u64 {
    x & HIGH
}

/// How many bytes of `bytes` from `from` on no byte `stop` marks, looking
/// eight at a time (the first byte of each eight in the lowest bits of the
/// word). It may stop early, before the last seven bytes; the caller goes on
/// byte by byte.
#[inline]
pub(crate) fn run(bytes: &[u8], from: usize, stop: impl Fn(u64) -> u64) -> usize {
    let mut at = from;
    while let Some(word) = bytes.get(at..at + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let marks = stop(u64::from_le_bytes(w));
        if marks != 0 {
            return at - from + (marks.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at - from
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word of eight bytes, first byte lowest.
    fn word(bytes: [u8; 8]) -> u64 {
        u64::from_le_bytes(bytes)
    }

    #[test]
    fn each_test_marks_exactly_its_lowest_byte() {
        for stop in 0..=255u8 {
            for at in 0..8 {
                // Fill with bytes that are none of the stops tested.
                let mut bytes = [b'a'; 8];
                bytes[at] = stop;
                let first = |marks: u64| (marks != 0).then(|| marks.trailing_zeros() / 8);
                let at = Some(at as u32);
                assert_eq!(first(equal(word(bytes), b'"')), at.filter(|_| stop == b'"'));
                assert_eq!(first(below(word(bytes), 0x20)), at.filter(|_| stop < 0x20));
                assert_eq!(first(non_ascii(word(bytes))), at.filter(|_| stop >= 0x80));
            }
        }
    }

    #[test]
    fn a_run_stops_at_the_first_marked_byte() {
        let text = b"abcdefghijklmnop\"qrstuvwxyz";
        let quote = |x| equal(x, b'"');
        assert_eq!(run(text, 0, quote), 16);
        assert_eq!(run(text, 3, quote), 13);
        // Fewer than eight bytes left: it stops early.
        assert_eq!(run(text, 20, quote), 0);
        assert_eq!(run(b"", 0, quote), 0);
    }
}
