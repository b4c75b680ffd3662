//! A small JSON scanner for one request line.
//!
//! Written by hand, with no recursion and no allocation, because no `no_std`
//! JSON crate gives the decoder what the protocol needs without an
//! allocator: `serde-json-core` parses numbers into `f32`/`f64` (which round
//! `0.15` and `25.55` the wrong way and cannot hold `1e400`) and, through
//! serde's derived structs, rejects duplicate keys instead of keeping the
//! last one; none of the small no-alloc tokenizers we know of hands back
//! both a number's raw text and every member in order with a bounded,
//! input-independent amount of memory.
//!
//! This scanner walks the line once, checks the whole RFC 8259 grammar, and
//! hands the decoder each member of the top-level object: its key (escapes
//! still encoded, compared decoded through [`JsonStr`]), and the value's kind
//! and raw text, and for a number its exact value, read by
//! [`Decimal::scan_prefix`] in the same pass that checks its grammar. A later
//! duplicate key simply overwrites an earlier one.
//!
//! Values the decoder ignores are checked too, at any depth that fits in a
//! line: open containers are tracked in a fixed 512-bit stack (one bit per
//! level: object or array), more levels than a 512-byte line can hold.
//! Strings are checked everywhere the same way: no raw control characters,
//! only the escapes of RFC 8259, and no lone surrogate escapes (`"\ud800"`).

use crate::decimal::Decimal;
use crate::swar;

/// The line is not exactly one well-formed JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

/// A decoded string did not fit the buffer given for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// The kind of a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `{…}`
    Object,
    /// `[…]`
    Array,
    /// `"…"`
    String,
    /// A number, in any form of the grammar.
    Number,
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
}

/// One member's value as written: its kind and its raw text (a string with
/// its quotes, a container with its brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Value<'a> {
    /// What the value is.
    pub(crate) kind: Kind,
    /// The value's text in the line (its bytes: a value starts and ends
    /// with an ASCII byte, so it is UTF-8 like the line).
    pub(crate) raw: &'a [u8],
    /// For a number, its value; `None` for any other kind.
    number: Option<Decimal>,
    /// For a string, true if it holds no escape sequence.
    plain: bool,
    /// For a string, its text between the quotes (empty for other kinds).
    text: &'a str,
}

impl<'a> Value<'a> {
    /// The string, if the value is one.
    pub(crate) fn as_string(&self) -> Option<JsonStr<'a>> {
        if self.kind != Kind::String {
            return None;
        }
        let escaped = self.raw.get(1..self.raw.len().checked_sub(1)?)?;
        Some(JsonStr {
            escaped,
            plain: self.plain,
        })
    }

    /// The number's text, if the value is a number.
    pub(crate) fn as_number(&self) -> Option<&'a [u8]> {
        (self.kind == Kind::Number).then_some(self.raw)
    }

    /// The string's value when it is a string with no escape.
    pub(crate) fn as_plain_str(&self) -> Option<&'a str> {
        (self.kind == Kind::String && self.plain).then_some(self.text)
    }

    /// The number's exact value, if the value is a number.
    pub(crate) fn as_decimal(&self) -> Option<Decimal> {
        self.number
    }
}

/// The text between the quotes of a well-formed JSON string, escapes still
/// encoded. Only the scanner makes one, after checking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonStr<'a> {
    /// The text between the quotes (UTF-8: the quotes are ASCII bytes).
    escaped: &'a [u8],
    /// No escape sequence in it (found by the scanner in passing).
    plain: bool,
}

