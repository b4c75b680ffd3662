//! The store and the counters: `latest`, `store_full`, `stats`.

use std::time::Duration;

use envhub_tests::*;

/// Sends `latest` (for one location if given) and returns the reply with
/// every `age_ms` masked as `#`, and the ages.
#[track_caller]
fn latest_of(c: &mut Client, location: Option<&str>) -> (String, Vec<u64>) {
    let request = match location {
        Some(l) => format!(r#"{{"cmd":"latest","location":"{l}"}}"#),
        None => r#"{"cmd":"latest"}"#.to_owned(),
    };
    let reply = c.request(request);
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&reply) {
        panic!("latest reply is not JSON ({e}): {reply}");
    }
    mask(&reply, "age_ms")
}

/// `latest` lists every location once, sorted bytewise ascending.
fn latest_sorted_bytewise(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    assert_eq!(c.request(r#"{"cmd":"latest"}"#), EMPTY_LATEST);
    let names = [
        "b", "a", "B", "ä", "a_", "aa", "Z", "0", "~", "客厅", "é", "ab", "A", "a",
    ];
    for (i, name) in names.iter().enumerate() {
        c.expect(
            reading(name, &i.to_string(), "50"),
            stored(name, &format!("{i}.0"), "50.0", None),
        );
    }
    // "a" was stored twice: its newest reading is the 14th (13.0).
    let temp = |name: &str| {
        let i = names.iter().rposition(|n| *n == name).unwrap();
        format!("{i}.0")
    };
    let sorted = [
        "0", "A", "B", "Z", "a", "a_", "aa", "ab", "b", "~", "ä", "é", "客厅",
    ];
    let items: Vec<(String, String)> = sorted.iter().map(|n| (n.to_string(), temp(n))).collect();
    let items: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str(), "50.0"))
        .collect();
    let (reply, ages) = latest_of(&mut c, None);
    assert_eq!(reply, latest(&items));
    assert_eq!(ages.len(), sorted.len());
    let stats = c.stats();
    assert_eq!((stats.readings, stats.locations), (14, 13), "{stats:?}");
}

