//! Morgana's DNS app as a primary: a `--zone` file edited on disk (or a
//! SIGHUP) is reloaded, checked, journaled and announced by NOTIFY; NSD
//! and Knot as its secondaries fetch the change by IXFR with TSIG. A bad
//! edit or a serial that did not grow leaves the old version served; in the
//! sandbox, the watcher stops instead of tripping the filter.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::dnspeers::{self, dig, temp_dir};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

const SECRET: &str = "bW9yZ2FuYS1wcmltYXJ5LXRlc3Qta2V5LTMyLWJ5dGVzLQ==";
const ZONE: &str = "primary.test";

fn zone_text(serial: u32, www: &str) -> String {
    format!(
        "$ORIGIN primary.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} 600 60 3600 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A {www}\n{}",
        (0..100).map(|i| format!("h{i} IN A 10.0.0.{}\n", i + 1)).collect::<String>()
    )
}

/// Writes the zone file, with a modification time a little later than
/// the last one (file systems with coarse timestamps would hide an edit
/// within the same tick).
fn write_zone(path: &Path, serial: u32, www: &str) -> Result {
    std::fs::write(path, zone_text(serial, www))?;
    let t = std::time::SystemTime::now() + Duration::from_secs(u64::from(serial));
    std::fs::File::options().write(true).open(path)?.set_modified(t)?;
    Ok(())
}

struct Primary {
    proc: Running,
    port: u16,
    dir: PathBuf,
    file: PathBuf,
}

impl Drop for Primary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(args: &[String]) -> Result<Primary> {
    let port = free_port();
    let dir = temp_dir("primary")?;
    let file = dir.join("primary.test.zone");
    write_zone(&file, 1, "192.0.2.10")?;
    let proc = run_dns(port, &file, args);
    Ok(Primary { proc, port, dir, file })
}

/// The DNS app serving `file` at `port`, signing transfers with the key.
fn run_dns(port: u16, file: &Path, args: &[String]) -> Running {
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--zone")
        .arg(format!("{ZONE}={}", file.display()))
        .args(["--tsig-key", &format!("xfr-key=hmac-sha256:{SECRET}"), "--axfr-allow", "key=xfr-key"])
        .args(args);
    let mut proc = Running::start(cmd);
    proc.wait_for("serving DNS on", Duration::from_secs(30));
    proc
}

