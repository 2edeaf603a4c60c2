//! The netif rings (`xen/include/public/io/netif.h`) as netfront uses them,
//! in copy mode: the layouts, and what the front end accepts from the
//! backend. Plain memory logic, host-tested and fuzzed; netfront adds the
//! grants, pages and event channel.

use morgana_devices::NetCounters;

use crate::grant::GrantRef;
use crate::page::{SharedPage, PAGE};
use crate::ring::{FrontRing, RingError, Slots};

/// A transmit request: `size` bytes at `offset` in the granted page.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TxReq {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

/// A transmit response; a negative status is an error.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct TxRsp {
    pub id: u16,
    pub status: i16,
}

/// A receive buffer posted to the backend.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxReq {
    pub id: u16,
    pub pad: u16,
    pub gref: u32,
}

/// A received frame: a positive status is its length at `offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct RxRsp {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    pub status: i16,
}

/// `NETRXF_more_data`: the frame continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// The largest frame accepted (a 1500-byte MTU).
pub const MAX_FRAME: usize = 1500 + 14;

/// A backend broke the netif protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetifError {
    /// Ring indices or a response id.
    Ring(RingError),
    /// Extra-info slots, which follow only for features never negotiated
    /// (GSO); they carry no id, so the ring cannot be kept in step.
    ExtraInfo,
}

impl From<RingError> for NetifError {
    fn from(e: RingError) -> Self {
        NetifError::Ring(e)
    }
}

impl core::fmt::Display for NetifError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NetifError::Ring(e) => e.fmt(f),
            NetifError::ExtraInfo => f.write_str("backend sent extra-info slots that were not negotiated"),
        }
    }
}

/// A received frame: `len` bytes at `offset` in the page of buffer `id`.
/// The id stays held until [`RxRing::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFrame {
    /// Buffer id.
    pub id: u16,
    /// Start in the page.
    pub offset: usize,
    /// Length, 1..=[`MAX_FRAME`]; `offset + len` is within the page.
    pub len: usize,
}

/// The receive ring: buffers posted by id, responses checked.
pub struct RxRing {
    ring: FrontRing<RxReq, RxRsp>,
    ids: Slots,
    /// Inside a multi-slot frame being dropped.
    skipping: bool,
}

impl RxRing {
    /// A ring in `page` for `buffers` receive buffers (ids `0..buffers`).
    pub fn new(page: SharedPage, buffers: u16) -> RxRing {
        RxRing { ring: FrontRing::new(page), ids: Slots::new(buffers), skipping: false }
    }

    /// The ring's page.
    pub fn page(&self) -> SharedPage {
        self.ring.page()
    }

    /// Posts every free buffer; `gref(id)` is the grant of its page.
    /// Returns whether the backend wants a notification.
    pub fn repost(&mut self, gref: impl Fn(u16) -> GrantRef) -> bool {
        let mut pushed = false;
        while let Some(id) = self.ids.take() {
            if !self.ring.push_request(RxReq { id, pad: 0, gref: gref(id) }) {
                self.ids.untake(id);
                break;
            }
            pushed = true;
        }
        pushed && self.ring.publish()
    }

    /// Publishes posted buffers; whether to notify.
    pub fn publish(&mut self) -> bool {
        self.ring.publish()
    }

    /// The next frame, `None` when no response is waiting. Frames that
    /// cannot be used (empty, too long, outside the page, spread over
    /// several slots) are dropped, counted, and their buffers freed.
    pub fn next(&mut self, counters: &NetCounters) -> Result<Option<RxFrame>, NetifError> {
        while self.ring.responses()? > 0 {
            let rsp = self.ring.take_response();
            let id = self.ids.answer(rsp.id as u64)?;
            if rsp.flags & NETRXF_EXTRA_INFO != 0 {
                return Err(NetifError::ExtraInfo);
            }
            // A frame spread over several slots (scatter-gather, not
            // negotiated) is dropped whole: this slot and its followers.
            let continued = core::mem::replace(&mut self.skipping, rsp.flags & NETRXF_MORE_DATA != 0);
            let (offset, len) = (rsp.offset as usize, rsp.status as isize);
            if continued || self.skipping || len <= 0 || len as usize > MAX_FRAME || offset + len as usize > PAGE {
                if !continued {
                    counters.rx_dropped();
                }
                self.ids.release(id);
                continue;
            }
            counters.received(len as usize);
            return Ok(Some(RxFrame { id, offset, len: len as usize }));
        }
        Ok(None)
    }

    /// Frees a frame's buffer, to be posted again.
    pub fn release(&mut self, id: u16) {
        self.ids.release(id);
    }

    /// Asks to be notified of the next response, then looks again: whether
    /// responses are ready.
    pub fn final_check(&self) -> Result<bool, RingError> {
        self.ring.final_check()
    }
}

/// The transmit ring: buffers sent by id, responses checked.
pub struct TxRing {
    ring: FrontRing<TxReq, TxRsp>,
    ids: Slots,
}

impl TxRing {
    /// A ring in `page` for `buffers` transmit buffers.
    pub fn new(page: SharedPage, buffers: u16) -> TxRing {
        TxRing { ring: FrontRing::new(page), ids: Slots::new(buffers) }
    }

    /// The ring's page.
    pub fn page(&self) -> SharedPage {
        self.ring.page()
    }

