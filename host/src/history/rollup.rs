//! The per-minute rollup `readings_minute`: for each location and minute,
//! the count, the exact sum, the minimum and the maximum of `temp` and
//! `hum` over the rows of `readings` in that minute.
//!
//! It is derived data, kept in step with `readings` in the same
//! transactions: the writer adds each batch to it before the commit that
//! holds the batch ([`add`]), retention recomputes every minute it took
//! rows from ([`recompute`]), and an upgrade from schema version 1 builds
//! it from `readings` ([`rebuild`]). `/api/history` reads whole minutes
//! from here and only the partial minutes at the edges of its buckets from
//! `readings` (`crate::http::history`).
//!
//! **Exact sums.** `avg(temp)` in SQLite adds the stored doubles with
//! Kahan-Babuška-Neumaier summation, which for envhub's values (tenths up
//! to 125.0) ends with the exact sum rounded once. To give bit for bit the
//! same average from parts, each sum here is kept exactly, as an
//! unevaluated pair of doubles `sum + err` ([`Sum`]); the pairs of several
//! minutes and rows add up exactly, and only the final sum is rounded,
//! once, as SQLite's is. Written by hand because no crate keeps such a
//! double-double sum in two plain SQL columns.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

/// Milliseconds in a minute: minute `m` holds `ts_ms` in
/// `m * 60000 ..= m * 60000 + 59999`.
pub const MINUTE_MS: i64 = 60_000;

/// The minute holding `ts_ms` (rounded down, also before 1970).
pub fn minute_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MINUTE_MS)
}

/// The first and last `ts_ms` of minute `m` (both inclusive).
pub fn minute_span(m: i64) -> (i64, i64) {
    let start = m.saturating_mul(MINUTE_MS);
    (start, start.saturating_add(MINUTE_MS - 1))
}

/// A sum of doubles kept as the unevaluated pair `hi + lo`
/// (double-double). Adding uses error-free transformations, so the pair is
/// the exact sum as long as the low parts fit in 53 bits, which holds for
/// tenths of up to ±125 in sums of up to 2^45.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sum {
    /// The sum rounded to a double.
    pub hi: f64,
    /// What `hi` left out.
    pub lo: f64,
}

/// `a + b` as the rounded sum and its exact rounding error (Knuth's
/// TwoSum, no branch).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

impl Sum {
    /// The sum of one value.
    pub fn of(x: f64) -> Sum {
        Sum { hi: x, lo: 0.0 }
    }

    /// Adds `other` exactly (see the type).
    pub fn merge(&mut self, other: Sum) {
        let (s, e) = two_sum(self.hi, other.hi);
        let (hi, lo) = two_sum(s, (self.lo + other.lo) + e);
        *self = Sum { hi, lo };
    }

    /// The sum, rounded once to a double.
    pub fn value(self) -> f64 {
        self.hi + self.lo
    }
}

/// Count, exact sum, minimum and maximum of one quantity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    /// The exact sum.
    pub sum: Sum,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stat {
    fn of(x: f64) -> Stat {
        Stat {
            sum: Sum::of(x),
            min: x,
            max: x,
        }
    }

    fn merge(&mut self, other: &Stat) {
        self.sum.merge(other.sum);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The average of `n` values, as SQLite's `avg()` computes it: the
    /// sum rounded once, divided by `n`.
    pub fn avg(&self, n: i64) -> f64 {
        self.sum.value() / n as f64
    }
}

/// The aggregate of some rows: a minute of the rollup, or a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    /// How many rows.
    pub n: i64,
    /// Their temperatures.
    pub temp: Stat,
    /// Their humidities.
    pub hum: Stat,
}

impl Aggregate {
    /// One row.
    pub fn of(temp: f64, hum: f64) -> Aggregate {
        Aggregate {
            n: 1,
            temp: Stat::of(temp),
            hum: Stat::of(hum),
        }
    }

