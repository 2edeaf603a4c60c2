//! Simulated backends, for host tests and fuzzing (feature `sim`): the
//! other domain's side of a shared ring, free to misbehave.

use core::marker::PhantomData;

use crate::page::SharedPage;
use crate::ring::{FrontRing, HEADER};

/// The back end of a ring the front end initialised in a page. `Req` and
/// `Rsp` must be plain integer structs (any bit pattern valid), as every
/// Xen ring type is.
pub struct BackRing<Req: Copy, Rsp: Copy> {
    page: SharedPage,
    size: u32,
    req_cons: u32,
    rsp_prod_pvt: u32,
    _types: PhantomData<(Req, Rsp)>,
}

impl<Req: Copy, Rsp: Copy> BackRing<Req, Rsp> {
    /// Attaches to a ring the front end initialised.
    pub fn attach(page: SharedPage) -> Self {
        BackRing { page, size: FrontRing::<Req, Rsp>::SLOTS, req_cons: 0, rsp_prod_pvt: 0, _types: PhantomData }
    }

    fn index(&self, i: usize) -> *mut u32 {
        self.page.ptr().wrapping_add(4 * i).cast()
    }

    fn slot(&self, idx: u32) -> *mut u8 {
        let i = (idx & (self.size - 1)) as usize;
        self.page.ptr().wrapping_add(HEADER + i * FrontRing::<Req, Rsp>::slot_size())
    }

    /// Takes the next request, if any.
    pub fn take_request(&mut self) -> Option<Req> {
        // SAFETY: the page is live (leaked); index 0 is its first 4 bytes,
        // and a slot index masked to the ring size lies within the page
        // (as in `FrontRing`); `Req` is plain integers.
        unsafe {
            if self.index(0).read_volatile() == self.req_cons {
                return None;
            }
            let r = self.slot(self.req_cons).cast::<Req>().read_unaligned();
            self.req_cons = self.req_cons.wrapping_add(1);
            Some(r)
        }
    }

    /// Writes a response in the next slot without publishing it.
    pub fn put(&mut self, rsp: Rsp) {
        // SAFETY: as in `take_request`.
        unsafe { self.slot(self.rsp_prod_pvt).cast::<Rsp>().write_unaligned(rsp) };
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes the responses written so far.
    pub fn publish(&mut self) {
        self.force_rsp_prod(self.rsp_prod_pvt);
    }

    /// Writes a response and publishes it.
    pub fn respond(&mut self, rsp: Rsp) {
        self.put(rsp);
        self.publish();
    }

    /// Writes a response and publishes it; returns whether the front end
    /// asked to be notified (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn respond_notify(&mut self, rsp: Rsp) -> bool {
        // SAFETY: index 2 lies in the first 16 bytes of the live page.
        let old = unsafe { self.index(2).read_volatile() };
        self.respond(rsp);
        let new = self.rsp_prod_pvt;
        // SAFETY: index 3 (rsp_event) lies in the first 16 bytes of the
        // live page.
        let event = unsafe { self.index(3).read_volatile() };
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Sets the response producer to any value (a misbehaving backend).
    pub fn force_rsp_prod(&mut self, v: u32) {
        // SAFETY: index 2 lies in the first 16 bytes of the live page.
        unsafe { self.index(2).write_volatile(v) }
    }
}
