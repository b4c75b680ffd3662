//! `/metrics` in the Prometheus text exposition format 0.0.4.
//!
//! Written by hand: the format is a few lines of text, and the crates for
//! it (`prometheus`, `prometheus-client`) want metrics registered up front
//! and updated in place, while here every value is read from the server's
//! state at scrape time.

use std::fmt::Write;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One location's newest reading, as exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationSample {
    /// The location.
    pub location: String,
    /// °C.
    pub temp: f64,
    /// %.
    pub hum: f64,
    /// Seconds since it was received.
    pub age_secs: f64,
}

/// The MQTT bridge's figures (only when it is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mqtt {
    /// Connected to the broker.
    pub connected: bool,
    /// Readings waiting to be published.
    pub backlog: u64,
    /// Messages the broker acknowledged.
    pub published: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Connections open now.
    pub clients: u64,
    /// Readings stored since start.
    pub readings: u64,
    /// Errors since start.
    pub errors: u64,
    /// Each location's newest reading, sorted by location.
    pub locations: Vec<LocationSample>,
    /// Rows in the history table (0 with history off).
    pub history_rows: u64,
    /// With MQTT on.
    pub mqtt: Option<Mqtt>,
}

/// The exposition text of `s`.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(1024 + 200 * s.locations.len());
    let mut one = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    one(
        "envhub_clients",
        "gauge",
        "Sensor connections open now.",
        s.clients.to_string(),
    );
    one(
        "envhub_readings_total",
        "counter",
        "Readings stored since start.",
        s.readings.to_string(),
    );
    one(
        "envhub_errors_total",
        "counter",
        "Error replies since start.",
        s.errors.to_string(),
    );
    one(
        "envhub_locations",
        "gauge",
        "Locations with a reading.",
        s.locations.len().to_string(),
    );
    one(
        "envhub_history_rows",
        "gauge",
        "Rows in the history database.",
        s.history_rows.to_string(),
    );
    if let Some(m) = s.mqtt {
        one(
            "envhub_mqtt_connected",
            "gauge",
            "1 while connected to the MQTT broker.",
            u8::from(m.connected).to_string(),
        );
        one(
            "envhub_mqtt_backlog",
            "gauge",
            "Readings waiting to be published to MQTT.",
            m.backlog.to_string(),
        );
        one(
            "envhub_mqtt_published_total",
            "counter",
            "MQTT messages acknowledged by the broker.",
            m.published.to_string(),
        );
    }
    type Family = (&'static str, &'static str, fn(&LocationSample) -> f64);
    let families: [Family; 3] = [
        (
            "envhub_temperature_celsius",
            "Newest temperature per location.",
            |l| l.temp,
        ),
        (
            "envhub_humidity_percent",
            "Newest relative humidity per location.",
            |l| l.hum,
        ),
        (
            "envhub_reading_age_seconds",
            "Seconds since the newest reading per location.",
            |l| l.age_secs,
        ),
    ];
    for (name, help, value) in families {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for l in &s.locations {
            let _ = writeln!(
                out,
                "{name}{{location=\"{}\"}} {}",
                escape_label(&l.location),
                value(l)
            );
        }
    }
    out
}

/// A label value as the format wants it: backslash, double quote and line
/// feed escaped; everything else, non-ASCII included, as UTF-8.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_as_the_format_says() {
        assert_eq!(escape_label(r#"a "b" \c"#), r#"a \"b\" \\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_label("客厅 café"), "客厅 café");
    }

    #[test]
    fn renders_every_metric_and_mqtt_only_when_on() {
        let mut s = Snapshot {
            clients: 2,
            readings: 10,
            errors: 1,
            locations: vec![LocationSample {
                location: "say \"hi\"".into(),
                temp: -1.5,
                hum: 60.0,
                age_secs: 2.5,
            }],
            history_rows: 10,
            mqtt: None,
        };
        let text = render(&s);
        for line in [
            "envhub_clients 2\n",
            "envhub_readings_total 10\n",
            "envhub_errors_total 1\n",
            "envhub_locations 1\n",
            "envhub_history_rows 10\n",
            "envhub_temperature_celsius{location=\"say \\\"hi\\\"\"} -1.5\n",
            "envhub_humidity_percent{location=\"say \\\"hi\\\"\"} 60\n",
            "envhub_reading_age_seconds{location=\"say \\\"hi\\\"\"} 2.5\n",
            "# TYPE envhub_readings_total counter\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(!text.contains("mqtt"));
        s.mqtt = Some(Mqtt {
            connected: true,
            backlog: 3,
            published: 9,
        });
        let text = render(&s);
        assert!(text.contains("envhub_mqtt_connected 1\n"));
        assert!(text.contains("envhub_mqtt_backlog 3\n"));
        assert!(text.contains("envhub_mqtt_published_total 9\n"));
    }
}
