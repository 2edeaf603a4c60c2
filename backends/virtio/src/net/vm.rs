//! The driver over virtio-drivers' `VirtIONetRaw` and an IOAPIC line.

use morgana_x86::IrqLine;
use virtio_drivers::device::net::VirtIONetRaw;

use super::{Error, Interrupt, NetDevice, Queues, QUEUE};
use crate::hal::VirtioHal;
use crate::Transport;

type Raw = VirtIONetRaw<VirtioHal, Transport, QUEUE>;

/// A virtio-net device found at boot.
pub type VirtioNet = NetDevice<Raw, IrqLine>;

impl VirtioNet {
    /// Negotiates with the device and posts the receive buffers.
    pub fn new(transport: Transport, gsi: Option<u32>) -> Result<VirtioNet, Error> {
        let dev = Raw::new(transport)?;
        let irq = gsi.and_then(|g| IrqLine::route(g, true));
        let mac = dev.mac_address();
        Ok(NetDevice::with_queues(dev, irq, mac))
    }
}

impl Interrupt for IrqLine {
    fn register(&self, waker: &core::task::Waker) {
        IrqLine::register(self, waker);
    }
    fn acknowledge(&self, device_ack: impl FnOnce()) {
        IrqLine::acknowledge(self, device_ack);
    }
}

impl Queues for Raw {
    unsafe fn receive_begin(&mut self, buf: &mut [u8]) -> Result<u16, Error> {
        // SAFETY: the caller keeps `buf` in place and untouched until
        // `receive_complete`, as this trait method requires.
        unsafe { Raw::receive_begin(self, buf) }
    }
    fn poll_receive(&self) -> Option<u16> {
        Raw::poll_receive(self)
    }
    unsafe fn receive_complete(&mut self, token: u16, buf: &mut [u8]) -> Result<(usize, usize), Error> {
        // SAFETY: the caller passes the buffer posted under `token`.
        unsafe { Raw::receive_complete(self, token, buf) }
    }
    fn fill_buffer_header(&self, buf: &mut [u8]) -> Result<usize, Error> {
        Raw::fill_buffer_header(self, buf)
    }
    unsafe fn transmit_begin(&mut self, buf: &[u8]) -> Result<u16, Error> {
        // SAFETY: the caller keeps `buf` in place and unmodified until
        // `transmit_complete`, as this trait method requires.
        unsafe { Raw::transmit_begin(self, buf) }
    }
    fn poll_transmit(&mut self) -> Option<u16> {
        Raw::poll_transmit(self)
    }
    unsafe fn transmit_complete(&mut self, token: u16, buf: &[u8]) -> Result<usize, Error> {
        // SAFETY: the caller passes the buffer given to `transmit_begin`
        // for `token`.
        unsafe { Raw::transmit_complete(self, token, buf) }
    }
    fn ack_interrupt(&mut self) {
        Raw::ack_interrupt(self);
    }
}
