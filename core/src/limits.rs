//! Every capacity of the protocol, in one place.

/// Longest line, in bytes, not counting its LF and one CR directly before it.
pub const MAX_LINE: usize = 512;

/// Longest location name, in bytes of UTF-8.
pub const MAX_LOCATION: usize = 32;

/// Most distinct locations the store holds.
pub const MAX_LOCATIONS: usize = 64;

/// Idle timeout used when the shell configures none: 300 s.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;

/// How long a closing connection may go without any output progress before
/// the core tells the shell to abort it (a peer that never reads).
pub const CLOSE_LINGER_MS: u64 = 1_000;

/// Largest single reply chunk: a reading acknowledgement, a `stats` reply,
/// or one `latest` item. A shell whose output buffer is at least this large
/// always makes progress with every call; smaller buffers still work.
pub const MAX_CHUNK: usize = 256;
