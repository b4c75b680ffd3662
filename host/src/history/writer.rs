//! The one writer thread: group commit.
//!
//! Connections queue readings ([`Shared::submit`]) and get a ticket. The
//! writer takes everything queued so far, writes it in one transaction and
//! commits; then, and only then, the readings go into the store (visible to
//! `latest`), are counted, go out on the feed with their row id, and their
//! tickets are decided, so the connections send the acks. A transaction
//! that fails (disk full, I/O error) decides its tickets as
//! `storage_error`; nothing of it is stored, and the next batch simply tries
//! again. The same transaction adds the batch to the per-minute rollup
//! ([`rollup::add`]), so rows and rollup are always in step. Between
//! batches the writer deletes old rows, one small batch at a time, so no
//! ack waits for more than one short delete.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use envhub_core::{Outcome, Reading, Ticket};
use log::{debug, info, warn};
use rusqlite::TransactionBehavior;

use super::restore::real;
use super::schema::Opened;
use super::Options;
use super::{retention, rollup};
use crate::hub::Latest;
use crate::services::unix_ms;

/// How often the writer looks for rows past the retention period when it
/// found none last time.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Most refusals kept for connections that have not asked yet. A refusal is
/// removed when its connection asks; only connections that are gone leave
/// theirs behind, so this bounds what they cost. Past it the oldest are
/// forgotten, and every ticket at or below the newest forgotten one that is
/// asked about later is answered `storage_error`: at worst a reading that
/// was kept is sent again (a duplicate row), never a refused one acked.
const MAX_REFUSED: usize = 100_000;

/// One reading waiting for the next transaction.
#[derive(Debug)]
struct Queued {
    ticket: u64,
    reading: Reading,
    /// The server's clock when received (the store's `stored_at`).
    now: u64,
    /// The wall clock when received: the row's `ts_ms`.
    ts_ms: i64,
}

#[derive(Debug, Default)]
struct Queue {
    items: Vec<Queued>,
    next_ticket: u64,
    closed: bool,
}

type Hook = Box<dyn Fn() + Send + Sync>;

/// Decided tickets that were not kept, until their connection asks.
#[derive(Debug, Default)]
struct Refused {
    outcomes: BTreeMap<u64, Outcome>,
    /// Every ticket below this whose refusal may have been forgotten.
    forgotten_below: u64,
}

impl Refused {
    fn extend(&mut self, refused: impl IntoIterator<Item = (u64, Outcome)>) {
        self.outcomes.extend(refused);
        while self.outcomes.len() > MAX_REFUSED {
            if let Some((ticket, _)) = self.outcomes.pop_first() {
                self.forgotten_below = ticket + 1;
            }
        }
    }
}

/// What the connections and the writer share.
#[derive(Default)]
pub struct Shared {
    queue: Mutex<Queue>,
    /// Signals the writer: work queued, or closing.
    work: Condvar,
    /// Every ticket below this is decided.
    done_through: AtomicU64,
    /// Decided tickets that were not kept.
    refused: Mutex<Refused>,
    /// Transactions ended so far (changed under `commit_lock`).
    commits: AtomicU64,
    commit_lock: Mutex<()>,
    /// Signals waiters on `commits`.
    committed: Condvar,
    /// Called after each transaction.
    hooks: Mutex<Vec<Hook>>,
    /// Threads parked until a ticket is decided: woken by the transaction
    /// that decides it, and by no other.
    waiters: Mutex<Vec<(u64, Thread)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves its data consistent; a panic
    // elsewhere must not stop acks.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Nothing queued, nothing decided.
    pub fn new() -> Self {
        Shared::default()
    }

    /// Queues `reading` for the next transaction.
    pub fn submit(&self, reading: &Reading, now: u64, ts_ms: i64) -> Ticket {
        let mut queue = lock(&self.queue);
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        if queue.closed {
            drop(queue);
            lock(&self.refused).extend([(ticket, Outcome::StorageError)]);
            // No transaction will decide it: wake the loops now, so that the
            // connection asks and gets its storage_error at once.
            self.call_hooks();
            return Ticket(ticket);
        }
        queue.items.push(Queued {
            ticket,
            reading: reading.clone(),
            now,
            ts_ms,
        });
        if queue.items.len() == 1 {
            self.work.notify_one();
        }
        Ticket(ticket)
    }

    /// What became of `ticket`.
    pub fn outcome(&self, ticket: Ticket) -> Outcome {
        // Read the mark first: the writer records refusals before it moves
        // the mark past them.
        let done = self.done_through.load(Ordering::Acquire);
        let mut refused = lock(&self.refused);
        if let Some(outcome) = refused.outcomes.remove(&ticket.0) {
            return outcome;
        }
        if ticket.0 < refused.forgotten_below {
            Outcome::StorageError
        } else if ticket.0 < done {
            Outcome::Kept
        } else {
            Outcome::Pending(ticket)
        }
    }

