//! The zones served: loaded at start (a content archive, the zones
//! embedded at build time, `--zone` files), and `--zone` files reloaded
//! when they change or on SIGHUP (hosted), each new version announced to
//! the `--notify` secondaries.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use morgana::kv::Kind;
use morgana::log::{info, warn};
use morgana::{Content, Context, Env, KeyValue};
use morgana_dns::served::Served;
use morgana_dns::zone::serial_newer;
use morgana_dns::{Catalog, Name, Zone, ZoneFile};

use crate::transfers::Announcer;

include!(concat!(env!("OUT_DIR"), "/zones.rs"));

/// Reads and checks the zone file `z` (`$INCLUDE`s relative to its
/// directory).
fn read(env: &Env, z: &ZoneFile) -> morgana::Result<Zone> {
    let text = env.read_file(&z.path).context(format_args!("zone {}", z.origin))?;
    let dir = z.path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
    let include = |p: &str| -> Result<String, String> {
        let full = if p.starts_with('/') { String::from(p) } else { format!("{dir}/{p}") };
        env.read_file(&full).map_err(|e| format!("{e}"))
    };
    Ok(Zone::parse(&text, &z.origin, &z.path, Some(&include))?)
}

/// The zones to serve at start: the content archive's or the embedded ones,
/// and the `--zone` files (hosted).
pub async fn load(env: &mut Env, files: &[ZoneFile], secondaries: &[Name]) -> morgana::Result<Catalog> {
    let mut zones = match env.content.as_mut() {
        Some(content) => content_zones(content).await?,
        None => embedded_zones()?,
    };
    if !morgana::HOSTED && !files.is_empty() {
        return Err("--zone needs files, which VM images do not have; embed zones at build time".into());
    }
    for z in files.iter().filter(|_| morgana::HOSTED) {
        let zone = read(env, z)?;
        info!("zone {}: {} records, serial {} ({})", zone.origin, zone.records, zone.soa.1.serial, z.path);
        zones.push(zone);
    }
    if let Some(s) = secondaries.iter().find(|s| zones.iter().any(|z| z.origin == **s)) {
        return Err(format!("zone {s} is both loaded and a --secondary").into());
    }
    if zones.is_empty() && secondaries.is_empty() {
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

/// Reloads `files` when the operator sends SIGHUP, and (with `every`)
/// when a file's modification time changes, checked that often. A file
/// that fails its checks, or whose serial did not grow, is not served (the
/// old version stays); a new version goes to the journal (IXFR) and is
/// announced to `downstream`. Runs forever; returns at once without files
/// or where files cannot be watched (a VM, a sandboxed process).
pub async fn watch(env: &Env, files: &[ZoneFile], every: Option<Duration>, served: &Served, announcer: &Announcer) {
    if files.is_empty() || !morgana::HOSTED {
        return;
    }
    if env.sandboxed() {
        return info!("zone files are not watched: --sandbox allows no file access after start");
    }
    let mut stamps: Vec<Option<u64>> = files.iter().map(|f| env.file_modified(&f.path).ok()).collect();
    let tick = every.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1));
    let mut since_check = Duration::ZERO;
    loop {
        env.sleep(tick).await;
        since_check += tick;
        let asked = env.reload_requested();
        let check = every.is_some_and(|e| since_check >= e);
        if !asked && !check {
            continue;
        }
        since_check = Duration::ZERO;
        for (f, stamp) in files.iter().zip(stamps.iter_mut()) {
            let now = match env.file_modified(&f.path) {
                Ok(t) => Some(t),
                Err(e) if asked || stamp.is_some() => {
                    warn!("zone {}: {e}; zone files are no longer watched", f.origin);
                    return;
                }
                Err(_) => None,
            };
            if !asked && now == *stamp {
                continue;
            }
            *stamp = now;
            reload(env, f, served, announcer);
        }
    }
}

fn reload(env: &Env, f: &ZoneFile, served: &Served, announcer: &Announcer) {
    let old = served.zone(&f.origin).map(|z| z.soa.1.serial);
    let zone = match read(env, f) {
        Ok(z) => z,
        Err(e) => {
            let still = old.map_or(String::new(), |s| format!("; still serving serial {s}"));
            return warn!("zone {}: not reloaded: {e}{still}", f.origin);
        }
    };
    let serial = zone.soa.1.serial;
    match old {
        Some(o) if o == serial => return info!("zone {}: {} unchanged at serial {serial}", f.origin, f.path),
        Some(o) if !serial_newer(serial, o) => {
            return warn!(
                "zone {}: not reloaded: serial {serial} in {} is not newer than {o} (secondaries could not follow)",
                f.origin, f.path
            );
        }
        _ => {}
    }
    info!(
        "zone {}: reloaded {}, serial {} -> {serial}, {} records",
        f.origin,
        f.path,
        old.map_or(String::from("none"), |o| format!("{o}")),
        zone.records
    );
    let soa = zone.soa.1.clone();
    #[cfg(feature = "transfers")]
    served.install(zone, None);
    #[cfg(not(feature = "transfers"))]
    served.install(zone);
    announcer.announce(env, &f.origin, &soa);
}