    /// Adds one row.
    pub fn add(&mut self, temp: f64, hum: f64) {
        self.merge(&Aggregate::of(temp, hum));
    }

    /// Adds the rows of `other`.
    pub fn merge(&mut self, other: &Aggregate) {
        self.n += other.n;
        self.temp.merge(&other.temp);
        self.hum.merge(&other.hum);
    }

    /// Adds `other` to `into`, or makes it `into`.
    pub fn merge_into(into: &mut Option<Aggregate>, other: &Aggregate) {
        match into {
            Some(a) => a.merge(other),
            None => *into = Some(*other),
        }
    }

    /// From the columns `n, sum_temp, sum_temp_err, min_temp, max_temp,
    /// sum_hum, sum_hum_err, min_hum, max_hum` starting at column `at`.
    pub fn from_row(r: &Row<'_>, at: usize) -> rusqlite::Result<Aggregate> {
        let stat = |i: usize| -> rusqlite::Result<Stat> {
            Ok(Stat {
                sum: Sum {
                    hi: r.get(at + i)?,
                    lo: r.get(at + i + 1)?,
                },
                min: r.get(at + i + 2)?,
                max: r.get(at + i + 3)?,
            })
        };
        Ok(Aggregate {
            n: r.get(at)?,
            temp: stat(1)?,
            hum: stat(5)?,
        })
    }
}

/// The columns [`Aggregate::from_row`] reads, in its order.
pub const COLUMNS: &str =
    "n, sum_temp, sum_temp_err, min_temp, max_temp, sum_hum, sum_hum_err, min_hum, max_hum";

/// The aggregate of the rows of `location` with `ts_ms` in `from..=to`,
/// read from `readings` (an index range), or `None` when there are none.
pub fn raw(
    conn: &Connection,
    location: &str,
    from: i64,
    to: i64,
) -> rusqlite::Result<Option<Aggregate>> {
    let mut stmt = conn.prepare_cached(
        "SELECT temp, hum FROM readings INDEXED BY readings_by_location \
         WHERE location = ?1 AND ts_ms >= ?2 AND ts_ms <= ?3",
    )?;
    let mut rows = stmt.query(params![location, from, to])?;
    let mut agg: Option<Aggregate> = None;
    while let Some(r) = rows.next()? {
        let (temp, hum): (f64, f64) = (r.get(0)?, r.get(1)?);
        match &mut agg {
            Some(a) => a.add(temp, hum),
            None => agg = Some(Aggregate::of(temp, hum)),
        }
    }
    Ok(agg)
}

/// Writes `agg` as the row of (`location`, `minute`), replacing any.
fn put(conn: &Connection, location: &str, minute: i64, agg: &Aggregate) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO readings_minute (location, minute, {COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        location,
        minute,
        agg.n,
        agg.temp.sum.hi,
        agg.temp.sum.lo,
        agg.temp.min,
        agg.temp.max,
        agg.hum.sum.hi,
        agg.hum.sum.lo,
        agg.hum.min,
        agg.hum.max,
    ])?;
    Ok(())
}

/// Adds rows `(location, ts_ms, temp, hum)` just inserted into `readings`
/// to the rollup, inside the caller's transaction: they are summed per
/// (location, minute) in memory first, then each such minute is read and
/// written once.
pub fn add<'a>(
    conn: &Connection,
    rows: impl IntoIterator<Item = (&'a str, i64, f64, f64)>,
) -> rusqlite::Result<()> {
    let mut minutes: BTreeMap<(&str, i64), Aggregate> = BTreeMap::new();
    for (location, ts_ms, temp, hum) in rows {
        minutes
            .entry((location, minute_of(ts_ms)))
            .and_modify(|a| a.add(temp, hum))
            .or_insert_with(|| Aggregate::of(temp, hum));
    }
    let mut get = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM readings_minute WHERE location = ?1 AND minute = ?2"
    ))?;
    for ((location, minute), mut agg) in minutes {
        let old = get
            .query_row(params![location, minute], |r| Aggregate::from_row(r, 0))
            .optional()?;
        if let Some(old) = old {
            let new = agg;
            agg = old;
            agg.merge(&new);
        }
        put(conn, location, minute, &agg)?;
    }
    Ok(())
}

