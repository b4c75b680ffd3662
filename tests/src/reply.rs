//! The exact reply lines of the protocol (without their LF), and parsing.

use std::fmt::Write as _;

/// `ping`.
pub const PONG: &str = r#"{"ok":true,"pong":true}"#;
/// `bye`.
pub const BYE: &str = r#"{"ok":true,"bye":true}"#;
/// `latest` on an empty store.
pub const EMPTY_LATEST: &str = r#"{"ok":true,"readings":[]}"#;

/// An error reply without a field: `error("busy")`.
pub fn error(code: &str) -> String {
    format!(r#"{{"ok":false,"error":"{code}"}}"#)
}

/// `missing_field` naming `field`.
pub fn missing(field: &str) -> String {
    format!(r#"{{"ok":false,"error":"missing_field","field":"{field}"}}"#)
}

/// `invalid_field` naming `field`.
pub fn invalid(field: &str) -> String {
    format!(r#"{{"ok":false,"error":"invalid_field","field":"{field}"}}"#)
}

/// The acknowledgement of a stored reading; `temp` and `hum` as printed
/// (`"25.5"`), `location` as raw UTF-8.
pub fn stored(location: &str, temp: &str, hum: &str, seq: Option<u64>) -> String {
    let mut s = format!(r#"{{"ok":true,"location":"{location}","temp":{temp},"hum":{hum}"#);
    if let Some(seq) = seq {
        let _ = write!(s, r#","seq":{seq}"#);
    }
    s.push('}');
    s
}

/// A reading request: `reading("a", "25.5", "60")` is
/// `{"location":"a","temp":25.5,"hum":60}`; numbers are written as given.
pub fn reading(location: &str, temp: &str, hum: &str) -> String {
    format!(r#"{{"location":"{location}","temp":{temp},"hum":{hum}}}"#)
}

/// The `latest` reply for `items` (location, temp, hum, as printed) in the
/// given order, every `age_ms` value written as `#` (compare it with
/// [`mask`]`(reply, "age_ms")`).
pub fn latest(items: &[(&str, &str, &str)]) -> String {
    let mut s = String::from(r#"{"ok":true,"readings":["#);
    for (i, (location, temp, hum)) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"location":"{location}","temp":{temp},"hum":{hum},"age_ms":#}}"#
        );
    }
    s.push_str("]}");
    s
}

/// Replaces the value of every `"key":DIGITS` in `reply` by `#` and
/// returns the masked text and the values. A value that is not a plain
/// unsigned integer is left alone (so the comparison fails visibly).
pub fn mask(reply: &str, key: &str) -> (String, Vec<u64>) {
    let needle = format!("\"{key}\":");
    let mut out = String::with_capacity(reply.len());
    let mut values = Vec::new();
    let mut rest = reply;
    while let Some(at) = rest.find(&needle) {
        let after = at + needle.len();
        out.push_str(&rest[..after]);
        rest = &rest[after..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let valid = digits > 0 && (digits == 1 || !rest.starts_with('0'));
        match rest[..digits].parse::<u64>() {
            Ok(v) if valid => {
                values.push(v);
                out.push('#');
                rest = &rest[digits..];
            }
            _ => {}
        }
    }
    out.push_str(rest);
    (out, values)
}

/// A `stats` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// This connection's id.
    pub client: u64,
    /// Connections open now.
    pub clients: u64,
    /// Readings stored since start.
    pub readings: u64,
    /// Error replies since start.
    pub errors: u64,
    /// Distinct stored locations.
    pub locations: u64,
    /// Milliseconds since start.
    pub uptime_ms: u64,
}

impl Stats {
    /// Parses a `stats` reply; panics unless it is exactly in the format of
    /// the protocol (keys in order, compact, integers).
    #[track_caller]
    pub fn parse(line: &str) -> Stats {
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => panic!("stats reply is not JSON ({e}): {line}"),
        };
        let field = |k: &str| {
            value[k]
                .as_u64()
                .unwrap_or_else(|| panic!("stats reply lacks integer {k:?}: {line}"))
        };
        let stats = Stats {
            client: field("client"),
            clients: field("clients"),
            readings: field("readings"),
            errors: field("errors"),
            locations: field("locations"),
            uptime_ms: field("uptime_ms"),
        };
        assert_eq!(
            line,
            stats.to_string(),
            "stats reply not in the exact format"
        );
        stats
    }
}

impl std::fmt::Display for Stats {
    /// The exact reply line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            r#"{{"ok":true,"client":{},"clients":{},"readings":{},"errors":{},"locations":{},"uptime_ms":{}}}"#,
            self.client, self.clients, self.readings, self.errors, self.locations, self.uptime_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_replaces_plain_integers_only() {
        let (m, v) = mask(r#"{"age_ms":12,"x":{"age_ms":0}}"#, "age_ms");
        assert_eq!(m, r#"{"age_ms":#,"x":{"age_ms":#}}"#);
        assert_eq!(v, [12, 0]);
        let (m, v) = mask(r#"{"age_ms":-1,"age_ms":01}"#, "age_ms");
        assert_eq!(m, r#"{"age_ms":-1,"age_ms":01}"#);
        assert!(v.is_empty());
    }

    #[test]
    fn builders_write_the_protocol_bytes() {
        assert_eq!(
            stored("living_room", "25.5", "60.0", Some(7)),
            r#"{"ok":true,"location":"living_room","temp":25.5,"hum":60.0,"seq":7}"#
        );
        assert_eq!(
            invalid("temp"),
            r#"{"ok":false,"error":"invalid_field","field":"temp"}"#
        );
        assert_eq!(error("busy"), r#"{"ok":false,"error":"busy"}"#);
        assert_eq!(
            latest(&[("a", "1.0", "2.0")]),
            r#"{"ok":true,"readings":[{"location":"a","temp":1.0,"hum":2.0,"age_ms":#}]}"#
        );
    }

    #[test]
    fn stats_round_trip() {
        let line = r#"{"ok":true,"client":1,"clients":1,"readings":0,"errors":0,"locations":0,"uptime_ms":5}"#;
        assert_eq!(Stats::parse(line).to_string(), line);
    }
}
