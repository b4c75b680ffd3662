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
/// them in order. A reading's entry is found through a small hash index:
/// sensors take turns, so the location stored last is rarely the next one,
/// and a binary search costs a byte comparison per step. The entry stored
/// last is still tried first (one sensor on its own, or a burst of one).
#[derive(Debug)]
pub struct Store {
    entries: heapless::Vec<Entry, MAX_LOCATIONS>,
    /// Open addressing with linear probing over `entries`: each slot holds
    /// an entry's position plus one, or 0 when empty. At most half full, so
    /// a probe always ends at an empty slot. Positions shift when a new
    /// location is inserted in order; then the index is rebuilt (at most
    /// [`MAX_LOCATIONS`] times in a store's life).
    index: [u8; INDEX_SLOTS],
    /// The position of the entry stored last (a hint: checked before use).
    last: usize,
}

/// Slots of the hash index: twice the entries.
const INDEX_SLOTS: usize = 2 * MAX_LOCATIONS;

/// The index slot where a probe for `name` starts: its bytes taken eight
/// at a time (a location is at most 32), each word mixed in by one
/// multiplication, the top bits kept. Written here rather than taken from
/// a hashing crate: those hash a byte at a time or need `std`'s
/// `BuildHasher` plumbing; this is a dozen lines and as good for short
/// keys.
fn home(name: &[u8]) -> usize {
    const K: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / golden ratio
    let mut h = name.len() as u64;
    let mut words = name.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // The last few bytes shifted in one by one: a copy of a variable
    // length would be a `memcpy` call.
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    h = (h ^ tail).wrapping_mul(K);
    (h >> 57) as usize % INDEX_SLOTS
}

/// True if `a` and `b` are the same name: compared inline, as a location
/// is short and a `memcmp` call costs more than the loop.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty store.
    pub const fn new() -> Self {
        Store {
            entries: heapless::Vec::new(),
            index: [0; INDEX_SLOTS],
            last: 0,
        }
    }

    /// Where `location` is, or where it would go to keep the order.
    fn find(&self, location: &[u8]) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|e| e.location.as_bytes().cmp(location))
    }

    /// The position of `location`'s entry, through the index. On a
    /// bare-metal target (the firmware, built for size and serving a few
    /// sensors) there is no index: a binary search.
    fn position(&self, location: &[u8]) -> Option<usize> {
        if cfg!(target_os = "none") {
            return self.find(location).ok();
        }
        let mut slot = home(location);
        for _ in 0..INDEX_SLOTS {
            let i = usize::from(*self.index.get(slot)?).checked_sub(1)?;
            if same(self.entries.get(i)?.location.as_bytes(), location) {
                return Some(i);
            }
            slot = (slot + 1) % INDEX_SLOTS;
        }
        None
    }

    /// Indexes every entry anew (their positions moved).
    fn reindex(&mut self) {
        if cfg!(target_os = "none") {
            return;
        }
        self.index = [0; INDEX_SLOTS];
        for (i, entry) in self.entries.iter().enumerate() {
            let mut slot = home(entry.location.as_bytes());
            while self.index.get(slot).is_some_and(|&s| s != 0) {
                slot = (slot + 1) % INDEX_SLOTS;
            }
            if let Some(s) = self.index.get_mut(slot) {
                // `i < MAX_LOCATIONS`, so `i + 1` fits in a byte.
                *s = (i + 1) as u8;
            }
        }
    }

    /// Keeps `reading` as the newest of its location. A known location
    /// only has its values overwritten; a new one is inserted in order.
    pub fn insert(&mut self, reading: &Reading, now: u64) -> Result<(), StoreFull> {
        let name = reading.location.as_bytes();
        let known = match self.entries.get(self.last) {
            Some(e) if same(e.location.as_bytes(), name) => Some(self.last),
            _ => self.position(name),
        };
        // A location the index does not know is looked for in order too:
        // the binary search finds its place (and would find the entry,
        // were the index ever wrong).
        match known.map_or_else(|| self.find(name), Ok) {
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
                self.reindex();
                self.last = i;
                Ok(())
            }
        }
    }

    /// The entry of `location`, if one was stored.
    pub fn get(&self, location: &Location) -> Option<&Entry> {
        self.entries.get(self.position(location.as_bytes())?)
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

    /// Every operation on the store against a sorted map of the same
    /// readings: the index finds every entry, with any names (the 7-bit
    /// slots make long probe runs and wrap-arounds common at 64 entries).
    #[test]
    fn matches_a_sorted_map() {
        use proptest::prelude::*;
        use std::collections::BTreeMap;
        let name = prop_oneof![
            "[a-c]{1,3}",
            "room_[0-9]{2}",
            "[a-zA-Z0-9 _\\-]{1,32}",
            "x{24}[a-z]{1,8}",
        ];
        let ops = prop::collection::vec((name, any::<i16>(), any::<bool>()), 1..300);
        proptest!(|(ops in ops)| {
            let mut store = Store::new();
            let mut model = BTreeMap::<std::string::String, (i16, u64)>::new();
            for (now, (name, temp, look)) in ops.into_iter().enumerate() {
                let now = now as u64;
                let fits = model.len() < MAX_LOCATIONS || model.contains_key(&name);
                let got = store.insert(&reading(&name, temp), now);
                prop_assert_eq!(got.is_ok(), fits, "{}", name);
                if fits {
                    model.insert(name.clone(), (temp, now));
                }
                if look {
                    let entry = store.get(&Location::new(&name).unwrap());
                    let want = model.get(&name).copied();
                    prop_assert_eq!(entry.map(|e| (e.temp.0, e.stored_at)), want);
                }
            }
            let all: Vec<_> = store
                .after(None)
                .map(|e| (std::string::String::from(e.location.as_str()), (e.temp.0, e.stored_at)))
                .collect();
            let want: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(all, want);
        });
    }
}