/// Makes the row of (`location`, `minute`) the aggregate of the rows of
/// `readings` in that minute, or removes it when none is left (retention).
pub fn recompute(conn: &Connection, location: &str, minute: i64) -> rusqlite::Result<()> {
    let (from, to) = minute_span(minute);
    match raw(conn, location, from, to)? {
        Some(agg) => put(conn, location, minute, &agg),
        None => conn
            .prepare_cached("DELETE FROM readings_minute WHERE location = ?1 AND minute = ?2")?
            .execute(params![location, minute])
            .map(|_| ()),
    }
}

/// Builds the whole rollup from `readings` (inside the caller's
/// transaction): one pass over the index `readings_by_location`, in
/// (location, ts_ms) order, so each minute is complete when the next
/// begins and memory stays constant. Returns the rows read and the minutes
/// written.
pub fn rebuild(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.execute("DELETE FROM readings_minute", [])?;
    let mut stmt = conn.prepare(
        "SELECT location, ts_ms, temp, hum FROM readings INDEXED BY readings_by_location \
         ORDER BY location, ts_ms",
    )?;
    let mut rows = stmt.query([])?;
    let (mut n_rows, mut n_minutes) = (0u64, 0u64);
    let mut current: Option<(String, i64, Aggregate)> = None;
    while let Some(r) = rows.next()? {
        let location = r.get_ref(0)?.as_str()?;
        let minute = minute_of(r.get(1)?);
        let (temp, hum): (f64, f64) = (r.get(2)?, r.get(3)?);
        n_rows += 1;
        match &mut current {
            Some((l, m, agg)) if l == location && *m == minute => agg.add(temp, hum),
            _ => {
                if let Some((l, m, agg)) = current.take() {
                    put(conn, &l, m, &agg)?;
                    n_minutes += 1;
                }
                current = Some((location.to_owned(), minute, Aggregate::of(temp, hum)));
            }
        }
    }
    if let Some((l, m, agg)) = current {
        put(conn, &l, m, &agg)?;
        n_minutes += 1;
    }
    Ok((n_rows, n_minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_round_down_also_before_1970() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999), 0);
        assert_eq!(minute_of(60_000), 1);
        assert_eq!(minute_of(-1), -1);
        assert_eq!(minute_span(-1), (-60_000, -1));
        assert_eq!(minute_span(minute_of(i64::MAX)).1, i64::MAX);
        assert_eq!(minute_span(minute_of(i64::MIN)).0, i64::MIN);
    }

    #[test]
    fn a_sum_of_tenths_is_exact_in_any_order() {
        // 0.1 + 0.2 + 0.3 + ... rounded once: the pair keeps what naive
        // addition loses, whatever the order and grouping.
        let values: Vec<f64> = (0..2_000)
            .map(|i| f64::from(i % 1_651 - 400) / 10.0)
            .collect();
        let mut forward = Sum::default();
        for v in &values {
            forward.merge(Sum::of(*v));
        }
        let mut grouped = Sum::default();
        for chunk in values.chunks(7).rev() {
            let mut part = Sum::default();
            for v in chunk.iter().rev() {
                part.merge(Sum::of(*v));
            }
            grouped.merge(part);
        }
        assert_eq!(forward.value(), grouped.value());
        // Exactly: every value is a multiple of 2^-56 below 2^7.
        let scale = 2f64.powi(56);
        let exact: i128 = values.iter().map(|v| (v * scale) as i128).sum();
        assert_eq!(forward.value(), exact as f64 / scale);
        assert_eq!(
            (forward.hi * scale) as i128 + (forward.lo * scale) as i128,
            exact
        );
    }
}
