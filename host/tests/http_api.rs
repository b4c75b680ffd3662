//! The HTTP side's API against a real server on loopback: every endpoint
//! and every error, with location names holding spaces, quotes and
//! non-ASCII in URLs and metric labels.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::{encode, get, Events, Rig, Row};
use envhub_host::services::unix_ms;
use serde_json::json;

/// Names as awkward as the protocol allows (it forbids `"` and `\`).
const TOMS: &str = "Tom's room";
const KETTLE: &str = "客厅 ü";

#[test]
fn latest_metrics_page_and_health_follow_tcp_readings_without_history() {
    let rig = Rig::no_db(64);
    let before = unix_ms();
    let replies = rig.send(&[
        &format!(r#"{{"location":"{TOMS}","temp":21.5,"hum":40,"seq":7}}"#),
        &format!(r#"{{"location":"{KETTLE}","temp":-3.25,"hum":99.9}}"#),
        r#"{"location":"attic","temp":30,"hum":20}"#,
        r#"{"location":"attic","temp":31,"hum":21,"seq":2}"#,
        r#"{"location":"x","temp":"hot","hum":1}"#,
    ]);
    assert!(replies[0].starts_with(r#"{"ok":true"#), "{replies:?}");
    assert!(replies[4].contains("invalid_field"), "{replies:?}");
    std::thread::sleep(Duration::from_millis(200)); // the feed reaches the map

    let r = rig.get("/api/latest");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let body = r.json();
    assert_eq!(body["history"], json!(false));
    let items = body["readings"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["location"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Tom's room", "attic", "客厅 ü"], "sorted bytewise");
    assert_eq!(
        (&items[0]["temp"], &items[0]["hum"], &items[0]["seq"]),
        (&json!(21.5), &json!(40.0), &json!(7))
    );
    assert_eq!(
        (&items[1]["temp"], &items[1]["seq"]),
        (&json!(31.0), &json!(2))
    );
    assert_eq!(items[2]["temp"], json!(-3.3), "rounded as acknowledged");
    assert!(
        items[2].get("seq").is_none(),
        "seq only when known: {}",
        items[2]
    );
    for item in items {
        let ts = item["ts_ms"].as_i64().unwrap();
        assert!(ts >= before && ts <= unix_ms(), "{item}");
    }

    let m = rig.get("/metrics");
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for line in [
        "envhub_clients 0\n",
        "envhub_readings_total 4\n",
        "envhub_errors_total 1\n",
        "envhub_locations 3\n",
        "envhub_history_rows 0\n",
        "envhub_temperature_celsius{location=\"Tom's room\"} 21.5\n",
        "envhub_humidity_percent{location=\"客厅 ü\"} 99.9\n",
        "envhub_temperature_celsius{location=\"客厅 ü\"} -3.3\n",
        "envhub_reading_age_seconds{location=\"attic\"} ",
    ] {
        assert!(m.body.contains(line), "{line:?} missing from\n{}", m.body);
    }
    assert!(!m.body.contains("mqtt"), "MQTT is off:\n{}", m.body);

    let h = rig.get("/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));

    let page = rig.get("/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.body.contains("/assets/uPlot.iife.min.js") && page.body.contains("/assets/app.js")
    );
    for (asset, kind) in [
        ("app.js", "text/javascript"),
        ("style.css", "text/css"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
        ("uPlot.LICENSE", "text/plain"),
    ] {
        let a = rig.get(&format!("/assets/{asset}"));
        assert_eq!(a.status, 200, "{asset}");
        assert!(
            a.header("content-type").unwrap().starts_with(kind),
            "{asset}"
        );
        assert!(a.body.len() > 100, "{asset}");
    }
    let missing = rig.get("/assets/nothing.js");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], json!("no asset \"nothing.js\""));
    let nowhere = rig.get("/nowhere");
    assert_eq!(
        (nowhere.status, nowhere.json()["error"].clone()),
        (404, json!("no such page"))
    );

    // No history: 404 with a clear error, whatever the parameters.
    let h = rig.get(&format!("/api/history?location={}", encode(TOMS)));
    assert_eq!(h.status, 404);
    assert_eq!(
        h.json()["error"],
        json!("history is off (the server runs with --no-db)")
    );
}

#[test]
fn metrics_show_mqtt_and_health_follows_the_database() {
    let rig = Rig::no_db(64);
    let status = &rig.shared.hub.services().status;
    status.mqtt.store(true, Relaxed);
    status.mqtt_connected.store(true, Relaxed);
    status.mqtt_backlog.store(3, Relaxed);
    status.mqtt_published.store(12, Relaxed);
    status.history_rows.store(99, Relaxed);
    let m = rig.get("/metrics").body;
    for line in [
        "envhub_mqtt_connected 1\n",
        "envhub_mqtt_backlog 3\n",
        "envhub_mqtt_published_total 12\n",
        "envhub_history_rows 99\n",
        "envhub_locations 0\n",
    ] {
        assert!(m.contains(line), "{line:?} missing from\n{m}");
    }
    status.history_healthy.store(false, Relaxed);
    let h = rig.get("/healthz");
    assert_eq!(h.status, 503);
    assert!(h.body.contains("does not accept writes"), "{}", h.body);
    status.history_healthy.store(true, Relaxed);
    assert_eq!(rig.get("/healthz").status, 200);
}

/// One reading a minute of `location` over the last `minutes` minutes,
/// ending a minute ago; temperatures count up by 0.1 from 20.0.
fn minutes(location: &str, minutes: i64, now: i64) -> Vec<Row> {
    (0..minutes)
        .map(|i| {
            Row::new(
                now - (minutes - i) * 60_000,
                location,
                20.0 + i as f64 / 10.0,
                50.0,
            )
        })
        .collect()
}

#[test]
fn history_buckets_defaults_and_every_error() {
    let now = unix_ms();
    let mut rows = minutes(TOMS, 48 * 60, now); // two days
    rows.extend(minutes(KETTLE, 10, now));
    let rig = Rig::with_db(&rows, 64);
    let toms = encode(TOMS);

    // Defaults: the last 24 h, at most 500 buckets.
    let r = rig.get(&format!("/api/history?location={toms}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["location"], json!(TOMS));
    let points = body["points"].as_array().unwrap();
    assert!(
        points.len() <= 500 && points.len() >= 480,
        "{}",
        points.len()
    );
    let first = points[0][0].as_i64().unwrap();
    assert!(
        first >= now - 24 * 3_600_000 - 1_000 && first < now - 23 * 3_600_000,
        "{first}"
    );
    for p in points {
        let p = p.as_array().unwrap();
        assert_eq!(p.len(), 7);
        let (avg, min, max) = (
            p[1].as_f64().unwrap(),
            p[2].as_f64().unwrap(),
            p[3].as_f64().unwrap(),
        );
        assert!(min <= avg && avg <= max, "{p:?}");
        assert_eq!(
            (p[4].as_f64(), p[5].as_f64(), p[6].as_f64()),
            (Some(50.0), Some(50.0), Some(50.0))
        );
    }

    // An exact range: the last 10 readings of the kettle in 5 buckets of 2.
    let from = now - 10 * 60_000;
    let to = now - 60_000 + 59_999;
    let r = rig.get(&format!(
        "/api/history?location={}&from_ms={from}&to_ms={to}&max_points=5",
        encode(KETTLE)
    ));
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(body["location"], json!(KETTLE));
    assert_eq!(
        body["points"],
        json!([
            [from, 20.05, 20.0, 20.1, 50.0, 50.0, 50.0],
            [from + 120_000, 20.25, 20.2, 20.3, 50.0, 50.0, 50.0],
            [from + 240_000, 20.45, 20.4, 20.5, 50.0, 50.0, 50.0],
            [from + 360_000, 20.65, 20.6, 20.7, 50.0, 50.0, 50.0],
            [from + 480_000, 20.85, 20.8, 20.9, 50.0, 50.0, 50.0],
        ])
    );
    // 5,000 buckets is the most; a range with no rows is an empty list.
    let r = rig.get(&format!(
        "/api/history?location={toms}&from_ms=0&to_ms=1000&max_points=5000"
    ));
    assert_eq!((r.status, r.json()["points"].clone()), (200, json!([])));

    // Unknown location: 404.
    let r = rig.get("/api/history?location=cellar%20%C3%A9");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], json!("no readings of this location"));

    // Every parameter that does not parse or is out of range: 400.
    for (query, why) in [
        ("".to_owned(), "location is required"),
        ("location=".to_owned(), "location must not be empty"),
        (format!("location={toms}&from_ms=yesterday"), "from_ms"),
        (format!("location={toms}&to_ms=1.5"), "to_ms"),
        (
            format!("location={toms}&to_ms=9223372036854775808"),
            "to_ms",
        ),
        (format!("location={toms}&from_ms=10&to_ms=9"), "after"),
        (format!("location={toms}&max_points=0"), "max_points"),
        (format!("location={toms}&max_points=5001"), "max_points"),
        (format!("location={toms}&max_points=-3"), "max_points"),
        (format!("location={toms}&max_points=%FF"), "max_points"),
    ] {
        let r = rig.get(&format!("/api/history?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        let error = r.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(why), "{query}: {error}");
    }
}

#[test]
fn events_carry_each_reading_with_its_row_id_and_resume_from_history() {
    let now = unix_ms();
    let rows = minutes(TOMS, 10, now);
    let rig = Rig::with_db(&rows, 64);

    let mut live = Events::open(rig.http_addr, &[]);
    assert_eq!(live.status, 200);
    assert_eq!(
        live.headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str()),
        Some("text/event-stream")
    );
    let mut row = Row::new(now, KETTLE, 22.5, 41.0);
    row.seq = Some(9);
    let id = rig.commit(&row);
    assert_eq!(id, 11);
    let ev = live.next();
    assert_eq!(ev.event, "reading");
    assert_eq!(ev.id.as_deref(), Some("11"));
    let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        data,
        json!({"location": KETTLE, "temp": 22.5, "hum": 41.0, "seq": 9, "ts_ms": now})
    );
    // The same JSON as the /api/latest item.
    std::thread::sleep(Duration::from_millis(100));
    let latest = rig.get("/api/latest").json();
    assert_eq!(latest["history"], json!(true));
    assert!(
        latest["readings"].as_array().unwrap().contains(&data),
        "{latest}"
    );

    // A browser that saw id 7 gets 8..=11 from the history, then live ones.
    let mut resumed = Events::open(rig.http_addr, &[("Last-Event-ID", "7")]);
    let ids: Vec<String> = (0..4).map(|_| resumed.next().id.unwrap()).collect();
    assert_eq!(ids, ["8", "9", "10", "11"]);
    rig.commit(&Row::new(now + 1, TOMS, 1.0, 2.0));
    assert_eq!(resumed.next().id.as_deref(), Some("12"));
    assert_eq!(live.next().id.as_deref(), Some("12"));

    // A garbage Last-Event-ID is ignored: the stream starts live.
    let mut fresh = Events::open(rig.http_addr, &[("Last-Event-ID", "not a number")]);
    rig.commit(&Row::new(now + 2, TOMS, 1.0, 2.0));
    assert_eq!(fresh.next().id.as_deref(), Some("13"));

    // Through the server itself: acknowledged, committed, then streamed
    // with its row id, and in the history.
    let reply = rig.send(&[&format!(
        r#"{{"location":"{TOMS}","temp":5,"hum":6,"seq":3}}"#
    )]);
    assert!(reply[0].starts_with(r#"{"ok":true"#), "{reply:?}");
    let ev = fresh.next();
    assert_eq!(ev.id.as_deref(), Some("14"), "{ev:?}");
    let data: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!((&data["temp"], &data["seq"]), (&json!(5.0), &json!(3)));
    let h = rig.get(&format!(
        "/api/history?location={}&from_ms={}",
        encode(TOMS),
        now + 10
    ));
    let points = h.json()["points"].clone();
    assert_eq!(points.as_array().map(Vec::len), Some(1), "{points}");
    assert_eq!(points[0][1], json!(5.0));
}

#[test]
fn a_resume_older_than_the_backlog_starts_with_a_gap() {
    let now = unix_ms();
    let rows = minutes(TOMS, 1_200, now);
    let rig = Rig::with_db(&rows, 64);
    let mut ev = Events::open(rig.http_addr, &[("Last-Event-ID", "0")]);
    let gap = ev.next();
    assert_eq!(
        (gap.event.as_str(), gap.data.as_str()),
        ("gap", r#"{"missed":200}"#)
    );
    assert_eq!(ev.next().id.as_deref(), Some("201"));
}

#[test]
fn at_most_max_clients_streams_and_the_next_gets_503() {
    let rig = Rig::no_db(2);
    let a = Events::open(rig.http_addr, &[]);
    let b = Events::open(rig.http_addr, &[]);
    assert_eq!((a.status, b.status), (200, 200));
    let c = get(rig.http_addr, "/api/events", &[]);
    assert_eq!(c.status, 503);
    assert_eq!(
        c.json()["error"],
        json!("too many event streams (at most 2)")
    );
    // Other endpoints still answer.
    assert_eq!(rig.get("/api/latest").status, 200);
    // A closed stream frees its place.
    drop(a);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let d = Events::open(rig.http_addr, &[]);
        if d.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place was never freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stream_that_is_not_read_skips_ahead_with_a_gap_and_never_holds_up_sensors() {
    let rig = Rig::no_db(64);
    let mut slow = Events::open(rig.http_addr, &[]);
    assert_eq!(slow.status, 200);
    // Far more than the feed and the socket buffers hold, while nobody
    // reads the stream: each sensor reading is still acknowledged.
    let lines: Vec<String> = (0..200)
        .map(|i| format!(r#"{{"location":"hall","temp":{}.5,"hum":50}}"#, i % 40))
        .collect();
    for _ in 0..250 {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        for reply in rig.send(&refs) {
            assert!(reply.starts_with(r#"{"ok":true"#), "{reply}");
        }
    }
    assert_eq!(rig.shared.hub.readings(), 50_000);
    // Reading now: some readings, then a gap, then the stream goes on.
    let mut gaps = 0u64;
    let mut last = 0i64;
    for _ in 0..60_000 {
        let ev = slow.next();
        match ev.event.as_str() {
            "gap" => {
                let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
                gaps += v["missed"].as_u64().unwrap();
            }
            "reading" => {
                let id: i64 = ev.id.unwrap().parse().unwrap();
                assert!(id > last, "ids only grow");
                last = id;
                if id == 50_000 {
                    break;
                }
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(gaps > 0, "no gap reported");
    assert_eq!(last, 50_000, "the stream reached the newest reading");
    let _ = slow.socket();
}

/// Runs the real `envhub` with `args` until it prints `listening on`, or
/// exits; its stdout lines so far, and its exit status if it exited.
fn envhub(args: &[&str]) -> (Vec<String>, Option<std::process::ExitStatus>, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_envhub"))
        .args(["--bind", "127.0.0.1:0", "--no-db"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start envhub");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let done = line.starts_with("listening on");
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    // Stdout closed without `listening on`: it exits (give it a moment).
    let mut status = None;
    for _ in 0..200 {
        status = child.try_wait().unwrap();
        if status.is_some() || lines.last().is_some_and(|l| l.starts_with("listening on")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    (lines, status, err)
}

#[test]
fn the_binary_announces_the_dashboard_and_a_busy_port_is_exit_2() {
    let (lines, _, _) = envhub(&["--http", "127.0.0.1:0"]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let addr: std::net::SocketAddr = lines[0]
        .strip_prefix("dashboard on http://")
        .and_then(|l| l.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{lines:?}"))
        .parse()
        .unwrap();
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert!(lines[1].starts_with("listening on 127.0.0.1:"), "{lines:?}");

    let (lines, _, _) = envhub(&["--http", "off"]);
    assert_eq!(lines.len(), 1, "no dashboard line: {lines:?}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let (lines, status, err) = envhub(&["--http", &port]);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{err}");
    // One line says why (the rest of stderr would be the log).
    let said: Vec<&str> = err.lines().filter(|l| l.starts_with("envhub:")).collect();
    assert_eq!(said.len(), 1, "{err}");
    assert!(
        said[0].starts_with(&format!("envhub: dashboard on {port}: cannot listen")),
        "{err}"
    );
}

#[test]
fn an_idle_stream_gets_a_keep_alive_comment_every_15_s() {
    use std::io::{BufRead, BufReader, Write};
    let rig = Rig::no_db(64);
    let mut s = std::net::TcpStream::connect(rig.http_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /api/events HTTP/1.0\r\n\r\n").unwrap();
    let start = std::time::Instant::now();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while r.read_line(&mut line).expect("a keep-alive within 20 s") > 0 {
        if line.starts_with(':') {
            break;
        }
        line.clear();
    }
    assert!(line.starts_with(':'), "{line:?}");
    // Not a timing check: only that it came from the timer, not at once.
    assert!(
        start.elapsed() >= Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_burst_within_a_batch_arrives_complete_and_in_order() {
    let rig = Rig::no_db(64);
    let mut ev = Events::open(rig.http_addr, &[]);
    let lines: Vec<String> = (0..envhub_host::http::events::BATCH)
        .map(|i| format!(r#"{{"location":"hall","temp":20,"hum":50,"seq":{i}}}"#))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    rig.send(&refs);
    for i in 0..envhub_host::http::events::BATCH {
        let e = ev.next();
        assert_eq!(e.event, "reading", "{e:?}");
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(data["seq"], json!(i), "{e:?}");
    }
}
