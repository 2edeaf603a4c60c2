//! blkfront's ring against a hostile blkback: a simulated backend answers
//! with fuzz-chosen ids, statuses and producer indices. A wrong answer must
//! stop the disk (no request is made after it, since the backend may still
//! use the pages), never panic, and a request completes only with its own
//! answer.
#![no_main]

use std::collections::VecDeque;
use std::task::Poll;

use libfuzzer_sys::fuzz_target;
use morgana_devices::BlockError;
use morgana_xen::blkif::{BlkRing, Request, Response, Segment, MAX_SEGMENTS};
use morgana_xen::page::SharedPage;
use morgana_xen::sim::BackRing;

/// The page is leaked (it is "shared with another domain"): one for the
/// whole run, re-initialised by each input.
fn page() -> SharedPage {
    thread_local!(static P: SharedPage = SharedPage::new());
    P.with(|p| *p)
}

fuzz_target!(|data: &[u8]| {
    let mut input = data.iter().copied();
    let page = page();
    let mut blk = BlkRing::new(page);
    let mut back = BackRing::<Request, Response>::attach(page);
    // The model: request ids count from 1; answers published in order. It
    // no longer holds once the backend forces its producer index or answers
    // before a request is made (the request then lands in the answer's
    // slot, and the front end reads whatever that says).
    let mut next_id = 1u64;
    let mut in_flight: Option<u64> = None;
    let mut answers: VecDeque<(u64, i16)> = VecDeque::new();
    let mut unreliable = false;
    let mut taken: Option<Request> = None;
    while let Some(op) = input.next() {
        match op % 5 {
            0 => {
                let (Some(kind), Some(n)) = (input.next(), input.next()) else { break };
                let segs = vec![Segment { gref: 5, first_sect: 0, last_sect: 7, pad: 0 }; n as usize % 13];
                let refused = blk.broken() || blk.busy() || segs.len() > MAX_SEGMENTS;
                let r = blk.submit(kind % 4, n as u64, &segs);
                if refused {
                    assert_eq!(r, Err(BlockError::Device), "a request while busy or stopped");
                } else {
                    assert!(r.is_ok());
                    unreliable |= !answers.is_empty();
                    in_flight = Some(next_id);
                    next_id += 1;
                }
            }
            1 => {
                // Requests and responses share slots: what the backend reads
                // may be its own earlier answers.
                if let Some(req) = back.take_request() {
                    taken = Some(req);
                }
            }
            2 => {
                let (Some(how), Some(a), Some(b)) = (input.next(), input.next(), input.next()) else { break };
                let status = i16::from_le_bytes([a, b]);
                let id = match (how & 1, taken) {
                    (0, Some(req)) => req.id,
                    _ => u64::from(how >> 1),
                };
                back.respond(Response { id, operation: 0, pad: 0, status, pad2: 0 });
                answers.push_back((id, status));
            }
            3 => {
                let bytes: Vec<u8> = input.by_ref().take(4).collect();
                let Ok(v) = <[u8; 4]>::try_from(bytes) else { break };
                back.force_rsp_prod(u32::from_le_bytes(v));
                unreliable = true;
            }
            _ => {
                let was = in_flight;
                let r = blk.poll_response();
                match (&r, was) {
                    (Poll::Pending, _) => assert!(blk.busy() && !blk.broken()),
                    (Poll::Ready(_), None) => {}
                    (Poll::Ready(_), Some(_)) if blk.broken() => {}
                    (Poll::Ready(result), Some(id)) => {
                        assert!(!blk.busy());
                        in_flight = None;
                        if !unreliable {
                            let (got, status) = answers.pop_front().expect("completed without an answer");
                            assert_eq!(got, id, "completed with another request's answer");
                            assert_eq!(result.is_ok(), status == 0);
                        }
                    }
                }
                if blk.broken() {
                    in_flight = None;
                }
            }
        }
    }
});
