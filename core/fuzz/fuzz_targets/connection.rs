//! Arbitrary bytes into `decode` and into a sensor-mode `Connection`.
//!
//! The input's first bytes choose the output buffer sizes, the points where
//! the stream is cut into segments and how it ends (EOF or shutdown); the
//! rest is the stream. Checks: nothing panics, no call writes or consumes
//! more than it was given, and the replies, the close and the counters are
//! the same as when the stream arrives in one segment into a big buffer.
#![no_main]

use envhub_core::{decode, Close, Config, Connection, LocalHub, Stats, Store};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_000;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    replies: Vec<u8>,
    close: Option<Close>,
    readings: u64,
    errors: u64,
}

/// How the stream is delivered.
struct Plan {
    outs: Vec<usize>,
    cuts: Vec<usize>,
    shutdown: bool,
}

fn plan(u: &mut Unstructured<'_>) -> Result<Plan> {
    let shutdown = u.ratio(1, 8)?;
    let n_outs = u.int_in_range(1..=4)?;
    let mut outs = Vec::with_capacity(n_outs);
    for _ in 0..n_outs {
        outs.push(u.int_in_range(1..=80)?);
    }
    let n_cuts = u.int_in_range(0..=12)?;
    let mut cuts = Vec::with_capacity(n_cuts);
    for _ in 0..n_cuts {
        cuts.push(usize::from(u.arbitrary::<u16>()?));
    }
    Ok(Plan {
        outs,
        cuts,
        shutdown,
    })
}

fn drive(stream: &[u8], cuts: &[usize], outs: &[usize], shutdown: bool) -> Outcome {
    let mut store = Store::new();
    let mut stats = Stats::new(0);
    let mut hub = LocalHub {
        store: &mut store,
        stats: &mut stats,
    };
    let id = hub.stats.open();
    let mut conn = Connection::new(id, 0, Config::default());
    let mut pending = Vec::new();
    let mut replies = Vec::new();
    let mut next_out = 0;
    let mut pump = |conn: &mut Connection, pending: &mut Vec<u8>, hub: &mut LocalHub<'_>| {
        let mut buf = [0u8; 4096];
        loop {
            let size = outs[next_out % outs.len()].min(buf.len());
            next_out += 1;
            let p = conn.handle_input(NOW, pending, &mut buf[..size], hub);
            assert!(p.written <= size);
            assert!(p.consumed <= pending.len());
            replies.extend_from_slice(&buf[..p.written]);
            pending.drain(..p.consumed);
            if p.consumed == 0 && p.written == 0 {
                return;
            }
        }
    };
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut from = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        pending.extend_from_slice(&stream[from..cut]);
        from = cut;
        pump(&mut conn, &mut pending, &mut hub);
    }
    if shutdown {
        conn.handle_shutdown();
    } else {
        conn.handle_eof();
    }
    pump(&mut conn, &mut pending, &mut hub);
    assert!(!conn.has_output());
    drop(pump);
    Outcome {
        replies,
        close: conn.poll_close(),
        readings: stats.readings,
        errors: stats.errors,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = decode(data);
    let mut u = Unstructured::new(data);
    let Ok(plan) = plan(&mut u) else {
        return;
    };
    let stream = u.take_rest();
    let split = drive(stream, &plan.cuts, &plan.outs, plan.shutdown);
    let whole = drive(stream, &[], &[4096], plan.shutdown);
    assert_eq!(split, whole);
});
