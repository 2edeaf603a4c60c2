//! DHCPv4 lease events applied to the interface's addresses and routes.

use morgana_devices::Net;
use smoltcp::socket::dhcpv4;
use smoltcp::wire::IpCidr;

use super::Inner;

impl<D: Net> Inner<D> {
    pub(super) fn poll_dhcp(&mut self) {
        let Some(h) = self.dhcp else { return };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        let had_lease = self.iface.ipv4_addr().is_some();
        self.iface.update_ip_addrs(|addrs| addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_))));
        self.iface.routes_mut().remove_default_ipv4_route();
        match event {
            Some((addr, router)) => {
                self.iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv4(addr));
                });
                if let Some(r) = router {
                    let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                }
                self.gateway4 = router;
                match router {
                    Some(r) => log::info!("DHCPv4: address {addr}, gateway {r}"),
                    None => log::info!("DHCPv4: address {addr}, no gateway"),
                }
            }
            None if had_lease => log::warn!("DHCPv4: lease lost"),
            None => {}
        }
    }
}
