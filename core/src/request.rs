//! Decoding one line into a request.
//!
//! The line is checked as UTF-8, then scanned whole by the `json` module (a
//! syntax error anywhere is `invalid_json`, whatever else is wrong), keeping
//! the last value of each key the protocol knows. Only then are the rules of
//! `docs/PROTOCOL.md` applied, in its order.
//!
//! Before all that, `shape` tries the line as the usual reading (or
//! command) written the usual way; it answers only when the general path
//! would give the same request, and otherwise leaves the line to it.

mod shape;

use crate::decimal::{parse_u32_literal, Decimal, Tenths};
use crate::error::{ErrorCode, Field};
use crate::json::{self, JsonStr, Value};
use crate::limits::MAX_LOCATION;
use crate::reading::{Location, Reading};

/// One decoded request line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request {
    /// A reading to store.
    Reading(Reading),
    /// `{"cmd":"ping"}`
    Ping,
    /// `{"cmd":"latest"}`, optionally for one location.
    Latest(Option<Location>),
    /// `{"cmd":"stats"}`
    Stats,
    /// `{"cmd":"bye"}`
    Bye,
}

/// Decodes one line: no LF, no CR before it, at most 512 bytes, not blank.
pub fn decode(line: &[u8]) -> Result<Request, ErrorCode> {
    match shape::usual(line) {
        Some(request) => Ok(request),
        None => decode_scanned(line),
    }
}

/// Decodes any line the general way: UTF-8, the whole JSON scan, then the
/// protocol's rules in order.
pub(crate) fn decode_scanned(line: &[u8]) -> Result<Request, ErrorCode> {
    let text = core::str::from_utf8(line).map_err(|_| ErrorCode::InvalidUtf8)?;
    let mut keys = Keys::default();
    json::scan_object(text, |key, value| {
        let slot = match key_field(key) {
            Some(Field::Cmd) => &mut keys.cmd,
            Some(Field::Location) => &mut keys.location,
            Some(Field::Temp) => &mut keys.temp,
            Some(Field::Hum) => &mut keys.hum,
            Some(Field::Seq) => &mut keys.seq,
            None => return,
        };
        *slot = Some(value);
    })
    .map_err(|_| ErrorCode::InvalidJson)?;
    match keys.cmd {
        Some(cmd) => command(cmd, keys.location),
        None => reading(&keys),
    }
}

/// The protocol's key that `key` names, if any. Keys are nearly always
/// written without escapes: those are matched as bytes.
fn key_field(key: JsonStr<'_>) -> Option<Field> {
    const FIELDS: [Field; 5] = [
        Field::Cmd,
        Field::Location,
        Field::Temp,
        Field::Hum,
        Field::Seq,
    ];
    // Array patterns: compared byte by byte inline, with no call.
    match key.plain() {
        Some([b'c', b'm', b'd']) => Some(Field::Cmd),
        Some([b'l', b'o', b'c', b'a', b't', b'i', b'o', b'n']) => Some(Field::Location),
        Some([b't', b'e', b'm', b'p']) => Some(Field::Temp),
        Some([b'h', b'u', b'm']) => Some(Field::Hum),
        Some([b's', b'e', b'q']) => Some(Field::Seq),
        Some(_) => None,
        None => FIELDS.into_iter().find(|f| key.is(f.as_str())),
    }
}

/// The last value of each key the protocol knows.
#[derive(Default)]
struct Keys<'a> {
    cmd: Option<Value<'a>>,
    location: Option<Value<'a>>,
    temp: Option<Value<'a>>,
    hum: Option<Value<'a>>,
    seq: Option<Value<'a>>,
}

/// A command; `location` is used by `latest` only.
fn command(cmd: Value<'_>, location: Option<Value<'_>>) -> Result<Request, ErrorCode> {
    let name = cmd.as_string().ok_or(ErrorCode::InvalidField(Field::Cmd))?;
    if name.is("ping") {
        Ok(Request::Ping)
    } else if name.is("stats") {
        Ok(Request::Stats)
    } else if name.is("bye") {
        Ok(Request::Bye)
    } else if name.is("latest") {
        match location {
            None => Ok(Request::Latest(None)),
            Some(value) => Ok(Request::Latest(Some(parse_location(value)?))),
        }
    } else {
        Err(ErrorCode::UnknownCmd)
    }
}

