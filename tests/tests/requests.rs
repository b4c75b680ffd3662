//! Requests and their replies: commands, readings, validation, JSON edge
//! cases. Every reply is compared byte for byte with PROTOCOL.md.

use envhub_tests::*;

/// Cases of `(request line, expected reply)`.
type Cases = Vec<(String, String)>;

/// A reading of location `r` with temperature `t` (as written) and hum 50:
/// its acknowledgement prints `printed`.
fn temp_case(t: &str, printed: &str) -> (String, String) {
    (reading("r", t, "50"), stored("r", printed, "50.0", None))
}

/// A reading of location `r` with hum `h` (as written) and temp 20.
fn hum_case(h: &str, printed: &str) -> (String, String) {
    (reading("r", "20", h), stored("r", "20.0", printed, None))
}

/// A reading with `seq` written as `seq_text`.
fn seq_request(seq_text: &str) -> String {
    format!(r#"{{"location":"s","temp":1,"hum":2,"seq":{seq_text}}}"#)
}

/// `{"x":VALUE,"cmd":"ping"}`: a ping carrying an ignored value.
fn ping_with(value: &str) -> String {
    format!(r#"{{"x":{value},"cmd":"ping"}}"#)
}

/// `depth` nested arrays around `1`.
fn arrays(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested objects around `1`.
fn objects(depth: usize) -> String {
    format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

/// `(request, reply)` pairs as owned strings.
fn cases(list: &[(&str, &str)]) -> Cases {
    list.iter()
        .map(|(q, a)| (q.to_string(), a.to_string()))
        .collect()
}

/// `ping`, and a reading acknowledged with and without `seq`.
fn ping_and_reading(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    c.check(&cases(&[
        (r#"{"cmd":"ping"}"#, PONG),
        (
            r#"{"location":"living_room","temp":25.5,"hum":60,"seq":7}"#,
            r#"{"ok":true,"location":"living_room","temp":25.5,"hum":60.0,"seq":7}"#,
        ),
        (
            r#"{"location":"living_room","temp":25.5,"hum":60}"#,
            r#"{"ok":true,"location":"living_room","temp":25.5,"hum":60.0}"#,
        ),
        (
            r#"{"hum":60,"seq":8,"temp":-3,"location":"garage"}"#,
            r#"{"ok":true,"location":"garage","temp":-3.0,"hum":60.0,"seq":8}"#,
        ),
    ]));
}

/// The command-line flags of the contract, given explicitly, are accepted.
fn explicit_flags(shell: Shell) {
    let opts = Opts::default()
        .max_clients(8)
        .idle_timeout(300)
        .arg("--mode")
        .arg("sensor");
    let server = Server::start(shell, opts);
    let mut c = server.connect();
    c.expect(r#"{"cmd":"ping"}"#, PONG);
}

/// Number forms and decimal rounding to tenths, ties away from zero,
/// exactly as written (binary floating point gets several wrong).
fn number_forms_and_rounding(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let temps = [
        ("25.5", "25.5"),
        ("60", "60.0"),
        ("-0.5", "-0.5"),
        ("2.5e1", "25.0"),
        ("1E-1", "0.1"),
        ("1e+1", "10.0"),
        ("-1E-1", "-0.1"),
        ("100e-2", "1.0"),
        ("0.05", "0.1"),
        ("-0.05", "-0.1"),
        ("0.15", "0.2"),
        ("-0.15", "-0.2"),
        ("0.25", "0.3"),
        ("0.35", "0.4"),
        ("1.45", "1.5"),
        ("25.45", "25.5"),
        ("25.55", "25.6"),
        ("-25.55", "-25.6"),
        ("2.555e1", "25.6"),
        ("2.5e-1", "0.3"),
        ("2.5E-1", "0.3"),
        ("25e-2", "0.3"),
        ("99.95", "100.0"),
        ("124.96", "125.0"),
        ("-39.95", "-40.0"),
        ("0.04", "0.0"),
        ("-0.04", "0.0"),
        ("-0.049999", "0.0"),
        ("-0.0", "0.0"),
        ("-0", "0.0"),
        ("0", "0.0"),
        ("-0.00e5", "0.0"),
        ("1e-400", "0.0"),
        ("-1e-400", "0.0"),
        ("0.05000000000000000001", "0.1"),
        ("0.04999999999999999999", "0.0"),
        ("25.549999999999999999", "25.5"),
        ("125", "125.0"),
        ("125.0", "125.0"),
        ("1.25e2", "125.0"),
        ("1250e-1", "125.0"),
        ("0.0125e4", "125.0"),
        ("12500000000e-8", "125.0"),
        ("125.000000000000000000000", "125.0"),
        ("-40", "-40.0"),
        ("-4e1", "-40.0"),
    ];
    let hums = [
        ("60", "60.0"),
        ("99.95", "100.0"),
        ("100", "100.0"),
        ("1e2", "100.0"),
        ("100.0000", "100.0"),
        ("0", "0.0"),
        ("-0", "0.0"),
        ("-0.0", "0.0"),
        ("0.00", "0.0"),
        ("0.04", "0.0"),
        ("0.05", "0.1"),
        ("0.15", "0.2"),
        ("1e-400", "0.0"),
    ];
    let mut all: Cases = temps.iter().map(|(t, p)| temp_case(t, p)).collect();
    all.extend(hums.iter().map(|(h, p)| hum_case(h, p)));
    c.check(&all);
}

/// The ranges −40…125 and 0…100 hold for the value as written; a number
/// too large for any float is `invalid_field`.
fn range_limits(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let bad_temps = [
        "125.01",
        "125.04",
        "125.00000000000000000001",
        "1.2500001e2",
        "126",
        "1e3",
        "1e400",
        "-1e400",
        "1E400",
        "-40.01",
        "-40.000000000000000001",
        "-4.0001e1",
        "-41",
        "100000",
        "123456789012345678901234567890",
    ];
    let bad_hums = [
        "100.01",
        "100.04",
        "100.00000000000000001",
        "101",
        "-0.01",
        "-0.0000001",
        "-1e-400",
        "-1",
        "1e400",
        "-1e400",
    ];
    let mut all: Cases = bad_temps
        .iter()
        .map(|t| (reading("r", t, "50"), invalid("temp")))
        .collect();
    all.extend(
        bad_hums
            .iter()
            .map(|h| (reading("r", "20", h), invalid("hum"))),
    );
    c.check(&all);
}

/// `seq` is echoed; it must be an integer literal 0..=4294967295.
fn seq_echo_and_edges(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let ok = |seq: u64| stored("s", "1.0", "2.0", Some(seq));
    let mut all: Cases = vec![
        (seq_request("0"), ok(0)),
        (seq_request("7"), ok(7)),
        (seq_request(" 42 "), ok(42)),
        (seq_request("4294967295"), ok(4294967295)),
    ];
    let bad = [
        "4294967296",
        "18446744073709551616",
        "99999999999999999999999999",
        "-1",
        "1.0",
        "0.5",
        "1e2",
        "1E0",
        "\"7\"",
        "null",
        "true",
        "[]",
        "{}",
        "[7]",
    ];
    all.extend(bad.iter().map(|s| (seq_request(s), invalid("seq"))));
    all.push((seq_request("007"), error("invalid_json")));
    c.check(&all);
}

/// `missing_field` names the first missing of location, temp, hum, and
/// wins over any invalid field; otherwise `invalid_field` names the first
/// invalid in the order location, temp, hum, seq (not the order written).
fn missing_fields_and_validation_order(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let l = missing("location");
    let t = missing("temp");
    let h = missing("hum");
    c.check(&cases(&[
        ("{}", &l),
        (r#"{"temp":1,"hum":2}"#, &l),
        (r#"{"hum":1}"#, &l),
        (r#"{"temp":1}"#, &l),
        (r#"{"seq":1}"#, &l),
        (r#"{"location":"a","hum":2}"#, &t),
        (r#"{"location":"a"}"#, &t),
        (r#"{"location":"a","temp":1}"#, &h),
        (r#"{"location":"a","temp":1,"seq":1}"#, &h),
        // Missing beats invalid.
        (r#"{"location":"","temp":1}"#, &h),
        (r#"{"location":5,"hum":500}"#, &t),
        (r#"{"temp":"x","hum":"y"}"#, &l),
        (r#"{"location":"a","temp":1,"seq":"x"}"#, &h),
        (r#"{"location":null,"temp":null}"#, &h),
        // Invalid, in field order.
        (
            r#"{"location":"","temp":500,"hum":-1,"seq":-1}"#,
            &invalid("location"),
        ),
        (
            r#"{"seq":-1,"hum":-1,"temp":500,"location":""}"#,
            &invalid("location"),
        ),
        (
            r#"{"location":"a","temp":500,"hum":-1,"seq":-1}"#,
            &invalid("temp"),
        ),
        (
            r#"{"hum":"x","location":"a","temp":null}"#,
            &invalid("temp"),
        ),
        (
            r#"{"location":"a","temp":5,"hum":-1,"seq":-1}"#,
            &invalid("hum"),
        ),
        (
            r#"{"seq":-1,"location":"a","temp":5,"hum":101}"#,
            &invalid("hum"),
        ),
        (
            r#"{"location":"a","temp":5,"hum":5,"seq":-1}"#,
            &invalid("seq"),
        ),
        // Unknown keys are ignored, whatever their value.
        (
            r#"{"location":"a","temp":1,"hum":2,"extra":[1,{"x":null}],"unit":"C","n":null}"#,
            &stored("a", "1.0", "2.0", None),
        ),
    ]));
}

/// Wrong JSON types, `null` included (never "absent").
fn wrong_types_and_null(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let values = [
        "5",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        r#"["a"]"#,
        r#"{"a":1}"#,
    ];
    let numbers_as_other = [
        r#""25""#,
        r#""25.5""#,
        "true",
        "false",
        "null",
        "[]",
        "{}",
        "[25]",
        r#"{"v":25}"#,
    ];
    let mut all = Cases::new();
    for v in values {
        all.push((
            format!(r#"{{"location":{v},"temp":1,"hum":2}}"#),
            invalid("location"),
        ));
    }
    for v in numbers_as_other {
        all.push((
            format!(r#"{{"location":"a","temp":{v},"hum":2}}"#),
            invalid("temp"),
        ));
        all.push((
            format!(r#"{{"location":"a","temp":1,"hum":{v}}}"#),
            invalid("hum"),
        ));
    }
    for v in [
        "1",
        "true",
        "null",
        "[]",
        "{}",
        r#"["ping"]"#,
        r#"{"cmd":"ping"}"#,
    ] {
        all.push((format!(r#"{{"cmd":{v}}}"#), invalid("cmd")));
    }
    all.push((
        r#"{"cmd":null,"location":"a","temp":1,"hum":2}"#.into(),
        invalid("cmd"),
    ));
    c.check(&all);
}

/// A location is 1 to 32 bytes of UTF-8 without control characters,
/// `"` or `\`; it is echoed as raw UTF-8, escapes resolved.
fn location_rules(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let ok = |loc: &str| stored(loc, "1.0", "2.0", None);
    let req = |loc: &str| reading(loc, "1", "2");
    let x32 = "x".repeat(32);
    let e16 = "é".repeat(16);
    let smile8 = "😀".repeat(8);
    let mut all: Cases = vec![
        (req("a"), ok("a")),
        (req(" "), ok(" ")),
        (req("a b"), ok("a b")),
        (req("~!@#$%^&*()'"), ok("~!@#$%^&*()'")),
        (req("客厅"), ok("客厅")),
        (req("кухня"), ok("кухня")),
        (req(&x32), ok(&x32)),
        (req(&e16), ok(&e16)),
        (req(&smile8), ok(&smile8)),
        (req(&r"\ud83d\ude00".repeat(8)), ok(&smile8)),
        (req(r"\uD83D\uDE00"), ok("😀")),
        (req(&r"\u0061".repeat(32)), ok(&"a".repeat(32))),
        (req(r"\u0041"), ok("A")),
        (req(r"k\u00fcche"), ok("küche")),
        (req(r"a\/b"), ok("a/b")),
        // U+0080 is not among the forbidden control characters.
        (req(r"\u0080"), ok("\u{80}")),
        (req("\u{80}"), ok("\u{80}")),
    ];
    let bad = [
        String::new(),
        "x".repeat(33),
        format!("{e16}a"),
        format!("{}é", "x".repeat(31)),
        format!("{smile8}a"),
        r"\u0061".repeat(33),
        r"a\u0000b".into(),
        r"\u001f".into(),
        r"\u007f".into(),
        "a\u{7f}b".into(),
        r"\t".into(),
        r"\n".into(),
        r"\r".into(),
        r"\b".into(),
        r"\f".into(),
        r#"a\"b"#.into(),
        r"a\\b".into(),
        r"\u0022".into(),
        r"\u005c".into(),
        r"\u005C".into(),
    ];
    all.extend(bad.iter().map(|loc| (req(loc), invalid("location"))));
    // A raw control character inside a JSON string is a syntax error.
    all.push((req("a\tb"), error("invalid_json")));
    all.push((req("a\u{1}b"), error("invalid_json")));
    c.check(&all);
}

/// Commands, unknown commands, and keys a command does not use.
fn commands(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let unknown = error("unknown_cmd");
    c.check(&cases(&[
        (r#"{"cmd":"ping"}"#, PONG),
        (r#"{"cmd":"Ping"}"#, &unknown),
        (r#"{"cmd":"PING"}"#, &unknown),
        (r#"{"cmd":""}"#, &unknown),
        (r#"{"cmd":"pingx"}"#, &unknown),
        (r#"{"cmd":"ping "}"#, &unknown),
        (r#"{"cmd":"store"}"#, &unknown),
        (r#"{"cmd":"\u0070ing"}"#, PONG),
        (
            r#"{"cmd":"ping","location":5,"temp":"x","hum":null,"seq":-1}"#,
            PONG,
        ),
        (
            r#"{"cmd":"ping","x":{"y":[1,2.5e3,-0,"s\u00e9",true,false,null,{}]}}"#,
            PONG,
        ),
        (r#"{"cmd":"latest","temp":"x","seq":null}"#, EMPTY_LATEST),
        // A reading that has a `cmd` key is a command: nothing stored.
        (r#"{"location":"a","temp":1,"hum":2,"cmd":"ping"}"#, PONG),
        (r#"{"cmd":"latest"}"#, EMPTY_LATEST),
    ]));
    let stats = c.stats();
    assert_eq!((stats.readings, stats.locations), (0, 0), "{stats:?}");
    let line = c.request(r#"{"cmd":"stats","location":5,"temp":"x"}"#);
    assert_eq!(Stats::parse(&line).client, 1);
}

/// `latest` with a `location`: validated like a reading's location.
fn latest_location_argument(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let bad = invalid("location");
    let long = format!(r#"{{"cmd":"latest","location":"{}"}}"#, "x".repeat(33));
    c.check(&cases(&[
        (
            r#"{"cmd":"latest","location":"nowhere"}"#,
            &error("unknown_location"),
        ),
        (r#"{"cmd":"latest","location":5}"#, &bad),
        (r#"{"cmd":"latest","location":null}"#, &bad),
        (r#"{"cmd":"latest","location":["a"]}"#, &bad),
        (r#"{"cmd":"latest","location":""}"#, &bad),
        (&long, &bad),
        (r#"{"cmd":"latest","location":"a\u0001"}"#, &bad),
        (r#"{"cmd":"latest","location":"a\"b"}"#, &bad),
        (
            r#"{"location":"a","cmd":"latest","location":"b"}"#,
            &error("unknown_location"),
        ),
    ]));
}

/// Anything but exactly one well-formed JSON object is `invalid_json`;
/// JSON whitespace is allowed anywhere.
fn invalid_json(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let bad = [
        "hello",
        "{",
        "}",
        "[]",
        r#"[{"cmd":"ping"}]"#,
        r#""ping""#,
        "1",
        "null",
        "true",
        r#"{"cmd":"ping"}{"cmd":"ping"}"#,
        r#"{"cmd":"ping"} x"#,
        r#"{"cmd":"ping"},"#,
        r#"{"cmd":"ping",}"#,
        r#"{,"cmd":"ping"}"#,
        r#"{"cmd" "ping"}"#,
        r#"{"cmd":}"#,
        r#"{"cmd"}"#,
        "{'cmd':'ping'}",
        r#"{cmd:"ping"}"#,
        r#"{"cmd":"ping""#,
        r#"{"cmd":"ping\"}"#,
        r#"{"cmd":"pi\qng"}"#,
        r#"{"cmd":"\u12"}"#,
        r#"{"cmd":"\uZZZZ"}"#,
        r#"{"cmd":"\U0070ing"}"#,
        r#"{"x":01,"cmd":"ping"}"#,
        r#"{"x":-01,"cmd":"ping"}"#,
        r#"{"x":.5,"cmd":"ping"}"#,
        r#"{"x":1.,"cmd":"ping"}"#,
        r#"{"x":+1,"cmd":"ping"}"#,
        r#"{"x":-,"cmd":"ping"}"#,
        r#"{"x":1e,"cmd":"ping"}"#,
        r#"{"x":1e+,"cmd":"ping"}"#,
        r#"{"x":0x10,"cmd":"ping"}"#,
        r#"{"x":NaN,"cmd":"ping"}"#,
        r#"{"x":Infinity,"cmd":"ping"}"#,
        r#"{"x":tru,"cmd":"ping"}"#,
        r#"{"x":nul,"cmd":"ping"}"#,
        r#"{"x":True,"cmd":"ping"}"#,
        r#"{"x":[1,],"cmd":"ping"}"#,
        r#"{"x":[1 2],"cmd":"ping"}"#,
        r#"{"x":{"a"},"cmd":"ping"}"#,
        r#"{"x":[,"cmd":"ping"}"#,
        r#"{"x":]"cmd":"ping"}"#,
        "{\"cmd\":\"pi\tng\"}",
        "{\"cmd\":\"ping\"}\u{0}",
        "{\"cmd\":\"ping\"}\u{c}",
        "\u{b}{\"cmd\":\"ping\"}",
        "{\"cmd\":\"ping\"}\u{a0}",
        r#"{"location":"a","temp":01,"hum":1}"#,
        r#"{"location":"a","temp":1.5.5,"hum":1}"#,
        r#"{"location":'a',"temp":1,"hum":1}"#,
    ];
    let mut all: Cases = bad
        .iter()
        .map(|q| (q.to_string(), error("invalid_json")))
        .collect();
    // Valid: whitespace anywhere JSON allows it (CR too, when it is not
    // the one CR before the LF).
    let good = [
        r#" {"cmd":"ping"}"#,
        r#"{ "cmd" : "ping" }"#,
        "\t{\t\"cmd\"\t:\t\"ping\"\t}\t",
        r#"{"cmd":"ping"}   "#,
        "{\r\"cmd\":\"ping\"\r}",
        "{\"cmd\":\"ping\"}\r\r",
        r#"{"x":1e999999999999,"cmd":"ping"}"#,
        r#"{"x":123456789012345678901234567890,"cmd":"ping"}"#,
        r#"{"x":-0.0e-0,"cmd":"ping"}"#,
        r#"{"x":"","cmd":"ping"}"#,
        r#"{"":1,"cmd":"ping"}"#,
    ];
    all.extend(good.iter().map(|q| (q.to_string(), PONG.to_string())));
    all.push((
        r#" { "location" : "k" , "temp" : 1.5 , "hum" : 2 , "seq" : 3 } "#.into(),
        stored("k", "1.5", "2.0", Some(3)),
    ));
    c.check(&all);
}

/// Keys written with escapes, and duplicate keys (the last one counts).
fn escaped_and_duplicate_keys(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let k = |t: &str, h: &str, seq: Option<u64>| stored("k", t, h, seq);
    c.check(&[
        (
            r#"{"lo\u0063ation":"k","temp":1,"hum":2}"#,
            k("1.0", "2.0", None),
        ),
        (
            r#"{"\u006cocation":"k","\u0074emp":1,"h\u0075m":2,"s\u0065q":3}"#,
            k("1.0", "2.0", Some(3)),
        ),
        (r#"{"\u0063md":"ping"}"#, PONG.into()),
        (r#"{"\u0063\u006d\u0064":"ping"}"#, PONG.into()),
        (r#"{"a\"b":1,"cmd":"ping"}"#, PONG.into()),
        (
            r#"{"location":"k","temp":500,"temp":20,"hum":50}"#,
            k("20.0", "50.0", None),
        ),
        (
            r#"{"location":"k","temp":20,"temp":500,"hum":50}"#,
            invalid("temp"),
        ),
        (
            r#"{"location":"k","temp":20,"hum":50,"hum":null}"#,
            invalid("hum"),
        ),
        (
            r#"{"location":"","location":"k","temp":1,"hum":1}"#,
            k("1.0", "1.0", None),
        ),
        (
            r#"{"location":"k","location":5,"temp":1,"hum":1}"#,
            invalid("location"),
        ),
        (
            r#"{"seq":1,"location":"k","temp":1,"hum":1,"seq":2}"#,
            k("1.0", "1.0", Some(2)),
        ),
        (
            r#"{"seq":"x","location":"k","temp":1,"hum":1,"seq":2}"#,
            k("1.0", "1.0", Some(2)),
        ),
        (
            r#"{"seq":2,"location":"k","temp":1,"hum":1,"seq":-2}"#,
            invalid("seq"),
        ),
        (r#"{"cmd":"ping","cmd":"nope"}"#, error("unknown_cmd")),
        (r#"{"cmd":"nope","cmd":"ping"}"#, PONG.into()),
        (r#"{"cmd":5,"cmd":"ping"}"#, PONG.into()),
        (r#"{"cmd":"ping","cmd":5}"#, invalid("cmd")),
        (r#"{"cmd ":"ping"}"#, missing("location")),
        (r#"{"CMD":"ping"}"#, missing("location")),
        (r#"{"Location":"k","temp":1,"hum":1}"#, missing("location")),
    ]);
}

/// Values of ignored keys may nest at least 32 levels; deeper nesting
/// may be refused but never breaks the connection.
fn deep_nesting(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let mixed = (0..32).fold("1".to_owned(), |inner, i| {
        if i % 2 == 0 {
            format!("[{inner}]")
        } else {
            format!(r#"{{"k":{inner}}}"#)
        }
    });
    c.check(&[
        (ping_with(&arrays(32)), PONG.to_owned()),
        (ping_with(&objects(32)), PONG.to_owned()),
        (ping_with(&mixed), PONG.to_owned()),
        (
            ping_with(&format!("{}{}", "[".repeat(32), "]".repeat(32))),
            PONG.to_owned(),
        ),
        (
            format!(r#"{{"location":"k","temp":1,"hum":2,"x":{}}}"#, arrays(32)),
            stored("k", "1.0", "2.0", None),
        ),
        (ping_with(&"[".repeat(200)), error("invalid_json")),
        (
            ping_with(&format!("{}1{}", "[".repeat(100), "]".repeat(99))),
            error("invalid_json"),
        ),
    ]);
    // Far deeper than required: refused or accepted, but one reply.
    for deep in [arrays(120), objects(80)] {
        let reply = c.request(ping_with(&deep));
        assert!(
            reply == PONG || reply == error("invalid_json"),
            "deep nesting: {reply}"
        );
    }
    c.expect(r#"{"cmd":"ping"}"#, PONG);
}

/// A string holding a lone surrogate escape is `invalid_json`, wherever
/// it is; a proper pair is fine.
fn lone_surrogates(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let bad = [
        ping_with(r#""\ud800""#),
        ping_with(r#""\udc00""#),
        ping_with(r#""\uDFFF""#),
        ping_with(r#""a\ud800b""#),
        ping_with(r#""\ud800\u0041""#),
        ping_with(r#""\ud800\n""#),
        ping_with(r#""\udbff\udbff""#),
        ping_with(r#""\udc00\ud800""#),
        ping_with(r#""\ud800""#).replace("\"x\"", r#""\ud800""#),
        r#"{"cmd":"\ud800"}"#.to_owned(),
        r#"{"location":"\ud800","temp":1,"hum":1}"#.to_owned(),
        r#"{"location":"a\udfff","temp":1,"hum":1}"#.to_owned(),
        r#"{"\ud800":1,"cmd":"ping"}"#.to_owned(),
    ];
    let mut all: Cases = bad
        .into_iter()
        .map(|q| (q, error("invalid_json")))
        .collect();
    all.push((ping_with(r#""\ud83d\ude00""#), PONG.into()));
    all.push((ping_with(r#""\uD83D\uDE00""#), PONG.into()));
    all.push((ping_with(r#""\udbff\udfff""#), PONG.into()));
    c.check(&all);
}

/// Bad lines never change the store nor the reading count.
fn bad_lines_change_nothing(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    c.expect(reading("k", "1", "2"), stored("k", "1.0", "2.0", None));
    let bad = [
        reading("k", "500", "2"),
        reading("k", "1", "-2"),
        reading("", "1", "2"),
        reading("new", "1", "101"),
        r#"{"location":"k","temp":9,"hum":9,"seq":-1}"#.into(),
        r#"{"location":"k","temp":9}"#.into(),
        r#"{"location":"k","temp":9,"hum":9"#.into(),
        r#"{"location":"\ud800","temp":9,"hum":9}"#.into(),
        format!(
            r#"{{"location":"k","temp":9,"hum":9,"pad":"{}"}}"#,
            "x".repeat(500)
        ),
    ];
    for line in &bad {
        let reply = c.request(line);
        assert!(
            reply.starts_with(r#"{"ok":false,"error":""#),
            "{line} -> {reply}"
        );
    }
    c.send(b"{\"location\":\"k\",\"temp\":9,\"hum\":\xff}\n");
    assert_eq!(c.recv_line(), error("invalid_utf8"));
    let (latest_reply, _) = mask(&c.request(r#"{"cmd":"latest"}"#), "age_ms");
    assert_eq!(latest_reply, latest(&[("k", "1.0", "2.0")]));
    let stats = c.stats();
    assert_eq!(
        (stats.readings, stats.locations, stats.errors),
        (1, 1, bad.len() as u64 + 1),
        "{stats:?}"
    );
}

e2e_tests! {
    ping_and_reading,
    explicit_flags,
    number_forms_and_rounding,
    range_limits,
    seq_echo_and_edges,
    missing_fields_and_validation_order,
    wrong_types_and_null,
    location_rules,
    commands,
    latest_location_argument,
    invalid_json,
    escaped_and_duplicate_keys,
    deep_nesting,
    lone_surrogates,
    bad_lines_change_nothing,
}