    /// Frees the buffers of frames the backend has sent.
    pub fn reclaim(&mut self, counters: &NetCounters) -> Result<(), RingError> {
        let n = self.ring.responses()?;
        for _ in 0..n {
            let rsp = self.ring.take_response();
            let id = self.ids.answer(rsp.id as u64)?;
            self.ids.release(id);
            if rsp.status < 0 {
                counters.tx_dropped();
            }
        }
        Ok(())
    }

    /// Whether a frame can be sent now.
    pub fn ready(&self) -> bool {
        self.ids.free_count() > 0 && self.ring.free_requests() > 0
    }

    /// A free buffer id for the next frame.
    pub fn take(&mut self) -> Option<u16> {
        self.ids.take()
    }

    /// Sends `len` bytes from buffer `id` (granted as `gref`):
    /// `Some(notify)`, or `None` when the ring is full (the id is free
    /// again).
    pub fn send(&mut self, id: u16, gref: GrantRef, len: usize) -> Option<bool> {
        let req = TxReq { gref, offset: 0, flags: 0, id, size: len as u16 };
        if self.ring.push_request(req) {
            Some(self.ring.publish())
        } else {
            self.ids.untake(id);
            None
        }
    }

    /// Asks to be notified of the next response, then looks again.
    pub fn final_check(&self) -> Result<bool, RingError> {
        self.ring.final_check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::BackRing;

    fn rx() -> (RxRing, BackRing<RxReq, RxRsp>, NetCounters) {
        let page = SharedPage::new();
        let mut ring = RxRing::new(page, 4);
        let back = BackRing::attach(page);
        ring.repost(|id| 100 + id as u32);
        (ring, back, NetCounters::default())
    }

    #[test]
    fn frames_are_checked_against_the_page_and_the_mtu() {
        let (mut ring, mut back, c) = rx();
        let reqs: alloc::vec::Vec<RxReq> = core::iter::from_fn(|| back.take_request()).collect();
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[2].gref, 102);
        back.respond(RxRsp { id: 0, offset: 10, flags: 0, status: 60 });
        back.respond(RxRsp { id: 1, offset: 4000, flags: 0, status: 200 }); // past the page
        back.respond(RxRsp { id: 2, offset: 0, flags: 0, status: 1515 }); // over the MTU
        back.respond(RxRsp { id: 3, offset: 0, flags: 0, status: -1 }); // an error
        assert_eq!(ring.next(&c), Ok(Some(RxFrame { id: 0, offset: 10, len: 60 })));
        assert_eq!(ring.next(&c), Ok(None));
        assert_eq!(c.stats().rx_dropped, 3);
        assert_eq!(c.stats().rx_frames, 1);
        // The dropped buffers are free to post again; the held one is not.
        ring.repost(|_| 0);
        assert_eq!(core::iter::from_fn(|| back.take_request()).count(), 3);
        ring.release(0);
        ring.repost(|_| 0);
        assert_eq!(core::iter::from_fn(|| back.take_request()).count(), 1);
    }

    #[test]
    fn a_multi_slot_frame_is_dropped_whole() {
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 0, offset: 0, flags: NETRXF_MORE_DATA, status: 100 });
        back.respond(RxRsp { id: 1, offset: 0, flags: NETRXF_MORE_DATA, status: 100 });
        back.respond(RxRsp { id: 2, offset: 0, flags: 0, status: 100 });
        back.respond(RxRsp { id: 3, offset: 0, flags: 0, status: 100 });
        assert_eq!(ring.next(&c), Ok(Some(RxFrame { id: 3, offset: 0, len: 100 })));
        assert_eq!(c.stats().rx_dropped, 1);
    }

    #[test]
    fn duplicate_invented_and_extra_info_responses_are_errors() {
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 1, offset: 0, flags: 0, status: 60 });
        back.respond(RxRsp { id: 1, offset: 0, flags: 0, status: 60 });
        assert_eq!(ring.next(&c), Ok(Some(RxFrame { id: 1, offset: 0, len: 60 })));
        assert_eq!(ring.next(&c), Err(NetifError::Ring(RingError::UnknownId(1))));
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 9, offset: 0, flags: 0, status: 60 });
        assert_eq!(ring.next(&c), Err(NetifError::Ring(RingError::UnknownId(9))));
        let (mut ring, mut back, c) = rx();
        back.respond(RxRsp { id: 0, offset: 0, flags: NETRXF_EXTRA_INFO, status: 60 });
        assert_eq!(ring.next(&c), Err(NetifError::ExtraInfo));
        let (mut ring, mut back, c) = rx();
        back.force_rsp_prod(5);
        assert!(matches!(ring.next(&c), Err(NetifError::Ring(RingError::ProducerOverrun { .. }))));
    }

    #[test]
    fn transmit_ids_come_back_once() {
        let page = SharedPage::new();
        let mut tx = TxRing::new(page, 2);
        let mut back = BackRing::<TxReq, TxRsp>::attach(page);
        let c = NetCounters::default();
        let a = tx.take().unwrap();
        tx.send(a, 7, 60).unwrap();
        let b = tx.take().unwrap();
        tx.send(b, 8, 61).unwrap();
        assert!(!tx.ready(), "both buffers in flight");
        let req = back.take_request().unwrap();
        assert_eq!((req.gref, req.size), (7, 60));
        back.respond(TxRsp { id: req.id, status: -1 });
        assert_eq!(tx.reclaim(&c), Ok(()));
        assert_eq!(c.stats().tx_dropped, 1);
        assert!(tx.ready());
        back.respond(TxRsp { id: req.id, status: 0 });
        assert_eq!(tx.reclaim(&c), Err(RingError::UnknownId(req.id as u64)));
    }
}
