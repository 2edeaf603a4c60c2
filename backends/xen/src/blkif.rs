//! The blkif ring (`xen/include/public/io/blkif.h`) as blkfront uses it:
//! the layouts, and the one-request-in-flight protocol with the checks on
//! the backend's answers. Plain memory logic, host-tested and fuzzed;
//! blkfront adds the grants, pages and event channel.

use core::task::Poll;

use morgana_devices::BlockError;

use crate::page::SharedPage;
use crate::ring::FrontRing;

/// One page of a request: sectors `first_sect..=last_sect` of the granted
/// page.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Segment {
    pub gref: u32,
    pub first_sect: u8,
    pub last_sect: u8,
    pub pad: u16,
}

/// A request (`blkif_request`, x86_64 layout).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Request {
    pub operation: u8,
    pub nr_segments: u8,
    pub handle: u16,
    pub pad: u32,
    pub id: u64,
    pub sector: u64,
    pub seg: [Segment; 11],
}

/// A response (`blkif_response`); status 0 is success.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Response {
    pub id: u64,
    pub operation: u8,
    pub pad: u8,
    pub status: i16,
    pub pad2: u32,
}

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const OP_FLUSH: u8 = 3;
/// Segments a request can carry.
pub const MAX_SEGMENTS: usize = 11;

/// The ring with at most one request in flight.
pub struct BlkRing {
    ring: FrontRing<Request, Response>,
    next_id: u64,
    /// The request the backend may still be working on.
    in_flight: Option<u64>,
    /// The backend broke the protocol: the pages of the request in flight
    /// may still be in use, so no more requests are made.
    broken: bool,
}

impl BlkRing {
    /// A ring in `page`.
    pub fn new(page: SharedPage) -> BlkRing {
        BlkRing { ring: FrontRing::new(page), next_id: 1, in_flight: None, broken: false }
    }

    /// The ring's page.
    pub fn page(&self) -> SharedPage {
        self.ring.page()
    }

    /// Whether the backend broke the protocol (the disk has stopped).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    fn fail(&mut self, what: &dyn core::fmt::Display) -> BlockError {
        log::error!("blkfront: {what}; the disk stops");
        self.broken = true;
        BlockError::Device
    }

    /// Sends a request over `segments` (none for a flush). `Ok(notify)`;
    /// an error if the disk has stopped or a request is still in flight.
    pub fn submit(&mut self, operation: u8, sector: u64, segments: &[Segment]) -> Result<bool, BlockError> {
        if self.broken || self.in_flight.is_some() || segments.len() > MAX_SEGMENTS {
            return Err(BlockError::Device);
        }
        let mut seg = [Segment::default(); MAX_SEGMENTS];
        seg[..segments.len()].copy_from_slice(segments);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let req = Request { operation, nr_segments: segments.len() as u8, handle: 0, pad: 0, id, sector, seg };
        if !self.ring.push_request(req) {
            return Err(BlockError::Device);
        }
        self.in_flight = Some(id);
        Ok(self.ring.publish())
    }

    /// The outcome of the request in flight, once answered (`Ok` at once if
    /// none is). `Pending`: the caller waits for the event channel (the
    /// ring has asked to be notified). A response that names another
    /// request, or bad ring indices, stop the disk.
    pub fn poll_response(&mut self) -> Poll<Result<(), BlockError>> {
        if self.broken {
            return Poll::Ready(Err(BlockError::Device));
        }
        let Some(id) = self.in_flight else { return Poll::Ready(Ok(())) };
        let rsp = match self.ring.final_check() {
            Ok(true) => self.ring.take_response(),
            Ok(false) => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(self.fail(&e))),
        };
        if rsp.id != id {
            let e = self.fail(&format_args!("backend answered request {} instead of {id}", rsp.id));
            return Poll::Ready(Err(e));
        }
        self.in_flight = None;
        Poll::Ready(if rsp.status == 0 { Ok(()) } else { Err(BlockError::Device) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::BackRing;

    fn ring() -> (BlkRing, BackRing<Request, Response>) {
        let page = SharedPage::new();
        (BlkRing::new(page), BackRing::attach(page))
    }

    fn answer(back: &mut BackRing<Request, Response>, status: i16) -> Request {
        let req = back.take_request().expect("a request");
        back.respond(Response { id: req.id, operation: req.operation, pad: 0, status, pad2: 0 });
        req
    }

    #[test]
    fn one_request_at_a_time_with_its_status() {
        let (mut blk, mut back) = ring();
        assert_eq!(blk.poll_response(), Poll::Ready(Ok(())), "nothing in flight");
        let seg = Segment { gref: 9, first_sect: 0, last_sect: 7, pad: 0 };
        blk.submit(OP_READ, 5, &[seg]).unwrap();
        assert_eq!(blk.submit(OP_READ, 6, &[seg]), Err(BlockError::Device), "one in flight");
        assert_eq!(blk.poll_response(), Poll::Pending);
        let req = answer(&mut back, 0);
        assert_eq!((req.operation, req.nr_segments, req.sector, req.seg[0]), (OP_READ, 1, 5, seg));
        assert_eq!(blk.poll_response(), Poll::Ready(Ok(())));
        blk.submit(OP_FLUSH, 0, &[]).unwrap();
        answer(&mut back, -1);
        assert_eq!(blk.poll_response(), Poll::Ready(Err(BlockError::Device)));
        assert!(!blk.broken(), "an I/O error is not a protocol error");
    }

    #[test]
    fn a_wrong_id_or_producer_stops_the_disk() {
        let (mut blk, mut back) = ring();
        blk.submit(OP_WRITE, 0, &[]).unwrap();
        let req = back.take_request().unwrap();
        back.respond(Response { id: req.id + 1, ..Default::default() });
        assert_eq!(blk.poll_response(), Poll::Ready(Err(BlockError::Device)));
        assert!(blk.broken());
        assert_eq!(blk.submit(OP_READ, 0, &[]), Err(BlockError::Device));
        let (mut blk, mut back) = ring();
        blk.submit(OP_WRITE, 0, &[]).unwrap();
        back.force_rsp_prod(2);
        assert_eq!(blk.poll_response(), Poll::Ready(Err(BlockError::Device)));
        assert!(blk.broken());
    }
}
