//! Real DNS servers as peers of Morgana's DNS app on loopback: NSD and
//! Knot as secondaries of it (TSIG key `xfr-key`, hmac-sha256), and `dig`
//! to watch what a server answers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{free_port, Running};

/// A fresh scratch directory for one test.
pub fn temp_dir(tag: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("morgana-{tag}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `dig @127.0.0.1 -p PORT ARGS`, one try of 2 s: its standard output.
pub fn dig(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=2"])
        .args(args)
        .output()
        .map_err(|e| format!("dig: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The serial of `zone`'s SOA as the server at `port` answers it.
pub fn serial(port: u16, zone: &str) -> Result<Option<u32>, String> {
    let out = dig(port, &["+short", zone, "SOA"])?;
    Ok(out.split_whitespace().nth(2).and_then(|s| s.parse().ok()))
}

/// Waits until the server at `port` answers `want` as `zone`'s serial;
/// returns when it did.
pub fn wait_serial(port: u16, zone: &str, want: u32, within: Duration) -> Result<Instant, String> {
    let deadline = Instant::now() + within;
    loop {
        let got = serial(port, zone)?;
        if got == Some(want) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            return Err(format!("{zone}: serial {want} not served at port {port} within {within:?} (last: {got:?})"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// NSD at `port`, a secondary of `zone` from the server at `primary`
/// (IXFR, falling back to AXFR), taking NOTIFY from 127.0.0.1; signed with
/// `xfr-key` = `secret`. Its files live in `dir`.
pub fn nsd_secondary(dir: &Path, port: u16, zone: &str, primary: u16, secret: &str) -> std::io::Result<Running> {
    let d = dir.display();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  verbosity: 2\nremote-control:\n  control-enable: no\nkey:\n  name: \"xfr-key\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\nzone:\n  name: \"{zone}\"\n  zonefile: \"{zone}.nsd\"\n  request-xfr: 127.0.0.1@{primary} xfr-key\n  allow-notify: 127.0.0.1 xfr-key\n"
    );
    std::fs::write(dir.join("nsd.conf"), conf)?;
    let mut nsd = Command::new("nsd");
    nsd.arg("-d").arg("-c").arg(dir.join("nsd.conf"));
    Ok(Running::start(nsd))
}

/// Knot at `port`, a secondary of `zone` from the server at `primary`,
/// taking NOTIFY from 127.0.0.1; signed with `xfr-key` = `secret`. Logs to
/// stderr (its `Running` output). Its files live in `dir`/knot.
pub fn knot_secondary(dir: &Path, port: u16, zone: &str, primary: u16, secret: &str) -> std::io::Result<Running> {
    let k = dir.join("knot");
    std::fs::create_dir_all(&k)?;
    let d = k.display();
    let conf = format!(
        "server:\n  listen: 127.0.0.1@{port}\n  rundir: {d}\nlog:\n  - target: stderr\n    any: info\ndatabase:\n  storage: {d}\nkey:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {secret}\nremote:\n  - id: primary\n    address: 127.0.0.1@{primary}\n    key: xfr-key\nacl:\n  - id: notify\n    address: 127.0.0.1\n    key: xfr-key\n    action: notify\nzone:\n  - domain: {zone}\n    storage: {d}\n    master: primary\n    acl: notify\n"
    );
    std::fs::write(k.join("knot.conf"), conf)?;
    let mut knot = Command::new("knotd");
    knot.arg("-c").arg(k.join("knot.conf"));
    Ok(Running::start(knot))
}
