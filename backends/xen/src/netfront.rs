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
use crate::netif::{RxRing, TxRing, MAX_FRAME};
use crate::page::SharedPage;
use crate::platform::{wait_backend, with_grants, Store};
use crate::XenbusState;

/// Receive buffers posted (one page each).
const N_RX: usize = 128;
/// Transmit buffers (one page each).
const N_TX: usize = 64;
const MTU: usize = 1500;

struct TxSide {
    ring: TxRing,
    bufs: Vec<(SharedPage, GrantRef)>,
    port: Port,
}

/// A Xen virtual network interface.
pub struct Netfront {
    tx: TxSide,
    rx: RxRing,
    rx_bufs: Vec<(SharedPage, GrantRef)>,
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
        let tx_ring = TxRing::new(SharedPage::new(), N_TX as u16);
        let rx_ring = RxRing::new(SharedPage::new(), N_RX as u16);
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
            tx: TxSide { ring: tx_ring, bufs: tx_bufs, port },
            rx: rx_ring,
            rx_bufs,
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
        let bufs = &self.rx_bufs;
        if self.rx.repost(|id| bufs[id as usize].1) {
            self.port.notify();
        }
    }
}

/// A received frame, in a receive page.
pub struct Rx<'a> {
    page: SharedPage,
    offset: usize,
    len: usize,
    id: u16,
    ring: &'a mut RxRing,
}

/// A transmit slot.
pub struct Tx<'a> {
    tx: &'a mut TxSide,
    counters: &'a NetCounters,
}

impl RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        // SAFETY: the page is one of our receive pages (leaked, never
        // freed); `RxRing::next` checked offset + len <= 4096; the backend is done with
        // it (it answered) and does not get it back until its id is released
        // and reposted after this borrow ends.
        let frame = unsafe { core::slice::from_raw_parts_mut(self.page.ptr().add(self.offset), self.len) };
        f(frame)
    }
}

impl Drop for Rx<'_> {
    fn drop(&mut self) {
        self.ring.release(self.id);
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let Some(id) = (len <= MAX_FRAME).then(|| self.tx.ring.take()).flatten() else {
            self.counters.tx_dropped();
            let mut scratch = alloc::vec![0u8; len];
            return f(&mut scratch);
        };
        let (page, gref) = self.tx.bufs[id as usize];
        // SAFETY: the page is a transmit page not in flight (its id was
        // free until now), so the backend is not reading it; len <= 1514.
        let buf = unsafe { core::slice::from_raw_parts_mut(page.ptr(), len) };
        let r = f(buf);
        match self.tx.ring.send(id, gref, len) {
            Some(notify) => {
                self.counters.sent(len);
                if notify {
                    self.tx.port.notify();
                }
            }
            None => self.counters.tx_dropped(),
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
        if let Err(e) = self.tx.ring.reclaim(&self.counters) {
            self.fail(&e);
            return None;
        }
        self.repost();
        let frame = match self.rx.next(&self.counters) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                self.port.register(cx.waker());
                match self.rx.final_check() {
                    Ok(true) => cx.waker().wake_by_ref(),
                    Ok(false) => {}
                    Err(e) => self.fail(&e),
                }
                return None;
            }
            Err(e) => {
                self.fail(&e);
                return None;
            }
        };
        let page = self.rx_bufs[frame.id as usize].0;
        let rx = Rx { page, offset: frame.offset, len: frame.len, id: frame.id, ring: &mut self.rx };
        let tx = Tx { tx: &mut self.tx, counters: &self.counters };
        Some((rx, tx))
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<Tx<'_>> {
        if self.broken {
            return None;
        }
        if let Err(e) = self.tx.ring.reclaim(&self.counters) {
            self.fail(&e);
            return None;
        }
        if !self.tx.ring.ready() {
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