/// A reading: every missing field is reported before any invalid one.
fn reading(keys: &Keys<'_>) -> Result<Request, ErrorCode> {
    let missing = ErrorCode::MissingField;
    let location = keys.location.ok_or(missing(Field::Location))?;
    let temp = keys.temp.ok_or(missing(Field::Temp))?;
    let hum = keys.hum.ok_or(missing(Field::Hum))?;
    let location = parse_location(location)?;
    let temp = temp
        .as_decimal()
        .and_then(temp_tenths)
        .ok_or(ErrorCode::InvalidField(Field::Temp))?;
    let hum = hum
        .as_decimal()
        .and_then(hum_tenths)
        .ok_or(ErrorCode::InvalidField(Field::Hum))?;
    let seq = match keys.seq {
        None => None,
        Some(value) => Some(parse_seq(value).ok_or(ErrorCode::InvalidField(Field::Seq))?),
    };
    Ok(Request::Reading(Reading {
        location,
        temp,
        hum,
        seq,
    }))
}

/// A location: a string that, decoded, is a valid [`Location`].
fn parse_location(value: Value<'_>) -> Result<Location, ErrorCode> {
    let invalid = ErrorCode::InvalidField(Field::Location);
    if let Some(name) = value.as_plain_str() {
        return Location::new(name).ok_or(invalid);
    }
    let escaped = value.as_string().ok_or(invalid)?;
    let mut name = heapless::String::<MAX_LOCATION>::new();
    escaped.unescape_into(&mut name).map_err(|_| invalid)?;
    Location::new(&name).ok_or(invalid)
}

/// A temperature: −40 to 125 °C as written, rounded to tenths.
fn temp_tenths(number: Decimal) -> Option<Tenths> {
    tenths_within(number, -400, 1250)
}

/// A humidity: 0 to 100 % as written, rounded to tenths.
fn hum_tenths(number: Decimal) -> Option<Tenths> {
    tenths_within(number, 0, 1000)
}

/// A number within `lo/10 ..= hi/10` as written, rounded to tenths.
fn tenths_within(number: Decimal, lo: i32, hi: i32) -> Option<Tenths> {
    number.within(lo, hi).then(|| number.rounded())
}

