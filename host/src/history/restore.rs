//! What a restart reads back: the newest row of each location.

use envhub_core::{Location, Reading, Tenths};
use log::warn;
use rusqlite::{Connection, OptionalExtension};

/// The newest row of one location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Newest {
    /// The reading as acknowledged (without its `seq`, which `latest` does
    /// not show).
    pub reading: Reading,
    /// When it was received, Unix milliseconds.
    pub ts_ms: i64,
}

/// Rows in `readings`.
pub fn count(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM readings", [], |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The newest row (largest `ts_ms`, then largest `id`) of each location, at
/// most `max` of them: the most recently received ones. Each step is one
/// seek in `readings_by_location`, so this costs the number of locations,
/// not the number of rows.
pub fn newest(conn: &Connection, max: usize) -> rusqlite::Result<Vec<Newest>> {
    let mut next = conn
        .prepare("SELECT location FROM readings WHERE location > ?1 ORDER BY location LIMIT 1")?;
    let mut row = conn.prepare(
        "SELECT temp, hum, ts_ms FROM readings WHERE location = ?1 \
         ORDER BY ts_ms DESC, id DESC LIMIT 1",
    )?;
    let mut found = Vec::new();
    let mut after = String::new();
    while let Some(location) = next
        .query_row([&after], |r| r.get::<_, String>(0))
        .optional()?
    {
        let (temp, hum, ts_ms): (f64, f64, i64) =
            row.query_row([&location], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        match (Location::new(&location), tenths(temp), tenths(hum)) {
            (Some(location), Some(temp), Some(hum)) => found.push(Newest {
                reading: Reading {
                    location,
                    temp,
                    hum,
                    seq: None,
                },
                ts_ms,
            }),
            _ => warn!("history: skipping a row of {location:?} that is not a valid reading"),
        }
        after = location;
    }
    found.sort_by_key(|n| std::cmp::Reverse(n.ts_ms));
    found.truncate(max);
    Ok(found)
}

/// A stored REAL back in tenths; `None` outside what a reading can hold.
fn tenths(value: f64) -> Option<Tenths> {
    let t = (value * 10.0).round();
    // Readings are −40.0 to 125.0 °C and 0.0 to 100.0 %.
    (-400.0..=1250.0).contains(&t).then_some(Tenths(t as i16))
}

/// A stored REAL from tenths, exactly as acknowledged (25.5, never
/// 25.499999…: the nearest double to the decimal).
pub fn real(t: Tenths) -> f64 {
    f64::from(t.0) / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_round_trip_through_real() {
        for t in [-400, -5, 0, 1, 215, 999, 1000, 1250] {
            assert_eq!(tenths(real(Tenths(t))), Some(Tenths(t)), "{t}");
        }
        assert_eq!(tenths(200.0), None);
        assert_eq!(real(Tenths(255)).to_string(), "25.5");
    }
}
