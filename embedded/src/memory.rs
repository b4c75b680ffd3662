//! The memory of a server's sockets, provided by its caller (no heap).

use smoltcp::iface::SocketStorage;

/// Everything the `N` sockets of a [`crate::Server`] need: the socket set's
/// storage, an `RX`-byte receive and a `TX`-byte send buffer per socket,
/// and one `RX`-byte scratch buffer that the loop copies received bytes
/// into (so a connection always sees everything received).
///
/// About `N * (RX + TX) + RX` bytes. Create it once, in a `static` (for
/// example through `static_cell`) on a microcontroller or with
/// `Box::leak` in a std program, and lend it to [`crate::Server::new`] for
/// the server's whole life.
pub struct SocketMemory<'a, const N: usize, const RX: usize, const TX: usize> {
    pub(crate) storage: [SocketStorage<'a>; N],
    pub(crate) buffers: [SlotBuffers<RX, TX>; N],
    pub(crate) scratch: [u8; RX],
}

/// The two buffers of one socket.
pub(crate) struct SlotBuffers<const RX: usize, const TX: usize> {
    pub(crate) rx: [u8; RX],
    pub(crate) tx: [u8; TX],
}

impl<const N: usize, const RX: usize, const TX: usize> SocketMemory<'_, N, RX, TX> {
    /// Zeroed memory, usable in a `static` initializer.
    pub const fn new() -> Self {
        SocketMemory {
            storage: [const { SocketStorage::EMPTY }; N],
            buffers: [const {
                SlotBuffers {
                    rx: [0; RX],
                    tx: [0; TX],
                }
            }; N],
            scratch: [0; RX],
        }
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for SocketMemory<'_, N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}