/// A sequence number: an integer literal from 0 to 4294967295.
fn parse_seq(value: Value<'_>) -> Option<u32> {
    parse_u32_literal(value.as_number()?)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;

    use ErrorCode::{InvalidField, InvalidJson, InvalidUtf8, MissingField, UnknownCmd};
    use Field::{Cmd, Hum, Location as Loc, Seq, Temp};

    fn d(line: &str) -> Result<Request, ErrorCode> {
        decode(line.as_bytes())
    }

    /// The reading of a line that must decode as one.
    #[track_caller]
    fn read(line: &str) -> Reading {
        match d(line) {
            Ok(Request::Reading(r)) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// A reading line with `temp` written as `t` (other fields valid).
    fn with_temp(t: &str) -> String {
        format!(r#"{{"location":"a","temp":{t},"hum":50}}"#)
    }

    fn with_hum(h: &str) -> String {
        format!(r#"{{"location":"a","temp":20,"hum":{h}}}"#)
    }

    fn with_seq(s: &str) -> String {
        format!(r#"{{"location":"a","temp":20,"hum":50,"seq":{s}}}"#)
    }

    fn with_location(l: &str) -> String {
        format!(r#"{{"location":{l},"temp":20,"hum":50}}"#)
    }

    fn loc(name: &str) -> Location {
        Location::new(name).unwrap()
    }

    #[test]
    fn the_example_reading() {
        let r = read(r#"{"location":"living_room","temp":25.5,"hum":60,"seq":7}"#);
        assert_eq!(r.location.as_str(), "living_room");
        assert_eq!((r.temp, r.hum, r.seq), (Tenths(255), Tenths(600), Some(7)));
    }

    #[test]
    fn seq_is_optional() {
        assert_eq!(read(r#"{"location":"a","temp":1,"hum":2}"#).seq, None);
    }

    #[test]
    fn whitespace_anywhere_json_allows_it() {
        let r = read(" \t{ \"location\" :\t\"a\" , \"temp\"\r:\n1 ,\"hum\": 2 } \r\t");
        assert_eq!(
            (r.location.as_str(), r.temp, r.hum),
            ("a", Tenths(10), Tenths(20))
        );
    }

    #[test]
    fn not_utf8_is_checked_first() {
        assert_eq!(decode(b"{\"location\":\"\xff\"}"), Err(InvalidUtf8));
        assert_eq!(decode(b"\xc3"), Err(InvalidUtf8));
        assert_eq!(decode(b"not json \xed\xa0\x80"), Err(InvalidUtf8));
        assert!(decode(b"{\"location\":\"\xc3\xa9\",\"temp\":1,\"hum\":1}").is_ok());
    }

    #[test]
    fn top_level_must_be_one_object() {
        for bad in [
            "[]",
            "[{\"cmd\":\"ping\"}]",
            "1",
            "\"ping\"",
            "null",
            "true",
            "false",
            "-0",
            "x",
            "cmd",
            "{",
            "}",
        ] {
            assert_eq!(d(bad), Err(InvalidJson), "{bad:?}");
        }
    }

    #[test]
    fn trailing_garbage_is_invalid_json() {
        for bad in [
            r#"{"cmd":"ping"}x"#,
            r#"{"cmd":"ping"} {}"#,
            r#"{"cmd":"ping"},"#,
            r#"{"cmd":"ping"}}"#,
            r#"{"cmd":"ping"}]"#,
            r#"{"cmd":"ping"} 1"#,
            "{\"cmd\":\"ping\"}\u{0}",
        ] {
            assert_eq!(d(bad), Err(InvalidJson), "{bad:?}");
        }
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for bad in [
            r#"{"cmd":"ping",}"#,
            r#"{"cmd" "ping"}"#,
            r#"{"cmd":"ping""#,
            r#"{cmd:"ping"}"#,
            r#"{'cmd':'ping'}"#,
            r#"{"cmd":"ping";}"#,
            r#"{"cmd"::"ping"}"#,
            r#"{,"cmd":"ping"}"#,
            r#"{"location":"a","temp":1,"hum":2,,}"#,
            r#"{"a":[1,2}"#,
            r#"{"a":{"b":1]}"#,
        ] {
            assert_eq!(d(bad), Err(InvalidJson), "{bad:?}");
        }
    }

    #[test]
    fn empty_object_is_a_reading_missing_location() {
        assert_eq!(d("{}"), Err(MissingField(Loc)));
        assert_eq!(d(" { } "), Err(MissingField(Loc)));
    }

    #[test]
    fn syntax_error_beats_field_errors() {
        // Fields wrong and missing, but the line is not JSON.
        assert_eq!(d(r#"{"temp":"x","hum":null,}"#), Err(InvalidJson));
        assert_eq!(d(r#"{"cmd":5,"x":[}"#), Err(InvalidJson));
        assert_eq!(d(r#"{"cmd":"nope","x":tru}"#), Err(InvalidJson));
        assert_eq!(
            d(r#"{"location":"a","temp":1,"hum":2,"junk":"\q"}"#),
            Err(InvalidJson)
        );
        assert_eq!(
            d(r#"{"location":"a","temp":1,"hum":2} x"#),
            Err(InvalidJson)
        );
    }

    #[test]
    fn missing_fields_in_order() {
        assert_eq!(d(r#"{"temp":1,"hum":2}"#), Err(MissingField(Loc)));
        assert_eq!(d(r#"{"location":"a","hum":2}"#), Err(MissingField(Temp)));
        assert_eq!(d(r#"{"location":"a","temp":1}"#), Err(MissingField(Hum)));
        assert_eq!(d(r#"{"hum":2}"#), Err(MissingField(Loc)));
        assert_eq!(d(r#"{"location":"a"}"#), Err(MissingField(Temp)));
        assert_eq!(d(r#"{"seq":1}"#), Err(MissingField(Loc)));
    }

    #[test]
    fn missing_beats_invalid() {
        // location invalid, hum missing: missing_field wins.
        assert_eq!(d(r#"{"location":"","temp":1}"#), Err(MissingField(Hum)));
        assert_eq!(
            d(r#"{"location":1,"temp":"x","seq":-1}"#),
            Err(MissingField(Hum))
        );
        assert_eq!(d(r#"{"temp":999,"hum":999}"#), Err(MissingField(Loc)));
        assert_eq!(
            d(r#"{"location":null,"hum":null}"#),
            Err(MissingField(Temp))
        );
    }

    #[test]
    fn invalid_fields_in_order() {
        let line = |l: &str, t: &str, h: &str, s: &str| {
            d(&format!(
                r#"{{"seq":{s},"hum":{h},"temp":{t},"location":{l}}}"#
            ))
        };
        assert_eq!(line("1", "999", "-1", "-1"), Err(InvalidField(Loc)));
        assert_eq!(line("\"a\"", "999", "-1", "-1"), Err(InvalidField(Temp)));
        assert_eq!(line("\"a\"", "1", "-1", "-1"), Err(InvalidField(Hum)));
        assert_eq!(line("\"a\"", "1", "1", "-1"), Err(InvalidField(Seq)));
        assert!(line("\"a\"", "1", "1", "1").is_ok());
    }

    #[test]
    fn null_is_a_wrong_type_not_absent() {
        assert_eq!(d(&with_location("null")), Err(InvalidField(Loc)));
        assert_eq!(d(&with_temp("null")), Err(InvalidField(Temp)));
        assert_eq!(d(&with_hum("null")), Err(InvalidField(Hum)));
        assert_eq!(d(&with_seq("null")), Err(InvalidField(Seq)));
        assert_eq!(d(r#"{"cmd":null}"#), Err(InvalidField(Cmd)));
    }

    #[test]
    fn location_type_errors() {
        for bad in ["1", "true", "false", "[]", "[\"a\"]", "{}", "{\"a\":\"b\"}"] {
            assert_eq!(d(&with_location(bad)), Err(InvalidField(Loc)), "{bad}");
        }
    }

    #[test]
    fn temp_and_hum_type_errors() {
        for bad in ["\"25\"", "true", "false", "[25]", "{}", "\"\""] {
            assert_eq!(d(&with_temp(bad)), Err(InvalidField(Temp)), "{bad}");
            assert_eq!(d(&with_hum(bad)), Err(InvalidField(Hum)), "{bad}");
        }
    }

    #[test]
    fn location_rules() {
        for bad in [
            r#""""#,
            r#""a\"b""#,
            r#""a\\b""#,
            r#""a\u0000""#,
            r#""tab\there""#,
            r#""\u001f""#,
            r#""\u007f""#,
            r#""nl\n""#,
            "\"del\u{7f}\"",
        ] {
            assert_eq!(d(&with_location(bad)), Err(InvalidField(Loc)), "{bad}");
        }
        for good in [
            r#""living room""#,
            r#""küche""#,
            r#""客厅""#,
            r#""a/b:c""#,
            r#""\/""#,
            r#""\u0080""#,
        ] {
            assert!(d(&with_location(good)).is_ok(), "{good}");
        }
    }

    #[test]
    fn location_escapes_are_decoded() {
        assert_eq!(
            read(&with_location(r#""k\u00fcche""#)).location.as_str(),
            "küche"
        );
        assert_eq!(read(&with_location(r#""a\/b""#)).location.as_str(), "a/b");
        assert_eq!(
            read(&with_location(r#""\ud83d\ude00""#)).location.as_str(),
            "😀"
        );
        assert_eq!(
            read(&with_location(r#""\u5BA2\u5385""#)).location.as_str(),
            "客厅"
        );
    }

    #[test]
    fn location_length_is_counted_in_decoded_bytes() {
        let x32 = "x".repeat(32);
        assert_eq!(
            read(&with_location(&format!("\"{x32}\"")))
                .location
                .as_str(),
            x32
        );
        assert_eq!(
            d(&with_location(&format!("\"{x32}x\""))),
            Err(InvalidField(Loc))
        );
        // 32 bytes written as 32 escapes (192 bytes of text).
        let esc32 = "\\u0078".repeat(32);
        assert_eq!(
            read(&with_location(&format!("\"{esc32}\"")))
                .location
                .as_str(),
            x32
        );
        assert_eq!(
            d(&with_location(&format!("\"{esc32}\\u0078\""))),
            Err(InvalidField(Loc))
        );
    }

    #[test]
    fn unicode_locations_at_32_and_33_bytes() {
        // 16 × 2 bytes, 8 × 4 bytes, 10 × 3 + 2 × 1: exactly 32 bytes.
        for name in [
            "é".repeat(16),
            "😀".repeat(8),
            format!("{}ab", "客".repeat(10)),
        ] {
            assert_eq!(name.len(), 32);
            assert_eq!(
                read(&with_location(&format!("\"{name}\"")))
                    .location
                    .as_str(),
                name
            );
        }
        // 33 bytes, and 34 where a 2-byte character crosses the limit.
        for name in [
            format!("{}a", "é".repeat(16)),
            "é".repeat(17),
            format!("{}a", "😀".repeat(8)),
        ] {
            assert!(name.len() > 32);
            assert_eq!(
                d(&with_location(&format!("\"{name}\""))),
                Err(InvalidField(Loc)),
                "{name}"
            );
        }
        // The same with escapes: 8 surrogate pairs are 32 bytes, 9 are 36.
        let pair = "\\ud83d\\ude00";
        assert!(d(&with_location(&format!("\"{}\"", pair.repeat(8)))).is_ok());
        assert_eq!(
            d(&with_location(&format!("\"{}\"", pair.repeat(9)))),
            Err(InvalidField(Loc))
        );
    }

    #[test]
    fn keys_with_escapes() {
        let r = read(r#"{"lo\u0063ation":"a","\u0074emp":1,"h\u0075m":2,"se\u0071":3}"#);
        assert_eq!(
            (r.location.as_str(), r.temp, r.hum, r.seq),
            ("a", Tenths(10), Tenths(20), Some(3))
        );
        assert_eq!(d(r#"{"\u0063md":"ping"}"#), Ok(Request::Ping));
        assert_eq!(
            d(r#"{"\u0063\u006d\u0064":"\u0070ing"}"#),
            Ok(Request::Ping)
        );
        assert_eq!(d(r#"{"cmd":"\u0062ye"}"#), Ok(Request::Bye));
        assert_eq!(d(r#"{"c\/md":"ping"}"#), Err(MissingField(Loc)));
    }

    #[test]
    fn keys_are_case_sensitive_and_exact() {
        assert_eq!(
            d(r#"{"Location":"a","temp":1,"hum":2}"#),
            Err(MissingField(Loc))
        );
        assert_eq!(
            d(r#"{"location ":"a","temp":1,"hum":2}"#),
            Err(MissingField(Loc))
        );
        assert_eq!(d(r#"{"CMD":"ping"}"#), Err(MissingField(Loc)));
        assert_eq!(d(r#"{"cmd\u0000":"ping"}"#), Err(MissingField(Loc)));
    }

    #[test]
    fn only_top_level_keys_count() {
        assert_eq!(
            d(r#"{"x":{"cmd":"ping","location":"a","temp":1,"hum":2}}"#),
            Err(MissingField(Loc))
        );
        assert!(d(r#"{"x":[{"cmd":"ping"}],"location":"a","temp":1,"hum":2}"#).is_ok());
        assert_eq!(
            d(r#"{"cmd":"latest","x":{"location":5}}"#),
            Ok(Request::Latest(None))
        );
    }

    #[test]
    fn duplicate_keys_last_one_counts() {
        let r = read(r#"{"location":"a","temp":200,"hum":2,"temp":3,"location":"b"}"#);
        assert_eq!((r.location.as_str(), r.temp), ("b", Tenths(30)));
        assert_eq!(
            d(r#"{"location":"a","temp":3,"hum":2,"temp":200}"#),
            Err(InvalidField(Temp))
        );
        assert_eq!(
            d(r#"{"location":"a","temp":3,"hum":2,"seq":1,"seq":-1}"#),
            Err(InvalidField(Seq))
        );
        assert_eq!(
            read(r#"{"location":"a","temp":3,"hum":2,"seq":-1,"seq":1}"#).seq,
            Some(1)
        );
        // An escaped duplicate is the same key.
        assert_eq!(
            read(r#"{"location":"a","temp":3,"hum":2,"lo\u0063ation":"z"}"#).location,
            loc("z")
        );
    }

    #[test]
    fn duplicate_cmd_last_one_counts() {
        assert_eq!(d(r#"{"cmd":"ping","cmd":"bye"}"#), Ok(Request::Bye));
        assert_eq!(d(r#"{"cmd":"ping","cmd":5}"#), Err(InvalidField(Cmd)));
        assert_eq!(d(r#"{"cmd":5,"cmd":"stats"}"#), Ok(Request::Stats));
        assert_eq!(d(r#"{"cmd":"ping","cmd":"nope"}"#), Err(UnknownCmd));
    }

    #[test]
    fn a_cmd_key_makes_a_command_whatever_else() {
        assert_eq!(
            d(r#"{"location":"a","temp":1,"hum":2,"cmd":"ping"}"#),
            Ok(Request::Ping)
        );
        assert_eq!(
            d(r#"{"temp":"bad","cmd":"stats","hum":null}"#),
            Ok(Request::Stats)
        );
        assert_eq!(
            d(r#"{"cmd":"bye","seq":-5,"location":7}"#),
            Ok(Request::Bye)
        );
    }

    #[test]
    fn each_command() {
        assert_eq!(d(r#"{"cmd":"ping"}"#), Ok(Request::Ping));
        assert_eq!(d(r#"{"cmd":"latest"}"#), Ok(Request::Latest(None)));
        assert_eq!(d(r#"{"cmd":"stats"}"#), Ok(Request::Stats));
        assert_eq!(d(r#"{"cmd":"bye"}"#), Ok(Request::Bye));
        assert_eq!(
            d(r#"{"cmd":"latest","location":"kitchen"}"#),
            Ok(Request::Latest(Some(loc("kitchen"))))
        );
        assert_eq!(
            d(r#"{"location":"k\u00fcche","cmd":"latest"}"#),
            Ok(Request::Latest(Some(loc("küche"))))
        );
    }

    #[test]
    fn cmd_must_be_a_string() {
        for bad in [
            "5",
            "true",
            "false",
            "null",
            "[\"ping\"]",
            "{\"cmd\":\"ping\"}",
            "-0",
        ] {
            assert_eq!(
                d(&format!(r#"{{"cmd":{bad}}}"#)),
                Err(InvalidField(Cmd)),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_commands_are_case_sensitive() {
        for bad in [
            "",
            "PING",
            "Ping",
            "ping ",
            " ping",
            "pin",
            "pingg",
            r"latest\u0000",
            "stat",
            "BYE",
            "hello",
        ] {
            assert_eq!(
                d(&format!(r#"{{"cmd":"{bad}"}}"#)),
                Err(UnknownCmd),
                "{bad:?}"
            );
        }
        // A bad cmd string is still scanned as JSON first.
        assert_eq!(d(r#"{"cmd":"\ud800"}"#), Err(InvalidJson));
    }

    #[test]
    fn latest_with_bad_location() {
        for bad in [
            "null",
            "1",
            "true",
            "[]",
            "{}",
            r#""""#,
            r#""a\"b""#,
            r#""a\\b""#,
            r#""\u0001""#,
            r#""\u007f""#,
        ] {
            assert_eq!(
                d(&format!(r#"{{"cmd":"latest","location":{bad}}}"#)),
                Err(InvalidField(Loc)),
                "{bad}"
            );
        }
        let x33 = "x".repeat(33);
        assert_eq!(
            d(&format!(r#"{{"cmd":"latest","location":"{x33}"}}"#)),
            Err(InvalidField(Loc))
        );
        assert_eq!(
            d(r#"{"cmd":"latest","location":"\ud800"}"#),
            Err(InvalidJson)
        );
    }

    #[test]
    fn commands_ignore_keys_they_do_not_use() {
        assert_eq!(d(r#"{"cmd":"ping","location":null}"#), Ok(Request::Ping));
        assert_eq!(d(r#"{"cmd":"stats","location":""}"#), Ok(Request::Stats));
        assert_eq!(
            d(r#"{"cmd":"latest","temp":"x","seq":1.5}"#),
            Ok(Request::Latest(None))
        );
        assert_eq!(
            d(r#"{"cmd":"bye","x":{"y":[1,2,{"z":null}]}}"#),
            Ok(Request::Bye)
        );
    }

    #[test]
    fn unknown_keys_with_any_value_are_ignored() {
        let r = read(
            r#"{"a":null,"b":true,"c":false,"d":"s\n","e":-1.5e-3,"f":[],"g":{},"h":[1,"x",{"i":[null]}],"location":"a","temp":1,"hum":2}"#,
        );
        assert_eq!(r.location.as_str(), "a");
    }

    #[test]
    fn nesting_32_levels_and_much_deeper() {
        for depth in [32usize, 33, 64, 100, 200, 236] {
            let arrays = format!(
                r#"{{"x":{}0{},"location":"a","temp":1,"hum":2}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert!(arrays.len() <= 512);
            assert!(d(&arrays).is_ok(), "{depth}");
            let objects = format!(
                r#"{{"location":"a","temp":1,"hum":2,"x":{}null{}}}"#,
                r#"{"":"#.repeat(depth / 2),
                "}".repeat(depth / 2)
            );
            assert!(d(&objects).is_ok(), "{depth}");
        }
        // Mixed, 32 deep, with the command at the end.
        let mixed = format!(
            r#"{{"x":{}1{},"cmd":"ping"}}"#,
            r#"[{"a":"#.repeat(16),
            "}]".repeat(16)
        );
        assert_eq!(d(&mixed), Ok(Request::Ping));
        // Unbalanced deep nesting is invalid.
        let open = format!(r#"{{"cmd":"ping","x":{}}}"#, "[".repeat(250));
        assert_eq!(d(&open), Err(InvalidJson));
        let wrong = format!(
            r#"{{"cmd":"ping","x":{}{}}}"#,
            "[".repeat(100),
            "}".repeat(100)
        );
        assert_eq!(d(&wrong), Err(InvalidJson));
    }

    #[test]
    fn lone_surrogates_anywhere_are_invalid_json() {
        for bad in [
            r#"{"\ud800":1,"cmd":"ping"}"#,
            r#"{"x":"\udc00","cmd":"ping"}"#,
            r#"{"x":["\udbff"],"cmd":"ping"}"#,
            r#"{"x":{"y":{"\udfff":0}},"cmd":"ping"}"#,
            r#"{"location":"\ud800","temp":1,"hum":2}"#,
            r#"{"location":"a\ud83d","temp":1,"hum":2}"#,
            r#"{"location":"\ude00\ud83d","temp":1,"hum":2}"#,
            r#"{"location":"\ud83d\u0041","temp":1,"hum":2}"#,
            r#"{"location":"\ud83d\ud83d","temp":1,"hum":2}"#,
            r#"{"location":"\ud83d\n","temp":1,"hum":2}"#,
        ] {
            assert_eq!(d(bad), Err(InvalidJson), "{bad}");
        }
    }

    #[test]
    fn surrogate_pairs_are_fine_anywhere() {
        assert_eq!(
            d(r#"{"\ud83d\ude00":"\uD83D\uDE00","cmd":"ping"}"#),
            Ok(Request::Ping)
        );
        assert_eq!(
            read(&with_location(r#""a\uDBFF\uDFFFb""#))
                .location
                .as_str(),
            "a\u{10ffff}b"
        );
        assert_eq!(
            read(&with_location(r#""\ud800\udc00""#)).location.as_str(),
            "\u{10000}"
        );
    }

    #[test]
    fn raw_control_characters_in_strings_are_invalid_json() {
        for c in ['\u{0}', '\u{1}', '\t', '\u{b}', '\u{c}', '\r', '\u{1f}'] {
            assert_eq!(
                d(&with_location(&format!("\"a{c}b\""))),
                Err(InvalidJson),
                "{c:?}"
            );
            assert_eq!(
                d(&format!("{{\"cmd\":\"ping\",\"x{c}\":1}}")),
                Err(InvalidJson),
                "{c:?}"
            );
            assert_eq!(
                d(&format!("{{\"cmd\":\"ping\",\"x\":[\"{c}\"]}}")),
                Err(InvalidJson),
                "{c:?}"
            );
        }
        // DEL is fine for JSON but not in a location.
        assert_eq!(d(&with_location("\"a\u{7f}\"")), Err(InvalidField(Loc)));
        assert_eq!(d("{\"cmd\":\"ping\",\"x\":\"\u{7f}\"}"), Ok(Request::Ping));
    }

    #[test]
    fn invalid_escapes_are_invalid_json() {
        for esc in [
            r"\a", r"\x41", r"\'", r"\U0041", r"\u004", r"\u00g1", r"\0", "\\ ", r"\u{41}",
        ] {
            assert_eq!(
                d(&with_location(&format!("\"{esc}\""))),
                Err(InvalidJson),
                "{esc}"
            );
            assert_eq!(
                d(&format!(r#"{{"cmd":"ping","x":"{esc}"}}"#)),
                Err(InvalidJson),
                "{esc}"
            );
        }
    }

    #[test]
    fn number_forms() {
        for (text, tenths) in [
            ("60", 600),
            ("-0.5", -5),
            ("2.5e1", 250),
            ("1E-1", 1),
            ("1e+2", 1000),
            ("1E+2", 1000),
            ("0.0125e3", 125),
            ("-4e1", -400),
            ("125", 1250),
            ("1.25E2", 1250),
            ("-40.0", -400),
            ("0", 0),
            ("-0", 0),
            ("-0.0", 0),
            ("0e0", 0),
            ("-0.04", 0),
            ("100e-2", 10),
        ] {
            assert_eq!(read(&with_temp(text)).temp, Tenths(tenths), "{text}");
        }
    }

    #[test]
    fn malformed_numbers_are_invalid_json() {
        for bad in [
            "01", "1.", ".5", "+1", "1e", "1e+", "--1", "0x10", "1.5.2", "Infinity", "NaN", "-",
            "1e5.5", "- 1",
        ] {
            assert_eq!(d(&with_temp(bad)), Err(InvalidJson), "{bad}");
            assert_eq!(
                d(&format!(r#"{{"cmd":"ping","x":[{bad}]}}"#)),
                Err(InvalidJson),
                "{bad}"
            );
        }
    }

    #[test]
    fn rounding_is_decimal_ties_away_from_zero() {
        for (text, tenths) in [
            ("0.15", 2),
            ("-0.15", -2),
            ("25.55", 256),
            ("2.5e-1", 3),
            ("0.05", 1),
            ("-0.05", -1),
            ("0.049999", 0),
            ("99.95", 1000),
            ("1.45", 15),
            ("-39.95", -400),
            ("124.95", 1250),
        ] {
            assert_eq!(read(&with_temp(text)).temp, Tenths(tenths), "{text}");
        }
        assert_eq!(read(&with_hum("99.95")).hum, Tenths(1000));
        assert_eq!(read(&with_hum("0.05")).hum, Tenths(1));
    }

    #[test]
    fn negative_zero_is_stored_as_zero() {
        assert_eq!(read(&with_temp("-0")).temp, Tenths(0));
        assert_eq!(read(&with_temp("-0.04")).temp, Tenths(0));
        assert_eq!(read(&with_hum("-0")).hum, Tenths(0));
        assert_eq!(read(&with_hum("-0.0e5")).hum, Tenths(0));
        assert_eq!(read(&with_seq("-0")).seq, Some(0));
    }

    #[test]
    fn temp_range_as_written() {
        for good in [
            "-40",
            "125",
            "125.0000",
            "-40.000",
            "1.25e2",
            "-4E+1",
            "124.99999",
        ] {
            assert!(d(&with_temp(good)).is_ok(), "{good}");
        }
        for bad in [
            "-40.01",
            "125.00001",
            "125.04",
            "-40.0000000000000000001",
            "126",
            "-41",
            "1e3",
            "10000",
        ] {
            assert_eq!(d(&with_temp(bad)), Err(InvalidField(Temp)), "{bad}");
        }
    }

    #[test]
    fn hum_range_as_written() {
        for good in ["0", "-0", "100", "100.000", "1e2", "0.01", "1e-400", "-0e1"] {
            assert!(d(&with_hum(good)).is_ok(), "{good}");
        }
        for bad in ["-0.01", "-1e-400", "100.01", "101", "-1", "1e400"] {
            assert_eq!(d(&with_hum(bad)), Err(InvalidField(Hum)), "{bad}");
        }
    }

    #[test]
    fn huge_numbers_break_the_range() {
        assert_eq!(d(&with_temp("1e400")), Err(InvalidField(Temp)));
        assert_eq!(d(&with_temp("-1e400")), Err(InvalidField(Temp)));
        assert_eq!(
            d(&with_temp("1E999999999999999999999")),
            Err(InvalidField(Temp))
        );
        assert_eq!(d(&with_hum("1e400")), Err(InvalidField(Hum)));
        // Tiny is fine: it rounds to zero.
        assert_eq!(read(&with_temp("-1e-400")).temp, Tenths(0));
        // A long mantissa that is in range.
        let long = format!("12.{}", "9".repeat(300));
        assert_eq!(read(&with_temp(&long)).temp, Tenths(130));
    }

    #[test]
    fn seq_edges() {
        assert_eq!(read(&with_seq("0")).seq, Some(0));
        assert_eq!(read(&with_seq("-0")).seq, Some(0));
        assert_eq!(read(&with_seq("4294967295")).seq, Some(u32::MAX));
        for bad in [
            "4294967296",
            "-1",
            "1.0",
            "1e0",
            "1E2",
            "0.0",
            "-0.0",
            "1.5",
            "\"1\"",
            "null",
            "true",
            "[1]",
            "{}",
            "99999999999999999999",
        ] {
            assert_eq!(d(&with_seq(bad)), Err(InvalidField(Seq)), "{bad}");
        }
        assert_eq!(d(&with_seq("01")), Err(InvalidJson));
    }

    #[test]
    fn seq_is_checked_last() {
        assert_eq!(
            d(r#"{"seq":"x","location":"a","temp":1,"hum":101}"#),
            Err(InvalidField(Hum))
        );
    }

    #[test]
    fn a_full_512_byte_line_decodes() {
        let head = r#"{"location":"a","temp":1,"hum":2,"pad":""#;
        let pad = "p".repeat(512 - head.len() - 2);
        let line = format!("{head}{pad}\"}}");
        assert_eq!(line.len(), 512);
        assert!(d(&line).is_ok());
    }
}