    /// Transactions ended so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Waits until more than `seen` transactions ended, or `timeout`.
    pub fn wait_commit(&self, seen: u64, timeout: Duration) {
        let guard = lock(&self.commit_lock);
        let _ = self.committed.wait_timeout_while(guard, timeout, |()| {
            self.commits.load(Ordering::Acquire) == seen
        });
    }

    /// Parks the calling thread until `ticket` is decided, or `timeout`. Only
    /// the transaction that decides it wakes the thread (a condition
    /// variable would wake every waiting connection at every commit).
    pub fn wait_decided(&self, ticket: Ticket, timeout: Duration) {
        let decided = || self.done_through.load(Ordering::Acquire) > ticket.0;
        if decided() {
            return;
        }
        lock(&self.waiters).push((ticket.0, thread::current()));
        // Decided between the check and the push: the writer may have
        // looked at the waiters already.
        if decided() {
            return;
        }
        thread::park_timeout(timeout);
        if !decided() {
            // Timed out: nobody removed the entry.
            let me = thread::current().id();
            lock(&self.waiters).retain(|(_, t)| t.id() != me);
        }
    }

    /// Calls `hook` after every transaction.
    pub fn on_commit(&self, hook: Hook) {
        lock(&self.hooks).push(hook);
    }

    /// Stops taking readings; the writer commits what is queued and ends.
    pub fn close(&self) {
        lock(&self.queue).closed = true;
        self.work.notify_all();
    }

    /// Waits up to `wait` for work; swaps every queued reading into `batch`
    /// (which must be empty, and whose room the queue takes over). True once
    /// closed.
    fn take(&self, wait: Duration, batch: &mut Vec<Queued>) -> bool {
        let deadline = Instant::now() + wait;
        let mut queue = lock(&self.queue);
        while queue.items.is_empty() && !queue.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            queue = self
                .work
                .wait_timeout(queue, left)
                .map_or_else(|p| p.into_inner().0, |(q, _)| q);
        }
        std::mem::swap(&mut queue.items, batch);
        queue.closed
    }

    /// Records the end of a transaction over tickets up to `last`, wakes
    /// every waiter and calls the hooks.
    fn decided(&self, last: u64, refused: Vec<(u64, Outcome)>) {
        if !refused.is_empty() {
            lock(&self.refused).extend(refused);
        }
        self.done_through.store(last + 1, Ordering::Release);
        lock(&self.waiters).retain(|(ticket, thread)| {
            let done = *ticket <= last;
            if done {
                thread.unpark();
            }
            !done
        });
        {
            let _guard = lock(&self.commit_lock);
            self.commits.fetch_add(1, Ordering::AcqRel);
        }
        self.committed.notify_all();
        self.call_hooks();
    }

    fn call_hooks(&self) {
        for hook in lock(&self.hooks).iter() {
            hook();
        }
    }
}

/// Starts the writer thread over the opened database.
pub fn spawn(
    opened: Opened,
    options: Options,
    shared: Arc<Shared>,
    latest: Arc<Latest>,
) -> io::Result<JoinHandle<()>> {
    let writer = Writer {
        opened,
        options,
        shared,
        latest,
        healthy: true,
        sweep_healthy: true,
        next_sweep: Instant::now(),
        more_old: false,
    };
    thread::Builder::new()
        .name("history".into())
        .spawn(move || writer.run())
}

struct Writer {
    opened: Opened,
    options: Options,
    shared: Arc<Shared>,
    latest: Arc<Latest>,
    /// The last transaction committed (the log says so once per change).
    healthy: bool,
    /// The last retention sweep worked.
    sweep_healthy: bool,
    next_sweep: Instant,
    /// The last sweep deleted a whole batch: sweep again soon.
    more_old: bool,
}

impl Writer {
    fn run(mut self) {
        let mut batch = Vec::new();
        loop {
            let wait = if self.more_old {
                Duration::ZERO
            } else {
                self.next_sweep.saturating_duration_since(Instant::now())
            };
            batch.clear();
            let closed = self.shared.take(wait, &mut batch);
            if !batch.is_empty() {
                self.commit(&batch);
            }
            // Stopping: everything queued is committed; no sweep, which
            // would only spend the little left of the 2 s.
            if closed {
                break;
            }
            self.sweep();
        }
        info!("history: writer stopped; everything queued is committed");
    }