impl<'a> JsonStr<'a> {
    /// The characters of the string, escapes decoded.
    pub(crate) fn chars(&self) -> Unescaped<'a> {
        Unescaped {
            // Always UTF-8 (see `escaped`); were it not, no characters.
            text: core::str::from_utf8(self.escaped).unwrap_or_default(),
            at: 0,
        }
    }

    /// True if the string has no escape: its text is its value.
    fn is_plain(&self) -> bool {
        self.plain
    }

    /// The string's value when it has no escape, as bytes.
    pub(crate) fn plain(&self) -> Option<&'a [u8]> {
        self.is_plain().then_some(self.escaped)
    }

    /// True if the decoded string is `text`.
    pub(crate) fn is(&self, text: &str) -> bool {
        if self.is_plain() {
            return self.escaped == text.as_bytes();
        }
        self.chars().eq(text.chars())
    }

    /// Appends the decoded string to `out`; `Err` if it does not fit (then
    /// `out` holds a part of it).
    pub(crate) fn unescape_into<const N: usize>(
        &self,
        out: &mut heapless::String<N>,
    ) -> Result<(), Overflow> {
        if self.is_plain() {
            let text = core::str::from_utf8(self.escaped).map_err(|_| Overflow)?;
            return out.push_str(text).map_err(|_| Overflow);
        }
        self.chars()
            .try_for_each(|c| out.push(c))
            .map_err(|_| Overflow)
    }
}

/// The characters of a [`JsonStr`], escapes decoded.
#[derive(Debug, Clone)]
pub(crate) struct Unescaped<'a> {
    text: &'a str,
    at: usize,
}

impl Iterator for Unescaped<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        if self.at >= self.text.len() {
            return None;
        }
        // The scanner checked the string, so this never fails; if it did,
        // the iteration would just end.
        let (c, next) = next_char(self.text, self.at).ok()?;
        self.at = next;
        Some(c)
    }
}

/// Reads one character of a string's text at `at`, which is not its closing
/// quote: an escape sequence or one raw character. Returns the character and
/// where the next one begins. This is the string grammar, for the scanner and
/// for decoding alike.
fn next_char(text: &str, at: usize) -> Result<(char, usize), Invalid> {
    let bytes = text.as_bytes();
    match bytes.get(at) {
        None => Err(Invalid),
        Some(b'\\') => escape(bytes, at + 1),
        Some(&b) if b < 0x20 => Err(Invalid),
        Some(_) => {
            let c = text
                .get(at..)
                .and_then(|rest| rest.chars().next())
                .ok_or(Invalid)?;
            Ok((c, at + c.len_utf8()))
        }
    }
}

/// An escape sequence whose letter is at `at` (just after the backslash).
fn escape(bytes: &[u8], at: usize) -> Result<(char, usize), Invalid> {
    let c = match bytes.get(at) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode_escape(bytes, at + 1),
        _ => return Err(Invalid),
    };
    Ok((c, at + 1))
}

/// The hex digits of a `\u` escape at `at`, and for a high surrogate the
/// `\u` escape of the low surrogate that must follow it.
fn unicode_escape(bytes: &[u8], at: usize) -> Result<(char, usize), Invalid> {
    let unit = hex4(bytes, at)?;
    let at = at + 4;
    let code = match unit {
        0xD800..=0xDBFF => {
            if bytes.get(at..at + 2) != Some(b"\\u") {
                return Err(Invalid);
            }
            let low = hex4(bytes, at + 2)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(Invalid);
            }
            let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            return char::from_u32(code).map(|c| (c, at + 6)).ok_or(Invalid);
        }
        0xDC00..=0xDFFF => return Err(Invalid),
        _ => unit,
    };
    char::from_u32(code).map(|c| (c, at)).ok_or(Invalid)
}

/// Four hex digits at `at`.
fn hex4(bytes: &[u8], at: usize) -> Result<u32, Invalid> {
    let digits = bytes.get(at..at + 4).ok_or(Invalid)?;
    digits.iter().try_fold(0u32, |acc, &b| {
        let d = char::from(b).to_digit(16).ok_or(Invalid)?;
        Ok(acc << 4 | d)
    })
}

/// Deepest nesting tracked: a 512-byte line cannot open more containers.
const MAX_DEPTH: usize = 512;

/// The open containers, one bit per level: set for an object.
struct Nesting {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl Nesting {
    const fn new() -> Self {
        Nesting {
            bits: [0; MAX_DEPTH / 64],
            depth: 0,
        }
    }

