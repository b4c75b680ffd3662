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
    pub(crate) fn put(&mut self, mut bytes: &[u8]) {
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

    /// Appends a decimal integer.
    pub(crate) fn put_u64(&mut self, v: u64) {
        let mut b = itoa::Buffer::new();
        self.put(b.format(v).as_bytes());
    }

    /// Appends a value in tenths with exactly one decimal, never `-0.0`.
    pub(crate) fn put_tenths(&mut self, t: crate::decimal::Tenths) {
        let (neg, whole, frac) = t.parts();
        if neg {
            self.put(b"-");
        }
        self.put_u64(u64::from(whole));
        self.put(&[b'.', b'0' + frac]);
    }
}

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
    fn a_full_buffer_reports_no_progress() {
        let mut buf = [0u8; 0];
        let mut s = Sink::new(&mut buf);
        assert_eq!(s.chunk(0, hello), Err(0));
        assert_eq!(s.chunk(4, hello), Err(4));
    }
}
