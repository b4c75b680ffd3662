//! Arbitrary bytes into `decode` and into a sensor-mode `Connection`.
//!
//! `decode` must answer as its general path does (`decode_general`, with no
//! shortcut for the usual reading) for every line.
//!
//! The input's first bytes choose the output buffer sizes, the points where
//! the stream is cut into segments and how it ends (EOF or shutdown); the
//! rest is the stream. Checks: nothing panics, no call writes or consumes
//! more than it was given, and the replies, the close and the counters are
//! the same as when the stream arrives in one segment into a big buffer.
#![no_main]

use envhub_core::testing::{decode_general, Driver};
use envhub_core::{decode, Close, Config};
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
    let mut driver = Driver::new(Config::default());
    driver.now = NOW;
    driver.windows = outs.to_vec();
    let mut replies = Vec::new();
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    let mut from = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        replies.extend(driver.feed(&stream[from..cut]));
        from = cut;
    }
    if shutdown {
        driver.conn.handle_shutdown();
    } else {
        driver.conn.handle_eof();
    }
    replies.extend(driver.pump());
    assert!(!driver.conn.has_output());
    Outcome {
        replies,
        close: driver.conn.poll_close(),
        readings: driver.stats.readings,
        errors: driver.stats.errors,
    }
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(decode(data), decode_general(data));
    let mut u = Unstructured::new(data);
    let Ok(plan) = plan(&mut u) else {
        return;
    };
    let stream = u.take_rest();
    let split = drive(stream, &plan.cuts, &plan.outs, plan.shutdown);
    let whole = drive(stream, &[], &[4096], plan.shutdown);
    assert_eq!(split, whole);
});
