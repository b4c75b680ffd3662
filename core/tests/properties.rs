//! Property tests of the core: framing is independent of how the input is
//! cut, rounding agrees with an exact decimal oracle, the decoder agrees with
//! a model of the protocol and with serde_json on what is JSON, and no input
//! makes anything panic or write past the buffer it was given.
//!
//! Case counts are kept small so the suite runs in seconds in debug builds.

use envhub_core::decimal::Decimal;
use envhub_core::testing::Driver;
use envhub_core::{decode, Close, Config, ErrorCode, Field, Location, Reading, Request, Tenths};
use proptest::prelude::*;
use proptest::sample::select;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal as Exact, RoundingStrategy};

// =============================================================================================
// Driving a connection
// =============================================================================================

const NOW: u64 = 1_000;

/// What a connection did with a byte stream.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    replies: Vec<u8>,
    close: Option<Close>,
    readings: u64,
    errors: u64,
}

/// Feeds `stream` to a fresh connection in the pieces cut at `cuts`, with
/// output buffers of the sizes in `outs` (cycled), then EOF if `eof`. The
/// driver checks on every call that nothing is written or consumed beyond
/// what was given.
fn drive(stream: &[u8], cuts: &[usize], outs: &[usize], eof: bool) -> Outcome {
    let mut driver = Driver::new(Config::default());
    driver.now = NOW;
    driver.windows = outs.to_vec();
    let mut replies = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut from = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        replies.extend(driver.feed(&stream[from..cut]));
        from = cut;
    }
    if eof {
        driver.conn.handle_eof();
        replies.extend(driver.pump());
    }
    assert!(!driver.conn.has_output(), "output owed but none written");
    Outcome {
        replies,
        close: driver.conn.poll_close(),
        readings: driver.stats.readings,
        errors: driver.stats.errors,
    }
}

/// Lines that exercise every kind of reply (without `bye`, which ends the
/// stream; it is added rarely on its own).
fn line() -> impl Strategy<Value = Vec<u8>> {
    let fixed: Vec<&'static [u8]> = vec![
        br#"{"location":"a","temp":25.55,"hum":60,"seq":7}"#,
        br#"{"location":"b","temp":-0.15,"hum":0}"#,
        br#"{"location":"k\u00fcche","temp":1e1,"hum":1E-1,"seq":4294967295}"#,
        br#"{"location":"c","temp":125,"hum":100,"seq":-0}"#,
        br#"{"location":"a","temp":200,"hum":1}"#,
        br#"{"location":"a","hum":1}"#,
        br#"{"location":"a","temp":1,"hum":1,"seq":1.5}"#,
        br#"{"cmd":"ping"}"#,
        br#"{"cmd":"latest"}"#,
        br#"{"cmd":"latest","location":"a"}"#,
        br#"{"cmd":"latest","location":"nowhere"}"#,
        br#"{"cmd":"latest","location":null}"#,
        br#"{"cmd":"stats"}"#,
        br#"{"cmd":"PING"}"#,
        br#"{"cmd":1}"#,
        br#"{"cmd":"ping","x":[[[{"y":"\ud800"}]]]}"#,
        b"{\"location\":\"\xff\",\"temp\":1,\"hum\":1}",
        b"hello",
        b"",
        b"   ",
        b" \t",
        b"\r",
        b"[]",
    ];
    prop_oneof![
        8 => select(fixed).prop_map(<[u8]>::to_vec),
        // Many distinct locations make long `latest` replies.
        3 => (0u8..20, -400i32..=1250, 0i32..=1000).prop_map(|(l, t, h)| {
            format!(
                r#"{{"location":"room-{l:02}-{}","temp":{}{}.{},"hum":{}}}"#,
                "x".repeat(usize::from(l)),
                if t < 0 { "-" } else { "" },
                t.abs() / 10,
                t.abs() % 10,
                f64::from(h) / 10.0
            )
            .into_bytes()
        }),
        1 => (500usize..=520).prop_map(|n| {
            let mut l = br#"{"cmd":"ping","pad":""#.to_vec();
            l.resize(n - 2, b'p');
            l.extend_from_slice(b"\"}");
            l
        }),
        1 => (513usize..1500).prop_map(|n| vec![b'x'; n]),
        1 => Just(br#"{"cmd":"bye"}"#.to_vec()),
    ]
}