    /// One transaction for `batch`; then its tickets are decided.
    fn commit(&mut self, batch: &[Queued]) {
        let fits = self.latest.admit(batch.iter().map(|q| &q.reading));
        let mut refused: Vec<(u64, Outcome)> = batch
            .iter()
            .zip(&fits)
            .filter(|(_, fit)| !**fit)
            .map(|(q, _)| (q.ticket, Outcome::StoreFull))
            .collect();
        match self.write(batch, &fits) {
            Ok(ids) => {
                let kept = batch.iter().zip(&fits).filter(|(_, fit)| **fit);
                let n = ids.len() as u64;
                self.latest.keep(
                    kept.zip(ids)
                        .map(|((q, _), id)| (&q.reading, q.now, id, q.ts_ms)),
                );
                let status = &self.latest.services().status;
                status.history_rows.fetch_add(n, Ordering::Relaxed);
                if !self.healthy {
                    info!(
                        "history: writing to {} works again; readings are acknowledged again",
                        self.options.path.display()
                    );
                    self.healthy = true;
                    status.history_healthy.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if self.healthy {
                    warn!(
                        "history: cannot write to {}: {e}; readings get storage_error until a write succeeds",
                        self.options.path.display()
                    );
                    self.healthy = false;
                    let status = &self.latest.services().status;
                    status.history_healthy.store(false, Ordering::Relaxed);
                }
                refused = batch
                    .iter()
                    .zip(&fits)
                    .map(|(q, fit)| match fit {
                        true => (q.ticket, Outcome::StorageError),
                        false => (q.ticket, Outcome::StoreFull),
                    })
                    .collect();
            }
        }
        let last = batch.last().map_or(0, |q| q.ticket);
        self.shared.decided(last, refused);
    }

    /// Inserts the readings that fit, in one transaction; their row ids.
    fn write(&mut self, batch: &[Queued], fits: &[bool]) -> rusqlite::Result<Vec<i64>> {
        let conn = &mut self.opened.conn;
        if !fits.contains(&true) {
            return Ok(Vec::new());
        }
        if !conn.is_autocommit() {
            // A failed COMMIT whose rollback failed too: start clean.
            let _ = conn.execute_batch("ROLLBACK");
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO readings (ts_ms, location, temp, hum, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (q, _) in batch.iter().zip(fits).filter(|(_, fit)| **fit) {
                let r = &q.reading;
                insert.execute((
                    q.ts_ms,
                    r.location.as_str(),
                    real(r.temp),
                    real(r.hum),
                    r.seq,
                ))?;
                ids.push(tx.last_insert_rowid());
            }
        }
        // The rollup, in the same transaction: it never disagrees with the
        // rows, whenever the process dies.
        rollup::add(
            &tx,
            batch
                .iter()
                .zip(fits)
                .filter(|(_, fit)| **fit)
                .map(|(q, _)| {
                    let r = &q.reading;
                    (r.location.as_str(), q.ts_ms, real(r.temp), real(r.hum))
                }),
        )?;
        tx.commit()?;
        Ok(ids)
    }

    /// One retention batch, when due.
    fn sweep(&mut self) {
        let Some(cutoff) = retention::cutoff(unix_ms(), self.options.retention_days) else {
            return;
        };
        if !self.more_old && Instant::now() < self.next_sweep {
            return;
        }
        self.next_sweep = Instant::now() + SWEEP_EVERY;
        match retention::sweep(&self.opened.conn, cutoff) {
            Ok(n) => {
                self.more_old = i64::try_from(n).is_ok_and(|n| n == retention::BATCH);
                if n > 0 {
                    debug!("history: retention deleted {n} row(s)");
                    let rows = &self.latest.services().status.history_rows;
                    let _ = rows.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                        Some(r.saturating_sub(n as u64))
                    });
                }
                if !self.sweep_healthy {
                    info!("history: retention works again");
                    self.sweep_healthy = true;
                }
            }
            Err(e) => {
                self.more_old = false;
                if self.sweep_healthy {
                    warn!(
                        "history: cannot delete old rows from {}: {e}; retrying every {} s",
                        self.options.path.display(),
                        SWEEP_EVERY.as_secs()
                    );
                    self.sweep_healthy = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use envhub_core::{Location, Tenths};

    use super::*;

    fn reading() -> Reading {
        Reading {
            location: Location::new("hall").unwrap(),
            temp: Tenths(200),
            hum: Tenths(500),
            seq: None,
        }
    }

    #[test]
    fn a_refusal_is_never_answered_kept_however_late_it_is_asked() {
        let shared = Shared::new();
        let last = MAX_REFUSED as u64 + 10;
        // Tickets 0..=MAX_REFUSED refused, the rest kept, in one decision.
        shared.decided(
            last,
            (0..=MAX_REFUSED as u64)
                .map(|t| (t, Outcome::StorageError))
                .collect(),
        );
        // Ticket 0 was forgotten to bound the memory: still not "kept".
        assert_eq!(shared.outcome(Ticket(0)), Outcome::StorageError);
        assert_eq!(shared.outcome(Ticket(1)), Outcome::StorageError);
        assert_eq!(shared.outcome(Ticket(last)), Outcome::Kept);
        assert_eq!(
            shared.outcome(Ticket(last + 1)),
            Outcome::Pending(Ticket(last + 1))
        );
    }

    #[test]
    fn a_reading_submitted_after_close_is_refused_and_the_loops_are_woken() {
        let shared = Shared::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        shared.on_commit(Box::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }));
        shared.close();
        let ticket = shared.submit(&reading(), 0, 0);
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        assert_eq!(shared.outcome(ticket), Outcome::StorageError);
    }
}
