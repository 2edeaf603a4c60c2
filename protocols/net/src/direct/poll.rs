//! The runner's poll: device ingress one frame at a time, egress, DHCP,
//! orphan reaping, and the next deadline.

use core::task::Context;

use morgana_devices::{Instant, LinkState, Net};
use smoltcp::iface::{PollIngressSingleResult, PollResult};

use super::device::Adapter;
use super::listen::service_listeners;
use super::{from_smol, smol_now, Inner, INGRESS_BATCH};

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
        let Inner { device, iface, sockets, listeners, tcp, .. } = self;
        let mut device = Adapter { device, cx };
        iface.poll_maintenance(ts);
        // One packet at a time, moving listeners along in between, so each
        // SYN of a burst finds a listening socket.
        let mut budget = INGRESS_BATCH;
        while budget > 0 {
            if iface.poll_ingress_single(ts, &mut device, sockets) == PollIngressSingleResult::None {
                break;
            }
            service_listeners(listeners, sockets, tcp);
            budget -= 1;
        }
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

    pub(super) fn is_configured(&self) -> bool {
        self.iface.ip_addrs().iter().any(|c| match c.address() {
            smoltcp::wire::IpAddress::Ipv4(_) => true,
            smoltcp::wire::IpAddress::Ipv6(a) => !a.is_unicast_link_local(),
        })
    }

    pub(super) fn wake_runner(&self) {
        if let Some(w) = &self.runner {
            w.wake_by_ref();
        }
    }
}
