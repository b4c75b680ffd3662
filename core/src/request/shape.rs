//! The usual request line, recognised in one pass.
//!
//! Nearly every line a sensor sends is a reading written the same way:
//! `{"location":"kitchen","temp":21.5,"hum":40,"seq":17}`, keys in this
//! order, no whitespace, no escape, `seq` optional. [`usual`] reads exactly
//! that shape (and the four commands written `{"cmd":"ping"}`) straight off
//! the bytes, without the general scanner's hand-off of each member, and
//! builds the [`Location`] from the bytes it has just checked.
//!
//! It decides nothing on its own: it answers only with a request that the
//! general path ([`super::decode_scanned`]) would give for the same line,
//! and for anything else (another order, whitespace, an escape, a key more,
//! a value out of range, anything after the `}`) it answers `None` and the
//! general path decides, errors included. The rules it applies are the
//! general path's, called from here rather than copied: the number grammar
//! and exact value ([`Decimal::scan_prefix`]), the ranges
//! ([`super::temp_tenths`], [`super::hum_tenths`]), the sequence number
//! ([`parse_u32_literal`]) and the location's bytes ([`forbidden_byte`]).
//!
//! Why the answers agree: outside the location, every byte the shape
//! accepts is ASCII, so the line is UTF-8 exactly when the location is (which
//! is checked). A number is the longest one `scan_prefix` reads, followed by
//! `,` or `}`, as the scanner requires; `seq` is an integer literal, which is
//! a JSON number. The keys are distinct and plain, so there is no duplicate
//! for the last-one-wins rule to resolve. A location with no `\` holds no
//! escape, and one with no forbidden byte is exactly a JSON string's text
//! that `Location::new` accepts. The property test below checks it on
//! lines near the shape and mutations of them.

use crate::decimal::{parse_u32_literal, Decimal};
use crate::limits::MAX_LOCATION;
use crate::reading::{forbidden_byte, Location, Reading};
use crate::swar;

use super::{hum_tenths, temp_tenths, Request};

/// The request of `line` if it has the usual shape; `None` if the general
/// path must decide. On a bare-metal target (the firmware, built for size:
/// this path costs about 1.1 KiB of flash there) it always says `None`.
#[inline]
pub(super) fn usual(line: &[u8]) -> Option<Request> {
    if cfg!(target_os = "none") {
        return None;
    }
    match line {
        br#"{"cmd":"ping"}"# => Some(Request::Ping),
        br#"{"cmd":"latest"}"# => Some(Request::Latest(None)),
        br#"{"cmd":"stats"}"# => Some(Request::Stats),
        br#"{"cmd":"bye"}"# => Some(Request::Bye),
        _ => reading(line).map(Request::Reading),
    }
}

