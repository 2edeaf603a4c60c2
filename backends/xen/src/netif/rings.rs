//! The rings as the front end sees them: what it accepts from the backend.

use super::*;

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
