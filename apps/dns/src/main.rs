//! An authoritative DNS server over UDP and TCP. It answers for the
//! `ORIGIN.zone` files of the content archive found at boot (a boot
//! module, or a block device holding a ustar archive), else for the zones
//! embedded at build time; hosted, also for zone files named with `--zone`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::str::FromStr;
use core::time::Duration;

use morgana::kv::Kind;
use morgana::log::{info, warn};
use morgana::{ArgError, Args, Clock, Content, Context, Entropy, Env, KeyValue, ListenAddr};
use morgana_dns::rrl;
use morgana_dns::secondary::{self, Downstream, Follower, Secondary};
use morgana_dns::served::Served;
use morgana_dns::server;
use morgana_dns::tsig::Key;
use morgana_dns::xfr::{Access, Allow, WallClock};
use morgana_dns::{Catalog, Name, Zone};

include!(concat!(env!("OUT_DIR"), "/zones.rs"));

/// `--listen`: `ADDR:PORT`, `[V6]:PORT` or `:PORT` (all addresses).
#[derive(Debug, Clone, Copy)]
struct Listen(ListenAddr);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Listen)
    }
}

/// `--tsig-key NAME=ALGORITHM:BASE64`.
#[derive(Debug, Clone)]
struct TsigKey(Key);

impl FromStr for TsigKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Key::parse(s).map(TsigKey)
    }
}

/// `--zone ORIGIN=PATH`.
#[derive(Debug, Clone)]
struct ZoneFile {
    origin: Name,
    path: String,
}

impl FromStr for ZoneFile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (origin, path) = s.split_once('=').ok_or("expected ORIGIN=PATH")?;
        let origin = Name::parse(origin, Some(&Name::root())).map_err(|e| format!("bad origin '{origin}': {e}"))?;
        if path.is_empty() {
            return Err(String::from("empty path"));
        }
        Ok(ZoneFile { origin, path: path.into() })
    }
}

struct Config {
    listen: Vec<Listen>,
    zones: Vec<ZoneFile>,
    secondaries: Vec<Secondary>,
    notify: Vec<Downstream>,
    server: server::Config,
}

fn config(args: &mut Args) -> Result<Config, ArgError> {
    let mut listen: Vec<Listen> =
        args.values("listen", "address to serve UDP and TCP on, ADDR:PORT or :PORT (repeatable)")?;
    if listen.is_empty() {
        // A process serves on loopback at an unprivileged port; a VM on
        // port 53 of its addresses.
        let default = if morgana::HOSTED { "127.0.0.1:5353" } else { ":53" };
        listen.push(default.parse().map_err(|e: String| ArgError::Conflict(e))?);
    }
    let zones = args.values("zone", "ORIGIN=PATH: serve a zone file (hosted only; repeatable)")?;
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
        "ADDR[:PORT][,key=KEYNAME]: send NOTIFY there when a secondary zone changes here (repeatable)",
    )?;
    if let Some((d, k)) =
        notify.iter().find_map(|d| d.key.as_ref().filter(|k| !keys.iter().any(|key| key.name == **k)).map(|k| (d, k)))
    {
        return Err(ArgError::Conflict(format!("--notify {}: no --tsig-key named {k}", d.addr)));
    }
    let axfr = Access { allow, keys, clock: WallClock::default() };
    axfr.check().map_err(ArgError::Conflict)?;
    let d = server::Config::default();
    let idle: Option<u64> = args.value("tcp-idle", "seconds before an idle TCP connection is closed (default 10)")?;
    let max: Option<usize> =
        args.value("tcp-max", "concurrent TCP connections; at the cap the longest waiting makes way (default 128)")?;
    let rate: Option<u32> = args.value(
        "rrl-rate",
        "UDP responses per second to one client network (/24, /56) per kind and name; 0: no rate limiting (default 200)",
    )?;
    let slip: Option<u32> =
        args.value("rrl-slip", "send every Nth rate-limited UDP response truncated (TC); 0: none, 1: all (default 2)")?;
    let size: Option<usize> = args.value("rrl-size", "entries in the rate-limiting table (default 8192)")?;
    let too_big = |flag, value: String, max: usize| ArgError::Invalid { flag, value, reason: format!("at most {max}") };
    if let Some(r) = rate.filter(|r| *r > rrl::MAX_RATE) {
        return Err(too_big("rrl-rate", r.to_string(), rrl::MAX_RATE as usize));
    }
    if let Some(s) = size.filter(|s| *s > rrl::MAX_SIZE) {
        return Err(too_big("rrl-size", s.to_string(), rrl::MAX_SIZE));
    }
    let server = server::Config {
        tcp_idle: idle.map(Duration::from_secs).unwrap_or(d.tcp_idle),
        tcp_max_connections: max.unwrap_or(d.tcp_max_connections),
        axfr,
        rrl: rrl::Config {
            rate: rate.unwrap_or(d.rrl.rate),
            slip: slip.unwrap_or(d.rrl.slip),
            size: size.unwrap_or(d.rrl.size),
        },
    };
    Ok(Config { listen, zones, secondaries, notify, server })
}

