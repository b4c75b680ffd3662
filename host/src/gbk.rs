//! `--encoding gbk`: requests are decoded from GBK to UTF-8 before the core
//! sees them, replies are encoded from UTF-8 to GBK on the way out.
//!
//! Both directions stream (encoding_rs keeps a character split across reads
//! in the decoder; an encoder input split mid-character is carried here), so
//! a multibyte character may arrive or leave in any segmentation.
//!
//! Because the core works on the decoded text, the protocol's limits (512
//! bytes per line, 32 bytes per location) count UTF-8 bytes after
//! decoding, not GBK bytes on the wire: a line of 200 Chinese characters is
//! 400 bytes of GBK but 600 of UTF-8, and so `line_too_long`.
//!
//! Bytes that are not valid GBK become one 0xFF byte each (never valid
//! UTF-8), so their line gets `invalid_utf8`, as malformed text does in
//! UTF-8 mode. A character of a reply that GBK cannot encode (possible only
//! for characters that arrived as GB18030 four-byte sequences) is sent as
//! `?`.

use std::io::{self, Read};
use std::net::TcpStream;

use encoding_rs::{Decoder, DecoderResult, Encoder, EncoderResult, GBK};

use crate::codec::{Codec, Got};

/// Most GBK bytes read from the socket at once.
const RAW: usize = 1024;

/// Most UTF-8 bytes of core output encoded at once.
const ROOM: usize = 2048;

/// A UTF-8 character's first byte; how long the character is (1 for a
/// byte that cannot start one, so it is dropped alone).
fn utf8_len(first: u8) -> usize {
    match first {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Streaming GBK transcoding for one connection.
pub struct Gbk {
    decoder: Decoder,
    encoder: Encoder,
    /// The start of a character the core's output cut off.
    carry: [u8; 4],
    carry_len: usize,
    /// Encoded output: the carried character's rest and at most [`ROOM`]
    /// bytes, never longer in GBK than in UTF-8.
    wire: [u8; ROOM + 8],
}

impl std::fmt::Debug for Gbk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gbk")
            .field("carry_len", &self.carry_len)
            .finish_non_exhaustive()
    }
}

impl Default for Gbk {
    fn default() -> Self {
        Self::new()
    }
}

impl Gbk {
    /// A fresh transcoder.
    pub fn new() -> Self {
        Gbk {
            decoder: GBK.new_decoder_without_bom_handling(),
            encoder: GBK.new_encoder(),
            carry: [0; 4],
            carry_len: 0,
            wire: [0; ROOM + 8],
        }
    }

    /// Decodes `src` into `dst`, which must have room for the worst case;
    /// returns the bytes written.
    pub fn decode(&mut self, mut src: &[u8], dst: &mut [u8], last: bool) -> usize {
        let mut written = 0;
        loop {
            let (result, read, wrote) =
                self.decoder
                    .decode_to_utf8_without_replacement(src, &mut dst[written..], last);
            written += wrote;
            src = &src[read..];
            match result {
                DecoderResult::InputEmpty => return written,
                DecoderResult::Malformed(_, _) => {
                    if let Some(slot) = dst.get_mut(written) {
                        *slot = 0xFF;
                        written += 1;
                    }
                }
                DecoderResult::OutputFull => {
                    // The caller sized `dst` for the worst case.
                    log::warn!("gbk: decoder output full, {} bytes dropped", src.len());
                    return written;
                }
            }
        }
    }

    /// How many GBK bytes may be decoded into `room` bytes of UTF-8.
    fn raw_fits(&self, room: usize) -> usize {
        let mut n = RAW.min(room / 3);
        while n > 0
            && self
                .decoder
                .max_utf8_buffer_length_without_replacement(n)
                .is_none_or(|max| max > room)
        {
            n -= 1;
        }
        n
    }

    /// Encodes the whole of `text` to `self.wire[at..]`; returns the new end.
    fn encode_str(&mut self, mut text: &str, mut at: usize) -> usize {
        loop {
            let (result, read, wrote) = self.encoder.encode_from_utf8_without_replacement(
                text,
                &mut self.wire[at..],
                false,
            );
            at += wrote;
            text = text.get(read..).unwrap_or("");
            match result {
                EncoderResult::InputEmpty => return at,
                EncoderResult::Unmappable(_) => {
                    if let Some(slot) = self.wire.get_mut(at) {
                        *slot = b'?';
                        at += 1;
                    }
                }
                EncoderResult::OutputFull => {
                    log::warn!("gbk: encoder output full, {} bytes dropped", text.len());
                    return at;
                }
            }
        }
    }
}

impl Codec for Gbk {
    fn out_room(&self) -> usize {
        ROOM
    }

    fn read(&mut self, mut sock: &TcpStream, dst: &mut [u8]) -> io::Result<Got> {
        let mut raw = [0u8; RAW];
        let want = self.raw_fits(dst.len()).max(1);
        let got = sock.read(&mut raw[..want])?;
        if got == 0 {
            return Ok(Got::Eof);
        }
        let len = self.decode(&raw[..got], dst, false);
        Ok(Got::Data {
            len,
            more: got == want,
        })
    }

