//! The newest reading of each location.

use crate::decimal::Tenths;
use crate::limits::MAX_LOCATIONS;
use crate::reading::{Location, Reading};

/// The newest reading of one location and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Entry {
    /// The location.
    pub location: Location,
    /// Temperature in tenths of a degree.
    pub temp: Tenths,
    /// Humidity in tenths of a percent.
    pub hum: Tenths,
    /// When it was stored, in the shell's milliseconds.
    pub stored_at: u64,
}

/// A reading of a new location arrived while 64 locations are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreFull;

/// Up to 64 entries, kept sorted by location (bytewise), so `latest` walks
/// them in order and a lookup is a binary search. The entry stored last is
/// remembered: a sensor's connection sends one location over and over, so
/// its next reading nearly always goes to the same entry.
#[derive(Debug, Default)]
pub struct Store {
    entries: heapless::Vec<Entry, MAX_LOCATIONS>,
    /// The index of the entry stored last (a hint: checked before use).
    last: usize,
}

impl Store {
    /// An empty store.
    pub const fn new() -> Self {
        Store {
            entries: heapless::Vec::new(),
            last: 0,
        }
    }

    fn find(&self, location: &[u8]) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|e| e.location.as_bytes().cmp(location))
    }

    /// Keeps `reading` as the newest of its location. A known location
    /// only has its values overwritten; the location stored last is tried
    /// before the binary search.
    pub fn insert(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        let name = reading.location.as_bytes();
        let found = match self.entries.get(self.last) {
            Some(e) if e.location.as_bytes() == name => Ok(self.last),
            _ => self.find(name),
        };
        match found {
            Ok(i) => {
                if let Some(e) = self.entries.get_mut(i) {
                    e.temp = reading.temp;
                    e.hum = reading.hum;
                    e.stored_at = now;
                }
                self.last = i;
                Ok(())
            }
            Err(i) => {
                let entry = Entry {
                    location: reading.location.clone(),
                    temp: reading.temp,
                    hum: reading.hum,
                    stored_at: now,
                };
                self.entries.insert(i, entry).map_err(|_| StoreFull)?;
                self.last = i;
                Ok(())
            }
        }
    }

    /// The entry of `location`, if one was stored.
    pub fn get(&self, location: &Location) -> Option<&Entry> {
        self.find(location.as_bytes())
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The entries whose location sorts after `after` (all of them for
    /// `None`), in order.
    pub fn after(&self, after: Option<&Location>) -> impl Iterator<Item = &Entry> {
        let start = match after {
            None => 0,
            Some(loc) => match self.find(loc.as_bytes()) {
                Ok(i) => i + 1,
                Err(i) => i,
            },
        };
        self.entries[start..].iter()
    }

    /// How many locations are stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::vec::Vec;

    fn reading(loc: &str, temp: i16) -> Reading {
        Reading {
            location: Location::new(loc).unwrap(),
            temp: Tenths(temp),
            hum: Tenths(500),
            seq: None,
        }
    }

    fn names(store: &Store, after: Option<&str>) -> Vec<std::string::String> {
        let after = after.map(|a| Location::new(a).unwrap());
        store
            .after(after.as_ref())
            .map(|e| e.location.as_str().into())
            .collect()
    }

    #[test]
    fn keeps_newest_per_location_sorted_bytewise() {
        let mut s = Store::new();
        s.insert(&reading("b", 1), 10).unwrap();
        s.insert(&reading("a", 2), 20).unwrap();
        s.insert(&reading("B", 3), 30).unwrap();
        s.insert(&reading("b", 4), 40).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(names(&s, None), ["B", "a", "b"]);
        let b = s.get(&Location::new("b").unwrap()).unwrap();
        assert_eq!((b.temp, b.stored_at), (Tenths(4), 40));
    }

    #[test]
    fn after_resumes_past_a_location_even_if_it_is_gone() {
        let mut s = Store::new();
        for n in ["a", "c", "e"] {
            s.insert(&reading(n, 0), 0).unwrap();
        }
        assert_eq!(names(&s, Some("a")), ["c", "e"]);
        assert_eq!(names(&s, Some("b")), ["c", "e"]);
        assert_eq!(names(&s, Some("e")), Vec::<std::string::String>::new());
    }

    #[test]
    fn full_store_rejects_new_locations_but_updates_old_ones() {
        let mut s = Store::new();
        for i in 0..MAX_LOCATIONS {
            s.insert(&reading(&format!("loc{i:02}"), 0), 0).unwrap();
        }
        assert_eq!(s.insert(&reading("new", 0), 1), Err(StoreFull));
        assert_eq!(s.insert(&reading("loc07", 9), 1), Ok(()));
        assert_eq!(s.len(), MAX_LOCATIONS);
        assert!(s.get(&Location::new("new").unwrap()).is_none());
    }
}
