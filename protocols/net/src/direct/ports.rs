//! Local port choice and local address checks.

use morgana_devices::Net;

use super::Inner;
use crate::{Error, ListenAddr};

/// The IANA dynamic port range (RFC 6335).
pub(super) const EPHEMERAL_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;

impl<D: Net> Inner<D> {
    pub(super) fn ephemeral_port(&mut self, in_use: impl Fn(&Self, u16) -> bool) -> Result<u16, Error> {
        for _ in EPHEMERAL_PORTS {
            let p = self.next_port;
            self.next_port = if p == *EPHEMERAL_PORTS.end() { *EPHEMERAL_PORTS.start() } else { p + 1 };
            if !in_use(self, p) {
                return Ok(p);
            }
        }
        Err(Error::NoBuffers)
    }

    pub(super) fn check_local(&self, addr: &ListenAddr) -> Result<(), Error> {
        match addr.ip {
            Some(ip) if !super::addr::to_smol(ip).is_some_and(|a| self.iface.has_ip_addr(a)) => {
                Err(Error::AddrNotAvailable)
            }
            _ => Ok(()),
        }
    }
}