/// Lines joined with LF or CR LF, the last one maybe unterminated.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((line(), any::<bool>()), 0..24),
        any::<bool>(),
    )
        .prop_map(|(lines, last_lf)| {
            let mut s = Vec::new();
            let n = lines.len();
            for (i, (l, crlf)) in lines.into_iter().enumerate() {
                s.extend_from_slice(&l);
                if i + 1 < n || last_lf {
                    s.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                }
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// However the stream is cut and however small the output buffers, the
    /// replies are the bytes of one big chunk into one big buffer.
    #[test]
    fn any_split_gives_the_same_replies(
        stream in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
        outs in prop::collection::vec(1usize..64, 1..8),
        eof in any::<bool>(),
    ) {
        let whole = drive(&stream, &[], &[4096], eof);
        let split = drive(&stream, &cuts, &outs, eof);
        prop_assert_eq!(
            String::from_utf8_lossy(&split.replies),
            String::from_utf8_lossy(&whole.replies)
        );
        prop_assert_eq!(split, whole);
    }
}

// =============================================================================================
// Numbers against an exact decimal oracle
// =============================================================================================

/// A JSON number, by its parts as written.
#[derive(Debug, Clone)]
struct Num {
    negative: bool,
    int: String,
    frac: Option<String>,
    /// `E` or `e`, sign (`""`, `"+"`, `"-"`), digits.
    exp: Option<(bool, &'static str, String)>,
}

impl Num {
    fn text(&self) -> String {
        let mut s = String::new();
        if self.negative {
            s.push('-');
        }
        s.push_str(&self.int);
        if let Some(f) = &self.frac {
            s.push('.');
            s.push_str(f);
        }
        if let Some((upper, sign, digits)) = &self.exp {
            s.push(if *upper { 'E' } else { 'e' });
            s.push_str(sign);
            s.push_str(digits);
        }
        s
    }

    /// The exponent's value, saturated far beyond anything that matters.
    fn exponent(&self) -> i64 {
        let Some((_, sign, digits)) = &self.exp else {
            return 0;
        };
        let v = digits.bytes().fold(0i64, |v, b| {
            (v * 10 + i64::from(b - b'0')).min(1_000_000_000)
        });
        if *sign == "-" {
            -v
        } else {
            v
        }
    }

    /// What the number is, exactly.
    fn oracle(&self) -> Oracle {
        let frac = self.frac.as_deref().unwrap_or("");
        let digits = format!("{}{}", self.int, frac);
        let Some(first) = digits.bytes().position(|b| b != b'0') else {
            return Oracle::Zero;
        };
        let exp = self.exponent();
        // Power of ten of the leading nonzero digit.
        let top = self.int.len() as i64 - 1 - first as i64 + exp;
        if top >= 4 {
            return Oracle::Huge;
        }
        if top <= -3 {
            // Below 0.01 in magnitude, yet not zero.
            return Oracle::Tiny(self.negative);
        }
        let mantissa: i128 = digits.parse().unwrap();
        let scale = frac.len() as i64 - exp;
        let mut value = if scale >= 0 {
            Exact::from_i128_with_scale(mantissa, scale as u32)
        } else {
            Exact::from_i128_with_scale(mantissa * 10i128.pow((-scale) as u32), 0)
        };
        value.set_sign_negative(self.negative);
        Oracle::Value(value)
    }
}

/// The exact value of a number, classified.
#[derive(Debug, Clone, Copy)]
enum Oracle {
    Zero,
    /// Nonzero, below 0.01 in magnitude; true if negative.
    Tiny(bool),
    /// 10000 or more in magnitude.
    Huge,
    Value(Exact),
}

impl Oracle {
    /// `lo/10 ≤ value ≤ hi/10` (bounds in tenths, |bound| < 10000).
    fn within(self, lo: i32, hi: i32) -> bool {
        match self {
            Oracle::Zero => lo <= 0 && 0 <= hi,
            Oracle::Tiny(true) => lo < 0 && hi >= 0,
            Oracle::Tiny(false) => lo <= 0 && hi > 0,
            Oracle::Huge => false,
            Oracle::Value(v) => Exact::new(lo.into(), 1) <= v && v <= Exact::new(hi.into(), 1),
        }
    }

    /// Tenths, rounded half away from zero; `None` when too large to check.
    fn tenths(self) -> Option<i64> {
        match self {
            Oracle::Zero | Oracle::Tiny(_) => Some(0),
            Oracle::Huge => None,
            Oracle::Value(v) => {
                let r = v.round_dp_with_strategy(1, RoundingStrategy::MidpointAwayFromZero);
                (r * Exact::TEN).to_i64()
            }
        }
    }
}

fn num() -> impl Strategy<Value = Num> {
    let int = prop_oneof![Just("0".to_owned()), "[1-9][0-9]{0,5}", "[1-9]"];
    let frac = prop::option::weighted(0.6, "[0-9]{1,8}");
    let exp_digits = prop_oneof![
        6 => "[0-9]",
        3 => "0?[0-9]{1,2}",
        1 => "0{0,20}[1-9][0-9]{2,6}",
    ];
    let exp = prop::option::weighted(0.4, (any::<bool>(), select(vec!["", "+", "-"]), exp_digits));
    (any::<bool>(), int, frac, exp).prop_map(|(negative, int, frac, exp)| Num {
        negative,
        int,
        frac,
        exp,
    })
}

/// Numbers near the interesting edges: ties, range bounds, zero.
fn edgy_num() -> impl Strategy<Value = Num> {
    (
        any::<bool>(),
        select(vec!["0", "1", "39", "40", "99", "100", "124", "125", "126"]),
        select(vec![
            "", "0", "05", "04", "049999", "95", "94", "950", "0000001", "15", "55",
        ]),
        select(vec![None, Some(0i32), Some(1), Some(-1), Some(2), Some(-2)]),
        any::<bool>(),
    )
        .prop_map(|(negative, int, frac, exp, upper)| Num {
            negative,
            int: int.to_owned(),
            frac: (!frac.is_empty()).then(|| frac.to_owned()),
            exp: exp.map(|e| {
                let sign = if e < 0 {
                    "-"
                } else if upper {
                    "+"
                } else {
                    ""
                };
                (upper, sign, e.unsigned_abs().to_string())
            }),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `Decimal::parse`, `rounded` and `within` agree with exact decimal
    /// arithmetic on numbers in every JSON form.
    #[test]
    fn rounding_and_ranges_match_a_decimal_oracle(
        n in prop_oneof![num(), edgy_num()],
        lo in -2000i32..2000,
        span in 0i32..2500,
    ) {
        let text = n.text();
        let d = Decimal::parse(text.as_bytes());
        prop_assert!(d.is_some(), "{} did not parse", text);
        let d = d.unwrap();
        let oracle = n.oracle();
        if let Some(t) = oracle.tenths().filter(|t| t.abs() <= 30_000) {
            prop_assert_eq!(i64::from(d.rounded().0), t, "rounded {}", text);
        }
        for (lo, hi) in [(-400, 1250), (0, 1000), (lo, lo + span), (lo, lo - 1)] {
            prop_assert_eq!(d.within(lo, hi), oracle.within(lo, hi), "{} within {}..={}", text, lo, hi);
        }
    }

    /// The same numbers as `temp` and `hum` of a reading.
    #[test]
    fn readings_store_what_the_oracle_says(n in prop_oneof![num(), edgy_num()]) {
        let text = n.text();
        let oracle = n.oracle();
        let got = decode(format!(r#"{{"location":"x","temp":{text},"hum":50}}"#).as_bytes());
        if oracle.within(-400, 1250) {
            let Ok(Request::Reading(r)) = got else {
                return Err(TestCaseError::fail(format!("{text}: {got:?}")));
            };
            prop_assert_eq!(Some(i64::from(r.temp.0)), oracle.tenths(), "{}", text);
        } else {
            prop_assert_eq!(got, Err(ErrorCode::InvalidField(Field::Temp)), "{}", text);
        }
        let got = decode(format!(r#"{{"location":"x","temp":20,"hum":{text}}}"#).as_bytes());
        if oracle.within(0, 1000) {
            let Ok(Request::Reading(r)) = got else {
                return Err(TestCaseError::fail(format!("{text}: {got:?}")));
            };
            prop_assert_eq!(Some(i64::from(r.hum.0)), oracle.tenths(), "{}", text);
            prop_assert!(r.hum.0 >= 0);
        } else {
            prop_assert_eq!(got, Err(ErrorCode::InvalidField(Field::Hum)), "{}", text);
        }
    }
}

// =============================================================================================
// The decoder against a model of the protocol
// =============================================================================================

/// How one character of a string is written.
#[derive(Debug, Clone, Copy)]
enum Enc {
    Raw,
    Short,
    Lower,
    Upper,
}

/// A JSON string: its decoded characters, each with how it is written.
#[derive(Debug, Clone)]
struct Str(Vec<(char, Enc)>);

impl Str {
    fn value(&self) -> String {
        self.0.iter().map(|&(c, _)| c).collect()
    }

    fn render(&self, out: &mut String) {
        out.push('"');
        for &(c, enc) in &self.0 {
            let short = match c {
                '"' => Some('"'),
                '\\' => Some('\\'),
                '/' => Some('/'),
                '\u{8}' => Some('b'),
                '\u{c}' => Some('f'),
                '\n' => Some('n'),
                '\r' => Some('r'),
                '\t' => Some('t'),
                _ => None,
            };
            let raw_ok = c >= ' ' && c != '"' && c != '\\';
            match (enc, short) {
                (Enc::Raw, _) if raw_ok => out.push(c),
                (Enc::Short | Enc::Raw, Some(s)) => {
                    out.push('\\');
                    out.push(s);
                }
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        if matches!(enc, Enc::Upper) {
                            out.push_str(&format!("\\u{u:04X}"));
                        } else {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
        }
        out.push('"');
    }
}

/// A JSON value, or a broken piece of one.
#[derive(Debug, Clone)]
enum J {
    Null,
    True,
    False,
    Num(Num),
    Str(Str),
    Arr(Vec<J>),
    Obj(Vec<(Str, J)>),
    /// Not JSON: the whole line is `invalid_json`.
    Bad(&'static str),
}

impl J {
    fn render(&self, out: &mut String, ws: &mut impl Iterator<Item = &'static str>) {
        match self {
            J::Null => out.push_str("null"),
            J::True => out.push_str("true"),
            J::False => out.push_str("false"),
            J::Num(n) => out.push_str(&n.text()),
            J::Str(s) => s.render(out),
            J::Bad(b) => out.push_str(b),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws.next().unwrap());
                    item.render(out, ws);
                    out.push_str(ws.next().unwrap());
                }
                out.push(']');
            }
            J::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(ws.next().unwrap());
                    k.render(out);
                    out.push_str(ws.next().unwrap());
                    out.push(':');
                    out.push_str(ws.next().unwrap());
                    v.render(out, ws);
                    out.push_str(ws.next().unwrap());
                }
                out.push('}');
            }
        }
    }

    fn is_bad(&self) -> bool {
        match self {
            J::Bad(_) => true,
            J::Arr(items) => items.iter().any(J::is_bad),
            J::Obj(members) => members.iter().any(|(_, v)| v.is_bad()),
            _ => false,
        }
    }
}

fn enc() -> impl Strategy<Value = Enc> {
    prop_oneof![6 => Just(Enc::Raw), 1 => Just(Enc::Short), 1 => Just(Enc::Lower), 1 => Just(Enc::Upper)]
}

/// A string of exactly `text`, written with random escapes.
fn str_of(text: &'static str) -> impl Strategy<Value = Str> {
    prop::collection::vec(enc(), text.chars().count())
        .prop_map(move |encs| Str(text.chars().zip(encs).collect()))
}

/// A string from characters that test every rule.
fn any_str(max: usize) -> impl Strategy<Value = Str> {
    let chars = select(vec![
        'a',
        'b',
        'z',
        ' ',
        '_',
        '-',
        '/',
        '"',
        '\\',
        '\u{0}',
        '\n',
        '\t',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        'é',
        'ü',
        '客',
        '😀',
        '\u{10ffff}',
    ]);
    prop::collection::vec((chars, enc()), 0..max).prop_map(Str)
}

fn location_str() -> impl Strategy<Value = Str> {
    prop_oneof![
        3 => select(vec!["a", "kitchen", "küche", "客厅", "😀", "a b", "x/y"]).prop_flat_map(str_of),
        1 => select(vec![
            "",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "éééééééééééééééé",
            "ééééééééééééééééé",
            "😀😀😀😀😀😀😀😀",
            "😀😀😀😀😀😀😀😀a",
        ])
        .prop_flat_map(str_of),
        2 => any_str(12),
    ]
}

fn bad() -> impl Strategy<Value = J> {
    select(vec![
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\ud83d\\u0041\"",
        "01",
        "1.",
        "-",
        "tru",
        "nulll",
        "[1,]",
        "{\"a\"}",
        "\"\\x\"",
        "\"\u{1}\"",
        "[}",
        "+1",
        ".5",
        "1e",
        "{,}",
        "'a'",
    ])
    .prop_map(J::Bad)
}

fn scalar() -> impl Strategy<Value = J> {
    prop_oneof![
        Just(J::Null),
        Just(J::True),
        Just(J::False),
        num().prop_map(J::Num),
        any_str(6).prop_map(J::Str),
    ]
}

fn any_json() -> impl Strategy<Value = J> {
    scalar().prop_recursive(5, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(J::Arr),
            prop::collection::vec((any_str(4), inner), 0..4).prop_map(J::Obj),
        ]
    })
}

fn seq_num() -> impl Strategy<Value = Num> {
    prop_oneof![
        3 => "0|[1-9][0-9]{0,9}".prop_map(|int| Num { negative: false, int, frac: None, exp: None }),
        1 => select(vec!["4294967295", "4294967296", "0", "99999999999"])
            .prop_map(|i| Num { negative: false, int: i.to_owned(), frac: None, exp: None }),
        1 => num(),
    ]
}

/// One member of a request object; known keys most of the time.
fn member() -> impl Strategy<Value = (Str, J)> {
    let value =
        |s: BoxedStrategy<J>| prop_oneof![12 => s, 2 => scalar(), 1 => any_json(), 1 => bad()];
    prop_oneof![
        4 => (str_of("location"), value(location_str().prop_map(J::Str).boxed())),
        4 => (str_of("temp"), value(prop_oneof![num(), edgy_num()].prop_map(J::Num).boxed())),
        4 => (str_of("hum"), value(prop_oneof![num(), edgy_num()].prop_map(J::Num).boxed())),
        2 => (str_of("seq"), value(seq_num().prop_map(J::Num).boxed())),
        1 => (
            str_of("cmd"),
            value(
                select(vec!["ping", "latest", "stats", "bye", "Ping", "", "nope", "latest "])
                    .prop_flat_map(str_of)
                    .prop_map(J::Str)
                    .boxed()
            )
        ),
        2 => (any_str(5), any_json()),
        1 => (select(vec!["Location", "tem", "hums", "cmd ", "cm"]).prop_flat_map(str_of), scalar()),
    ]
}

fn whitespace() -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(
        prop_oneof![8 => Just(""), 2 => Just(" "), 1 => Just("\t"), 1 => Just("\r\n "), 1 => Just("\n")],
        1..16,
    )
}

/// The location rules of the protocol, written again.
fn location_ok(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && !name
            .chars()
            .any(|c| c < ' ' || c == '\u{7f}' || c == '"' || c == '\\')
}

/// What `decode` must answer for an object of these members.
fn model(members: &[(Str, J)]) -> Result<Request, ErrorCode> {
    use ErrorCode::{InvalidField, InvalidJson, MissingField, UnknownCmd};
    if members.iter().any(|(_, v)| v.is_bad()) {
        return Err(InvalidJson);
    }
    let last = |key: &str| {
        members
            .iter()
            .rev()
            .find(|(k, _)| k.value() == key)
            .map(|(_, v)| v)
    };
    let location = |v: &J| match v {
        J::Str(s) if location_ok(&s.value()) => Ok(Location::new(&s.value()).unwrap()),
        _ => Err(InvalidField(Field::Location)),
    };
    if let Some(cmd) = last("cmd") {
        let J::Str(cmd) = cmd else {
            return Err(InvalidField(Field::Cmd));
        };
        return match cmd.value().as_str() {
            "ping" => Ok(Request::Ping),
            "stats" => Ok(Request::Stats),
            "bye" => Ok(Request::Bye),
            "latest" => Ok(Request::Latest(last("location").map(location).transpose()?)),
            _ => Err(UnknownCmd),
        };
    }
    let (Some(loc), Some(temp), Some(hum)) = (last("location"), last("temp"), last("hum")) else {
        let missing = ["location", "temp", "hum"]
            .iter()
            .position(|k| last(k).is_none());
        let field = [Field::Location, Field::Temp, Field::Hum][missing.unwrap()];
        return Err(MissingField(field));
    };
    let location = location(loc)?;
    let tenths = |v: &J, lo, hi, field| match v {
        J::Num(n) if n.oracle().within(lo, hi) => Ok(Tenths(n.oracle().tenths().unwrap() as i16)),
        _ => Err(InvalidField(field)),
    };
    let temp = tenths(temp, -400, 1250, Field::Temp)?;
    let hum = tenths(hum, 0, 1000, Field::Hum)?;
    let seq = match last("seq") {
        None => None,
        Some(J::Num(n)) if n.frac.is_none() && n.exp.is_none() => {
            let v: Option<u32> = n.int.parse().ok();
            match v {
                Some(v) if !n.negative || v == 0 => Some(v),
                _ => return Err(InvalidField(Field::Seq)),
            }
        }
        Some(_) => return Err(InvalidField(Field::Seq)),
    };
    Ok(Request::Reading(Reading {
        location,
        temp,
        hum,
        seq,
    }))
}

fn request_line() -> impl Strategy<Value = (Vec<(Str, J)>, String)> {
    (prop::collection::vec(member(), 0..7), whitespace()).prop_map(|(members, ws)| {
        let mut line = String::new();
        let mut ws_iter = ws.into_iter().cycle();
        line.push_str(ws_iter.next().unwrap());
        J::Obj(members.clone()).render(&mut line, &mut ws_iter);
        line.push_str(ws_iter.next().unwrap());
        (members, line)
    })
}

/// serde_json's verdict on whether `line` is one JSON object; `None` where
/// it refuses valid JSON (a number too large for `f64`, deep nesting).
fn serde_says_object(line: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(v) => Some(v.is_object()),
        Err(e) if e.to_string().contains("out of range") => None,
        Err(e) if e.to_string().contains("recursion limit") => None,
        Err(_) => Some(false),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Generated requests, with escapes, duplicates, nesting and broken
    /// pieces, decode as the model of the protocol says.
    #[test]
    fn decode_agrees_with_the_model((members, line) in request_line()) {
        prop_assert_eq!(decode(line.as_bytes()), model(&members), "{}", line);
    }
}

// =============================================================================================
// Nothing panics, nothing overflows
// =============================================================================================

/// Bytes that matter to JSON and to framing, and a few that break UTF-8.
fn json_byte() -> impl Strategy<Value = u8> {
    select(b"{}[]\":,\\/ \t\r\n0123456789-+.eEtrufalsnuUd\x00\x1f\x7f\xc3\xa9\xff".to_vec())
}

/// A generated request line with a few bytes inserted, removed or replaced.
fn near_valid_line() -> impl Strategy<Value = Vec<u8>> {
    (
        request_line(),
        prop::collection::vec((any::<usize>(), 0u8..3, json_byte()), 0..4),
    )
        .prop_map(|((_, line), edits)| {
            let mut bytes = line.into_bytes();
            for (at, op, b) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 => bytes.insert(at, b),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = b,
                    _ => bytes.push(b),
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// On lines close to valid, `decode` says `invalid_json` exactly when
    /// serde_json finds no single object (and `invalid_utf8` first).
    #[test]
    fn decode_agrees_with_serde_json_on_what_is_json(line in near_valid_line()) {
        let got = decode(&line);
        if std::str::from_utf8(&line).is_err() {
            prop_assert_eq!(got, Err(ErrorCode::InvalidUtf8));
        } else if let Some(object) = serde_says_object(&line) {
            prop_assert_eq!(
                got != Err(ErrorCode::InvalidJson),
                object,
                "{} gave {:?}",
                String::from_utf8_lossy(&line),
                got
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes never panic `decode`.
    #[test]
    fn decode_never_panics(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(json_byte(), 0..600),
    ]) {
        let _ = decode(&bytes);
    }

    /// Arbitrary streams never panic a connection, and it never writes or
    /// consumes more than it is given (checked inside `drive`).
    #[test]
    fn connections_never_panic_or_overflow(
        parts in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            prop::collection::vec(json_byte(), 0..200),
            near_valid_line().prop_map(|mut l| { l.push(b'\n'); l }),
            stream(),
        ], 0..6),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        outs in prop::collection::vec(0usize..48, 1..6),
        eof in any::<bool>(),
    ) {
        let bytes: Vec<u8> = parts.concat();
        // A zero-sized buffer is allowed but never makes progress on its own.
        let mut outs = outs;
        outs.push(1);
        let _ = drive(&bytes, &cuts, &outs, eof);
    }
}