async fn load(env: &mut Env, cfg: &Config) -> morgana::Result<Catalog> {
    let mut zones = match env.content.as_mut() {
        Some(content) => content_zones(content).await?,
        None => embedded_zones()?,
    };
    if !morgana::HOSTED && !cfg.zones.is_empty() {
        return Err("--zone needs files, which VM images do not have; embed zones at build time".into());
    }
    for z in cfg.zones.iter().filter(|_| morgana::HOSTED) {
        let text = env.read_file(&z.path).context(format_args!("zone {}", z.origin))?;
        let dir = z.path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
        let include = |p: &str| -> Result<String, String> {
            let full = if p.starts_with('/') { String::from(p) } else { format!("{dir}/{p}") };
            env.read_file(&full).map_err(|e| format!("{e}"))
        };
        let zone = Zone::parse(&text, &z.origin, &z.path, Some(&include))?;
        info!("zone {}: {} records, serial {} ({})", zone.origin, zone.records, zone.soa.1.serial, z.path);
        zones.push(zone);
    }
    if let Some(s) = cfg.secondaries.iter().find(|s| zones.iter().any(|z| z.origin == s.origin)) {
        return Err(format!("zone {} is both loaded and a --secondary", s.origin).into());
    }
    if zones.is_empty() && cfg.secondaries.is_empty() {
        return Err("no zones to serve".into());
    }
    Ok(Catalog::new(zones))
}

/// The zones embedded at build time.
fn embedded_zones() -> morgana::Result<Vec<Zone>> {
    let mut zones = Vec::new();
    for (origin, file, records) in ZONES {
        let name = Name::parse(origin, None).context(origin)?;
        let zone = Zone::from_binary(records, &name, file)?;
        info!("zone {}: {} records, serial {} (embedded {file})", zone.origin, zone.records, zone.soa.1.serial);
        zones.push(zone);
    }
    Ok(zones)
}

/// The `ORIGIN.zone` files at the root of the content archive, in place of
/// the embedded zones. Any bad zone fails the whole load (file and line in
/// the error): the server never starts with part of its zones.
async fn content_zones(content: &mut Content) -> morgana::Result<Vec<Zone>> {
    let from = format!("content from {}", content.source());
    let mut zones = Vec::new();
    for (file, kind) in content.list("").await.context(&from)? {
        let Some(stem) = file.strip_suffix(".zone").filter(|_| kind == Kind::File) else { continue };
        let origin = format!("{}.", stem.trim_end_matches('.'));
        let origin = Name::parse(&origin, None).map_err(|e| format!("{from}: {file}: bad origin: {e}"))?;
        let bytes = content.get(&file).await.context(&from)?;
        let text = String::from_utf8(bytes).map_err(|e| format!("{from}: {file}: not UTF-8 text: {e}"))?;
        let no_include = |_: &str| -> Result<String, String> { Err("not supported in a content archive".into()) };
        let zone = Zone::parse(&text, &origin, &file, Some(&no_include)).context(&from)?;
        info!("zone {}: {} records, serial {} ({file}, {from})", zone.origin, zone.records, zone.soa.1.serial);
        zones.push(zone);
    }
    if zones.is_empty() {
        return Err(format!("{from}: no ORIGIN.zone files at the archive's root").into());
    }
    Ok(zones)
}

