//! netfront's rings against a hostile netback: a simulated backend takes
//! the posted buffers and answers with fuzz-chosen ids, offsets, flags,
//! statuses and producer indices, interleaved with the front end's own
//! steps. The front end must refuse bad answers (a protocol error stops
//! that ring) without panicking, and never hand out a frame outside its
//! page, longer than the MTU, or in a buffer already in use.
#![no_main]

use std::collections::{BTreeSet, VecDeque};

use libfuzzer_sys::fuzz_target;
use morgana_devices::NetCounters;
use morgana_xen::netif::{RxReq, RxRing, RxRsp, TxReq, TxRing, TxRsp, MAX_FRAME};
use morgana_xen::page::{SharedPage, PAGE};
use morgana_xen::sim::BackRing;

const N_RX: u16 = 16;
const N_TX: u16 = 8;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
}

/// The pages are leaked (they are "shared with another domain"): one pair
/// for the whole run, re-initialised by each input.
fn pages() -> (SharedPage, SharedPage) {
    thread_local!(static P: (SharedPage, SharedPage) = (SharedPage::new(), SharedPage::new()));
    P.with(|p| *p)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (rx_page, tx_page) = pages();
    let mut rx = RxRing::new(rx_page, N_RX);
    let mut tx = TxRing::new(tx_page, N_TX);
    let mut rx_back = BackRing::<RxReq, RxRsp>::attach(rx_page);
    let mut tx_back = BackRing::<TxReq, TxRsp>::attach(tx_page);
    let counters = NetCounters::default();
    let (mut rx_broken, mut tx_broken) = (false, false);
    // What the backend has seen: posted receive buffers, frames to send.
    let mut posted: VecDeque<u16> = VecDeque::new();
    let mut sent: VecDeque<u16> = VecDeque::new();
    // Receive buffers handed out as frames and not yet released.
    let mut held: BTreeSet<u16> = BTreeSet::new();

    rx.repost(|id| 1000 + id as u32);
    while let Some(op) = input.u8() {
        match op % 10 {
            0 if !rx_broken => {
                rx.repost(|id| 1000 + id as u32);
            }
            1 => {
                // Requests and responses share slots: what the backend reads
                // may be its own earlier answers.
                while let Some(req) = rx_back.take_request() {
                    posted.push_back(req.id);
                }
            }
            2 => {
                let Some(how) = input.u8() else { break };
                let id = match how & 3 {
                    0 => posted.pop_front().unwrap_or(0),
                    1 => posted.back().copied().unwrap_or(0),
                    _ => input.u16().unwrap_or(0),
                };
                let (Some(offset), Some(flags), Some(status)) = (input.u16(), input.u16(), input.u16()) else { break };
                let rsp = RxRsp { id, offset, flags, status: status as i16 };
                if how & 4 != 0 {
                    rx_back.put(rsp);
                } else {
                    rx_back.respond(rsp);
                }
            }
            3 => {
                let Some(v) = input.u32() else { break };
                rx_back.force_rsp_prod(v);
            }
            4 if !rx_broken => loop {
                match rx.next(&counters) {
                    Ok(Some(f)) => {
                        assert!(f.id < N_RX, "frame in buffer {}", f.id);
                        assert!(f.len > 0 && f.len <= MAX_FRAME, "frame of {} bytes", f.len);
                        assert!(f.offset + f.len <= PAGE, "frame past its page");
                        assert!(held.insert(f.id), "buffer {} handed out twice", f.id);
                    }
                    Ok(None) => {
                        let _ = rx.final_check();
                        break;
                    }
                    Err(_) => {
                        rx_broken = true;
                        break;
                    }
                }
            },
            5 => {
                let Some(k) = input.u8() else { break };
                if let Some(&id) = held.iter().nth(k as usize % held.len().max(1)) {
                    held.remove(&id);
                    rx.release(id);
                }
            }
            6 if !tx_broken && tx.ready() => {
                let (Some(id), Some(len)) = (tx.take(), input.u16()) else { break };
                assert!(id < N_TX);
                let len = len as usize % (MAX_FRAME + 1);
                if tx.send(id, 2000 + id as u32, len).is_some() {
                    sent.push_back(id);
                }
            }
            7 => {
                let Some(how) = input.u8() else { break };
                tx_back.take_request();
                let id = match how & 3 {
                    0 => sent.pop_front().unwrap_or(0),
                    _ => input.u16().unwrap_or(0),
                };
                let Some(status) = input.u16() else { break };
                tx_back.respond(TxRsp { id, status: status as i16 });
            }
            8 => {
                let Some(v) = input.u32() else { break };
                tx_back.force_rsp_prod(v);
            }
            9 if !tx_broken => {
                if tx.reclaim(&counters).is_err() {
                    tx_broken = true;
                } else {
                    let _ = tx.final_check();
                }
            }
            _ => {}
        }
    }
    let s = counters.stats();
    assert!(s.rx_frames as usize <= data.len());
});
