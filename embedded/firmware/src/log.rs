//! Log lines as plain text on a byte sink (the UART), without `core::fmt`:
//! strings, integers (through `itoa`) and addresses, one line per call of
//! [`log!`](crate::log!).
//!
//! Why not defmt: the end-to-end suite and people read the firmware's
//! output straight from QEMU's stdout (`-nographic` puts UART0 there), and
//! its readiness line must be plain text; defmt frames would need the ELF
//! and `defmt-print` on every reader. This writer costs about as little
//! flash (no `core::fmt` machinery is linked).

/// Where log bytes go.
pub trait Sink {
    /// Writes `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

/// Something that can be written to a log line.
pub trait Emit {
    /// Writes `self` as text.
    fn emit<S: Sink + ?Sized>(&self, out: &mut S);
}

impl Emit for str {
    fn emit<S: Sink + ?Sized>(&self, out: &mut S) {
        out.put(self.as_bytes());
    }
}

impl<T: Emit + ?Sized> Emit for &T {
    fn emit<S: Sink + ?Sized>(&self, out: &mut S) {
        (**self).emit(out)
    }
}

macro_rules! emit_int {
    ($($t:ty),*) => {$(
        impl Emit for $t {
            fn emit<S: Sink + ?Sized>(&self, out: &mut S) {
                out.put(itoa::Buffer::new().format(*self).as_bytes());
            }
        }
    )*};
}
emit_int!(u8, u16, u32, u64, usize, i32);

/// An IPv4 address, written dotted.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4(pub [u8; 4]);

impl Emit for Ipv4 {
    fn emit<S: Sink + ?Sized>(&self, out: &mut S) {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.put(b".");
            }
            b.emit(out);
        }
    }
}

/// An Ethernet address, written as colon-separated hex.
#[derive(Debug, Clone, Copy)]
pub struct Mac(pub [u8; 6]);

impl Emit for Mac {
    fn emit<S: Sink + ?Sized>(&self, out: &mut S) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                out.put(b":");
            }
            out.put(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// A value in hexadecimal with a `0x` prefix.
#[derive(Debug, Clone, Copy)]
pub struct Hex(pub u32);

impl Emit for Hex {
    fn emit<S: Sink + ?Sized>(&self, out: &mut S) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = *b"0x00000000";
        for (i, digit) in text[2..].iter_mut().enumerate() {
            *digit = HEX[((self.0 >> (28 - 4 * i)) & 15) as usize];
        }
        out.put(&text);
    }
}

/// Writes one line: every part, then CR LF.
///
/// `log!(sink, "listening on ", Ipv4(ip), ":", port)`
#[macro_export]
macro_rules! log {
    ($sink:expr, $($part:expr),+ $(,)?) => {{
        let sink = &mut $sink;
        $( $crate::log::Emit::emit(&$part, sink); )+
        $crate::log::Sink::put(sink, b"\r\n");
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    impl Sink for Vec<u8> {
        fn put(&mut self, bytes: &[u8]) {
            self.extend_from_slice(bytes);
        }
    }

    #[test]
    fn lines() {
        let mut out = Vec::new();
        crate::log!(out, "listening on ", Ipv4([192, 168, 69, 1]), ":", 8080u16);
        crate::log!(
            out,
            "mac ",
            Mac([0x02, 0x45, 0x48, 0x55, 0x42, 0xab]),
            " id ",
            Hex(0x0118_0001)
        );
        crate::log!(out, "big ", u64::MAX, " neg ", -5i32, " ", 0usize);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "listening on 192.168.69.1:8080\r\n\
             mac 02:45:48:55:42:ab id 0x01180001\r\n\
             big 18446744073709551615 neg -5 0\r\n"
        );
    }
}
