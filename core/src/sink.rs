//! Writing replies straight into the shell's output buffer, resumably.
//!
//! A reply is written as a sequence of small chunks (a whole short reply, or
//! one item of `latest`). Rendering a chunk is deterministic, so a chunk cut
//! off by a full buffer is finished later by rendering it again and skipping
//! the bytes already written: no intermediate string, no allocation.

/// A window onto the shell's output buffer.
pub(crate) struct Sink<'a> {
    buf: &'a mut [u8],
    len: usize,
    skip: usize,
    full: bool,
}

impl<'a> Sink<'a> {
    /// An empty sink over `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Sink {
            buf,
            len: 0,
            skip: 0,
            full: false,
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Free space left.
    pub(crate) fn room(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Copies raw bytes (echo mode).
    pub(crate) fn put_raw(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room());
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    /// Renders one chunk, skipping its first `skip` bytes (already written
    /// earlier). `Ok` when the whole chunk is out, `Err(n)` with the number
    /// of the chunk's bytes out so far when the buffer filled up.
    pub(crate) fn chunk(
        &mut self,
        skip: usize,
        render: impl FnOnce(&mut Self),
    ) -> Result<(), usize> {
        let mark = self.len;
        self.skip = skip;
        self.full = false;
        render(self);
        // A chunk shorter than `skip` was already written whole.
        let done = !self.full;
        let out = skip + (self.len - mark) - self.skip;
        self.skip = 0;
        if done {
            Ok(())
        } else {
            self.full = false;
            Err(out)
        }
    }

    /// Appends bytes to the current chunk.
    ///
    /// Inlined so that a constant piece of a reply is copied as a
    /// fixed-size move when it fits and nothing is skipped, the usual case;
    /// a resumed or cut-off chunk takes [`Sink::put_slow`]. On a bare-metal
    /// target (the firmware, built for size) it stays one function: inlined
    /// into every reply it would cost a kilobyte of flash.
    #[cfg_attr(not(target_os = "none"), inline)]
    #[cfg_attr(target_os = "none", inline(never))]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if self.skip == 0 {
            if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
                dst.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
        }
        self.put_slow(bytes);
    }

    /// [`Sink::put`] skipping bytes already written, or filling up.
    #[inline(never)]
    fn put_slow(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let k = self.skip.min(bytes.len());
            self.skip -= k;
            bytes = &bytes[k..];
        }
        let n = bytes.len().min(self.room());
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        if n < bytes.len() {
            self.full = true;
        }
    }

    /// Appends a decimal integer (at most 20 digits). By hand rather than
    /// through `itoa`, whose buffer is opaque: [`Sink::put_tail`] needs the
    /// digits at a known place in an array of known size.
    pub(crate) fn put_u64(&mut self, mut v: u64) {
        let mut text = [0u8; 2 * U64_DIGITS];
        let mut at = U64_DIGITS;
        loop {
            at -= 1;
            text[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put_tail::<U64_DIGITS>(&text, at);
    }

    /// Appends a value in tenths with exactly one decimal, never `-0.0`
    /// (at most 7 bytes: `-3276.8`).
    pub(crate) fn put_tenths(&mut self, t: crate::decimal::Tenths) {
        let (neg, mut whole, frac) = t.parts();
        let mut text = [0u8; 2 * TENTHS_LEN];
        let mut at = TENTHS_LEN - 2;
        text[at] = b'.';
        text[at + 1] = b'0' + frac;
        loop {
            at -= 1;
            text[at] = b'0' + (whole % 10) as u8;
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        if neg {
            at -= 1;
            text[at] = b'-';
        }
        self.put_tail::<TENTHS_LEN>(&text, at);
    }

    /// Appends `text[at..N]`, a number rendered right-aligned in the first
    /// half of `text`. When nothing is skipped and `N` bytes are free, the
    /// fixed `N` bytes from `at` are copied in one move (the bytes past the
    /// number land in free room and are not counted as written: the shell
    /// only sends what `len` covers, and the next `put` overwrites them).
    /// Not on a bare-metal target, for flash (see [`Sink::put`]).
    #[inline]
    fn put_tail<const N: usize>(&mut self, text: &[u8], at: usize) {
        let len = N.saturating_sub(at);
        if cfg!(not(target_os = "none")) && self.skip == 0 {
            if let (Some(dst), Some(src)) = (
                self.buf.get_mut(self.len..self.len + N),
                text.get(at..at + N),
            ) {
                dst.copy_from_slice(src);
                self.len += len;
                return;
            }
        }
        self.put(text.get(at..N).unwrap_or_default());
    }
}

/// Most digits of a `u64`.
const U64_DIGITS: usize = 20;

/// Longest value in tenths, rounded up to a word: `-3276.8` is 7 bytes.
const TENTHS_LEN: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Tenths;

    fn hello(s: &mut Sink<'_>) {
        s.put(b"hello ");
        s.put_u64(42);
        s.put(b" ");
        s.put_tenths(Tenths(-5));
    }

    #[test]
    fn a_chunk_cut_off_resumes_where_it_stopped() {
        let mut whole = [0u8; 64];
        let mut s = Sink::new(&mut whole);
        assert_eq!(s.chunk(0, hello), Ok(()));
        let n = s.len();
        assert_eq!(&whole[..n], b"hello 42 -0.5");

        // Same chunk through 3-byte windows.
        let mut joined = [0u8; 64];
        let mut at = 0;
        let mut skip = 0;
        loop {
            let mut buf = [0u8; 3];
            let mut s = Sink::new(&mut buf);
            let r = s.chunk(skip, hello);
            let len = s.len();
            joined[at..at + len].copy_from_slice(&buf[..len]);
            at += len;
            match r {
                Ok(()) => break,
                Err(k) => skip = k,
            }
        }
        assert_eq!(&joined[..at], b"hello 42 -0.5");
    }

    #[test]
    fn numbers_at_their_extremes() {
        let mut buf = [0u8; 128];
        let mut s = Sink::new(&mut buf);
        let r = s.chunk(0, |s| {
            for v in [0, 9, 10, u64::from(u32::MAX), u64::MAX] {
                s.put_u64(v);
                s.put(b" ");
            }
            for t in [0, -1, 9, 10, -400, 1250, i16::MIN, i16::MAX] {
                s.put_tenths(Tenths(t));
                s.put(b" ");
            }
        });
        assert_eq!(r, Ok(()));
        let n = s.len();
        assert_eq!(
            &buf[..n],
            b"0 9 10 4294967295 18446744073709551615 0.0 -0.1 0.9 1.0 -40.0 125.0 -3276.8 3276.7 "
        );
    }

    #[test]
    fn numbers_resume_through_any_window() {
        fn render(s: &mut Sink<'_>) {
            s.put(b"x");
            s.put_u64(u64::MAX);
            s.put_tenths(Tenths(i16::MIN));
            s.put_u64(7);
        }
        let expected = b"x18446744073709551615-3276.87";
        for window in 1..=40 {
            let mut joined = [0u8; 64];
            let (mut at, mut skip) = (0, 0);
            loop {
                let mut buf = [0u8; 64];
                let mut s = Sink::new(&mut buf[..window]);
                let r = s.chunk(skip, render);
                let len = s.len();
                joined[at..at + len].copy_from_slice(&buf[..len]);
                at += len;
                match r {
                    Ok(()) => break,
                    Err(k) => skip = k,
                }
            }
            assert_eq!(&joined[..at], expected, "window {window}");
        }
    }

    #[test]
    fn a_full_buffer_reports_no_progress() {
        let mut buf = [0u8; 0];
        let mut s = Sink::new(&mut buf);
        assert_eq!(s.chunk(0, hello), Err(0));
        assert_eq!(s.chunk(4, hello), Err(4));
    }

    /// Numbers with room for the fixed-size move and with only just enough
    /// room (the byte-wise path).
    #[test]
    fn numbers_with_and_without_room_for_the_word() {
        type Put = fn(&mut Sink<'_>);
        let cases: [(Put, &str); 9] = [
            (|s| s.put_u64(0), "0"),
            (|s| s.put_u64(9_999_999_999_999_999), "9999999999999999"),
            (|s| s.put_u64(10_000_000_000_000_000), "10000000000000000"),
            (|s| s.put_u64(10_000_000_000_000_507), "10000000000000507"),
            (|s| s.put_u64(u64::MAX), "18446744073709551615"),
            (|s| s.put_tenths(Tenths(0)), "0.0"),
            (|s| s.put_tenths(Tenths(-5)), "-0.5"),
            (|s| s.put_tenths(Tenths(i16::MIN)), "-3276.8"),
            (|s| s.put_tenths(Tenths(i16::MAX)), "3276.7"),
        ];
        for (put, want) in cases {
            for room in [want.len(), 64] {
                let mut buf = [b'#'; 64];
                let mut s = Sink::new(&mut buf[..room]);
                put(&mut s);
                let n = s.len();
                assert_eq!(core::str::from_utf8(&buf[..n]), Ok(want), "room {room}");
            }
        }
    }
}
