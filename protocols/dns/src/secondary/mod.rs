//! Secondary zones: following a primary server (RFC 1034 §4.3.5).
//!
//! At start, each secondary zone is transferred from its primary (AXFR,
//! RFC 5936). Then the SOA timers rule: every REFRESH seconds the
//! primary's serial is checked (at once when the primary sends a NOTIFY,
//! RFC 1996); a newer serial (RFC 1982 arithmetic) is fetched by IXFR
//! (RFC 1995), by AXFR when the primary answers with a whole zone or
//! refuses. After a failed check the next comes RETRY seconds later; when
//! no check has succeeded for EXPIRE seconds the zone answers SERVFAIL.
//! A new version is served only once complete and checked like a zone
//! file; until then, the old one. Transfers and NOTIFY are signed with the
//! zone's TSIG key when one is configured.
//!
//! Zones live in memory only: after a restart (or a VM's reboot) each one
//! is transferred again before it is served.

pub mod ixfr;
pub mod notify;
mod transfer;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::net::SocketAddr;
use core::pin::Pin;
use core::str::FromStr;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana_net::Stack;
use morgana_runtime::{Handle, Instant};

use crate::name::Name;
use crate::rdata::Soa;
use crate::served::Served;
use crate::xfr::Access;

pub use transfer::Refreshed;

/// `ORIGIN=ADDR[:PORT][,key=KEYNAME]`: a zone and the primary it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secondary {
    /// The zone.
    pub origin: Name,
    /// The primary server (port 53 unless given).
    pub primary: SocketAddr,
    /// The TSIG key that signs transfers and NOTIFY, if any.
    pub key: Option<Name>,
}

impl FromStr for Secondary {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (origin, rest) = s.split_once('=').ok_or("expected ORIGIN=ADDR:PORT[,key=KEYNAME]")?;
        let origin = Name::parse(origin, Some(&Name::root())).map_err(|e| format!("bad origin '{origin}': {e}"))?;
        let (primary, key) = peer(rest)?;
        Ok(Secondary { origin, primary, key })
    }
}

/// `ADDR[:PORT][,key=KEYNAME]`: a server (port 53 unless given) and the
/// TSIG key for it.
fn peer(s: &str) -> Result<(SocketAddr, Option<Name>), String> {
    let (addr, key) = match s.split_once(',') {
        None => (s, None),
        Some((addr, opt)) => {
            let key =
                opt.strip_prefix("key=").ok_or_else(|| format!("unknown option '{opt}', expected key=KEYNAME"))?;
            let key = Name::parse(key, Some(&Name::root())).map_err(|e| format!("bad key name '{key}': {e}"))?;
            (addr, Some(key))
        }
    };
    let addr = match addr.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => match addr.trim_start_matches('[').trim_end_matches(']').parse::<core::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, 53),
            Err(_) => return Err(format!("'{addr}' is not ADDR or ADDR:PORT")),
        },
    };
    Ok((addr, key))
}

/// `ADDR[:PORT][,key=KEYNAME]`: a secondary server told by NOTIFY when a
/// zone changes here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downstream {
    /// Where NOTIFY goes (port 53 unless given).
    pub addr: SocketAddr,
    /// The TSIG key that signs it, if any.
    pub key: Option<Name>,
}

impl FromStr for Downstream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, key) = peer(s)?;
        Ok(Downstream { addr, key })
    }
}

pub use crate::zone::serial_newer;

/// A wake-up call for one task: raised any number of times, it wakes the
/// waiter once.
#[derive(Default)]
pub struct Signal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    /// Raises it; the waiting task (or the next wait) returns.
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Waits until raised, and lowers it.
    pub fn wait(&self) -> Wait<'_> {
        Wait(self)
    }
}

/// The future of [`Signal::wait`].
pub struct Wait<'a>(&'a Signal);

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.raised.replace(false) {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// A secondary zone at run time: its configuration and the signal that a
/// NOTIFY raises.
pub struct Follower {
    /// What to follow.
    pub config: Secondary,
    /// Raised by a NOTIFY from the primary.
    pub notified: Signal,
}

impl Follower {
    /// A follower of `config`.
    pub fn new(config: Secondary) -> Follower {
        Follower { config, notified: Signal::default() }
    }
}

/// The first retry when a zone has never been transferred, doubled after
/// each failure up to [`LONGEST_WAIT`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between tries before the first transfer.
const LONGEST_WAIT: Duration = Duration::from_secs(300);
/// NOTIFY-triggered checks are at least this far apart (a NOTIFY over UDP
/// can be forged: a flood must not turn into a flood of transfers).
const NOTIFY_SPACING: Duration = Duration::from_secs(1);

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s.max(1)))
}

