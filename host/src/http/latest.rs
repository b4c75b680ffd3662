//! The newest reading of each location with its `seq` and wall-clock time,
//! as `/api/latest` shows it: the store keeps neither, so this map follows
//! the feed (and starts from the database's newest rows).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::services::Kept;

/// One item of `/api/latest`, and the data of one `event: reading`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// The location, as sent.
    pub location: String,
    /// °C.
    pub temp: f64,
    /// %.
    pub hum: f64,
    /// As sent; left out when not known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// Server wall clock when received, Unix milliseconds.
    pub ts_ms: i64,
}

impl From<&Kept> for Item {
    fn from(k: &Kept) -> Item {
        Item {
            location: k.location.as_str().to_owned(),
            temp: f64::from(k.temp.0) / 10.0,
            hum: f64::from(k.hum.0) / 10.0,
            seq: k.seq,
            ts_ms: k.ts_ms,
        }
    }
}

/// The newest kept reading per location, by location.
#[derive(Debug, Default)]
pub struct Latest {
    map: RwLock<BTreeMap<String, Arc<Kept>>>,
}

impl Latest {
    /// An empty map.
    pub fn new() -> Self {
        Latest::default()
    }

    /// Keeps `kept` unless a newer row (higher id) of its location is there.
    pub fn update(&self, kept: Arc<Kept>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        match map.get(kept.location.as_str()) {
            Some(old) if old.id >= kept.id => {}
            _ => {
                map.insert(kept.location.as_str().to_owned(), kept);
            }
        }
    }

    /// Every location's newest reading, sorted by location.
    pub fn items(&self) -> Vec<Item> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.values().map(|k| Item::from(k.as_ref())).collect()
    }

    /// Whether `location` has a reading.
    pub fn contains(&self, location: &str) -> bool {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.contains_key(location)
    }

    /// Each location's `ts_ms`, sorted by location.
    pub fn times(&self) -> BTreeMap<String, i64> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(l, k)| (l.clone(), k.ts_ms)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envhub_core::{Location, Tenths};

    fn kept(id: i64, loc: &str, temp: i16) -> Arc<Kept> {
        Arc::new(Kept {
            id,
            ts_ms: id * 1000,
            location: Location::new(loc).unwrap(),
            temp: Tenths(temp),
            hum: Tenths(600),
            seq: (id % 2 == 0).then_some(7),
        })
    }

    #[test]
    fn keeps_the_newest_by_id_sorted_by_location() {
        let l = Latest::new();
        l.update(kept(2, "b", 10));
        l.update(kept(1, "b", 20)); // older: ignored
        l.update(kept(3, "a", -5));
        let items = l.items();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            Item {
                location: "a".into(),
                temp: -0.5,
                hum: 60.0,
                seq: None,
                ts_ms: 3000
            }
        );
        assert_eq!((items[1].temp, items[1].seq), (1.0, Some(7)));
        assert_eq!(
            serde_json::to_string(&items[0]).unwrap(),
            r#"{"location":"a","temp":-0.5,"hum":60.0,"ts_ms":3000}"#
        );
        assert!(l.contains("b") && !l.contains("c"));
    }
}
