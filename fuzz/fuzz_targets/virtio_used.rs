//! What the virtio drivers accept from a hostile device's used rings: the
//! token bookkeeping (`Lent`), the receive-frame bounds (`rx_frame`) and
//! blk's single-request completion (`single_completion`), driven by a
//! simulated device that returns fuzz-chosen tokens and lengths. A buffer
//! may never be handed out twice or reused while lent, and a frame must lie
//! in its buffer.
#![no_main]

use std::collections::BTreeSet;
use std::task::Poll;

use libfuzzer_sys::fuzz_target;
use morgana_virtio::used::{rx_frame, single_completion, Lent};

/// As in virtio-net: descriptors per queue, buffer size, header, frame.
const QUEUE: usize = 32;
const BUF: usize = 1536 + 64;
const HEADER: usize = 12;
const MAX_FRAME: usize = 1514;

fuzz_target!(|data: &[u8]| {
    let mut input = data.iter().copied();
    // Buffers are numbered; the device hands out tokens like a queue's
    // descriptor free list would, or any token it likes.
    let mut posted: Lent<usize, QUEUE> = Lent::default();
    let mut free: Vec<usize> = (0..QUEUE).collect();
    let mut held: BTreeSet<usize> = BTreeSet::new();
    let mut in_flight_blk: Option<u16> = None;
    let mut blk_broken = false;
    let mut leaked = 0;
    while let Some(op) = input.next() {
        match op % 5 {
            // Post a buffer; the device picks its token.
            0 => {
                let Some(t) = input.next() else { break };
                if let Some(buf) = free.pop() {
                    match posted.lend(u16::from(t % 40), buf) {
                        Ok(()) => {}
                        // Untrackable: the driver leaks it rather than reuse.
                        Err(b) => {
                            assert_eq!(b, buf);
                            leaked += 1;
                        }
                    }
                }
            }
            // The device returns a token with a length.
            1 => {
                let (Some(t), Some(a), Some(b)) = (input.next(), input.next(), input.next()) else { break };
                let len = u16::from_le_bytes([a, b]) as usize;
                let Some(buf) = posted.reclaim(u16::from(t % 40)) else { continue };
                assert!(!held.contains(&buf) && !free.contains(&buf), "buffer {buf} lent twice");
                match len.checked_sub(HEADER).and_then(|n| rx_frame(HEADER, n, BUF, MAX_FRAME)) {
                    Some(frame) => {
                        assert!(frame.end <= BUF && !frame.is_empty() && frame.len() <= MAX_FRAME);
                        held.insert(buf);
                    }
                    None => free.push(buf),
                }
            }
            // The stack is done with a frame.
            2 => {
                if let Some(buf) = held.pop_first() {
                    free.push(buf);
                }
            }
            // A block request, if none is in flight.
            3 => {
                let Some(t) = input.next() else { break };
                if in_flight_blk.is_none() && !blk_broken {
                    in_flight_blk = Some(u16::from(t));
                }
            }
            // The block device's used ring shows this token (or nothing).
            _ => {
                let Some(t) = input.next() else { break };
                let peeked = (t != 0).then_some(u16::from(t));
                if let Some(token) = in_flight_blk {
                    match single_completion(peeked, token) {
                        Poll::Pending => assert!(peeked.is_none()),
                        Poll::Ready(Ok(())) => {
                            assert_eq!(peeked, Some(token));
                            in_flight_blk = None;
                        }
                        Poll::Ready(Err(e)) => {
                            assert_ne!(e.got, e.expected);
                            blk_broken = true;
                        }
                    }
                }
            }
        }
        let accounted = posted.count() + held.len() + free.len() + leaked;
        assert_eq!(accounted, QUEUE, "a buffer went missing or was duplicated");
    }
});