/// `latest` for one location; the newest reading replaces the older one
/// and is visible to every connection; `age_ms` counts from storing.
fn latest_one_location(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let mut c = server.connect();
    let mut other = server.connect();
    c.expect(reading("k", "1", "2"), stored("k", "1.0", "2.0", None));
    c.expect(reading("j", "5", "6"), stored("j", "5.0", "6.0", None));
    let (reply, _) = latest_of(&mut other, Some("k"));
    assert_eq!(reply, latest(&[("k", "1.0", "2.0")]));
    std::thread::sleep(Duration::from_millis(300));
    let (_, old_age) = latest_of(&mut other, Some("k"));
    assert!(
        old_age[0] >= 300,
        "age_ms {} after sleeping 300 ms",
        old_age[0]
    );
    other.expect(
        reading("k", "3.25", "4.75"),
        stored("k", "3.3", "4.8", None),
    );
    let (reply, new_age) = latest_of(&mut c, Some("k"));
    assert_eq!(reply, latest(&[("k", "3.3", "4.8")]));
    assert!(
        new_age[0] < old_age[0],
        "the newest reading is younger: {new_age:?} {old_age:?}"
    );
    let (reply, _) = latest_of(&mut c, None);
    assert_eq!(reply, latest(&[("j", "5.0", "6.0"), ("k", "3.3", "4.8")]));
    assert_eq!(
        c.request(r#"{"cmd":"latest","location":"K"}"#),
        error("unknown_location")
    );
}

/// At 64 locations a new one is `store_full` (only after passing every
/// check); updating a stored one still works.
fn store_full_at_64(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    let name = |i: usize| format!("loc{i:02}");
    let batch: String = (0..64)
        .map(|i| reading(&name(i), "20", "50") + "\n")
        .collect();
    c.send(&batch);
    for i in 0..64 {
        assert_eq!(c.recv_line(), stored(&name(i), "20.0", "50.0", None));
    }
    c.check(&[
        (reading("loc64", "20", "50"), error("store_full")),
        (reading("new", "999", "50"), invalid("temp")),
        (r#"{"location":"new","temp":1}"#.to_owned(), missing("hum")),
        (reading("", "1", "1"), invalid("location")),
        (
            reading("loc00", "9.9", "9.9"),
            stored("loc00", "9.9", "9.9", None),
        ),
        (
            reading("loc63", "-9.9", "0"),
            stored("loc63", "-9.9", "0.0", None),
        ),
        (reading("new", "1", "1"), error("store_full")),
        (
            r#"{"cmd":"latest","location":"loc64"}"#.to_owned(),
            error("unknown_location"),
        ),
    ]);
    let stats = c.stats();
    assert_eq!(
        (stats.readings, stats.locations, stats.errors),
        (66, 64, 6),
        "{stats:?}"
    );
    let (reply, ages) = latest_of(&mut c, None);
    assert_eq!(ages.len(), 64);
    assert!(reply.contains(r#"{"location":"loc00","temp":9.9,"hum":9.9,"age_ms":#}"#));
    assert!(reply.ends_with(r#"{"location":"loc63","temp":-9.9,"hum":0.0,"age_ms":#}]}"#));
}

/// A `latest` of 64 locations with 32-byte names (over 5 KiB) arrives
/// complete and exact.
fn large_latest(shell: Shell) {
    let (_server, mut c) = Server::with_client(shell);
    // Two digits and fifteen two-byte letters: 32 bytes, sorted by number.
    let name = |i: usize| format!("{i:02}{}", "é".repeat(15));
    let temp = |i: usize| format!("{}.5", i as i64 - 39);
    let hum = |i: usize| format!("{}.{}", i, i % 10);
    let mut batch = String::new();
    for i in (0..64).rev() {
        batch += &reading(&name(i), &temp(i), &hum(i));
        batch.push('\n');
    }
    c.send(&batch);
    for i in (0..64).rev() {
        assert_eq!(c.recv_line(), stored(&name(i), &temp(i), &hum(i), None));
    }
    let owned: Vec<(String, String, String)> =
        (0..64).map(|i| (name(i), temp(i), hum(i))).collect();
    let items: Vec<(&str, &str, &str)> = owned
        .iter()
        .map(|(n, t, h)| (n.as_str(), t.as_str(), h.as_str()))
        .collect();
    assert_eq!(name(7).len(), 32);
    for _ in 0..3 {
        let (reply, ages) = latest_of(&mut c, None);
        assert!(reply.len() > 5000, "{} bytes", reply.len());
        assert_eq!(ages.len(), 64);
        assert_eq!(reply, latest(&items));
    }
    c.expect(r#"{"cmd":"ping"}"#, PONG);
}

/// `stats`: ids from 1, open connections, readings, errors, locations.
fn stats_exact_counts(shell: Shell) {
    let server = Server::start(shell, Opts::default());
    let mut c1 = server.connect();
    let s = c1.stats();
    assert_eq!(
        (s.client, s.clients, s.readings, s.errors, s.locations),
        (1, 1, 0, 0, 0),
        "{s:?}"
    );
    for (l, t) in [("a", "1"), ("b", "2"), ("a", "3")] {
        c1.expect(
            reading(l, t, "50"),
            stored(l, &format!("{t}.0"), "50.0", None),
        );
    }
    // Six errors; blank lines, pings and stats count nothing.
    c1.send(format!(
        "nope\n{{}}\n{}\n\n  \n{{\"cmd\":\"x\"}}\n{{\"cmd\":\"ping\"}}\n{{\"cmd\":\"latest\",\"location\":\"zz\"}}\n",
        "x".repeat(513)
    ));
    c1.send(b"\xff\n");
    let replies = c1.recv_lines(7);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.contains(r#""ok":false"#))
            .count(),
        6,
        "{replies:?}"
    );
    let s = c1.stats();
    assert_eq!(
        (s.client, s.clients, s.readings, s.errors, s.locations),
        (1, 1, 3, 6, 2),
        "{s:?}"
    );
    let mut c2 = server.connect();
    let s = c2.stats();
    assert_eq!(
        (s.client, s.clients, s.readings, s.errors, s.locations),
        (2, 2, 3, 6, 2),
        "{s:?}"
    );
    let mut c3 = server.connect();
    let s = c3.stats();
    assert_eq!((s.client, s.clients), (3, 3), "{s:?}");
    c2.expect(r#"{"cmd":"bye"}"#, BYE);
    c2.recv_closed();
    drop(c3);
    let s = c1.stats_until(|s| s.clients == 1);
    assert_eq!(
        (s.client, s.readings, s.errors, s.locations),
        (1, 3, 6, 2),
        "{s:?}"
    );
    let mut c4 = server.connect();
    let s4 = c4.stats();
    assert_eq!((s4.client, s4.clients), (4, 2), "{s4:?}");
    // uptime_ms never goes backwards.
    let later = c1.stats();
    assert!(later.uptime_ms >= s.uptime_ms, "{s:?} then {later:?}");
}

e2e_tests! {
    latest_sorted_bytewise,
    latest_one_location,
    store_full_at_64,
    large_latest,
    stats_exact_counts,
}