    fn push(&mut self, object: bool) -> Result<(), Invalid> {
        let word = self.bits.get_mut(self.depth / 64).ok_or(Invalid)?;
        let bit = 1u64 << (self.depth % 64);
        if object {
            *word |= bit;
        } else {
            *word &= !bit;
        }
        self.depth += 1;
        Ok(())
    }

    /// True if the innermost open container is an object.
    fn in_object(&self) -> bool {
        let Some(level) = self.depth.checked_sub(1) else {
            return false;
        };
        self.bits
            .get(level / 64)
            .is_some_and(|word| word & (1u64 << (level % 64)) != 0)
    }

    fn pop(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

/// What the scanner expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A key or `}`, just after `{`.
    KeyOrEnd,
    /// A key, after `,` in an object.
    Key,
    /// `:` after a key.
    Colon,
    /// A value or `]`, just after `[`.
    ValueOrEnd,
    /// A value.
    Value,
    /// `,` or the end of the innermost container.
    CommaOrEnd,
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        at += 1;
    }
    at
}

/// The end (just past the closing quote) of the string whose text starts at
/// `at`, just after its opening quote, and whether it is plain (holds no
/// escape). The line is valid UTF-8 already, so raw characters are skipped
/// (a multi-byte character has no byte below 0x80); only escapes are
/// decoded, to check them. Eight bytes are looked at in one step while eight
/// are left: most strings of a request are a word or two long.
fn string_end(bytes: &[u8], mut at: usize) -> Result<(usize, bool), Invalid> {
    let mut plain = true;
    loop {
        at += plain_run(bytes, at);
        match bytes.get(at) {
            Some(b'"') => return Ok((at + 1, plain)),
            Some(b'\\') => {
                plain = false;
                at = escape(bytes, at + 1)?.1;
            }
            Some(&b) if b >= 0x20 => at += 1,
            _ => return Err(Invalid),
        }
    }
}

/// How many bytes from `at` on are plain string bytes (not `"`, not `\\`,
/// not below 0x20), looking eight at a time ([`swar`], one word for all
/// three tests). It may stop early, before the last few bytes of the line;
/// the caller goes on byte by byte. On a bare-metal target (the firmware,
/// built for size) it looks at none.
fn plain_run(bytes: &[u8], from: usize) -> usize {
    if cfg!(target_os = "none") {
        // The firmware (bare metal, built for size) goes byte by byte.
        return 0;
    }
    swar::run(bytes, from, |x| {
        swar::equal(x, b'"') | swar::equal(x, b'\\') | swar::below(x, 0x20)
    })
}

/// Scans `line`, which must be exactly one JSON object with optional
/// whitespace around it, and calls `member` with the key and value of each
/// member of that object, in order (so the last of duplicate keys comes
/// last). `Err` if anything in the line breaks the grammar; members may have
/// been reported before the error was found.
///
/// The top-level object is read by a straight loop (key, colon, value,
/// comma or end), the shape of nearly every request; only a nested
/// container value goes through the general state machine of
/// [`container_end`].
pub(crate) fn scan_object<'a>(
    line: &'a str,
    mut member: impl FnMut(JsonStr<'a>, Value<'a>),
) -> Result<(), Invalid> {
    let bytes = line.as_bytes();
    let slice = |from: usize, to: usize| bytes.get(from..to).ok_or(Invalid);
    let mut at = skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return Err(Invalid);
    }
    at = skip_ws(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            if bytes.get(at) != Some(&b'"') {
                return Err(Invalid);
            }
            let (key_end, plain) = string_end(bytes, at + 1)?;
            let key = JsonStr {
                escaped: slice(at + 1, key_end - 1)?,
                plain,
            };
            at = skip_ws(bytes, key_end);
            if bytes.get(at) != Some(&b':') {
                return Err(Invalid);
            }
            at = skip_ws(bytes, at + 1);
            // Strings and numbers, nearly every value, are read here; the
            // rest through `value_end`.
            let (kind, value_end, number, plain, text) = match bytes.get(at) {
                Some(b'"') => {
                    let (end, plain) = string_end(bytes, at + 1)?;
                    let text = line.get(at + 1..end - 1).ok_or(Invalid)?;
                    (Kind::String, end, None, plain, text)
                }
                Some(b'-' | b'0'..=b'9') => {
                    let (end, number) = number_end(bytes, at)?;
                    (Kind::Number, end, Some(number), false, "")
                }
                _ => {
                    let (kind, end) = value_end(line, at)?;
                    (kind, end, None, false, "")
                }
            };
            member(
                key,
                Value {
                    kind,
                    raw: slice(at, value_end)?,
                    number,
                    plain,
                    text,
                },
            );
            at = skip_ws(bytes, value_end);
            match bytes.get(at) {
                Some(b',') => at = skip_ws(bytes, at + 1),
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return Err(Invalid),
            }
        }
    }
    if skip_ws(bytes, at) == bytes.len() {
        Ok(())
    } else {
        Err(Invalid)
    }
}

