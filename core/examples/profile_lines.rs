//! Runs one kind of line through the core many times, for an instruction
//! profiler (`perf` has no hardware counters on a shared VM; callgrind counts
//! instructions repeatably even while other work loads the machine):
//!
//! ```sh
//! cargo build --release -p envhub-core --example profile_lines
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/profile_lines reading 100000
//! callgrind_annotate cg.out | head -40
//! ```
//!
//! Cases: `reading`, `latest_64`, `decode` (the reading, `decode` alone),
//! `decode_invalid` (`decode` alone on a reading whose `temp` is a string).
//! Divide the total instruction count by the number of lines.

use std::hint::black_box;

use envhub_core::{decode, Config, Connection, LocalHub, Stats, Store};

const READING: &[u8] = b"{\"location\":\"living_room\",\"temp\":25.5,\"hum\":60,\"seq\":123}\n";
const LATEST: &[u8] = b"{\"cmd\":\"latest\"}\n";
const INVALID_FIELD: &[u8] = b"{\"location\":\"x\",\"temp\":\"hot\",\"hum\":1}";

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "reading".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let (mut store, mut stats) = (Store::new(), Stats::new(0));
    let mut hub = LocalHub {
        store: &mut store,
        stats: &mut stats,
    };
    let mut conn = Connection::new(1, 0, Config::default());
    let mut out = vec![0u8; 16 * 1024];
    let input = match case.as_str() {
        "reading" => READING,
        "latest_64" => {
            for i in 0..64 {
                let line =
                    format!("{{\"location\":\"sensor_{i:02}\",\"temp\":21.{i},\"hum\":45}}\n");
                let p = conn.handle_input(1, line.as_bytes(), &mut out, &mut hub);
                assert!(out[..p.written].starts_with(b"{\"ok\":true"), "setup {i}");
            }
            LATEST
        }
        "decode" | "decode_invalid" => {
            let line = match case.as_str() {
                "decode" => &READING[..READING.len() - 1],
                _ => INVALID_FIELD,
            };
            for _ in 0..n {
                black_box(decode(black_box(line)).is_ok());
            }
            return;
        }
        other => {
            eprintln!("unknown case {other}: reading, latest_64, decode or decode_invalid");
            std::process::exit(2);
        }
    };
    let mut written = 0;
    for _ in 0..n {
        written += conn
            .handle_input(10, black_box(input), &mut out, &mut hub)
            .written;
    }
    black_box(written);
}
