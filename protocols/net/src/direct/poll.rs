//! The runner's poll: device ingress one frame at a time, egress, DHCP,
//! orphan reaping, and the next deadline.

use core::task::Context;

use morgana_devices::{Instant, LinkState, Net, RxToken, TxToken};
use smoltcp::iface::{PollResult, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use super::device::{Adapter, OneFrame};
use super::isn;
use super::listen::{listener_on, service_listeners};
use super::syn::{Local, Verdict};
use super::{from_smol, smol_now, Inner, Ipv6Mode, INGRESS_BATCH};

impl<D: Net> Inner<D> {
    /// Polls the interface; returns when it next wants to be polled.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>, now: Instant) -> Option<Instant> {
        if !self.runner.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.runner = Some(cx.waker().clone());
        }
        self.bury_deferred(cx);
        let link = self.device.link_state(cx);
        if link != self.link {
            log::info!("link {}", if link == LinkState::Up { "up" } else { "down" });
            self.link = link;
        }
        if !self.announced {
            self.announce(cx);
        }
        let ts = smol_now(now);
        self.iface.poll_maintenance(ts);
        // One frame at a time through the SYN queue, moving listeners along
        // in between.
        let mut budget = INGRESS_BATCH;
        while budget > 0 {
            if !self.ingress_one(cx, ts) {
                break;
            }
            let Inner { listeners, sockets, tcp, .. } = self;
            service_listeners(listeners, sockets, tcp);
            budget -= 1;
        }
        if budget < INGRESS_BATCH {
            // A router advertisement just taken in is applied (SLAAC) by
            // maintenance, which smoltcp's poll_at does not schedule.
            self.iface.poll_maintenance(ts);
        }
        let Inner { device, iface, sockets, listeners, tcp, .. } = self;
        let mut device = Adapter { device, cx };
        if iface.ip_addrs() != &self.known_addrs[..] {
            // The neighbour cache was just flushed: ask the gateway again now
            // (our own ARP request, outside smoltcp's one-per-second limit,
            // which an ARP sent just before the flush would otherwise hold).
            self.known_addrs = iface.ip_addrs().to_vec();
            self.announced = false;
            device.cx.waker().wake_by_ref();
        }
        while iface.poll_egress(ts, &mut device, sockets) != PollResult::None {}
        service_listeners(listeners, sockets, tcp);
        if budget == 0 {
            device.cx.waker().wake_by_ref(); // more may be queued
        }
        tcp.poll_draining(sockets);
        #[cfg(feature = "dhcp")]
        self.poll_dhcp();
        let orphan_deadline = self.reap_orphans(now);
        if self.is_configured() {
            for w in self.configured_waiters.drain(..) {
                w.wake();
            }
        }
        let next = self.iface.poll_at(ts, &self.sockets).map(from_smol);
        match (next, orphan_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one frame from the device: a handshake for the SYN queue, or
    /// smoltcp's. Returns false if there was none.
    fn ingress_one(&mut self, cx: &mut Context<'_>, ts: smoltcp::time::Instant) -> bool {
        let Inner { device, iface, sockets, listeners, syn, tcp, config, .. } = self;
        let (mac, mtu) = (device.mac_address(), device.mtu());
        let ipv6_off = config.ipv6 == Ipv6Mode::Off;
        let Some((rx, tx)) = device.receive(cx) else { return false };
        rx.consume(|frame| {
            // With IPv6 off, IPv6 frames never reach smoltcp, so nothing
            // IPv6 is answered or learned (a neighbour from a router
            // advertisement, say), whatever smoltcp would make of it.
            if ipv6_off && frame.get(12..14) == Some(&[0x86, 0xdd][..]) {
                return;
            }
            let verdict = {
                let iface = &*iface;
                let listeners = &*listeners;
                let at = Local {
                    mac,
                    mtu,
                    now: ts,
                    is_ours: &|a| iface.has_ip_addr(a),
                    listening: &|a, port| listener_on(listeners, a.into(), port).is_some(),
                    window_shift: tcp.window_shift(),
                };
                syn.inspect(frame, &at)
            };
            match verdict {
                Verdict::Pass => {
                    iface.poll_ingress_single(ts, &mut OneFrame::new(frame, Some(tx), mtu), sockets);
                }
                Verdict::Answer(syn_ack) => {
                    let bytes = syn_ack.bytes();
                    tx.consume(bytes.len(), |b| b.copy_from_slice(bytes));
                }
                // A cookie is returned by every segment until the client's
                // first data is acknowledged: only the first may open a
                // connection.
                Verdict::Complete { local, remote, .. } if connected(sockets, local, remote) => {
                    iface.poll_ingress_single(ts, &mut OneFrame::new(frame, Some(tx), mtu), sockets);
                }
                Verdict::Complete { syn: first, isn, local, window, .. } => {
                    if let Some(h) = listener_on(listeners, local.addr.into(), local.port) {
                        sockets.get_mut::<tcp::Socket>(h).set_isn_generator(Some(isn::fixed(isn)));
                    }
                    let none: Option<D::TxToken<'_>> = None;
                    iface.poll_ingress_single(ts, &mut OneFrame::new(first.bytes(), none, mtu), sockets);
                    if let Some(h) = listener_on(listeners, local.addr.into(), local.port) {
                        sockets.get_mut::<tcp::Socket>(h).synack_sent_elsewhere(window);
                    }
                    iface.poll_ingress_single(ts, &mut OneFrame::new(frame, Some(tx), mtu), sockets);
                }
            }
        });
        true
    }

    pub(super) fn is_configured(&self) -> bool {
        self.iface.ip_addrs().iter().any(|c| match core::net::IpAddr::from(c.address()) {
            core::net::IpAddr::V4(_) => true,
            core::net::IpAddr::V6(a) => !a.is_unicast_link_local(),
        })
    }

    pub(super) fn wake_runner(&self) {
        if let Some(w) = &self.runner {
            w.wake_by_ref();
        }
    }
}

/// Whether a TCP socket already holds the connection `local`-`remote`.
fn connected(sockets: &SocketSet<'static>, local: IpEndpoint, remote: IpEndpoint) -> bool {
    sockets.iter().any(|(_, s)| match s {
        smoltcp::socket::Socket::Tcp(t) => t.local_endpoint() == Some(local) && t.remote_endpoint() == Some(remote),
        _ => false,
    })
}
