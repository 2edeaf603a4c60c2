//! Configuration of the direct stack, from boot arguments.

use alloc::format;
use alloc::string::String;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

use morgana_runtime::{ArgError, Args};

/// An address with a prefix length, written `ADDR/LEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr<A> {
    /// The address.
    pub addr: A,
    /// The prefix length.
    pub prefix: u8,
}

impl<A: FromStr + Into<IpAddr> + Copy> FromStr for Cidr<A> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| String::from("expected ADDRESS/PREFIX-LENGTH"))?;
        let addr: A = a.parse().map_err(|_| format!("'{a}' is not a valid address"))?;
        let max = if addr.into().is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p.parse().map_err(|_| format!("'{p}' is not a prefix length"))?;
        if prefix > max {
            return Err(format!("prefix length {prefix} is over {max}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl<A: fmt::Display> fmt::Display for Cidr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How the stack gets its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Mode {
    /// DHCPv4 (the default).
    Dhcp,
    /// A static address.
    Static(Cidr<Ipv4Addr>),
    /// No IPv4.
    Off,
}

impl FromStr for Ipv4Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dhcp" => Ok(Ipv4Mode::Dhcp),
            "off" => Ok(Ipv4Mode::Off),
            _ => s.parse().map(Ipv4Mode::Static).map_err(|e| format!("{e} (or 'dhcp' or 'off')")),
        }
    }
}

/// How the stack gets its IPv6 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Mode {
    /// A link-local address from the MAC address, and global ones by SLAAC
    /// (the default).
    Slaac,
    /// A link-local address from the MAC address and this static one; no
    /// SLAAC.
    Static(Cidr<Ipv6Addr>),
    /// No IPv6: no address, no router solicitation, no neighbour discovery
    /// or MLD; IPv6 frames that arrive are dropped.
    Off,
}

impl FromStr for Ipv6Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "slaac" => Ok(Ipv6Mode::Slaac),
            "off" => Ok(Ipv6Mode::Off),
            _ => s.parse().map(Ipv6Mode::Static).map_err(|e| format!("{e} (or 'slaac' or 'off')")),
        }
    }
}

/// Configuration of a [`super::DirectStack`].
#[derive(Debug, Clone)]
pub struct Config {
    /// IPv4 address source.
    pub ipv4: Ipv4Mode,
    /// IPv4 default gateway (with a static address).
    pub ipv4_gateway: Option<Ipv4Addr>,
    /// IPv6 address source. Unless IPv6 is off, a link-local address is
    /// derived from the MAC address too.
    pub ipv6: Ipv6Mode,
    /// IPv6 default gateway.
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// Largest receive and transmit buffer of one TCP connection, in bytes
    /// (each starts small and grows while the connection moves data).
    pub tcp_buffer: usize,
    /// Connections a listener holds ready before `accept` takes them.
    pub backlog: usize,
    /// Half-open connections a listener holds; past it, the oldest is
    /// dropped for each new SYN.
    pub syn_backlog: usize,
    /// Receive and transmit buffer of each UDP socket, in bytes.
    pub udp_buffer: usize,
}

/// `--ipv4`'s help: `dhcp` only in builds with the `dhcp` feature.
const IPV4_HELP: &str = if cfg!(feature = "dhcp") {
    "IPv4 address: ADDR/LEN, dhcp (default) or off"
} else {
    "IPv4 address: ADDR/LEN or off (required: built without the dhcp feature)"
};
/// `--ipv6`'s help: only `off` in builds without the `ipv6` feature.
const IPV6_HELP: &str = if cfg!(feature = "ipv6") {
    "IPv6 address: ADDR/LEN, slaac (default) or off"
} else {
    "IPv6: off (the default and only value: built without the ipv6 feature)"
};

impl Default for Config {
    /// DHCPv4 (even in a build without it: [`Config::from_args`] then
    /// asks for an address), and SLAAC if the build has IPv6, else no IPv6.
    fn default() -> Self {
        Config {
            ipv4: Ipv4Mode::Dhcp,
            ipv4_gateway: None,
            ipv6: if cfg!(feature = "ipv6") { Ipv6Mode::Slaac } else { Ipv6Mode::Off },
            ipv6_gateway: None,
            tcp_buffer: 64 * 1024,
            backlog: 64,
            syn_backlog: 4096,
            udp_buffer: 64 * 1024,
        }
    }
}

