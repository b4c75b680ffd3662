//! Topics and payloads: what appears on the broker (README, "Home
//! Assistant").
//!
//! - `<prefix>/<gateway-id>/status`: `online` / `offline`, retained;
//! - `<prefix>/<gateway-id>/<slug>/state`: one reading as JSON, retained;
//! - `<ha-prefix>/sensor/<gateway-id>_<slug>_{temperature,humidity}/config`:
//!   Home Assistant discovery, retained.

use envhub_core::Tenths;
use serde_json::{json, Value};

use crate::mqtt::settings::Settings;
use crate::mqtt::slug::slug;
use crate::services::Kept;

/// One reading on its way to the broker: a row of `readings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Row id (or, with `--no-db`, the feed's counter).
    pub id: i64,
    /// Server wall clock when received, Unix milliseconds.
    pub ts_ms: i64,
    /// The location, as sent.
    pub location: String,
    /// °C in tenths.
    pub temp: Tenths,
    /// % in tenths.
    pub hum: Tenths,
    /// As sent, if it was.
    pub seq: Option<u32>,
}

impl From<&Kept> for Row {
    fn from(k: &Kept) -> Row {
        Row {
            id: k.id,
            ts_ms: k.ts_ms,
            location: k.location.as_str().to_string(),
            temp: k.temp,
            hum: k.hum,
            seq: k.seq,
        }
    }
}

/// The two sensors Home Assistant gets per location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// °C.
    Temperature,
    /// % relative humidity.
    Humidity,
}

impl Quantity {
    /// Both, in publishing order.
    pub const BOTH: [Quantity; 2] = [Quantity::Temperature, Quantity::Humidity];

    /// Home Assistant's device class, also the object id's last part.
    pub fn device_class(self) -> &'static str {
        match self {
            Quantity::Temperature => "temperature",
            Quantity::Humidity => "humidity",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Quantity::Temperature => "Temperature",
            Quantity::Humidity => "Humidity",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Quantity::Temperature => "°C",
            Quantity::Humidity => "%",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Quantity::Temperature => "temp",
            Quantity::Humidity => "hum",
        }
    }
}

/// Names of every topic for one gateway.
#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
    ha_prefix: String,
    gateway_id: String,
}

impl Topics {
    /// The topics `settings` implies.
    pub fn new(settings: &Settings) -> Self {
        Topics {
            prefix: settings.prefix.clone(),
            ha_prefix: settings.ha_prefix.clone(),
            gateway_id: settings.gateway_id.clone(),
        }
    }

    /// `<prefix>/<gateway-id>/status`.
    pub fn status(&self) -> String {
        format!("{}/{}/status", self.prefix, self.gateway_id)
    }

    /// `<ha-prefix>/status`: where Home Assistant says `online`.
    pub fn ha_status(&self) -> String {
        format!("{}/status", self.ha_prefix)
    }

    /// `<prefix>/<gateway-id>/<slug>/state`.
    pub fn state(&self, location: &str) -> String {
        format!(
            "{}/{}/{}/state",
            self.prefix,
            self.gateway_id,
            slug(location)
        )
    }

    /// `<gateway-id>_<slug>_<temperature|humidity>`: object id and unique id.
    pub fn object_id(&self, location: &str, q: Quantity) -> String {
        format!(
            "{}_{}_{}",
            self.gateway_id,
            slug(location),
            q.device_class()
        )
    }

    /// `<ha-prefix>/sensor/<object id>/config`.
    pub fn config(&self, location: &str, q: Quantity) -> String {
        format!(
            "{}/sensor/{}/config",
            self.ha_prefix,
            self.object_id(location, q)
        )
    }

    /// The discovery config of one sensor of `location`.
    pub fn config_payload(&self, location: &str, q: Quantity) -> String {
        let object_id = self.object_id(location, q);
        let body: Value = json!({
            "name": q.name(),
            "unique_id": object_id,
            "object_id": object_id,
            "state_topic": self.state(location),
            "value_template": format!("{{{{ value_json.{} }}}}", q.key()),
            "device_class": q.device_class(),
            "unit_of_measurement": q.unit(),
            "state_class": "measurement",
            "availability_topic": self.status(),
            "device": {
                "identifiers": [format!("envhub_{}_{}", self.gateway_id, slug(location))],
                "name": location,
                "manufacturer": "envhub",
                "model": "envhub location",
                "via_device": format!("envhub_{}", self.gateway_id),
            },
        });
        body.to_string()
    }
}

/// The state payload of one reading:
/// `{"location":"…","temp":25.5,"hum":60.0,"seq":7,"ts_ms":…}` (`seq` only
/// when the reading had one).
pub fn state_payload(row: &Row) -> String {
    let location = Value::from(row.location.as_str());
    match row.seq {
        Some(seq) => format!(
            "{{\"location\":{location},\"temp\":{},\"hum\":{},\"seq\":{seq},\"ts_ms\":{}}}",
            row.temp, row.hum, row.ts_ms
        ),
        None => format!(
            "{{\"location\":{location},\"temp\":{},\"hum\":{},\"ts_ms\":{}}}",
            row.temp, row.hum, row.ts_ms
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> Topics {
        Topics {
            prefix: "envhub".into(),
            ha_prefix: "homeassistant".into(),
            gateway_id: "gw".into(),
        }
    }

    #[test]
    fn state_payloads() {
        let mut row = Row {
            id: 1,
            ts_ms: 1_764_460_800_000,
            location: "Wohn \"zimmer\"".into(),
            temp: Tenths(255),
            hum: Tenths(600),
            seq: Some(7),
        };
        assert_eq!(
            state_payload(&row),
            r#"{"location":"Wohn \"zimmer\"","temp":25.5,"hum":60.0,"seq":7,"ts_ms":1764460800000}"#
        );
        row.seq = None;
        row.temp = Tenths(-5);
        assert_eq!(
            state_payload(&row),
            r#"{"location":"Wohn \"zimmer\"","temp":-0.5,"hum":60.0,"ts_ms":1764460800000}"#
        );
    }

    #[test]
    fn topics_and_config() {
        let t = topics();
        assert_eq!(t.status(), "envhub/gw/status");
        assert_eq!(t.state("hall"), "envhub/gw/hall/state");
        assert_eq!(
            t.config("hall", Quantity::Humidity),
            "homeassistant/sensor/gw_hall_humidity/config"
        );
        let c: Value =
            serde_json::from_str(&t.config_payload("hall", Quantity::Temperature)).unwrap();
        assert_eq!(c["unique_id"], "gw_hall_temperature");
        assert_eq!(c["value_template"], "{{ value_json.temp }}");
        assert_eq!(c["unit_of_measurement"], "°C");
        assert_eq!(c["device"]["name"], "hall");
        assert_eq!(c["device"]["via_device"], "envhub_gw");
    }
}
