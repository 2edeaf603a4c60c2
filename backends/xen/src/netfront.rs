//! netfront: connects a [`NetIf`] (the rings and buffers of a Xen virtual
//! network interface, in copy mode) to its backend through grants, an event
//! channel and xenstore.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::task::Waker;

use morgana_x86::xen::Port;

use crate::netif::{EventChannel, NetIf};
use crate::page::SharedPage;
use crate::platform::{wait_backend, with_grants, Store};
use crate::XenbusState;

/// Receive buffers posted (one page each).
const N_RX: usize = 128;
/// Transmit buffers (one page each).
const N_TX: usize = 64;

/// A Xen virtual network interface.
pub type Netfront = NetIf<Port>;

impl EventChannel for Port {
    fn notify(&self) {
        Port::notify(*self);
    }
    fn register(&self, waker: &Waker) {
        Port::register(*self, waker);
    }
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
        let (tx_ring, rx_ring) = (SharedPage::new(), SharedPage::new());
        let tx_ref = grant(tx_ring, false)?;
        let rx_ref = grant(rx_ring, false)?;
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
        let mut nf = NetIf::new(port, mac, tx_ring, rx_ring, tx_bufs, rx_bufs);
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
        nf.kick();
        log::info!("netfront {node}: backend {backend} (domain {backend_id}), MAC {:02x?}", mac);
        Ok(nf)
    }
}