    fn finish(&mut self, dst: &mut [u8]) -> usize {
        self.decode(&[], dst, true)
    }

    fn encode(&mut self, mut utf8: &[u8]) -> usize {
        let mut at = 0;
        if self.carry_len > 0 {
            let need = utf8_len(self.carry[0]);
            let take = need.saturating_sub(self.carry_len).min(utf8.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&utf8[..take]);
            self.carry_len += take;
            utf8 = &utf8[take..];
            if self.carry_len < need {
                return 0;
            }
            let carry = self.carry;
            self.carry_len = 0;
            match std::str::from_utf8(&carry[..need]) {
                Ok(c) => at = self.encode_str(c, at),
                Err(_) => {
                    self.wire[at] = b'?';
                    at += 1;
                }
            }
        }
        while !utf8.is_empty() {
            match std::str::from_utf8(utf8) {
                Ok(text) => return self.encode_str(text, at),
                Err(e) => {
                    let (valid, rest) = utf8.split_at(e.valid_up_to());
                    at = self.encode_str(std::str::from_utf8(valid).unwrap_or_default(), at);
                    match e.error_len() {
                        // Cut off mid-character: keep the start for the next call.
                        None => {
                            let keep = rest.len().min(self.carry.len());
                            self.carry[..keep].copy_from_slice(&rest[..keep]);
                            self.carry_len = keep;
                            return at;
                        }
                        // Not UTF-8 at all (the core never writes that).
                        Some(bad) => {
                            self.wire[at] = b'?';
                            at += 1;
                            utf8 = &rest[bad..];
                        }
                    }
                }
            }
        }
        at
    }

    fn wire<'a>(&'a self, _out: &'a [u8]) -> &'a [u8] {
        &self.wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gbk(text: &str) -> Vec<u8> {
        GBK.encode(text).0.into_owned()
    }

    /// Decodes `wire` fed in pieces of `step` bytes.
    fn decode_in_steps(wire: &[u8], step: usize) -> Vec<u8> {
        let mut g = Gbk::new();
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            let mut dst = [0u8; 64];
            let n = g.decode(piece, &mut dst, false);
            out.extend_from_slice(&dst[..n]);
        }
        let mut dst = [0u8; 8];
        let n = g.decode(&[], &mut dst, true);
        out.extend_from_slice(&dst[..n]);
        out
    }

    /// Encodes `utf8` handed over in pieces of `step` bytes.
    fn encode_in_steps(utf8: &[u8], step: usize) -> Vec<u8> {
        let mut g = Gbk::new();
        let mut out = Vec::new();
        for piece in utf8.chunks(step) {
            let n = g.encode(piece);
            out.extend_from_slice(&g.wire(&[])[..n]);
        }
        out
    }

    #[test]
    fn decodes_across_any_split() {
        let line = "{\"location\":\"客厅\",\"temp\":25.5,\"hum\":60}\n";
        let wire = gbk(line);
        assert_ne!(wire, line.as_bytes());
        for step in 1..=wire.len() {
            assert_eq!(decode_in_steps(&wire, step), line.as_bytes(), "step {step}");
        }
    }

    #[test]
    fn encodes_across_any_split() {
        let reply = "{\"ok\":true,\"location\":\"客厅\",\"temp\":25.5,\"hum\":60.0}\n";
        let expected = gbk(reply);
        for step in 1..=reply.len() {
            assert_eq!(
                encode_in_steps(reply.as_bytes(), step),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn malformed_gbk_becomes_invalid_utf8() {
        // 0xFF is never GBK; a lead byte before LF is malformed too.
        let out = decode_in_steps(b"a\xffb\n\x81\nc", 3);
        assert_eq!(out, b"a\xffb\n\xff\nc");
        assert!(std::str::from_utf8(&out).is_err());
        // A lead byte left at EOF.
        assert_eq!(decode_in_steps(b"x\x81", 1), b"x\xff");
    }

    #[test]
    fn unmappable_characters_become_question_marks() {
        assert_eq!(encode_in_steps("a😀b".as_bytes(), 1), b"a?b");
        assert_eq!(encode_in_steps("a😀b".as_bytes(), 100), b"a?b");
    }

    #[test]
    fn read_size_fits_the_worst_case() {
        let g = Gbk::new();
        for room in [1, 3, 4, 10, 100, 4096, 10_000] {
            let n = g.raw_fits(room);
            assert!(n <= RAW);
            if n > 0 {
                assert!(
                    g.decoder
                        .max_utf8_buffer_length_without_replacement(n)
                        .unwrap()
                        <= room
                );
            }
        }
        assert!(g.raw_fits(4096) > 1000);
    }

    #[test]
    fn encoded_never_longer_than_room() {
        // Every BMP CJK character: 3 bytes of UTF-8, 2 of GBK.
        let text = "客".repeat(ROOM / 3);
        let mut g = Gbk::new();
        let n = g.encode(text.as_bytes());
        assert_eq!(n, ROOM / 3 * 2);
    }
}
