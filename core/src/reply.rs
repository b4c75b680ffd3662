//! Replies: what is owed to the client, and how each is written.
//!
//! A [`Reply`] holds everything needed to write its bytes again (a snapshot
//! of the values, the time of the request), so a reply cut off by a full
//! output buffer resumes byte-exactly later. `latest` over the whole store is
//! a walk: header, one chunk per location resumed after the last location
//! written, then the footer; it never needs more memory than one entry.

use crate::error::ErrorCode;
use crate::hub::{Hub, Ticket};
use crate::reading::{Location, Reading};
use crate::sink::Sink;
use crate::stats::Counters;
use crate::store::Entry;

/// The bytes of a `busy` reply.
pub const BUSY: &[u8] = b"{\"ok\":false,\"error\":\"busy\"}\n";

/// One reply owed to the client.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    Error(ErrorCode),
    Pong,
    Bye,
    Stored(Reading),
    /// A reading the hub has not decided on yet: nothing is written until
    /// the connection settles it into `Stored` or an error.
    Awaiting(Ticket, Reading),
    Stats {
        client: u64,
        counters: Counters,
    },
    One {
        entry: Entry,
        at: u64,
    },
    All(Walk),
}

/// Progress through a `latest` over the whole store.
#[derive(Debug, Clone)]
pub(crate) struct Walk {
    at: u64,
    phase: Phase,
    /// Where the walk resumes: the entry finished last after a stop (the
    /// walk only stops on an entry cut off, kept in `partial`).
    cursor: Option<Location>,
    /// An entry whose chunk was cut off, kept so it resumes unchanged.
    partial: Option<Entry>,
    first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Items,
    Tail,
}

impl Walk {
    /// A walk over the store as of `at`.
    pub(crate) fn new(at: u64) -> Self {
        Walk {
            at,
            phase: Phase::Head,
            cursor: None,
            partial: None,
            first: true,
        }
    }
}

impl Reply {
    /// Writes what fits of the reply; `offset` counts the bytes of the
    /// current chunk already written. True when the whole reply is out.
    pub(crate) fn write<H: Hub + ?Sized>(
        &mut self,
        offset: &mut usize,
        sink: &mut Sink<'_>,
        hub: &mut H,
    ) -> bool {
        let result = match self {
            Reply::All(walk) => return walk.write(offset, sink, hub),
            Reply::Awaiting(..) => return false,
            Reply::Error(code) => sink.chunk(*offset, |s| error(s, *code)),
            Reply::Pong => sink.chunk(*offset, |s| s.put(b"{\"ok\":true,\"pong\":true}\n")),
            Reply::Bye => sink.chunk(*offset, |s| s.put(b"{\"ok\":true,\"bye\":true}\n")),
            Reply::Stored(r) => sink.chunk(*offset, |s| stored(s, r)),
            Reply::Stats { client, counters } => {
                sink.chunk(*offset, |s| stats(s, *client, counters))
            }
            Reply::One { entry, at } => sink.chunk(*offset, |s| {
                s.put(b"{\"ok\":true,\"readings\":[");
                item(s, entry, *at, true);
                s.put(b"]}\n");
            }),
        };
        finish_chunk(result, offset)
    }
}

/// Applies a chunk's outcome to `offset`; true when it completed.
fn finish_chunk(result: Result<(), usize>, offset: &mut usize) -> bool {
    match result {
        Ok(()) => {
            *offset = 0;
            true
        }
        Err(n) => {
            *offset = n;
            false
        }
    }
}

impl Walk {
    fn write<H: Hub + ?Sized>(
        &mut self,
        offset: &mut usize,
        sink: &mut Sink<'_>,
        hub: &mut H,
    ) -> bool {
        if self.phase == Phase::Head {
            let r = sink.chunk(*offset, |s| s.put(b"{\"ok\":true,\"readings\":["));
            if !finish_chunk(r, offset) {
                return false;
            }
            self.phase = Phase::Items;
        }
        if self.phase == Phase::Items {
            if let Some(entry) = &self.partial {
                let r = sink.chunk(*offset, |s| item(s, entry, self.at, self.first));
                if !finish_chunk(r, offset) {
                    return false;
                }
                self.cursor = Some(entry.location.clone());
                self.partial = None;
                self.first = false;
            }
            let (at, partial, first) = (self.at, &mut self.partial, &mut self.first);
            // The cursor only moves when the walk stops: an entry cut off
            // is kept whole in `partial`, and the cursor becomes its
            // location once it is finished.
            hub.visit_after(self.cursor.as_ref(), &mut |entry| match sink
                .chunk(0, |s| item(s, entry, at, *first))
            {
                Ok(()) => {
                    *first = false;
                    true
                }
                Err(n) => {
                    *partial = Some(entry.clone());
                    *offset = n;
                    false
                }
            });
            if self.partial.is_some() {
                return false;
            }
            self.phase = Phase::Tail;
        }
        let r = sink.chunk(*offset, |s| s.put(b"]}\n"));
        finish_chunk(r, offset)
    }
}

fn error(s: &mut Sink<'_>, code: ErrorCode) {
    s.put(b"{\"ok\":false,\"error\":\"");
    s.put(code.as_str().as_bytes());
    if let Some(field) = code.field() {
        s.put(b"\",\"field\":\"");
        s.put(field.as_str().as_bytes());
    }
    s.put(b"\"}\n");
}

fn stored(s: &mut Sink<'_>, r: &Reading) {
    s.put(b"{\"ok\":true,\"location\":\"");
    s.put(r.location.as_bytes());
    s.put(b"\",\"temp\":");
    s.put_tenths(r.temp);
    s.put(b",\"hum\":");
    s.put_tenths(r.hum);
    if let Some(seq) = r.seq {
        s.put(b",\"seq\":");
        s.put_u64(u64::from(seq));
    }
    s.put(b"}\n");
}

fn stats(s: &mut Sink<'_>, client: u64, c: &Counters) {
    s.put(b"{\"ok\":true,\"client\":");
    s.put_u64(client);
    s.put(b",\"clients\":");
    s.put_u64(c.clients);
    s.put(b",\"readings\":");
    s.put_u64(c.readings);
    s.put(b",\"errors\":");
    s.put_u64(c.errors);
    s.put(b",\"locations\":");
    s.put_u64(c.locations);
    s.put(b",\"uptime_ms\":");
    s.put_u64(c.uptime_ms);
    s.put(b"}\n");
}

fn item(s: &mut Sink<'_>, e: &Entry, at: u64, first: bool) {
    if !first {
        s.put(b",");
    }
    s.put(b"{\"location\":\"");
    s.put(e.location.as_bytes());
    s.put(b"\",\"temp\":");
    s.put_tenths(e.temp);
    s.put(b",\"hum\":");
    s.put_tenths(e.hum);
    s.put(b",\"age_ms\":");
    s.put_u64(at.saturating_sub(e.stored_at));
    s.put(b"}");
}
