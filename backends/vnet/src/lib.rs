//! In-memory Ethernet: network devices joined by a virtual hub, in one
//! process (the idea of MirageOS's vnetif). Used to test the direct stack
//! without a kernel, a TAP device or a VM.
//!
//! Every frame sent on one [`Port`] is queued at every other port. Faults
//! can be injected: loss and reordering at given rates, from a seeded
//! generator so a failing run can be repeated.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::{Context, Waker};

use morgana_devices::{LinkState, Net, NetStats};

/// Frames a port queues before it drops new arrivals.
pub const QUEUE_FRAMES: usize = 512;
const MTU: usize = 1500;
const MAX_FRAME: usize = MTU + 14;

/// Faults applied to every frame crossing the hub.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Frames lost, per million.
    pub loss_ppm: u32,
    /// Frames held back and delivered after the next one, per million.
    pub reorder_ppm: u32,
    /// Seed for the fault generator.
    pub seed: u64,
}

struct PortState {
    queue: VecDeque<Vec<u8>>,
    held: Option<Vec<u8>>,
    waker: Option<Waker>,
    stats: NetStats,
}

struct Hub {
    ports: Vec<PortState>,
    pool: Vec<Vec<u8>>,
    faults: Faults,
    rng: u64,
}

impl Hub {
    fn next_ppm(&mut self) -> u32 {
        // xorshift64*: fault injection only, not cryptography.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32 % 1_000_000
    }

    fn buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(MAX_FRAME))
    }

    fn deliver(&mut self, from: usize, frame: &[u8]) {
        for to in 0..self.ports.len() {
            if to == from {
                continue;
            }
            if self.faults.loss_ppm > 0 && self.next_ppm() < self.faults.loss_ppm {
                self.ports[to].stats.rx_dropped += 1;
                continue;
            }
            let mut copy = self.buffer();
            copy.clear();
            copy.extend_from_slice(frame);
            let hold = self.faults.reorder_ppm > 0 && self.next_ppm() < self.faults.reorder_ppm;
            let port = &mut self.ports[to];
            let mut frames = [None, None];
            if hold && port.held.is_none() {
                port.held = Some(copy);
            } else {
                frames[0] = Some(copy);
                frames[1] = port.held.take();
            }
            for f in frames.into_iter().flatten() {
                if port.queue.len() >= QUEUE_FRAMES {
                    port.stats.rx_dropped += 1;
                    self.pool.push(f);
                } else {
                    port.queue.push_back(f);
                }
            }
            if let Some(w) = port.waker.take() {
                w.wake();
            }
        }
    }
}

/// A virtual Ethernet hub. Clones share it.
#[derive(Clone)]
pub struct Switch {
    hub: Rc<RefCell<Hub>>,
}

impl Default for Switch {
    fn default() -> Self {
        Switch::new(Faults::default())
    }
}

impl Switch {
    /// A hub applying `faults` to every frame.
    pub fn new(faults: Faults) -> Switch {
        Switch { hub: Rc::new(RefCell::new(Hub { ports: Vec::new(), pool: Vec::new(), faults, rng: faults.seed | 1 })) }
    }

    /// Adds a port with the given MAC address.
    pub fn port(&self, mac: [u8; 6]) -> Port {
        let mut hub = self.hub.borrow_mut();
        hub.ports.push(PortState { queue: VecDeque::new(), held: None, waker: None, stats: NetStats::default() });
        Port { hub: self.hub.clone(), index: hub.ports.len() - 1, mac }
    }
}

/// One port of a [`Switch`]: a [`Net`] device.
pub struct Port {
    hub: Rc<RefCell<Hub>>,
    index: usize,
    mac: [u8; 6],
}

/// A received frame.
pub struct Rx {
    hub: Rc<RefCell<Hub>>,
    frame: Vec<u8>,
}

/// A transmit slot.
pub struct Tx {
    hub: Rc<RefCell<Hub>>,
    index: usize,
}

impl morgana_devices::RxToken for Rx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(mut self, f: F) -> R {
        let r = f(&mut self.frame);
        self.hub.borrow_mut().pool.push(self.frame);
        r
    }
}

impl morgana_devices::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = self.hub.borrow_mut().buffer();
        buf.clear();
        buf.resize(len, 0);
        let r = f(&mut buf);
        let mut hub = self.hub.borrow_mut();
        let stats = &mut hub.ports[self.index].stats;
        if len > MAX_FRAME {
            stats.tx_dropped += 1;
        } else {
            stats.tx_frames += 1;
            stats.tx_bytes += len as u64;
            hub.deliver(self.index, &buf);
        }
        hub.pool.push(buf);
        r
    }
}

impl Net for Port {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx, Tx)> {
        let mut hub = self.hub.borrow_mut();
        let port = &mut hub.ports[self.index];
        match port.queue.pop_front() {
            Some(frame) => {
                port.stats.rx_frames += 1;
                port.stats.rx_bytes += frame.len() as u64;
                drop(hub);
                Some((Rx { hub: self.hub.clone(), frame }, Tx { hub: self.hub.clone(), index: self.index }))
            }
            None => {
                port.waker = Some(cx.waker().clone());
                None
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<Tx> {
        Some(Tx { hub: self.hub.clone(), index: self.index })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        MTU
    }

    fn stats(&self) -> NetStats {
        self.hub.borrow().ports[self.index].stats
    }
}