impl Config {
    /// Takes the direct stack's flags from the boot arguments and checks
    /// them against each other and this build's features.
    pub fn from_args(args: &mut Args) -> Result<Config, ArgError> {
        let cfg = Config::parse(args)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Takes the direct stack's flags (so `--help` lists them) without
    /// [`Config::check`]ing them: for a backend that may not use the stack.
    pub fn parse(args: &mut Args) -> Result<Config, ArgError> {
        let d = Config::default();
        let cfg = Config {
            ipv4: args.value("ipv4", IPV4_HELP)?.unwrap_or(d.ipv4),
            ipv4_gateway: args.value("ipv4-gateway", "IPv4 default gateway")?,
            ipv6: args.value("ipv6", IPV6_HELP)?.unwrap_or(d.ipv6),
            ipv6_gateway: args.value("ipv6-gateway", "IPv6 default gateway")?,
            tcp_buffer: args
                .value("tcp-buffer", "largest TCP buffer per connection and direction, bytes")?
                .unwrap_or(d.tcp_buffer),
            backlog: args.value("tcp-backlog", "connections a TCP listener keeps ready")?.unwrap_or(d.backlog),
            syn_backlog: args
                .value("tcp-syn-backlog", "half-open TCP connections a listener keeps")?
                .unwrap_or(d.syn_backlog),
            udp_buffer: args.value("udp-buffer", "UDP buffer per socket and direction, bytes")?.unwrap_or(d.udp_buffer),
        };
        Ok(cfg)
    }

    /// Whether the settings fit together and this build's features.
    pub fn check(&self) -> Result<(), ArgError> {
        #[cfg(not(feature = "ipv6"))]
        if self.ipv6 != Ipv6Mode::Off || self.ipv6_gateway.is_some() {
            return Err(ArgError::Conflict(
                "IPv6 asked for, but this image was built without the `ipv6` feature (only --ipv6=off)".into(),
            ));
        }
        #[cfg(not(feature = "dhcp"))]
        if self.ipv4 == Ipv4Mode::Dhcp {
            return Err(ArgError::Conflict(
                "--ipv4=dhcp (the default) needs the `dhcp` feature, which this image was built without: \
                 give --ipv4=ADDR/LEN or --ipv4=off"
                    .into(),
            ));
        }
        if self.ipv4_gateway.is_some() && !matches!(self.ipv4, Ipv4Mode::Static(_)) {
            return Err(ArgError::Conflict("--ipv4-gateway needs a static --ipv4=ADDR/LEN".into()));
        }
        if self.ipv6_gateway.is_some() && self.ipv6 == Ipv6Mode::Off {
            return Err(ArgError::Conflict("--ipv6-gateway makes no sense with --ipv6=off".into()));
        }
        if self.ipv4 == Ipv4Mode::Off && self.ipv6 == Ipv6Mode::Off {
            return Err(ArgError::Conflict("--ipv4=off and --ipv6=off together leave the stack no address".into()));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.tcp_buffer) {
            return Err(ArgError::Conflict("--tcp-buffer must be between 1024 and 16777216".into()));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.udp_buffer) {
            return Err(ArgError::Conflict("--udp-buffer must be between 1024 and 16777216".into()));
        }
        if !(1..=1024).contains(&self.backlog) {
            return Err(ArgError::Conflict("--tcp-backlog must be between 1 and 1024".into()));
        }
        if !(1..=16384).contains(&self.syn_backlog) {
            return Err(ArgError::Conflict("--tcp-syn-backlog must be between 1 and 16384".into()));
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "ipv6", feature = "dhcp"))]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn parses_flags() {
        let mut a = Args::from_words(["--ipv4=10.0.0.2/24", "--ipv4-gateway", "10.0.0.1", "--ipv6=fd00::2/64"]);
        let c = Config::from_args(&mut a).unwrap();
        assert_eq!(c.ipv4, Ipv4Mode::Static(Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 24 }));
        assert_eq!(c.ipv4_gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(c.ipv6, Ipv6Mode::Static(Cidr { addr: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2), prefix: 64 }));
        a.finish().unwrap();
    }

    #[test]
    fn ipv6_slaac_by_default_or_off() {
        assert_eq!(Config::from_args(&mut Args::from_words([""; 0])).unwrap().ipv6, Ipv6Mode::Slaac);
        assert_eq!(Config::from_args(&mut Args::from_words(["--ipv6=slaac"])).unwrap().ipv6, Ipv6Mode::Slaac);
        let mut a = Args::from_words(["--ipv6=off", "--ipv4=10.0.0.2/24"]);
        let c = Config::from_args(&mut a).unwrap();
        assert_eq!((c.ipv6, c.ipv6_gateway), (Ipv6Mode::Off, None));
        a.finish().unwrap();
        assert_eq!(Config::from_args(&mut Args::from_words(["--ipv6", "off"])).unwrap().ipv4, Ipv4Mode::Dhcp);
        let e = Config::from_args(&mut Args::from_words(["--ipv6=of"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'of' for --ipv6: expected ADDRESS/PREFIX-LENGTH (or 'slaac' or 'off')"
        );
    }

    #[test]
    fn ipv6_off_conflicts() {
        let e = Config::from_args(&mut Args::from_words(["--ipv6=off", "--ipv6-gateway=fe80::1"])).unwrap_err();
        assert!(matches!(e, ArgError::Conflict(_)), "{e:?}");
        assert_eq!(e.to_string(), "--ipv6-gateway makes no sense with --ipv6=off");
        let e = Config::from_args(&mut Args::from_words(["--ipv4=off", "--ipv6=off"])).unwrap_err();
        assert!(matches!(e, ArgError::Conflict(_)), "{e:?}");
        assert_eq!(e.to_string(), "--ipv4=off and --ipv6=off together leave the stack no address");
        // Either alone is fine, and a gateway with static or SLAAC IPv6 too.
        assert!(Config::from_args(&mut Args::from_words(["--ipv4=off"])).is_ok());
        assert!(Config::from_args(&mut Args::from_words(["--ipv6-gateway=fe80::1"])).is_ok());
    }

    #[test]
    fn syn_backlog_flag_and_its_bounds() {
        let c = Config::from_args(&mut Args::from_words(["--tcp-syn-backlog=64"])).unwrap();
        assert_eq!(c.syn_backlog, 64);
        assert_eq!(Config::from_args(&mut Args::from_words([""; 0])).unwrap().syn_backlog, 4096);
        for bad in ["--tcp-syn-backlog=0", "--tcp-syn-backlog=16385"] {
            let e = Config::from_args(&mut Args::from_words([bad])).unwrap_err();
            assert!(e.to_string().contains("--tcp-syn-backlog must be between 1 and 16384"), "{e}");
        }
    }

    #[test]
    fn rejects_bad_addresses() {
        let e = Config::from_args(&mut Args::from_words(["--ipv4=banana"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'banana' for --ipv4: expected ADDRESS/PREFIX-LENGTH (or 'dhcp' or 'off')"
        );
        let e = Config::from_args(&mut Args::from_words(["--ipv4=10.0.0.300/24"])).unwrap_err();
        assert!(e.to_string().contains("'10.0.0.300' is not a valid address"), "{e}");
        let e = Config::from_args(&mut Args::from_words(["--ipv4=10.0.0.3/33"])).unwrap_err();
        assert!(e.to_string().contains("prefix length 33 is over 32"), "{e}");
        let e = Config::from_args(&mut Args::from_words(["--ipv4-gateway=10.0.0.1"])).unwrap_err();
        assert!(e.to_string().contains("needs a static"), "{e}");
    }
}

/// A build without IPv6 or DHCP refuses what it cannot do, naming the feature.
#[cfg(all(test, not(all(feature = "ipv6", feature = "dhcp"))))]
mod without_features {
    use super::*;
    use alloc::string::ToString;

    #[cfg(not(feature = "ipv6"))]
    #[test]
    fn ipv6_is_refused_and_off_by_default() {
        for words in [&["--ipv6=slaac"][..], &["--ipv6=fd00::2/64"], &["--ipv6-gateway=fe80::1"]] {
            let mut a = Args::from_words(words.iter().copied().chain(["--ipv4=10.0.0.2/24"]));
            let e = Config::from_args(&mut a).unwrap_err();
            assert!(e.to_string().contains("without the `ipv6` feature"), "{words:?}: {e}");
        }
        let c = Config::from_args(&mut Args::from_words(["--ipv4=10.0.0.2/24"])).unwrap();
        assert_eq!(c.ipv6, Ipv6Mode::Off);
        assert!(Config::from_args(&mut Args::from_words(["--ipv4=10.0.0.2/24", "--ipv6=off"])).is_ok());
    }

    #[cfg(not(feature = "dhcp"))]
    #[test]
    fn dhcp_is_refused_even_as_the_default() {
        for words in [&[][..], &["--ipv4=dhcp"]] {
            let e = Config::from_args(&mut Args::from_words(words.iter().copied())).unwrap_err();
            assert!(e.to_string().contains("needs the `dhcp` feature"), "{words:?}: {e}");
        }
        let c = Config::from_args(&mut Args::from_words(["--ipv4=10.0.0.2/24"])).unwrap();
        assert_eq!(c.ipv4, Ipv4Mode::Static(Cidr { addr: Ipv4Addr::new(10, 0, 0, 2), prefix: 24 }));
    }
}