/// `{"location":"<name>","temp":<number>,"hum":<number>[,"seq":<integer>]}`
/// with its values valid, as the general path would read it.
#[inline]
fn reading(line: &[u8]) -> Option<Reading> {
    let rest = line.strip_prefix(br#"{"location":""#)?;
    let (name, rest) = location_bytes(rest)?;
    let rest = rest.strip_prefix(br#","temp":"#)?;
    let (temp, len) = Decimal::scan_prefix(rest)?;
    let rest = rest.get(len..)?;
    let rest = rest.strip_prefix(br#","hum":"#)?;
    let (hum, len) = Decimal::scan_prefix(rest)?;
    let rest = rest.get(len..)?;
    let seq = match rest {
        b"}" => None,
        _ => {
            let literal = rest.strip_prefix(br#","seq":"#)?.strip_suffix(b"}")?;
            Some(parse_u32_literal(literal)?)
        }
    };
    let temp = temp_tenths(temp)?;
    let hum = hum_tenths(hum)?;
    // Last: a line that is not the shape after all costs no copy.
    let location = Location::with_checked_chars(core::str::from_utf8(name).ok()?)?;
    Some(Reading {
        location,
        temp,
        hum,
        seq,
    })
}

/// The location's bytes at the start of `rest` (just after its opening
/// quote) and what follows its closing quote: at most 32 bytes, none of
/// them forbidden (so no escape either); not yet checked as UTF-8.
#[inline]
fn location_bytes(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    // Past `MAX_LOCATION` bytes it is too long: look no further.
    let window = rest.get(..MAX_LOCATION + 1).unwrap_or(rest);
    // Plain ASCII eight bytes at a time, then byte by byte to the quote.
    let mut end = swar::run(window, 0, |x| {
        swar::equal(x, b'"')
            | swar::equal(x, b'\\')
            | swar::equal(x, 0x7f)
            | swar::below(x, 0x20)
            | swar::non_ascii(x)
    });
    loop {
        match window.get(end) {
            Some(b'"') => break,
            Some(&b) if !forbidden_byte(b) => end += 1,
            _ => return None,
        }
    }
    let (name, rest) = rest.split_at(end);
    Some((name, rest.get(1..)?))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::decimal::Tenths;
    use crate::error::{ErrorCode, Field};
    use crate::request::decode_scanned;
    use proptest::prelude::*;
    use proptest::sample::select;
    use std::format;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    use ErrorCode::{InvalidField, InvalidJson, InvalidUtf8};

    // =========================================================================================
    // Helpers
    // =========================================================================================

    /// The shape's answer for `line`, checked against the general path's
    /// whenever there is one.
    #[track_caller]
    fn usual_checked(line: &[u8]) -> Option<Request> {
        let answer = usual(line);
        if let Some(request) = &answer {
            assert_eq!(
                Ok(request.clone()),
                decode_scanned(line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        answer
    }

    /// The reading the shape reads from `line` (which the general path
    /// reads the same).
    #[track_caller]
    fn fast(line: &str) -> Reading {
        match usual_checked(line.as_bytes()) {
            Some(Request::Reading(reading)) => reading,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// Asserts that the shape leaves `line` to the general path, and
    /// returns what that says.
    #[track_caller]
    fn general(line: impl AsRef<[u8]>) -> Result<Request, ErrorCode> {
        let line = line.as_ref();
        let text = String::from_utf8_lossy(line);
        assert_eq!(usual(line), None, "the shape answered for {text}");
        decode_scanned(line)
    }

    /// A usual reading line with these values as written.
    fn line(location: &str, temp: &str, hum: &str, seq: Option<&str>) -> String {
        let seq = seq.map(|s| format!(r#","seq":{s}"#)).unwrap_or_default();
        format!(r#"{{"location":"{location}","temp":{temp},"hum":{hum}{seq}}}"#)
    }

    fn with_seq(seq: &str) -> String {
        line("a", "20", "50", Some(seq))
    }

    fn with_temp(temp: &str) -> String {
        line("a", temp, "50", None)
    }

    fn with_location(location: &str) -> String {
        line(location, "20", "50", None)
    }

    // =========================================================================================
    // What the shape reads
    // =========================================================================================

    #[test]
    fn the_example_reading() {
        let r = fast(r#"{"location":"living_room","temp":25.5,"hum":60,"seq":123}"#);
        assert_eq!(r.location.as_str(), "living_room");
        assert_eq!(
            (r.temp, r.hum, r.seq),
            (Tenths(255), Tenths(600), Some(123))
        );
    }

    #[test]
    fn seq_missing_or_at_its_ends() {
        assert_eq!(fast(&line("a", "1", "2", None)).seq, None);
        assert_eq!(fast(&with_seq("0")).seq, Some(0));
        assert_eq!(fast(&with_seq("-0")).seq, Some(0));
        assert_eq!(fast(&with_seq("4294967295")).seq, Some(u32::MAX));
    }

    #[test]
    fn values_at_the_ends_of_their_ranges() {
        assert_eq!(fast(&with_temp("-40.0")).temp, Tenths(-400));
        assert_eq!(fast(&with_temp("125.0")).temp, Tenths(1250));
        assert_eq!(fast(&with_temp("-39.95")).temp, Tenths(-400));
        assert_eq!(fast(&line("a", "0", "100", None)).hum, Tenths(1000));
        assert_eq!(fast(&line("a", "0", "-0", None)).hum, Tenths(0));
    }

    #[test]
    fn every_number_form_the_scanner_reads() {
        for (text, tenths) in [
            ("1e1", 100),
            ("1E+1", 100),
            ("2.5e-1", 3),
            ("-0", 0),
            ("-0.04", 0),
            ("0.15", 2),
            ("25.55", 256),
            ("1e-400", 0),
        ] {
            assert_eq!(fast(&with_temp(text)).temp, Tenths(tenths), "{text}");
        }
    }

    #[test]
    fn locations_of_1_and_32_bytes_ascii_or_not() {
        for name in [
            String::from("a"),
            "x".repeat(32),
            "é".repeat(16),
            "😀".repeat(8),
            String::from("küche"),
            String::from("客厅"),
            String::from("living room/2: a'b"),
        ] {
            assert_eq!(fast(&with_location(&name)).location.as_str(), name);
        }
    }

    #[test]
    fn the_four_commands_written_plainly() {
        assert_eq!(usual_checked(br#"{"cmd":"ping"}"#), Some(Request::Ping));
        assert_eq!(
            usual_checked(br#"{"cmd":"latest"}"#),
            Some(Request::Latest(None))
        );
        assert_eq!(usual_checked(br#"{"cmd":"stats"}"#), Some(Request::Stats));
        assert_eq!(usual_checked(br#"{"cmd":"bye"}"#), Some(Request::Bye));
    }

    // =========================================================================================
    // What it leaves to the general path, and what that says
    // =========================================================================================

    #[test]
    fn values_out_of_range() {
        assert_eq!(
            general(with_seq("4294967296")),
            Err(InvalidField(Field::Seq))
        );
        assert_eq!(general(with_seq("-1")), Err(InvalidField(Field::Seq)));
        assert_eq!(general(with_seq("1.0")), Err(InvalidField(Field::Seq)));
        assert_eq!(general(with_seq("1e0")), Err(InvalidField(Field::Seq)));
        assert_eq!(general(with_temp("125.05")), Err(InvalidField(Field::Temp)));
        assert_eq!(general(with_temp("-40.01")), Err(InvalidField(Field::Temp)));
        assert_eq!(general(with_temp("1e400")), Err(InvalidField(Field::Temp)));
        assert_eq!(
            general(line("a", "1", "100.01", None)),
            Err(InvalidField(Field::Hum))
        );
        assert_eq!(
            general(line("a", "1", "-0.01", None)),
            Err(InvalidField(Field::Hum))
        );
    }

    #[test]
    fn numbers_that_are_not_json() {
        for bad in ["01", "1.", ".5", "+1", "1e", "--1", "1.5.2", "0x10", "-"] {
            assert_eq!(general(with_temp(bad)), Err(InvalidJson), "{bad}");
            assert_eq!(
                general(line("a", "1", bad, None)),
                Err(InvalidJson),
                "{bad}"
            );
        }
        for bad in ["01", "00", "-01", "1-", ""] {
            assert_eq!(general(with_seq(bad)), Err(InvalidJson), "{bad}");
        }
    }

    #[test]
    fn locations_the_rules_refuse() {
        for name in [
            String::new(),
            "x".repeat(33),
            "x".repeat(64),
            "x".repeat(65),
            format!("{}a", "é".repeat(16)),
            String::from("del\u{7f}"),
        ] {
            assert_eq!(
                general(with_location(&name)),
                Err(InvalidField(Field::Location)),
                "{name:?}"
            );
        }
        // Raw control characters are not even JSON.
        assert_eq!(general(with_location("a\tb")), Err(InvalidJson));
        assert_eq!(general(with_location("\u{0}")), Err(InvalidJson));
    }

    #[test]
    fn escapes_in_the_location() {
        let name = |line: &str| match general(line) {
            Ok(Request::Reading(r)) => r.location,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(name(&with_location(r"k\u00fcche")).as_str(), "küche");
        assert_eq!(name(&with_location(r"a\/b")).as_str(), "a/b");
        assert_eq!(
            general(with_location(r#"a\"b"#)),
            Err(InvalidField(Field::Location))
        );
        assert_eq!(general(with_location(r"\ud800")), Err(InvalidJson));
        assert_eq!(general(with_location(r"\q")), Err(InvalidJson));
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        for name in [
            &b"\xff"[..],
            b"\xc3",
            b"a\xc3\"",
            b"\xed\xa0\x80",
            b"\xc0\x80",
        ] {
            let mut l = br#"{"location":""#.to_vec();
            l.extend_from_slice(name);
            l.extend_from_slice(br#"","temp":1,"hum":2}"#);
            assert_eq!(general(&l), Err(InvalidUtf8), "{name:?}");
        }
    }

    #[test]
    fn anything_after_the_object() {
        let good = line("a", "1", "2", Some("3"));
        assert!(general(format!("{good} ")).is_ok());
        assert!(general(format!("{good}\t")).is_ok());
        assert_eq!(general(format!("{good}x")), Err(InvalidJson));
        assert_eq!(general(format!("{good}}}")), Err(InvalidJson));
        assert_eq!(general(format!("{good},")), Err(InvalidJson));
        assert_eq!(general(format!("{good}{{}}")), Err(InvalidJson));
        assert!(general(r#"{"cmd":"ping"} "#).is_ok());
        assert_eq!(general(r#"{"cmd":"ping"}x"#), Err(InvalidJson));
    }

    #[test]
    fn other_ways_of_writing_a_reading() {
        for other in [
            r#" {"location":"a","temp":1,"hum":2}"#,
            r#"{ "location":"a","temp":1,"hum":2}"#,
            r#"{"location": "a","temp":1,"hum":2}"#,
            r#"{"location":"a","temp":1 ,"hum":2}"#,
            r#"{"location":"a","temp":1,"hum":2 }"#,
            r#"{"location":"a","temp":1,"hum":2,"seq":3 }"#,
            r#"{"temp":1,"location":"a","hum":2}"#,
            r#"{"location":"a","hum":2,"temp":1}"#,
            r#"{"location":"a","temp":1,"seq":3,"hum":2}"#,
            r#"{"lo\u0063ation":"a","temp":1,"hum":2}"#,
            r#"{"location":"a","temp":1,"hum":2,"x":null}"#,
            r#"{"location":"a","temp":1,"hum":2,"temp":3}"#,
            r#"{"location":"a","temp":1,"hum":2,"seq":3,"seq":4}"#,
        ] {
            assert!(matches!(general(other), Ok(Request::Reading(_))), "{other}");
        }
        // Last one wins, or a command wins: the general path's rules.
        assert_eq!(
            general(r#"{"location":"a","temp":1,"hum":2,"temp":300}"#),
            Err(InvalidField(Field::Temp))
        );
        assert_eq!(
            general(r#"{"location":"a","temp":1,"hum":2,"cmd":"ping"}"#),
            Ok(Request::Ping)
        );
    }

    #[test]
    fn values_of_another_type() {
        assert_eq!(
            general(r#"{"location":"a","temp":"1","hum":2}"#),
            Err(InvalidField(Field::Temp))
        );
        assert_eq!(general(with_seq("null")), Err(InvalidField(Field::Seq)));
        assert_eq!(general(with_seq(r#""1""#)), Err(InvalidField(Field::Seq)));
        assert_eq!(
            general(r#"{"location":1,"temp":1,"hum":2}"#),
            Err(InvalidField(Field::Location))
        );
    }

    #[test]
    fn commands_written_otherwise() {
        assert_eq!(general(r#"{ "cmd":"ping"}"#), Ok(Request::Ping));
        assert_eq!(general(r#"{"cmd":"p\u0069ng"}"#), Ok(Request::Ping));
        assert_eq!(general(r#"{"cmd":"PING"}"#), Err(ErrorCode::UnknownCmd));
        assert!(matches!(
            general(r#"{"cmd":"latest","location":"a"}"#),
            Ok(Request::Latest(Some(_)))
        ));
    }

    // =========================================================================================
    // Properties: lines near the shape, and mutations of them
    // =========================================================================================

    /// Pieces of a location: plain ASCII, other UTF-8, and every kind of
    /// byte the shape must leave to the general path.
    fn name_piece() -> impl Strategy<Value = &'static [u8]> {
        prop_oneof![
            6 => select(vec![&b"a"[..], b"Z", b"0", b"_", b" ", b"/", b"'", b"~"]),
            2 => select(vec!["é".as_bytes(), "客".as_bytes(), "😀".as_bytes()]),
            1 => select(vec![
                &b"\\"[..], b"\\u00fc", b"\\\"", b"\"", b"\x7f", b"\x1f", b"\x00", b"\xff",
                b"\xc3", b"\xed\xa0\x80", b"}", b",", b":",
            ]),
        ]
    }

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(name_piece(), 0..40).prop_map(|p| p.concat())
    }

    /// Numbers in the grammar and near it, in range and out of it.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,3})?",
            2 => "-?(0|[1-9][0-9]{0,5})(\\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?",
            1 => "[-+]?[0-9]{0,4}\\.?[0-9]{0,3}([eE][-+]?[0-9]{0,2})?",
            1 => "-?0[0-9]{1,3}(\\.[0-9])?",
            1 => select(vec!["-40", "125", "-40.0", "125.0", "125.05", "-40.05", "100", "100.01"])
                .prop_map(String::from),
        ]
    }

    fn seq() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            4 => "-?(0|[1-9][0-9]{0,9})",
            1 => "-?[0-9]{1,11}(\\.[0-9])?(e[0-9])?",
            1 => "-?0[0-9]{1,3}",
            1 => select(vec!["4294967295", "4294967296", "-0", "null", "\"1\""])
                .prop_map(String::from),
        ])
    }

    fn near_shape() -> impl Strategy<Value = Vec<u8>> {
        (name(), number(), number(), seq()).prop_map(|(name, t, h, seq)| {
            let mut l = br#"{"location":""#.to_vec();
            l.extend_from_slice(&name);
            let seq = seq.map(|s| format!(r#","seq":{s}"#)).unwrap_or_default();
            l.extend_from_slice(format!(r#"","temp":{t},"hum":{h}{seq}}}"#).as_bytes());
            l
        })
    }

    /// A byte of JSON's alphabet, or any byte now and then.
    fn json_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            6 => select(b"{}[]\":,.-+eE0159 \t\\u/az".to_vec()),
            1 => any::<u8>(),
        ]
    }

    /// `line` with a few bytes inserted, removed or replaced.
    fn mutated(line: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        let edits =
            prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, json_byte()), 0..4);
        (line, edits).prop_map(|(mut l, edits)| {
            for (at, op, b) in edits {
                let at = at.index(l.len() + 1);
                match op {
                    0 => l.insert(at, b),
                    1 if at < l.len() => {
                        l.remove(at);
                    }
                    _ if at < l.len() => l[at] = b,
                    _ => l.push(b),
                }
            }
            l
        })
    }

    /// A reading the shape must read: a plain location and valid values in
    /// the usual forms.
    fn clean() -> impl Strategy<Value = Vec<u8>> {
        let name = "[a-zA-Z0-9_ ./-]{1,32}";
        let temp = (-400i32..=1250).prop_map(|t| {
            let sign = if t < 0 { "-" } else { "" };
            format!("{sign}{}.{}", t.abs() / 10, t.abs() % 10)
        });
        (name, temp, 0u32..=100, prop::option::of(any::<u32>())).prop_map(|(n, t, h, s)| {
            line(
                &n,
                &t,
                &format!("{h}"),
                s.map(|s| format!("{s}")).as_deref(),
            )
            .into_bytes()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Whenever the shape answers, the general path gives the same
        /// request; so `decode` answers as the general path for every line.
        #[test]
        fn the_shape_agrees_with_the_general_path(
            line in prop_oneof![near_shape(), mutated(near_shape()), mutated(clean())]
        ) {
            if let Some(request) = usual(&line) {
                prop_assert_eq!(Ok(request), decode_scanned(&line));
            }
            prop_assert_eq!(super::super::decode(&line), decode_scanned(&line));
        }

        /// The usual reading, written the usual way, is read by the shape.
        #[test]
        fn the_shape_reads_every_usual_reading(line in clean()) {
            let answer = usual(&line);
            prop_assert!(answer.is_some(), "{}", String::from_utf8_lossy(&line));
            prop_assert_eq!(answer.ok_or(InvalidJson), decode_scanned(&line));
        }
    }
}
