//! Xen's shared rings (`xen/include/public/io/ring.h`), front end.
//!
//! A ring is one shared page: four 32-bit indices (request producer,
//! request event, response producer, response event), 48 bytes of padding,
//! then a power-of-two array of slots, each big enough for a request or a
//! response. The front end produces requests and consumes responses.
//!
//! The backend is another domain and is not trusted: every index it writes
//! is checked before use, so a wrong producer or a response for a request
//! that was never made is reported as [`RingError`] rather than read out of
//! bounds.

use core::marker::PhantomData;
use core::mem::size_of;
use core::sync::atomic::{fence, Ordering};

use crate::page::{SharedPage, PAGE};

pub(crate) const HEADER: usize = 64;

/// A backend broke the ring protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The response producer claims more responses than requests made.
    ProducerOverrun {
        /// Responses claimed.
        claimed: u32,
        /// Requests outstanding.
        outstanding: u32,
    },
    /// A response names a request that is not outstanding.
    UnknownId(u64),
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::ProducerOverrun { claimed, outstanding } => {
                write!(f, "backend claims {claimed} responses with {outstanding} requests outstanding")
            }
            RingError::UnknownId(id) => write!(f, "backend answered unknown request {id}"),
        }
    }
}

/// The front end of a shared ring of `Req`uests and `Rsp`onses.
pub struct FrontRing<Req: Copy, Rsp: Copy> {
    page: SharedPage,
    size: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<Req: Copy, Rsp: Copy> FrontRing<Req, Rsp> {
    /// Slots that fit a page (a power of two).
    pub const SLOTS: u32 = {
        let slot = if size_of::<Req>() > size_of::<Rsp>() { size_of::<Req>() } else { size_of::<Rsp>() };
        let n = (PAGE - HEADER) / slot;
        1 << (usize::BITS - 1 - n.leading_zeros())
    };

    pub(crate) fn slot_size() -> usize {
        size_of::<Req>().max(size_of::<Rsp>())
    }

    /// Initialises the shared page as an empty ring and returns its front.
    pub fn new(page: SharedPage) -> FrontRing<Req, Rsp> {
        let ring = FrontRing { page, size: Self::SLOTS, req_prod_pvt: 0, rsp_cons: 0, _types: PhantomData };
        ring.write_index(0, 0); // req_prod
        ring.write_index(1, 1); // req_event
        ring.write_index(2, 0); // rsp_prod
        ring.write_index(3, 1); // rsp_event
        ring
    }

    /// The shared page.
    pub fn page(&self) -> SharedPage {
        self.page
    }

    /// Number of slots.
    pub fn size(&self) -> u32 {
        self.size
    }

    fn index_ptr(&self, i: usize) -> *mut u32 {
        // In-page: the four indices are the first 16 bytes.
        self.page.ptr().wrapping_add(4 * i).cast()
    }

    fn read_index(&self, i: usize) -> u32 {
        // SAFETY: the page is a live, page-aligned, leaked allocation (or a
        // Xen-owned frame); indices 0..4 lie in its first 16 bytes, 4-byte
        // aligned. The other domain writes them concurrently, hence volatile.
        unsafe { self.index_ptr(i).read_volatile() }
    }

    fn write_index(&self, i: usize, v: u32) {
        // SAFETY: as for `read_index`.
        unsafe { self.index_ptr(i).write_volatile(v) }
    }

    fn slot(&self, idx: u32) -> *mut u8 {
        let i = (idx & (self.size - 1)) as usize;
        self.page.ptr().wrapping_add(HEADER + i * Self::slot_size())
    }

    /// Requests that can be queued now.
    pub fn free_requests(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Queues a request (not yet visible to the backend); `false` when the
    /// ring is full.
    pub fn push_request(&mut self, req: Req) -> bool {
        if self.free_requests() == 0 {
            return false;
        }
        // SAFETY: `slot` lies within the page (index masked to the ring
        // size, which fits the page by construction); slots are at least
        // `size_of::<Req>()` bytes and aligned to 8 within the page (64-byte
        // header, slot sizes multiple of 4 for every ring used here);
        // write_unaligned avoids relying on that.
        unsafe { self.slot(self.req_prod_pvt).cast::<Req>().write_unaligned(req) };
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        true
    }

    /// Publishes queued requests; returns whether the backend asked to be
    /// notified (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY).
    pub fn publish(&mut self) -> bool {
        let old = self.read_index(0);
        let new = self.req_prod_pvt;
        fence(Ordering::Release); // requests before the producer
        self.write_index(0, new);
        fence(Ordering::SeqCst); // producer before reading the event
        let event = self.read_index(1);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Responses ready to take, checked against what was requested.
    pub fn responses(&self) -> Result<u32, RingError> {
        let prod = self.read_index(2);
        fence(Ordering::Acquire); // producer before the responses
        let claimed = prod.wrapping_sub(self.rsp_cons);
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if claimed > outstanding {
            return Err(RingError::ProducerOverrun { claimed, outstanding });
        }
        Ok(claimed)
    }

    /// Takes the next response; call only when [`responses`](Self::responses)
    /// says one is ready.
    pub fn take_response(&mut self) -> Rsp {
        // SAFETY: as for `push_request`; the slot was produced by the
        // backend (guaranteed by the caller through `responses`).
        let rsp = unsafe { self.slot(self.rsp_cons).cast::<Rsp>().read_unaligned() };
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        rsp
    }

    /// Asks to be notified of the next response, then looks again (so a
    /// response that raced the request is not missed): returns whether
    /// responses are ready (RING_FINAL_CHECK_FOR_RESPONSES).
    pub fn final_check(&self) -> Result<bool, RingError> {
        if self.responses()? > 0 {
            return Ok(true);
        }
        self.write_index(3, self.rsp_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        Ok(self.responses()? > 0)
    }
}

/// The request ids of one ring, each free, outstanding (sent, not yet
/// answered) or held (answered, its buffer still in use). A response is
/// accepted only for an outstanding id, so a backend that answers twice or
/// invents an id is caught before any buffer is touched.
#[derive(Debug)]
pub struct Slots {
    state: alloc::vec::Vec<Slot>,
    free: alloc::vec::Vec<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    Outstanding,
    Held,
}

impl Slots {
    /// `n` free ids, `0..n`.
    pub fn new(n: u16) -> Slots {
        Slots { state: alloc::vec![Slot::Free; n as usize], free: (0..n).rev().collect() }
    }

    /// A free id, now outstanding.
    pub fn take(&mut self) -> Option<u16> {
        let id = self.free.pop()?;
        self.state[id as usize] = Slot::Outstanding;
        Some(id)
    }

    /// Returns an id taken but never sent.
    pub fn untake(&mut self, id: u16) {
        if self.state.get(id as usize) == Some(&Slot::Outstanding) {
            self.state[id as usize] = Slot::Free;
            self.free.push(id);
        }
    }

    /// Accepts the backend's response for `id`: it must be outstanding. The
    /// id is then held until [`Slots::release`].
    pub fn answer(&mut self, id: u64) -> Result<u16, RingError> {
        match usize::try_from(id).ok().and_then(|i| self.state.get_mut(i)) {
            Some(s @ Slot::Outstanding) => {
                *s = Slot::Held;
                Ok(id as u16)
            }
            _ => Err(RingError::UnknownId(id)),
        }
    }

    /// Frees a held id.
    pub fn release(&mut self, id: u16) {
        if self.state.get(id as usize) == Some(&Slot::Held) {
            self.state[id as usize] = Slot::Free;
            self.free.push(id);
        }
    }

    /// Ids free to take.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::BackRing;

    #[test]
    fn slots_accept_only_outstanding_ids() {
        let mut s = Slots::new(4);
        let a = s.take().unwrap();
        let b = s.take().unwrap();
        assert_ne!(a, b);
        assert_eq!(s.answer(a as u64), Ok(a));
        assert_eq!(s.answer(a as u64), Err(RingError::UnknownId(a as u64)), "answered twice");
        assert_eq!(s.answer(3), Err(RingError::UnknownId(3)), "never sent");
        assert_eq!(s.answer(4), Err(RingError::UnknownId(4)), "out of range");
        assert_eq!(s.answer(u64::MAX), Err(RingError::UnknownId(u64::MAX)));
        s.release(a);
        s.release(a); // a second release changes nothing
        s.untake(b);
        assert_eq!(s.free_count(), 4);
        let all: alloc::vec::Vec<u16> = (0..4).filter_map(|_| s.take()).collect();
        assert_eq!(all.len(), 4);
        assert!(s.take().is_none());
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Req {
        id: u16,
        pad: u16,
        gref: u32,
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct Rsp {
        id: u16,
        status: i16,
    }

    #[test]
    fn ring_sizes_match_xen() {
        // netif rx: 8-byte slots -> 256; blkif: 112-byte slots -> 32.
        assert_eq!(FrontRing::<Req, Rsp>::SLOTS, 256);
        assert_eq!(FrontRing::<[u8; 112], [u8; 16]>::SLOTS, 32);
        assert_eq!(FrontRing::<[u8; 12], [u8; 4]>::SLOTS, 256);
    }

    #[test]
    fn requests_and_responses_round_trip_with_wrap_around() {
        let page = SharedPage::new();
        let mut front = FrontRing::<Req, Rsp>::new(page);
        let mut back = BackRing::<Req, Rsp>::attach(page);
        for round in 0..3u16 {
            for i in 0..256u16 {
                assert!(front.push_request(Req { id: i, pad: 0, gref: round as u32 }));
            }
            assert!(!front.push_request(Req { id: 999, pad: 0, gref: 0 }), "ring full");
            assert!(front.publish() || round > 0);
            let mut n = 0;
            while let Some(r) = back.take_request() {
                assert_eq!(r.gref, round as u32);
                back.respond(Rsp { id: r.id, status: 0 });
                n += 1;
            }
            assert_eq!(n, 256);
            assert_eq!(front.responses(), Ok(256));
            for i in 0..256u16 {
                assert_eq!(front.take_response().id, i);
            }
            assert_eq!(front.final_check(), Ok(false));
        }
    }

    #[test]
    fn overflowing_producer_is_an_error_not_a_read() {
        let page = SharedPage::new();
        let mut front = FrontRing::<Req, Rsp>::new(page);
        let mut back = BackRing::<Req, Rsp>::attach(page);
        front.push_request(Req { id: 1, pad: 0, gref: 0 });
        front.publish();
        back.force_rsp_prod(5000);
        assert_eq!(front.responses(), Err(RingError::ProducerOverrun { claimed: 5000, outstanding: 1 }));
        back.force_rsp_prod(u32::MAX);
        assert!(front.responses().is_err());
        assert!(front.final_check().is_err());
    }
}
