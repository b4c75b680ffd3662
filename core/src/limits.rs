//! Every capacity and every connection rule of the protocol, in one place.
//!
//! The shells (host, `envhub-tap`, firmware) take these numbers from here;
//! none keeps a copy. The timers are enforced by [`crate::Connection`]
//! (idle timeout, write stall, close linger, shutdown grace) or, for what
//! happens before a connection exists (the half-open handshake), by the
//! shell with [`HANDSHAKE_TIMEOUT_MS`].

/// Longest line, in bytes, not counting its LF and one CR directly before it.
pub const MAX_LINE: usize = 512;

/// Longest location name, in bytes of UTF-8.
pub const MAX_LOCATION: usize = 32;

/// Most distinct locations the store holds.
pub const MAX_LOCATIONS: usize = 64;

/// Idle timeout used when the shell configures none: 300 s. A configured
/// idle timeout of 0 disables it.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;

/// The host's `--max-clients` when none is given.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;

/// The host's `--max-per-source` is at least this many connections when
/// none is given (see [`crate::Config::host_max_per_source`]).
pub const MIN_DEFAULT_MAX_PER_SOURCE: usize = 64;

/// A connection that owes output (a reply, or a closing error, that does
/// not fit into what the peer reads) and makes no output progress for this
/// long is aborted (reset), whatever it is doing: a peer that sends and
/// never reads cannot hold a slot.
pub const WRITE_STALL_MS: u64 = 5_000;

/// How long a closing connection may go without any output progress before
/// the core tells the shell to abort it (a peer that never reads).
pub const CLOSE_LINGER_MS: u64 = 1_000;

/// After the server is told to stop ([`crate::Connection::handle_shutdown`]),
/// every connection still open this long after is aborted, even one whose
/// peer keeps reading slowly.
pub const SHUTDOWN_GRACE_MS: u64 = 1_500;

/// The latest a shell exits after it was told to stop, whatever its
/// sockets still do (the protocol allows 2 s).
pub const SHUTDOWN_EXIT_MS: u64 = 1_800;

/// A TCP handshake that has not completed this long after the SYN arrived
/// is dropped and its slot listens again (shells with their own TCP stack:
/// `envhub-tap` and the firmware), even when the reset cannot be sent: a
/// peer that never completes the handshake may well be unreachable.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// Largest single reply chunk: a reading acknowledgement, a `stats` reply,
/// or one `latest` item. A shell whose output buffer is at least this large
/// always makes progress with every call; smaller buffers still work.
pub const MAX_CHUNK: usize = 256;