/// The kind and the end of the value that starts at `at` (no whitespace
/// before it).
fn value_end(line: &str, at: usize) -> Result<(Kind, usize), Invalid> {
    let bytes = line.as_bytes();
    match *bytes.get(at).ok_or(Invalid)? {
        b'"' => Ok((Kind::String, string_end(bytes, at + 1)?.0)),
        b'-' | b'0'..=b'9' => Ok((Kind::Number, number_end(bytes, at)?.0)),
        b't' => Ok((Kind::True, literal(bytes, at, b"true")?)),
        b'f' => Ok((Kind::False, literal(bytes, at, b"false")?)),
        b'n' => Ok((Kind::Null, literal(bytes, at, b"null")?)),
        b'{' => Ok((Kind::Object, container_end(line, at)?)),
        b'[' => Ok((Kind::Array, container_end(line, at)?)),
        _ => Err(Invalid),
    }
}

/// The end (just past its closing bracket) of the object or array that
/// starts at `at`, checking everything inside at any depth that fits in a
/// line, with no recursion.
fn container_end(line: &str, mut at: usize) -> Result<usize, Invalid> {
    let bytes = line.as_bytes();
    let mut nesting = Nesting::new();
    let mut expect = Expect::Value;
    loop {
        at = skip_ws(bytes, at);
        let b = *bytes.get(at).ok_or(Invalid)?;
        match (expect, b) {
            (Expect::KeyOrEnd, b'}')
            | (Expect::ValueOrEnd, b']')
            | (Expect::CommaOrEnd, b'}' | b']') => {
                if (b == b'}') != nesting.in_object() {
                    return Err(Invalid);
                }
                nesting.pop();
                at += 1;
                if nesting.depth == 0 {
                    return Ok(at);
                }
                expect = Expect::CommaOrEnd;
            }
            (Expect::KeyOrEnd | Expect::Key, b'"') => {
                at = string_end(bytes, at + 1)?.0;
                expect = Expect::Colon;
            }
            (Expect::Colon, b':') => {
                at += 1;
                expect = Expect::Value;
            }
            (Expect::CommaOrEnd, b',') => {
                at += 1;
                expect = if nesting.in_object() {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            (Expect::Value | Expect::ValueOrEnd, b'{' | b'[') => {
                nesting.push(b == b'{')?;
                at += 1;
                expect = if b == b'{' {
                    Expect::KeyOrEnd
                } else {
                    Expect::ValueOrEnd
                };
            }
            (Expect::Value | Expect::ValueOrEnd, _) => {
                at = value_end(line, at)?.1;
                expect = Expect::CommaOrEnd;
            }
            _ => return Err(Invalid),
        }
    }
}

/// The end of the literal `word` expected at `at`.
fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Result<usize, Invalid> {
    if bytes.get(at..at + word.len()) == Some(word) {
        Ok(at + word.len())
    } else {
        Err(Invalid)
    }
}

/// The end and the value of the number starting at `at`. The grammar is
/// deterministic, so the number read is the longest one there; no byte that
/// may occur in a number may follow it in valid JSON (`01`, `1.5.2`, `1-2`).
fn number_end(bytes: &[u8], at: usize) -> Result<(usize, Decimal), Invalid> {
    let rest = bytes.get(at..).ok_or(Invalid)?;
    let (number, len) = Decimal::scan_prefix(rest).ok_or(Invalid)?;
    match rest.get(len) {
        Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') => Err(Invalid),
        _ => Ok((at + len, number)),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;
    use std::vec::Vec;

    /// The members as (decoded key, kind, raw value).
    fn members(line: &str) -> Result<Vec<(String, Kind, &str)>, Invalid> {
        let mut out = Vec::new();
        scan_object(line, |k, v| {
            let raw = std::str::from_utf8(v.raw).unwrap();
            out.push((k.chars().collect(), v.kind, raw))
        })?;
        Ok(out)
    }

    fn ok(line: &str) -> bool {
        members(line).is_ok()
    }

    fn decoded(json_string: &str) -> Result<String, Invalid> {
        let line = std::format!("{{\"k\":{json_string}}}");
        let mut s = None;
        scan_object(&line, |_, v| s = v.as_string().map(|j| j.chars().collect()))?;
        Ok(s.unwrap())
    }

    #[test]
    fn members_come_with_kind_and_raw_text() {
        let m = members(r#" { "a" : 1.5e3 , "b":"x\ny", "c":[1,{"d":null}], "e":{}, "f":true, "g":false, "h":null } "#)
            .unwrap();
        let expected = [
            ("a", Kind::Number, "1.5e3"),
            ("b", Kind::String, r#""x\ny""#),
            ("c", Kind::Array, r#"[1,{"d":null}]"#),
            ("e", Kind::Object, "{}"),
            ("f", Kind::True, "true"),
            ("g", Kind::False, "false"),
            ("h", Kind::Null, "null"),
        ];
        assert_eq!(m.len(), expected.len());
        for ((k, kind, raw), (ek, ekind, eraw)) in m.iter().zip(expected) {
            assert_eq!((k.as_str(), *kind, *raw), (ek, ekind, eraw));
        }
    }

    #[test]
    fn keys_are_decoded_and_duplicates_reported_in_order() {
        let m = members(r#"{"lo\u0063ation":1,"a":2,"a":3}"#).unwrap();
        assert_eq!(m[0].0, "location");
        assert_eq!((m[1].0.as_str(), m[1].2), ("a", "2"));
        assert_eq!((m[2].0.as_str(), m[2].2), ("a", "3"));
    }

    #[test]
    fn only_one_object_is_accepted() {
        for good in ["{}", " {}\t", "\r\n{ }\n", "{\"a\":[]}", "{\"a\":[[],{}]}"] {
            assert!(ok(good), "{good:?}");
        }
        for bad in [
            "",
            " ",
            "[]",
            "1",
            "\"x\"",
            "null",
            "true",
            "{}{}",
            "{} x",
            "{",
            "}",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{,}",
            "{\"a\":[1,]}",
            "{\"a\":[,1]}",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{\"a\":[}",
            "{\"a\":{]}",
            "{\"a\":{\"b\"}}",
            "{a:1}",
            "{'a':1}",
            "{\"a\":tru}",
            "{\"a\":truee}",
            "{\"a\":nul}",
            "{\"a\":True}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":+1}",
            "{\"a\":1e}",
            "{\"a\":-}",
            "{\"a\":1-2}",
            "{\"a\":NaN}",
            "{\"a\":\"x}",
            "\u{feff}{}",
            "{\"a\":1}\u{a0}",
            "{\"a\":[1 2]}",
            "{\"a\":{\"b\":1,}}",
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn strings_are_checked_everywhere() {
        for bad in [
            "{\"a\tb\":1}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":[\"\u{1f}\"]}",
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"\ud800":1}"#,
            r#"{"a":{"b":["\udfff"]}}"#,
            r#"{"a":"\ud800\u0041"}"#,
            r#"{"a":"\ud800\ud800"}"#,
            r#"{"a":"\ud800x"}"#,
            r#"{"a":"\"}"#,
            r#"{"a":"\'"}"#,
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
        // DEL and non-ASCII are not control characters of JSON.
        assert!(ok("{\"a\":\"\u{7f}é客😀\"}"));
    }

    #[test]
    fn escapes_decode() {
        assert_eq!(
            decoded(r#""\"\\\/\b\f\n\r\t""#).unwrap(),
            "\"\\/\u{8}\u{c}\n\r\t"
        );
        assert_eq!(decoded(r#""\u00e9\u00E9\u5ba2""#).unwrap(), "éé客");
        assert_eq!(decoded(r#""\ud83d\ude00!""#).unwrap(), "😀!");
        assert_eq!(decoded(r#""\u0000""#).unwrap(), "\u{0}");
        assert_eq!(decoded(r#""""#).unwrap(), "");
    }

    #[test]
    fn unescape_into_a_buffer_reports_overflow() {
        let line = r#"{"k":"ab\u0063d"}"#;
        let mut value = None;
        scan_object(line, |_, v| value = v.as_string()).unwrap();
        let s = value.unwrap();
        let mut four: heapless::String<4> = heapless::String::new();
        assert_eq!(s.unescape_into(&mut four), Ok(()));
        assert_eq!(four.as_str(), "abcd");
        let mut three: heapless::String<3> = heapless::String::new();
        assert_eq!(s.unescape_into(&mut three), Err(Overflow));
        assert!(s.is("abcd") && !s.is("abc") && !s.is("abcde"));
    }

    #[test]
    fn deep_nesting_is_scanned_without_recursion() {
        for depth in [1usize, 31, 32, 33, 200, 254] {
            let line = std::format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
            assert!(ok(&line), "{depth}");
            let line = std::format!(
                "{{\"a\":{}1{}}}",
                "{\"b\":".repeat(depth),
                "}".repeat(depth)
            );
            assert!(ok(&line), "{depth}");
            let bad = std::format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth - 1));
            assert!(!ok(&bad), "{depth}");
            let bad = std::format!("{{\"a\":{}1{}}}}}", "[".repeat(depth), "]".repeat(depth));
            assert!(!ok(&bad), "{depth}");
        }
        // Mismatched brackets deep inside.
        assert!(!ok("{\"a\":[[{\"b\":[1]]]}"));
        // Deeper than the stack: an error, not a panic.
        let line = "[".repeat(2000);
        assert!(!ok(&std::format!("{{\"a\":{line}")));
    }

    #[test]
    fn plain_runs_stop_at_the_first_quote_backslash_or_control() {
        let stops = [b'"', b'\\', 0x00, 0x1f, b'\n'];
        let fill = [b'a', 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'];
        for len in 0..20 {
            for stop_at in 0..=len {
                for (i, &stop) in stops.iter().enumerate() {
                    let mut text: Vec<u8> = (0..len).map(|k| fill[(k + i) % fill.len()]).collect();
                    if stop_at < len {
                        text[stop_at] = stop;
                    }
                    let run = plain_run(&text, 0);
                    let expected = text
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                        .unwrap_or(len);
                    // It may stop early only in the last 7 bytes, never late.
                    assert!(run <= expected, "{text:?}");
                    assert!(run == expected || len - run < 8, "{text:?}");
                }
            }
        }
    }

    #[test]
    fn numbers_are_whole_grammar_tokens() {
        let m = members(r#"{"a":-0,"b":1E+2,"c":2.5e-1,"d":1e400,"e":0.000}"#).unwrap();
        let raws: Vec<_> = m.iter().map(|x| x.2).collect();
        assert_eq!(raws, ["-0", "1E+2", "2.5e-1", "1e400", "0.000"]);
    }
}