/// Follows `f`'s primary forever, installing new versions in `served`
/// and telling `downstream` of each by NOTIFY: connects with `net`, signs
/// with `access`'s keys and clock.
pub async fn follow(
    f: Rc<Follower>,
    served: Rc<Served>,
    downstream: Rc<[Downstream]>,
    net: Stack,
    access: Rc<Access>,
    rt: Handle,
) {
    let origin = f.config.origin.clone();
    let mut expires: Option<Instant> = None;
    let mut backoff = FIRST_RETRY;
    let mut last_notified: Option<Instant> = None;
    loop {
        let current = served.zone(&origin);
        let result = transfer::refresh(&f.config, current.as_deref(), &net, &access, &rt).await;
        let soa: Option<Soa> = match result {
            Ok(Refreshed::Current(soa)) => {
                log::debug!("zone {origin}: serial {} is current ({})", soa.serial, f.config.primary);
                Some(soa)
            }
            Ok(Refreshed::New(zone, how, steps)) => {
                let soa = zone.soa.1.clone();
                log::info!(
                    "zone {origin}: serial {} from {} by {how}, {} records",
                    soa.serial,
                    f.config.primary,
                    zone.records
                );
                served.install(zone, steps);
                for d in downstream.iter() {
                    let send =
                        notify::send(origin.clone(), soa.clone(), d.clone(), net.clone(), access.clone(), rt.clone());
                    rt.spawn(send);
                }
                Some(soa)
            }
            Err(e) => {
                log::warn!("zone {origin}: refresh from {} failed: {e}", f.config.primary);
                None
            }
        };
        let now = rt.now();
        let wait = match (&soa, served.zone(&origin)) {
            (Some(soa), _) => {
                expires = Some(now + secs(soa.expire));
                backoff = FIRST_RETRY;
                secs(soa.refresh)
            }
            (None, Some(zone)) => secs(zone.soa.1.retry),
            (None, None) => {
                let b = backoff;
                backoff = (backoff * 2).min(LONGEST_WAIT);
                b
            }
        };
        let mut next = now + wait;
        if let Some(e) = expires {
            next = next.min(e);
        }
        // Sleep until the next check, a NOTIFY, or expiry.
        let notified = rt.timeout(next.saturating_since(rt.now()), f.notified.wait()).await.is_ok();
        if expires.is_some_and(|e| rt.now() >= e) {
            if served.zone(&origin).is_some() {
                log::warn!(
                    "zone {origin}: expired, no contact with {} for the SOA's expire time; SERVFAIL until the next transfer",
                    f.config.primary
                );
                served.expire(&origin);
            }
            expires = None;
        }
        if notified {
            // A NOTIFY: check now, or as soon as the spacing allows.
            if let Some(earliest) = last_notified.map(|t| t + NOTIFY_SPACING).filter(|e| rt.now() < *e) {
                rt.sleep_until(earliest).await;
            }
            last_notified = Some(rt.now());
            log::info!("zone {origin}: NOTIFY from the primary, checking the serial");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        assert!(serial_newer(2, 1));
        assert!(!serial_newer(1, 2));
        assert!(!serial_newer(5, 5));
        assert!(serial_newer(0, u32::MAX), "wraps around");
        assert!(serial_newer(100, u32::MAX - 100));
        assert!(!serial_newer(u32::MAX, 0));
        // Exactly half way round is undefined (RFC 1982 §3.2): not newer.
        assert!(!serial_newer(1 << 31, 0));
    }

    #[test]
    fn flags_parse() {
        let s: Secondary = "example.com=192.0.2.1:5300,key=xfr-key".parse().unwrap();
        assert_eq!(s.origin, Name::parse("example.com.", None).unwrap());
        assert_eq!(s.primary, "192.0.2.1:5300".parse().unwrap());
        assert_eq!(s.key, Some(Name::parse("xfr-key.", None).unwrap()));
        let s: Secondary = "example.com.=2001:db8::1".parse().unwrap();
        assert_eq!(s.primary, "[2001:db8::1]:53".parse().unwrap());
        assert_eq!(s.key, None);
        assert!("example.com".parse::<Secondary>().is_err());
        assert!("example.com=banana".parse::<Secondary>().is_err());
        assert!("example.com=192.0.2.1,sig=x".parse::<Secondary>().unwrap_err().contains("unknown option"));
    }
}
