//! Benchmark: how fast the MQTT bridge drains a backlog of readings from
//! the history database (issue 9). Used by `benches/mqtt.sh`, which starts
//! the broker:
//!
//! ```text
//! cargo run --release -p envhub-host --example mqtt_drain -- PORT ROWS DIR
//! ```
//!
//! Writes ROWS readings over 48 locations into `DIR/drain.db`, points the
//! bridge's cursor before the first, starts the bridge against the broker
//! on 127.0.0.1:PORT with a subscriber on every state topic, and prints how
//! long it took until the broker had acknowledged every reading (the cursor
//! at the end) and until the subscriber had received them all.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use envhub_host::mqtt::source::Log;
use envhub_host::mqtt::{Bridge, Settings};
use envhub_host::services::Services;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(rows), Some(dir)) = (
        args.get(1).and_then(|a| a.parse::<u16>().ok()),
        args.get(2).and_then(|a| a.parse::<u32>().ok()),
        args.get(3),
    ) else {
        eprintln!("usage: mqtt_drain PORT ROWS DIR");
        std::process::exit(2);
    };
    let db = std::path::Path::new(dir).join("drain.db");
    let _ = std::fs::remove_file(&db);
    let mut conn = rusqlite::Connection::open(&db).expect("open the database");
    // The history's schema (issue 8).
    conn.execute_batch(envhub_host::history::SCHEMA)
        .expect("schema");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    let tx = conn.transaction().expect("transaction");
    for i in 0..rows {
        tx.execute(
            "INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                1_764_460_800_000_i64 + i64::from(i),
                format!("room_{:02}", i % 48),
                f64::from(i % 500) / 10.0,
                f64::from(i % 1000) / 10.0,
                i
            ],
        )
        .expect("insert");
    }
    tx.commit().expect("commit");
    // The bridge's cursor, before the first row.
    drop(Log::open(&db).expect("cursor table"));
    conn.execute("UPDATE mqtt_cursor SET last_id = 0", [])
        .expect("cursor");

    let received = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new("drain-sub", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (sub, mut connection) = Client::new(o, 100);
    sub.subscribe("envhub/drain/+/state", QoS::AtLeastOnce)
        .expect("subscribe");
    {
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            for event in connection.iter() {
                // Retained states of an earlier run do not count.
                if let Ok(Event::Incoming(Packet::Publish(p))) = event {
                    if !p.retain {
                        received.fetch_add(1, Relaxed);
                    }
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(300));

    let services = Arc::new(Services::new());
    let settings = Settings {
        host: "127.0.0.1".into(),
        port,
        gateway_id: "drain".into(),
        prefix: "envhub".into(),
        ha_prefix: "homeassistant".into(),
        discovery: true,
        credentials: None,
        queue: 10_000,
    };
    let start = Instant::now();
    let bridge = Bridge::start(settings, Arc::clone(&services), Some(&db)).expect("bridge");
    let rows = u64::from(rows);
    let limit = Duration::from_secs(300);
    while services.status.mqtt_published.load(Relaxed) < rows && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
    let acked = start.elapsed();
    while received.load(Relaxed) < rows && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered = start.elapsed();
    bridge.stop();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "rows={rows} acked_s={:.2} acked_per_s={:.0} delivered_s={:.2} delivered_per_s={:.0} received={}",
        acked.as_secs_f64(),
        rate(acked),
        delivered.as_secs_f64(),
        rate(delivered),
        received.load(Relaxed)
    );
}
