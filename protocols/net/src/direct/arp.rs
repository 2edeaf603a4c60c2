//! Gratuitous ARP and gateway look-up after an address change.

use core::net::Ipv4Addr;
use core::task::Context;

use morgana_devices::Net;

use super::Inner;

impl<D: Net> Inner<D> {
    /// Sends a gratuitous ARP request for the IPv4 address (static, or
    /// just leased; RFC 5227 §3), so neighbours (a hypervisor's NAT, a
    /// switch) learn it before the first packet for it arrives, and asks
    /// for the gateway's MAC address, whose answer fills smoltcp's cache.
    pub(super) fn announce(&mut self, cx: &mut Context<'_>) {
        let Some(addr) = self.iface.ipv4_addr() else {
            self.announced = true;
            return;
        };
        let gateway = self.gateway4.filter(|g| *g != addr);
        if self.device.transmit(cx).is_none() {
            return; // no transmit buffer: retried on the next poll
        }
        self.send_arp_request(cx, addr, addr);
        if let Some(g) = gateway {
            self.send_arp_request(cx, addr, g);
        }
        self.announced = true;
    }

    /// Broadcasts "who has `target`? tell `addr`".
    fn send_arp_request(&mut self, cx: &mut Context<'_>, addr: Ipv4Addr, target: Ipv4Addr) {
        use morgana_devices::TxToken;
        use smoltcp::wire::{
            ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
        };
        let mac = EthernetAddress(self.device.mac_address());
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: addr,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth =
            EthernetRepr { src_addr: mac, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp };
        let Some(token) = self.device.transmit(cx) else { return };
        token.consume(eth.buffer_len() + arp.buffer_len(), |buf| {
            let mut frame = EthernetFrame::new_unchecked(buf);
            eth.emit(&mut frame);
            arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
        });
    }
}
