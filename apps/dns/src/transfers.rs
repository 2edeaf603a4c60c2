//! Zone transfers in the DNS app (feature `transfers`): the flags
//! (`--axfr-allow`, `--tsig-key`, `--secondary`, `--notify`), the secondary
//! zones' tasks and NOTIFY to the `--notify` servers.

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::str::FromStr;

use morgana::log::info;
use morgana::{ArgError, Args, Env};
use morgana_dns::clock::WallClock;
use morgana_dns::rdata::Soa;
use morgana_dns::secondary::{self, notify, Downstream, Follower, Secondary};
use morgana_dns::served::Served;
use morgana_dns::tsig::Key;
use morgana_dns::xfr::{Access, Allow};
use morgana_dns::{Catalog, Name};

/// `--tsig-key NAME=ALGORITHM:BASE64`.
#[derive(Debug, Clone)]
struct TsigKey(Key);

impl FromStr for TsigKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Key::parse(s).map(TsigKey)
    }
}

/// Who may transfer, the zones followed, the servers told of changes.
#[derive(Clone)]
pub struct Transfers {
    pub access: Access,
    secondaries: Vec<Secondary>,
    notify: Vec<Downstream>,
}

impl Transfers {
    /// Takes the transfer flags from `args`.
    pub fn from_args(args: &mut Args) -> Result<Transfers, ArgError> {
        let allow: Vec<Allow> = args.values(
            "axfr-allow",
            "address, network or key=KEYNAME allowed to transfer zones (repeatable; none by default)",
        )?;
        let keys: Vec<TsigKey> =
            args.values("tsig-key", "NAME=ALGORITHM:BASE64: a TSIG key, hmac-sha256 or hmac-sha512 (repeatable)")?;
        let keys: Vec<Key> = keys.into_iter().map(|k| k.0).collect();
        if let Some(dup) = keys.iter().enumerate().find(|(i, k)| keys[..*i].iter().any(|o| o.name == k.name)) {
            return Err(ArgError::Conflict(format!("--tsig-key {} given twice", dup.1.name)));
        }
        let secondaries: Vec<Secondary> = args.values(
            "secondary",
            "ORIGIN=ADDR[:PORT][,key=KEYNAME]: follow the zone's primary by SOA refresh, NOTIFY, IXFR and AXFR (repeatable)",
        )?;
        for (i, s) in secondaries.iter().enumerate() {
            if secondaries[..i].iter().any(|o| o.origin == s.origin) {
                return Err(ArgError::Conflict(format!("--secondary {} given twice", s.origin)));
            }
            if let Some(k) = s.key.as_ref().filter(|k| !keys.iter().any(|key| key.name == **k)) {
                return Err(ArgError::Conflict(format!("--secondary {}: no --tsig-key named {k}", s.origin)));
            }
        }
        let notify: Vec<Downstream> = args.values(
            "notify",
            "ADDR[:PORT][,key=KEYNAME]: send NOTIFY there when a zone changes here (a --zone file reloaded, a --secondary zone transferred; repeatable)",
        )?;
        if let Some((d, k)) = notify
            .iter()
            .find_map(|d| d.key.as_ref().filter(|k| !keys.iter().any(|key| key.name == **k)).map(|k| (d, k)))
        {
            return Err(ArgError::Conflict(format!("--notify {}: no --tsig-key named {k}", d.addr)));
        }
        let access = Access { allow, keys, clock: WallClock::default() };
        access.check().map_err(ArgError::Conflict)?;
        Ok(Transfers { access, secondaries, notify })
    }

    /// Whether something opens connections after start (no `--sandbox`).
    pub fn connects(&self) -> bool {
        !(self.secondaries.is_empty() && self.notify.is_empty())
    }

    /// The origins of the secondary zones.
    pub fn secondary_origins(&self) -> Vec<Name> {
        self.secondaries.iter().map(|s| s.origin.clone()).collect()
    }

    /// What to serve: `catalog` and the secondary zones.
    pub fn served(&self, catalog: Catalog) -> Served {
        let followers = self.secondaries.iter().cloned().map(|s| Rc::new(Follower::new(s))).collect();
        Served::following(catalog, followers)
    }

    /// Tells the `--notify` servers of every zone served now (they may
    /// have missed changes while we were down) and follows the secondary
    /// zones. Returns what announces later changes.
    pub fn start(&self, env: &Env, served: &Rc<Served>, clock: WallClock) -> Announcer {
        let mut access = self.access.clone();
        access.clock = clock;
        let announcer = Announcer { downstream: self.notify.clone().into(), access: Rc::new(access) };
        for zone in served.catalog().zones() {
            announcer.announce(env, &zone.origin, &zone.soa.1);
        }
        for f in served.followers() {
            let key = f.config.key.as_ref().map_or(String::new(), |k| format!(", key {k}"));
            info!(
                "zone {}: secondary of {}{key}; SERVFAIL until the first transfer",
                f.config.origin, f.config.primary
            );
            let (net, rt) = (env.net.clone(), env.rt.clone());
            let (down, access) = (announcer.downstream.clone(), announcer.access.clone());
            env.spawn(secondary::follow(f.clone(), served.clone(), down, net, access, rt));
        }
        announcer
    }
}

/// Sends NOTIFY for a new version of a zone to the `--notify` servers.
pub struct Announcer {
    downstream: Rc<[Downstream]>,
    access: Rc<Access>,
}

impl Announcer {
    /// Tells every `--notify` server that `origin` is at `soa`.
    pub fn announce(&self, env: &Env, origin: &Name, soa: &Soa) {
        for d in self.downstream.iter() {
            let (net, rt, access) = (env.net.clone(), env.rt.clone(), self.access.clone());
            env.spawn(notify::send(origin.clone(), soa.clone(), d.clone(), net, access, rt));
        }
    }
}
