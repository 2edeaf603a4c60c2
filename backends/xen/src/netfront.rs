//! netfront (`xen/include/public/io/netif.h`): a [`Net`] device over two
//! shared rings, in copy mode (the backend copies received frames into
//! pages we granted; we grant pages it reads transmitted frames from).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::task::Context;

use morgana_devices::{LinkState, Net, NetCounters, NetStats, RxToken, TxToken};
use morgana_x86::xen::Port;

use crate::grant::GrantRef;
use crate::page::SharedPage;
use crate::platform::{wait_backend, with_grants, Store};
use crate::ring::{FrontRing, Slots};
use crate::XenbusState;

#[repr(C)]
#[derive(Clone, Copy)]
struct TxReq {
    gref: u32,
    offset: u16,
    flags: u16,
    id: u16,
    size: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct TxRsp {
    id: u16,
    status: i16,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RxReq {
    id: u16,
    pad: u16,
    gref: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RxRsp {
    id: u16,
    offset: u16,
    flags: u16,
    status: i16,
}

const NETRXF_MORE_DATA: u16 = 1 << 2;
const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// Receive buffers posted (one page each).
const N_RX: usize = 128;
/// Transmit buffers (one page each).
const N_TX: usize = 64;
const MTU: usize = 1500;

struct TxSide {
    ring: FrontRing<TxReq, TxRsp>,
    bufs: Vec<(SharedPage, GrantRef)>,
    ids: Slots,
    port: Port,
}

/// A Xen virtual network interface.
pub struct Netfront {
    tx: TxSide,
    rx: FrontRing<RxReq, RxRsp>,
    rx_bufs: Vec<(SharedPage, GrantRef)>,
    rx_ids: Slots,
    /// Inside a multi-slot frame being dropped.
    rx_skipping: bool,
    port: Port,
    mac: [u8; 6],
    counters: NetCounters,
    broken: bool,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn read(xs: &mut Store, path: &str) -> Result<String, String> {
    xs.read(path).map_err(|e| format!("{path}: {e}"))
}

impl Netfront {
    /// Connects to the backend of the vif at `node` (`device/vif/N`).
    pub fn connect(xs: &mut Store, node: &str) -> Result<Netfront, String> {
        let backend = read(xs, &format!("{node}/backend"))?;
        let backend_id: u16 = read(xs, &format!("{node}/backend-id"))?.parse().map_err(|_| "bad backend-id")?;
        let mac = parse_mac(&read(xs, &format!("{node}/mac"))?).ok_or("bad MAC address in xenstore")?;
        wait_backend(xs, &backend, XenbusState::InitWait)?;

        let grant = |page: SharedPage, readonly: bool| {
            with_grants(|g| g.grant(backend_id, page.gfn(), readonly)).map_err(|e| format!("granting a page: {e:?}"))
        };
        let tx_ring = FrontRing::<TxReq, TxRsp>::new(SharedPage::new());
        let rx_ring = FrontRing::<RxReq, RxRsp>::new(SharedPage::new());
        let tx_ref = grant(tx_ring.page(), false)?;
        let rx_ref = grant(rx_ring.page(), false)?;
        let port = Port::alloc_unbound(backend_id).map_err(|e| format!("event channel: error {e}"))?;
        let mut rx_bufs = Vec::with_capacity(N_RX);
        for _ in 0..N_RX {
            let p = SharedPage::new();
            rx_bufs.push((p, grant(p, false)?));
        }
        let mut tx_bufs = Vec::with_capacity(N_TX);
        for _ in 0..N_TX {
            let p = SharedPage::new();
            tx_bufs.push((p, grant(p, true)?));
        }
        let mut nf = Netfront {
            tx: TxSide { ring: tx_ring, bufs: tx_bufs, ids: Slots::new(N_TX as u16), port },
            rx: rx_ring,
            rx_bufs,
            rx_ids: Slots::new(N_RX as u16),
            rx_skipping: false,
            port,
            mac,
            counters: NetCounters::default(),
            broken: false,
        };
        nf.repost();
        for attempt in 0.. {
            let tx = xs.transaction_start().map_err(|e| format!("{e}"))?;
            let keys = [
                ("tx-ring-ref", format!("{tx_ref}")),
                ("rx-ring-ref", format!("{rx_ref}")),
                ("event-channel", format!("{}", port.0)),
                ("request-rx-copy", "1".into()),
                ("feature-rx-notify", "1".into()),
                ("feature-no-csum-offload", "1".into()),
                ("feature-sg", "0".into()),
                ("feature-gso-tcpv4", "0".into()),
            ];
            for (k, v) in keys {
                xs.write(tx, &format!("{node}/{k}"), &v).map_err(|e| format!("{node}/{k}: {e}"))?;
            }
            match xs.transaction_end(tx, true) {
                Ok(()) => break,
                Err(crate::xenstore::XsError::Daemon(e)) if e == "EAGAIN" && attempt < 10 => continue,
                Err(e) => return Err(format!("{e}")),
            }
        }
        xs.write(0, &format!("{node}/state"), "4").map_err(|e| format!("{e}"))?;
        port.unmask();
        wait_backend(xs, &backend, XenbusState::Connected)?;
        if nf.rx.publish() {
            port.notify();
        }
        log::info!("netfront {node}: backend {backend} (domain {backend_id}), MAC {:02x?}", mac);
        Ok(nf)
    }

    fn fail(&mut self, what: &dyn core::fmt::Display) {
        if !self.broken {
            log::error!("netfront: {what}; the interface stops");
            self.broken = true;
        }
    }

    /// Posts finished receive buffers back to the backend.
    fn repost(&mut self) {
        let mut pushed = false;
        while let Some(id) = self.rx_ids.take() {
            let req = RxReq { id, pad: 0, gref: self.rx_bufs[id as usize].1 };
            if !self.rx.push_request(req) {
                self.rx_ids.untake(id);
                break;
            }
            pushed = true;
        }
        if pushed && self.rx.publish() {
            self.port.notify();
        }
    }
}

impl TxSide {
    /// Frees buffers whose frames the backend has sent.
    fn reclaim(&mut self, counters: &NetCounters) -> Result<(), crate::ring::RingError> {
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
}

/// A received frame, in a receive page.
pub struct Rx<'a> {
    page: SharedPage,
    offset: usize,
    len: usize,
    id: u16,
    ids: &'a mut Slots,
}

/// A transmit slot.
pub struct Tx<'a> {
    tx: &'a mut TxSide,
    counters: &'a NetCounters,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        // SAFETY: the page is one of our receive pages (leaked, never
        // freed); offset + len <= 4096 was checked; the backend is done with
        // it (it answered) and does not get it back until its id is released
        // and reposted after this borrow ends.
        let frame = unsafe { core::slice::from_raw_parts_mut(self.page.ptr().add(self.offset), self.len) };
        f(frame)
    }
}

impl Drop for Rx<'_> {
    fn drop(&mut self) {
        self.ids.release(self.id);
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Some(id) = (len <= MTU + 14).then(|| self.tx.ids.take()).flatten() else {
            self.counters.tx_dropped();
            let mut scratch = alloc::vec![0u8; len];
            return f(&mut scratch);
        };
        let (page, gref) = self.tx.bufs[id as usize];
        // SAFETY: the page is a transmit page not in flight (its id was
        // free until now), so the backend is not reading it; len <= 1514.
        let buf = unsafe { core::slice::from_raw_parts_mut(page.ptr(), len) };
        let r = f(buf);
        let req = TxReq { gref, offset: 0, flags: 0, id, size: len as u16 };
        if self.tx.ring.push_request(req) {
            self.counters.sent(len);
            if self.tx.ring.publish() {
                self.tx.port.notify();
            }
        } else {
            self.tx.ids.untake(id);
            self.counters.tx_dropped();
        }
        r
    }
}

impl Net for Netfront {
    type RxToken<'a> = Rx<'a>;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(Rx<'_>, Tx<'_>)> {
        if self.broken {
            return None;
        }
        self.port.take_fired();
        if let Err(e) = self.tx.reclaim(&self.counters) {
            self.fail(&e);
            return None;
        }
        self.repost();
        loop {
            let ready = match self.rx.responses() {
                Ok(n) => n,
                Err(e) => {
                    self.fail(&e);
                    return None;
                }
            };
            if ready == 0 {
                self.port.register(cx.waker());
                match self.rx.final_check() {
                    Ok(true) => cx.waker().wake_by_ref(),
                    Ok(false) => {}
                    Err(e) => self.fail(&e),
                }
                return None;
            }
            let rsp = self.rx.take_response();
            let id = match self.rx_ids.answer(rsp.id as u64) {
                Ok(id) => id as usize,
                Err(e) => {
                    self.fail(&e);
                    return None;
                }
            };
            if rsp.flags & NETRXF_EXTRA_INFO != 0 {
                // Extra-info slots follow only for features never negotiated
                // (GSO); they carry no id, so the ring cannot be kept in step.
                self.fail(&"backend sent extra-info slots that were not negotiated");
                return None;
            }
            // A frame spread over several slots (scatter-gather, not
            // negotiated) is dropped whole: this slot and its followers.
            let continued = core::mem::replace(&mut self.rx_skipping, rsp.flags & NETRXF_MORE_DATA != 0);
            let (offset, len) = (rsp.offset as usize, rsp.status as isize);
            if continued || self.rx_skipping || len <= 0 || offset + len as usize > 4096 || len as usize > MTU + 14 {
                if !continued {
                    self.counters.rx_dropped();
                }
                self.rx_ids.release(rsp.id);
                continue;
            }
            self.counters.received(len as usize);
            let rx = Rx { page: self.rx_bufs[id].0, offset, len: len as usize, id: rsp.id, ids: &mut self.rx_ids };
            let tx = Tx { tx: &mut self.tx, counters: &self.counters };
            return Some((rx, tx));
        }
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_>> {
        if self.broken {
            return None;
        }
        if let Err(e) = self.tx.reclaim(&self.counters) {
            self.fail(&e);
            return None;
        }
        if self.tx.ids.free_count() == 0 || self.tx.ring.free_requests() == 0 {
            self.port.register(cx.waker());
            if let Ok(true) = self.tx.ring.final_check() {
                cx.waker().wake_by_ref();
            }
            return None;
        }
        Some(Tx { tx: &mut self.tx, counters: &self.counters })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        if self.broken {
            LinkState::Down
        } else {
            LinkState::Up
        }
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        MTU
    }

    fn stats(&self) -> NetStats {
        self.counters.stats()
    }
}
