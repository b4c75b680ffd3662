//! The memory of a server's sockets, provided by its caller (no heap).

use envhub_core::Store;
use smoltcp::iface::SocketStorage;
use smoltcp::wire::IpAddress;

use crate::slot::Slot;

/// Everything big a [`crate::Server`] with `N` sockets needs: the socket
/// set's storage, an `RX`-byte receive and a `TX`-byte send buffer per
/// socket, one `RX`-byte scratch buffer that the loop copies received bytes
/// into (so a connection always sees everything received), the connection
/// slots and the store. The `Server` itself stays small.
///
/// About `N * (RX + TX + 750) + RX + 3600` bytes. [`SocketMemory::new`] is
/// all zero bytes (the vectors start empty and are filled by
/// `Server::new`), so a `static` holding it lands in `.bss`: no flash for
/// an initializer, and nothing this big is ever built on the stack.
/// Create it once, in a `static` (for example a `static_cell::ConstStaticCell`)
/// on a microcontroller or with `Box::leak` in a std program, and lend it to
/// [`crate::Server::new`] for the server's whole life.
pub struct SocketMemory<'a, const N: usize, const RX: usize, const TX: usize> {
    pub(crate) storage: heapless::Vec<SocketStorage<'a>, N>,
    pub(crate) slots: heapless::Vec<Slot, N>,
    pub(crate) store: Store,
    pub(crate) buffers: [SlotBuffers<RX, TX>; N],
    pub(crate) scratch: [u8; RX],
    pub(crate) sources: [Option<IpAddress>; N],
}

/// The two buffers of one socket.
pub(crate) struct SlotBuffers<const RX: usize, const TX: usize> {
    pub(crate) rx: [u8; RX],
    pub(crate) tx: [u8; TX],
}

impl<const N: usize, const RX: usize, const TX: usize> SocketMemory<'_, N, RX, TX> {
    /// Zeroed memory, usable in a `static` initializer (all zero bytes).
    pub const fn new() -> Self {
        SocketMemory {
            storage: heapless::Vec::new(),
            slots: heapless::Vec::new(),
            store: Store::new(),
            buffers: [const {
                SlotBuffers {
                    rx: [0; RX],
                    tx: [0; TX],
                }
            }; N],
            scratch: [0; RX],
            sources: [None; N],
        }
    }
}

impl<const N: usize, const RX: usize, const TX: usize> Default for SocketMemory<'_, N, RX, TX> {
    fn default() -> Self {
        Self::new()
    }
}