/// The UDP rate limiter, its hash keyed from the entropy source (from the
/// clock, and guessable, without one).
fn limiter(env: &mut Env, cfg: &rrl::Config) -> Option<Rc<RefCell<rrl::Limiter>>> {
    if cfg.rate == 0 {
        info!("UDP response rate limiting off");
        return None;
    }
    let mut seed = [0u8; 16];
    if let Err(e) = env.entropy.fill(&mut seed) {
        warn!("no entropy for the rate limiter's hash key ({e}); keying it from the clock");
        seed[..8].copy_from_slice(&env.now().as_nanos().to_le_bytes());
    }
    let limiter = server::udp_limiter(cfg, seed);
    if let Some(l) = &limiter {
        let entries = l.borrow().capacity();
        info!(
            "UDP response rate limiting: {}/s per network, kind and name, slip {}, {entries} entries",
            cfg.rate, cfg.slip
        );
    }
    limiter
}

async fn serve(mut env: Env, cfg: Config) -> morgana::Result {
    let catalog = load(&mut env, &cfg).await?;
    let followers: Vec<Rc<Follower>> = cfg.secondaries.iter().cloned().map(|s| Rc::new(Follower::new(s))).collect();
    let served = Rc::new(Served::new(catalog, followers));
    let mut server_cfg = cfg.server.clone();
    let clock = env.clock;
    server_cfg.axfr.clock = WallClock::new(move || clock.wall().map(|w| w.0 / 1_000_000_000));
    let server_cfg = Rc::new(server_cfg);
    let access = Rc::new(server_cfg.axfr.clone());
    let downstream: Rc<[Downstream]> = cfg.notify.clone().into();
    for f in served.followers() {
        let key = f.config.key.as_ref().map_or(String::new(), |k| format!(", key {k}"));
        info!("zone {}: secondary of {}{key}; SERVFAIL until the first transfer", f.config.origin, f.config.primary);
        let (net, rt) = (env.net.clone(), env.rt.clone());
        let follow = secondary::follow(f.clone(), served.clone(), downstream.clone(), net, access.clone(), rt);
        env.spawn(follow);
    }
    let limiter = limiter(&mut env, &cfg.server.rrl);
    for l in &cfg.listen {
        let udp = env.net.udp_bind(l.0).context(format_args!("UDP {}", l.0))?;
        let tcp = env.net.tcp_listen(l.0).context(format_args!("TCP {}", l.0))?;
        env.spawn(server::serve_udp(udp, served.clone(), limiter.clone(), server_cfg.clone(), env.rt.clone()));
        env.spawn(server::serve_tcp(tcp, served.clone(), server_cfg.clone(), env.rt.clone()));
        info!("serving DNS on {} (UDP and TCP)", l.0);
    }
    // A hint for the developer running it as a process; a VM's address is
    // its own (and often forwarded), so no guess is printed there.
    if let (true, Some(l), Some(zone)) = (morgana::HOSTED, cfg.listen.first(), served.catalog().zones().last().cloned())
    {
        let at = l.0.ip.map(|ip| format!("{ip}")).unwrap_or_else(|| String::from("127.0.0.1"));
        info!("try: dig @{at} -p {} www.{}", l.0.port, zone.origin);
    }
    core::future::pending::<()>().await;
    Ok(())
}

morgana::main!(config, serve);