fn check(ok: bool, what: &str, out: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

fn log(p: &Primary) -> String {
    p.proc.output().join("\n")
}

/// An edit on disk reaches NSD and Knot: reload, NOTIFY, IXFR.
fn edited_file_reaches_nsd_and_knot() -> Result {
    let (nsd_port, knot_port) = (free_port(), free_port());
    let notify: Vec<String> = [nsd_port, knot_port]
        .iter()
        .flat_map(|p| ["--notify".to_string(), format!("127.0.0.1:{p},key=xfr-key")])
        .collect();
    let mut m = start(&notify)?;
    let peers = temp_dir("primary-peers")?;
    let nsd = dnspeers::nsd_secondary(&peers, nsd_port, ZONE, m.port, SECRET)?;
    let knot = dnspeers::knot_secondary(&peers, knot_port, ZONE, m.port, SECRET)?;
    dnspeers::wait_serial(nsd_port, ZONE, 1, Duration::from_secs(20))?;
    dnspeers::wait_serial(knot_port, ZONE, 1, Duration::from_secs(20))?;
    let edited = Instant::now();
    write_zone(&m.file, 2, "192.0.2.11")?;
    m.proc.wait_for("reloaded", Duration::from_secs(5));
    let at_nsd = dnspeers::wait_serial(nsd_port, ZONE, 2, Duration::from_secs(10))?;
    let at_knot = dnspeers::wait_serial(knot_port, ZONE, 2, Duration::from_secs(10))?;
    eprintln!(
        "  edit -> serial 2 at NSD {} ms, at Knot {} ms (checked every 1 s)",
        (at_nsd - edited).as_millis(),
        (at_knot - edited).as_millis()
    );
    let www = dig(nsd_port, &["+short", "www.primary.test", "A"])?;
    check(www.trim() == "192.0.2.11", "NSD's data", &www)?;
    let knot_log = knot.output().join("\n");
    check(knot_log.contains("IXFR, incoming") && knot_log.contains("serial 1 -> 2"), "Knot used no IXFR", &knot_log)?;
    let l = log(&m);
    check(l.matches("IXFR primary.test. from serial 1: 1 steps").count() == 2, "IXFR to both", &l)?;
    drop(nsd);
    let _ = std::fs::remove_dir_all(&peers);
    Ok(())
}

/// A zone edited while the primary was down reaches its secondary when
/// the primary starts again: it sends NOTIFY for every zone at start.
fn restart_notifies_secondaries() -> Result {
    let nsd_port = free_port();
    let notify = ["--notify".to_string(), format!("127.0.0.1:{nsd_port},key=xfr-key")];
    let mut m = start(&notify)?;
    let peers = temp_dir("primary-restart")?;
    let nsd = dnspeers::nsd_secondary(&peers, nsd_port, ZONE, m.port, SECRET)?;
    dnspeers::wait_serial(nsd_port, ZONE, 1, Duration::from_secs(20))?;
    // Stop the primary (its process is killed when dropped).
    drop(std::mem::replace(&mut m.proc, Running::start(Command::new("true"))));
    write_zone(&m.file, 2, "192.0.2.15")?;
    m.proc = run_dns(m.port, &m.file, &notify);
    // NSD's refresh is 600 s: only the NOTIFY at start brings serial 2.
    dnspeers::wait_serial(nsd_port, ZONE, 2, Duration::from_secs(10))?;
    m.proc.wait_for(&format!("serial 2 to 127.0.0.1:{nsd_port}: acknowledged"), Duration::from_secs(5));
    drop(nsd);
    let _ = std::fs::remove_dir_all(&peers);
    Ok(())
}

/// With `--watch-zones 0` only SIGHUP reloads; bad edits are not served.
fn sighup_reloads_and_bad_edits_keep_the_old_version() -> Result {
    let mut m = start(&["--watch-zones".into(), "0".into()])?;
    write_zone(&m.file, 2, "192.0.2.12")?;
    std::thread::sleep(Duration::from_millis(2500));
    check(dnspeers::serial(m.port, ZONE)? == Some(1), "reloaded without SIGHUP", &log(&m))?;
    let hup = |m: &Primary| Command::new("kill").args(["-HUP", &m.proc.pid().to_string()]).status();
    hup(&m)?;
    dnspeers::wait_serial(m.port, ZONE, 2, Duration::from_secs(5))?;
    // A syntax error: the error names the line, the old version stays.
    std::fs::write(&m.file, zone_text(3, "192.0.2.300"))?;
    hup(&m)?;
    let line = m.proc.wait_for("not reloaded", Duration::from_secs(5));
    check(line.contains("primary.test.zone:6") && line.contains("still serving serial 2"), "the error", &line)?;
    // A serial that did not grow: not served (secondaries could not follow).
    std::fs::write(&m.file, zone_text(2, "192.0.2.13"))?;
    hup(&m)?;
    m.proc.wait_for("unchanged at serial 2", Duration::from_secs(5));
    std::fs::write(&m.file, zone_text(1, "192.0.2.13"))?;
    hup(&m)?;
    m.proc.wait_for("is not newer than 2", Duration::from_secs(5));
    let www = dig(m.port, &["+short", "www.primary.test", "A"])?;
    check(www.trim() == "192.0.2.12", "the served data changed", &www)?;
    check(m.proc.is_running(), "the server died", &log(&m))
}

/// Inside `--sandbox`, the watcher stops with a log line; the server lives.
fn sandboxed_watcher_stops_cleanly() -> Result {
    let mut m = start(&["--sandbox".into()])?;
    m.proc.wait_for("sandbox on", Duration::from_secs(5));
    write_zone(&m.file, 2, "192.0.2.14")?;
    m.proc.wait_for("zone files are no longer watched", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    check(m.proc.is_running(), "the sandboxed server died", &log(&m))?;
    check(dnspeers::serial(m.port, ZONE)? == Some(1), "still serving", &log(&m))
}

fn main() {
    let args = Arguments::from_args();
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let knot = Prereq::program("knotd", "-V", "knot");
    let nsd = Prereq::program("nsd", "-v", "nsd");
    let tests = vec![
        prereq::trial("edited_file_reaches_nsd_and_knot", &[&dig, &knot, &nsd], edited_file_reaches_nsd_and_knot),
        prereq::trial(
            "sighup_reloads_and_bad_edits_keep_the_old_version",
            &[&dig],
            sighup_reloads_and_bad_edits_keep_the_old_version,
        ),
        prereq::trial("restart_notifies_secondaries", &[&dig, &nsd], restart_notifies_secondaries),
        prereq::trial("sandboxed_watcher_stops_cleanly", &[&dig], sandboxed_watcher_stops_cleanly),
    ];
    libtest_mimic::run(&args, tests).exit();
}
