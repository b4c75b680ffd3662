//! How bytes on the wire become the core's UTF-8 and back.
//!
//! The core speaks UTF-8. [`Utf8`] passes bytes through untouched (the
//! default, and echo mode); [`crate::gbk::Gbk`] transcodes for
//! `--encoding gbk`.

use std::io::{self, Read};
use std::net::TcpStream;

/// What one read from the socket gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Got {
    /// `len` bytes for the core were put at the start of the buffer (maybe
    /// none, when a multibyte character is still incomplete); `more` is a
    /// hint that the socket likely has more right away (the read filled the
    /// space it was given).
    Data {
        /// Bytes put into the buffer.
        len: usize,
        /// Read again before waiting.
        more: bool,
    },
    /// The client closed its sending side.
    Eof,
}

/// A transcoder between the wire and the core.
pub trait Codec {
    /// Most bytes of core output [`Codec::encode`] takes at once.
    fn out_room(&self) -> usize;

    /// Reads once from `sock` and puts what it got, as input for the core,
    /// into `dst` (never empty).
    fn read(&mut self, sock: &TcpStream, dst: &mut [u8]) -> io::Result<Got>;

    /// After [`Got::Eof`]: puts what the decoder still holds (an incomplete
    /// character) into `dst`; returns its length.
    fn finish(&mut self, dst: &mut [u8]) -> usize;

    /// Takes the core's output `utf8` for sending; returns the number of
    /// wire bytes, which [`Codec::wire`] then holds.
    fn encode(&mut self, utf8: &[u8]) -> usize;

    /// The wire bytes of the last [`Codec::encode`]: `out` itself (the
    /// buffer the core wrote to) or the codec's own buffer.
    fn wire<'a>(&'a self, out: &'a [u8]) -> &'a [u8];
}

/// UTF-8 on the wire: no transcoding at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Codec for Utf8 {
    fn out_room(&self) -> usize {
        usize::MAX
    }

    fn read(&mut self, mut sock: &TcpStream, dst: &mut [u8]) -> io::Result<Got> {
        match sock.read(dst)? {
            0 => Ok(Got::Eof),
            len => Ok(Got::Data {
                len,
                more: len == dst.len(),
            }),
        }
    }

    fn finish(&mut self, _dst: &mut [u8]) -> usize {
        0
    }

    fn encode(&mut self, utf8: &[u8]) -> usize {
        utf8.len()
    }

    fn wire<'a>(&'a self, out: &'a [u8]) -> &'a [u8] {
        out
    }
}
