//! Adapts a [`morgana_devices::Net`] device to smoltcp's `phy::Device`.

use core::task::Context;

use morgana_devices::{Net, RxToken, TxToken};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// A device borrowed together with the waker of the task driving the stack,
/// so the device can wake it when frames arrive or transmit slots free up.
pub(crate) struct Adapter<'a, 'c, D: Net> {
    pub(crate) device: &'a mut D,
    pub(crate) cx: &'a mut Context<'c>,
}

pub(crate) struct Rx<T>(T);
pub(crate) struct Tx<T>(T);

impl<T: RxToken> phy::RxToken for Rx<T> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        self.0.consume(|buf| f(buf))
    }
}

impl<T: TxToken> phy::TxToken for Tx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.consume(len, f)
    }
}

impl<D: Net> phy::Device for Adapter<'_, '_, D> {
    type RxToken<'a>
        = Rx<D::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<D::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.device.receive(self.cx).map(|(rx, tx)| (Rx(rx), Tx(tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        self.device.transmit(self.cx).map(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.device.mtu() + 14;
        caps
    }
}

/// One frame the stack already holds, offered to smoltcp as a device with
/// exactly that frame to receive. A reply goes out through `tx`, the
/// transmit slot the real device handed out with the frame, or nowhere if
/// there is none (for a frame the stack made up).
pub(crate) struct OneFrame<'f, T> {
    frame: Option<&'f [u8]>,
    tx: Option<T>,
    mtu: usize,
}

impl<'f, T: TxToken> OneFrame<'f, T> {
    pub(crate) fn new(frame: &'f [u8], tx: Option<T>, mtu: usize) -> Self {
        OneFrame { frame: Some(frame), tx, mtu }
    }
}

pub(crate) struct FrameRx<'f>(&'f [u8]);

/// A transmit slot, or a sink for a reply nobody should see.
pub(crate) struct MaybeTx<T>(Option<T>);

impl phy::RxToken for FrameRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<T: TxToken> phy::TxToken for MaybeTx<T> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        match self.0 {
            Some(tx) => tx.consume(len, f),
            None => f(&mut alloc::vec![0; len]),
        }
    }
}

impl<'f, T: TxToken> phy::Device for OneFrame<'f, T> {
    type RxToken<'a>
        = FrameRx<'f>
    where
        Self: 'a;
    type TxToken<'a>
        = MaybeTx<T>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.frame.take()?;
        Some((FrameRx(frame), MaybeTx(self.tx.take())))
    }

    fn transmit(&mut self, _: Instant) -> Option<Self::TxToken<'_>> {
        None // replies go out with the frame's own slot; the rest at egress
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps
    }
}
