//! Ethernet network devices.

use core::task::Context;

/// An Ethernet network device: a NIC, a TAP device, a virtual link.
///
/// Frames are whole Ethernet frames (destination MAC first), without the
/// frame check sequence. The largest frame is `mtu() + 14` bytes.
///
/// The interface is token based, like smoltcp's `phy::Device` and
/// embassy-net-driver's `Driver`: [`Net::receive`] and [`Net::transmit`]
/// hand out tokens that borrow a frame buffer owned by the device, so a frame
/// crosses the interface without a heap allocation.
///
/// # Readiness
///
/// When `receive` or `transmit` returns `None`, the device must have
/// registered `cx.waker()` and must wake it once a frame has arrived (receive)
/// or a transmit slot is free (transmit). Only the most recently registered
/// waker needs to be woken. This lets an executor sleep until the device has
/// work instead of polling it.
///
/// # Errors
///
/// Frame-level failures are never reported to the caller: a frame that cannot
/// be sent or that arrives damaged or too large is dropped and counted in
/// [`NetStats`]. Link loss is reported through [`Net::link_state`].
pub trait Net {
    /// Token for one received frame; see [`RxToken`].
    type RxToken<'a>: RxToken
    where
        Self: 'a;
    /// Token for one frame to transmit; see [`TxToken`].
    type TxToken<'a>: TxToken
    where
        Self: 'a;

    /// Takes one received frame, if any, together with a transmit token so a
    /// reply can be sent at once (both tokens borrow the device).
    ///
    /// Returns `None` when no frame is waiting *or* no transmit slot is free;
    /// the waker in `cx` is then woken when both may be available. Never
    /// blocks.
    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)>;

    /// Takes a transmit slot, if one is free. Returns `None` when the transmit
    /// queue is full; the waker in `cx` is then woken when a slot frees up.
    /// Never blocks.
    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Self::TxToken<'_>>;

    /// Current link state. When the state is `Down` the waker in `cx` is woken
    /// when it changes. Devices without link detection report `Up`.
    fn link_state(&mut self, cx: &mut Context<'_>) -> LinkState;

    /// The device's MAC address. Constant for the life of the device.
    fn mac_address(&self) -> [u8; 6];

    /// Largest IP packet (Ethernet payload) the device carries, usually 1500.
    /// Constant for the life of the device.
    fn mtu(&self) -> usize;

    /// Frame, byte and drop counters since the device was opened.
    fn stats(&self) -> NetStats;
}

/// A received frame, borrowed from the device.
pub trait RxToken {
    /// Calls `f` with the frame. The buffer is only valid inside `f`; it is
    /// returned to the device when `f` returns. `f` may modify the buffer in
    /// place.
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R;
}

/// A transmit slot, borrowed from the device.
pub trait TxToken {
    /// Calls `f` with a zeroed or stale buffer of exactly `len` bytes, which
    /// `f` fills with one Ethernet frame; the frame is queued for transmission
    /// when `f` returns. A `len` larger than `mtu() + 14` is a caller bug: the
    /// device then passes a buffer of the requested size but drops the frame
    /// and counts it in `tx_dropped`.
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R;
}

/// Whether the link can carry frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Frames can be sent and received.
    Up,
    /// No carrier: transmitted frames are dropped.
    Down,
}

/// Counters of a network device since it was opened. They only grow (and
/// wrap at `u64::MAX`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames handed to the stack.
    pub rx_frames: u64,
    /// Bytes in those frames.
    pub rx_bytes: u64,
    /// Frames that arrived but were dropped (too large, no buffer, damaged).
    pub rx_dropped: u64,
    /// Frames queued for transmission.
    pub tx_frames: u64,
    /// Bytes in those frames.
    pub tx_bytes: u64,
    /// Frames given to the device that it could not send.
    pub tx_dropped: u64,
}

/// The counters a driver keeps for [`Net::stats`]. They count through a
/// shared reference, so a driver's tokens can hold `&NetCounters`.
#[derive(Debug, Default)]
pub struct NetCounters {
    rx_frames: core::cell::Cell<u64>,
    rx_bytes: core::cell::Cell<u64>,
    rx_dropped: core::cell::Cell<u64>,
    tx_frames: core::cell::Cell<u64>,
    tx_bytes: core::cell::Cell<u64>,
    tx_dropped: core::cell::Cell<u64>,
}

fn bump(c: &core::cell::Cell<u64>, n: u64) {
    c.set(c.get().wrapping_add(n));
}

impl NetCounters {
    /// A frame of `len` bytes was handed to the stack.
    pub fn received(&self, len: usize) {
        bump(&self.rx_frames, 1);
        bump(&self.rx_bytes, len as u64);
    }

    /// An arriving frame was dropped.
    pub fn rx_dropped(&self) {
        bump(&self.rx_dropped, 1);
    }

    /// A frame of `len` bytes was queued for transmission.
    pub fn sent(&self, len: usize) {
        bump(&self.tx_frames, 1);
        bump(&self.tx_bytes, len as u64);
    }

    /// A frame could not be sent.
    pub fn tx_dropped(&self) {
        bump(&self.tx_dropped, 1);
    }

    /// The counts so far.
    pub fn stats(&self) -> NetStats {
        NetStats {
            rx_frames: self.rx_frames.get(),
            rx_bytes: self.rx_bytes.get(),
            rx_dropped: self.rx_dropped.get(),
            tx_frames: self.tx_frames.get(),
            tx_bytes: self.tx_bytes.get(),
            tx_dropped: self.tx_dropped.get(),
        }
    }
}
