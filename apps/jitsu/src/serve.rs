//! Start-up: the zones (with each unikernel's A record added), the bridge,
//! the DNS front, and the loop that stops idle VMs and, on SIGINT or
//! SIGTERM, all of them.

use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use morgana::log::{info, warn};
use morgana::{Context, Entropy, Env};
use morgana_dns::server;
use morgana_dns::wire::rtype;
use morgana_dns::{Catalog, Zone};

use crate::flags::{Config, Launcher, Spec};
use crate::front;
use crate::launcher::{private_dir, Runner};
use crate::registry::{Limits, Registry};

/// How often idle VMs and exits are looked for (and signals noticed).
const TICK: Duration = Duration::from_millis(100);

/// The TTL of a unikernel's A record: never longer than the idle time, so
/// no resolver holds an address past its VM's stop; at most 30 s.
fn ttl(idle_stop: Duration) -> u32 {
    (idle_stop.as_secs() / 2).clamp(1, 30) as u32
}

/// The zones, each with the A records of the unikernels it holds (in the
/// zone with the longest matching origin).
fn load(env: &Env, cfg: &Config) -> morgana::Result<Catalog> {
    let mut zones = Vec::new();
    for z in &cfg.zones {
        let text = env.read_file(&z.path).context(format_args!("zone {}", z.origin))?;
        let dir = z.path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
        let include = |p: &str| -> Result<String, String> {
            let full = if p.starts_with('/') { p.to_string() } else { format!("{dir}/{p}") };
            env.read_file(&full).map_err(|e| format!("{e}"))
        };
        let plain = Zone::parse(&text, &z.origin, &z.path, Some(&include))?;
        let mine = |u: &&Spec| {
            let best = cfg.zones.iter().filter(|o| u.name.is_within(&o.origin)).max_by_key(|o| o.origin.wire().len());
            best.is_some_and(|b| b.origin == z.origin)
        };
        let mut added = String::from("\n");
        for u in cfg.unikernels.iter().filter(mine) {
            if plain.nodes.get(&u.name).and_then(|n| n.get(rtype::A)).is_some() {
                return Err(format!(
                    "{}: {} already has an A record; Jitsu gives it the unikernel's address (ip=)",
                    z.path, u.name
                )
                .into());
            }
            added += &format!("{} {} IN A {}\n", u.name, ttl(cfg.idle_stop), u.ip);
        }
        let zone = Zone::parse(&(text + &added), &z.origin, &z.path, Some(&include))?;
        info!("zone {}: {} records, serial {} ({})", zone.origin, zone.records, zone.soa.1.serial, z.path);
        zones.push(zone);
    }
    Ok(Catalog::new(zones))
}

/// The bridge's first IPv4 address (the guests' default gateway).
fn bridge_address(bridge: &str) -> morgana::Result<Option<Ipv4Addr>> {
    if !std::path::Path::new(&format!("/sys/class/net/{bridge}/bridge")).is_dir() {
        return Err(format!("--bridge {bridge}: no such bridge").into());
    }
    let out = Command::new("ip").args(["-4", "-o", "addr", "show", "dev", bridge]).output();
    let out = out.map_err(|e| format!("cannot run ip (apt-get install iproute2): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "3: br0    inet 10.0.0.1/24 brd ... scope global br0"
    let addr = text.split_whitespace().skip_while(|w| *w != "inet").nth(1);
    Ok(addr.and_then(|a| a.split('/').next()?.parse().ok()))
}

/// libvirtd answers at `uri`.
fn libvirt_reachable(uri: &str) -> morgana::Result<()> {
    let out = Command::new("virsh").args(["-c", uri, "version"]).output();
    let out = out.map_err(|e| format!("cannot run virsh (apt-get install libvirt-clients): {e}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!("--libvirt-uri {uri}: libvirt does not answer: {}", why.trim()).into());
    }
    Ok(())
}

pub async fn serve(mut env: Env, cfg: Config) -> morgana::Result {
    let catalog = Rc::new(load(&env, &cfg)?);
    let bridge = cfg.bridge.clone().unwrap_or_default();
    let gateway = match (&cfg.bridge, cfg.gateway) {
        (_, Some(gw)) => Some(gw),
        (Some(b), None) => bridge_address(b)?,
        (None, None) => None,
    };
    if cfg.bridge.is_some() {
        bridge_address(&bridge)?;
    }
    for u in &cfg.unikernels {
        info!("unikernel {}: {} at {}/{}, {} MiB", u.name, u.image.display(), u.ip, u.prefix, u.mem_mib);
    }
    if cfg.launcher == Launcher::Libvirt && !cfg.unikernels.is_empty() {
        libvirt_reachable(&cfg.libvirt_uri)?;
    }
    // The libvirt XML and xl configurations go in a directory of Jitsu's
    // own (QEMU's launcher writes no files).
    let workdir = if cfg.launcher != Launcher::Qemu && !cfg.unikernels.is_empty() {
        let mut random = [0u8; 8];
        env.entropy.fill(&mut random).map_err(|e| format!("no entropy for the work directory's name: {e}"))?;
        private_dir(&std::env::temp_dir(), u64::from_le_bytes(random))?
    } else {
        std::path::PathBuf::new()
    };
    let runner = Runner { launcher: cfg.launcher, libvirt_uri: cfg.libvirt_uri.clone(), bridge, workdir };
    let limits = Limits {
        runner,
        gateway,
        idle_stop: cfg.idle_stop,
        max_running: cfg.max_running,
        boot_timeout: cfg.boot_timeout,
    };
    let reg = Rc::new(RefCell::new(Registry::new(cfg.unikernels.clone(), limits)));

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("signal handler: {e}"))?;
    }

    let rrl = server::Config::default().rrl;
    let mut seed = [0u8; 16];
    if let Err(e) = env.entropy.fill(&mut seed) {
        warn!("no entropy for the rate limiter's hash key ({e}); keying it from the clock");
        seed[..8].copy_from_slice(&env.now().as_nanos().to_le_bytes());
    }
    let limiter = server::udp_limiter(&rrl, seed);
    for l in &cfg.listen {
        let udp = env.net.udp_bind(l.0).context(format_args!("UDP {}", l.0))?;
        let tcp = env.net.tcp_listen(l.0).context(format_args!("TCP {}", l.0))?;
        env.spawn(front::serve_udp(udp, catalog.clone(), reg.clone(), limiter.clone(), env.rt.clone()));
        env.spawn(front::serve_tcp(tcp, catalog.clone(), reg.clone(), env.rt.clone()));
        info!("serving DNS on {} (UDP and TCP)", l.0);
    }

    while !stop.load(Ordering::Relaxed) {
        env.sleep(TICK).await;
        reg.borrow_mut().tick();
    }
    match cfg.launcher {
        Launcher::Qemu => info!("stopping: every unikernel and its TAP device"),
        _ => info!("stopping: every unikernel's domain"),
    }
    reg.borrow_mut().shutdown();
    info!("stopped");
    Ok(())
}
