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

use morgana::log::{info, warn};
use morgana::{ArgError, Args, Clock, Context, Entropy, Env, ListenAddr};
use morgana_dns::clock::WallClock;
#[cfg(feature = "cookies")]
use morgana_dns::cookie::Secret;
use morgana_dns::rrl;
use morgana_dns::server;

#[cfg(not(feature = "transfers"))]
#[path = "no_transfers.rs"]
mod transfers;
#[cfg(feature = "transfers")]
mod transfers;
mod zones;

use transfers::Transfers;

use morgana_dns::ZoneFile;

/// `--listen`: `ADDR:PORT`, `[V6]:PORT` or `:PORT` (all addresses).
#[derive(Debug, Clone, Copy)]
struct Listen(ListenAddr);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Listen)
    }
}

struct Config {
    listen: Vec<Listen>,
    zones: Vec<ZoneFile>,
    transfers: Transfers,
    watch: Option<Duration>,
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
    let transfers = Transfers::from_args(args)?;
    let watch: Option<u64> = args.value(
        "watch-zones",
        "check --zone files for changes every SECONDS and reload them (default 1; 0: only on SIGHUP)",
    )?;
    let watch = Some(Duration::from_secs(watch.unwrap_or(1))).filter(|d| !d.is_zero());
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
    #[cfg(feature = "cookies")]
    let cookie_secret: Option<Secret> = args.value(
        "cookie-secret",
        "HEX: 128-bit secret of DNS cookies (32 hex digits), the same on every server of an anycast name (default: random)",
    )?;
    #[cfg(not(feature = "cookies"))]
    if args.has("cookie-secret") {
        return Err(ArgError::Conflict("--cookie-secret: this image was built without the `cookies` feature".into()));
    }
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
        #[cfg(feature = "transfers")]
        axfr: transfers.access.clone(),
        rrl: rrl::Config {
            rate: rate.unwrap_or(d.rrl.rate),
            slip: slip.unwrap_or(d.rrl.slip),
            size: size.unwrap_or(d.rrl.size),
        },
        #[cfg(feature = "cookies")]
        cookies: cookie_secret,
        clock: WallClock::default(),
    };
    Ok(Config { listen, zones, transfers, watch, server })
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

/// The secret of DNS cookies: `--cookie-secret`, else random. Without
/// entropy cookies are off: a guessable secret would let spoofed queries
/// past rate limiting.
#[cfg(feature = "cookies")]
fn cookie_secret(env: &mut Env, given: Option<Secret>) -> Option<Secret> {
    let time = match env.clock.wall() {
        Some(_) => "stamped with the wall clock",
        None => "stamped with the time since boot (no wall clock): valid at this server only, until it restarts",
    };
    if given.is_some() {
        info!("DNS cookies: secret from --cookie-secret, {time}");
        return given;
    }
    let mut key = [0u8; 16];
    if let Err(e) = env.entropy.fill(&mut key) {
        warn!("DNS cookies off: no entropy for their secret ({e}); give --cookie-secret");
        return None;
    }
    info!("DNS cookies: random secret, {time}");
    Some(Secret::new(key))
}

async fn serve(mut env: Env, cfg: Config) -> morgana::Result {
    if env.sandboxed() && cfg.transfers.connects() {
        return Err("--secondary and --notify open connections after start, which --sandbox forbids".into());
    }
    let catalog = zones::load(&mut env, &cfg.zones, &cfg.transfers.secondary_origins()).await?;
    let served = Rc::new(cfg.transfers.served(catalog));
    let mut server_cfg = cfg.server.clone();
    #[cfg(feature = "cookies")]
    {
        server_cfg.cookies = cookie_secret(&mut env, server_cfg.cookies.take());
    }
    let clock = env.clock;
    server_cfg.clock = WallClock::new(move || clock.wall().map(|w| w.0 / 1_000_000_000));
    #[cfg(feature = "transfers")]
    {
        server_cfg.axfr.clock = server_cfg.clock.clone();
    }
    let server_cfg = Rc::new(server_cfg);
    let announcer = cfg.transfers.start(&env, &served, server_cfg.clock.clone());
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
    zones::watch(&env, &cfg.zones, cfg.watch, &served, &announcer).await;
    core::future::pending::<()>().await;
    Ok(())
}

morgana::main!(config, serve);
