//! Topic-safe names for locations (`<slug>` in every topic and object id).
//!
//! A location is any UTF-8 name a sensor sent: it may hold spaces, `/`, `+`,
//! `#` or non-ASCII letters, none of which may appear in an MQTT topic level
//! or a Home Assistant object id. The slug keeps `[A-Za-z0-9_-]` bytes,
//! turns every other byte into `_`, and, whenever anything was replaced,
//! appends `_` and 8 hex digits of a hash of the whole name, so that two
//! names that reduce to the same text still get two topics.

use std::fmt::Write;

/// Whether `byte` may stay in a slug (and in a gateway id).
pub fn is_safe(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// The slug of `name` (see the module documentation).
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 9);
    let mut replaced = false;
    for &b in name.as_bytes() {
        if is_safe(b) {
            out.push(char::from(b));
        } else {
            out.push('_');
            replaced = true;
        }
    }
    if replaced {
        // Writing into a String cannot fail.
        let _ = write!(out, "_{:08x}", fnv1a32(name.as_bytes()));
    }
    out
}

/// 32-bit FNV-1a. Written out because it is four lines, needs no table and
/// must never change between versions (the slug is part of every topic and
/// of Home Assistant's unique ids); std's hashers promise no stable output.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_stay_as_they_are() {
        assert_eq!(slug("kitchen"), "kitchen");
        assert_eq!(slug("Room_2-b"), "Room_2-b");
    }

    #[test]
    fn unsafe_bytes_become_underscores_plus_a_hash() {
        // FNV-1a test vectors.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(
            slug("living room"),
            format!("living_room_{:08x}", fnv1a32(b"living room"))
        );
        // Every UTF-8 byte of a non-ASCII letter is replaced.
        let s = slug("客厅");
        assert!(s.starts_with("______"), "{s}");
        assert_eq!(s.len(), 6 + 1 + 8);
        for name in ["a/b", "a+b", "a#b", "a b", "a\u{e9}"] {
            let s = slug(name);
            assert!(s.bytes().all(is_safe), "{name} -> {s}");
        }
    }

    #[test]
    fn names_that_reduce_alike_get_different_slugs() {
        let all = ["a/b", "a+b", "a#b", "a b", "a_b"];
        let slugs: std::collections::BTreeSet<_> = all.iter().map(|n| slug(n)).collect();
        assert_eq!(slugs.len(), all.len(), "{slugs:?}");
    }
}
