//! Time per line of the protocol core, without any I/O.
//!
//! `cargo bench -p envhub-core` prints, for each case, the time per line and
//! lines per second (criterion "elements"):
//! - `line/reading`: a typical reading decoded, stored and acknowledged
//!   through `Connection::handle_input` with a `LocalHub`;
//! - `line/reading_x16`: 16 pipelined readings given in one call;
//! - `line/latest_64`: `{"cmd":"latest"}` over 64 stored locations;
//! - `line/ping`, `line/invalid_field`, `line/garbage`: short answers and
//!   the two usual kinds of bad line;
//! - `decode/*`: `decode` alone on the same lines.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use envhub_core::testing::Driver;
use envhub_core::{decode, Config};

const READING: &[u8] = b"{\"location\":\"living_room\",\"temp\":25.5,\"hum\":60,\"seq\":123}\n";
const INVALID_FIELD: &[u8] = b"{\"location\":\"x\",\"temp\":\"hot\",\"hum\":1}\n";
const GARBAGE: &[u8] = b"this is not json at all, just a sensor gone mad\n";
const PING: &[u8] = b"{\"cmd\":\"ping\"}\n";
const LATEST: &[u8] = b"{\"cmd\":\"latest\"}\n";

/// Output room for any single call here (64 `latest` items fit easily).
const OUT: usize = 16 * 1024;

/// A driver whose store holds `n` locations.
fn filled(n: usize) -> Driver {
    let mut driver = Driver::new(Config::default());
    driver.now = 1;
    for i in 0..n {
        let line = format!("{{\"location\":\"sensor_{i:02}\",\"temp\":21.{i},\"hum\":45}}\n");
        assert!(
            driver.send(line.as_bytes()).starts_with("{\"ok\":true"),
            "setup reading {i} refused"
        );
    }
    driver.now = 10;
    driver
}

/// Benchmarks `input` (holding `lines` lines) through one connection.
fn through_connection(c: &mut Criterion, name: &str, input: &[u8], lines: u64, stored: usize) {
    let mut driver = filled(stored);
    let mut out = vec![0u8; OUT];
    // Check once that the whole input is answered in one call.
    let p = driver.step(input, &mut out);
    assert_eq!(
        p.consumed,
        input.len(),
        "{name}: input not consumed in one call"
    );
    assert!(
        p.written > 0 && !driver.conn.has_output(),
        "{name}: reply did not fit"
    );
    let mut group = c.benchmark_group("line");
    group.throughput(Throughput::Elements(lines));
    group.bench_function(name, |b| {
        b.iter(|| {
            let p = driver.step(black_box(input), &mut out);
            black_box(p.written)
        })
    });
    group.finish();
}

fn connection_lines(c: &mut Criterion) {
    through_connection(c, "reading", READING, 1, 0);
    let pipelined: Vec<u8> = (0..16)
        .flat_map(|i| {
            format!("{{\"location\":\"room_{i:02}\",\"temp\":25.5,\"hum\":60,\"seq\":{i}}}\n")
                .into_bytes()
        })
        .collect();
    through_connection(c, "reading_x16", &pipelined, 16, 0);
    through_connection(c, "latest_64", LATEST, 1, 64);
    through_connection(c, "ping", PING, 1, 0);
    through_connection(c, "invalid_field", INVALID_FIELD, 1, 0);
    through_connection(c, "garbage", GARBAGE, 1, 0);
}

fn decode_alone(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    for (name, line) in [
        ("reading", READING),
        ("invalid_field", INVALID_FIELD),
        ("garbage", GARBAGE),
    ] {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        group.bench_function(name, |b| b.iter(|| black_box(decode(black_box(line)))));
    }
    group.finish();
}

criterion_group!(benches, connection_lines, decode_alone);
criterion_main!(benches);
