//! Morgana's DNS app as a secondary of real primaries on loopback, with
//! TSIG: Knot (`knotd`) and BIND (`named`). The first transfer, a zone
//! edit followed by NOTIFY (the time until Morgana answers the new serial
//! is measured), IXFR for a small change, AXFR when the primary sends no
//! IXFR, a wrong key on either side, a transfer that fails the zone checks,
//! and the primary gone past the SOA's expire time (SERVFAIL).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::dnspeers::{self, dig, temp_dir};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

const SECRET: &str = "bW9yZ2FuYS1zZWNvbmRhcnktdGVzdC1rZXktMzItYnl0ZXM=";
const WRONG: &str = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZy0zMg==";

/// SOA timers (refresh, retry, expire) long enough that only a NOTIFY
/// brings a new version within a test.
const SLOW: &str = "600 60 3600";
/// SOA timers that show within a test: refresh 1 s, retry 1 s, expire 3 s.
const FAST: &str = "1 1 3";

/// The zone at `serial` with SOA `timers`; `extra` lines are appended.
fn zone(serial: u32, timers: &str, www: &str, extra: &str) -> String {
    format!(
        "$ORIGIN example.test.\n$TTL 300\n@ IN SOA ns1 hostmaster {serial} {timers} 60\n@ IN NS ns1\nns1 IN A 192.0.2.1\nwww IN A {www}\nmail IN MX 10 mx.elsewhere.test.\n{}",
        (0..200).map(|i| format!("h{i} IN TXT \"host number {i}\"\n")).collect::<String>() + extra
    )
}

enum Kind {
    Knot,
    /// Knot signing the zone itself (DNSSEC, NSEC, its default policy).
    KnotSigning,
    Bind {
        ixfr: bool,
    },
}

/// A primary server with the zone `example.test`, and the Morgana
/// secondary it notifies at `notify`.
struct Primary {
    kind: Kind,
    proc: Running,
    port: u16,
    dir: PathBuf,
}

impl Drop for Primary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Primary {
    fn start(kind: Kind, notify: u16) -> Result<Primary> {
        let port = free_port();
        let dir = temp_dir(match kind {
            Kind::Knot | Kind::KnotSigning => "knot",
            Kind::Bind { .. } => "bind",
        })?;
        std::fs::write(dir.join("example.test.zone"), zone(1, SLOW, "192.0.2.10", ""))?;
        let d = dir.display();
        let signing = if matches!(kind, Kind::KnotSigning) { "    dnssec-signing: on\n" } else { "" };
        let mut cmd = match kind {
            Kind::Knot | Kind::KnotSigning => {
                std::fs::create_dir_all(dir.join("db"))?;
                let conf = format!(
                    "server:\n  listen: 127.0.0.1@{port}\n  rundir: {d}\nlog:\n  - target: stderr\n    any: info\ndatabase:\n  storage: {d}/db\nkey:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {SECRET}\nremote:\n  - id: morgana\n    address: 127.0.0.1@{notify}\n    key: xfr-key\nacl:\n  - id: xfr\n    key: xfr-key\n    action: transfer\nzone:\n  - domain: example.test\n    storage: {d}\n    file: example.test.zone\n    zonefile-sync: -1\n    zonefile-load: difference\n    journal-content: changes\n    notify: morgana\n    acl: xfr\n{signing}"
                );
                std::fs::write(dir.join("knot.conf"), conf)?;
                let mut c = Command::new("knotd");
                c.arg("-c").arg(dir.join("knot.conf"));
                c
            }
            Kind::Bind { ixfr } => {
                let provide = if ixfr { "yes" } else { "no" };
                let conf = format!(
                    "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n  dnssec-validation no;\n  notify explicit;\n  notify-delay 0;\n  also-notify {{ 127.0.0.1 port {notify} key \"xfr-key\"; }};\n  ixfr-from-differences yes;\n}};\ncontrols {{ }};\nkey \"xfr-key\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\nserver 127.0.0.1 {{ provide-ixfr {provide}; }};\nzone \"example.test\" {{ type primary; file \"{d}/example.test.zone\"; allow-transfer {{ key \"xfr-key\"; }}; }};\n"
                );
                std::fs::write(dir.join("named.conf"), conf)?;
                let mut c = Command::new("named");
                c.arg("-g").arg("-c").arg(dir.join("named.conf"));
                c
            }
        };
        cmd.current_dir(&dir);
        let mut proc = Running::start(cmd);
        let ready = match kind {
            Kind::Knot | Kind::KnotSigning => "server started",
            Kind::Bind { .. } => "running",
        };
        proc.wait_for(ready, Duration::from_secs(20));
        Ok(Primary { kind, proc, port, dir })
    }

    /// Writes the zone at `serial` and has the primary load it (which
    /// sends NOTIFY). Returns when it was told.
    fn edit(&mut self, serial: u32, timers: &str, www: &str, extra: &str) -> Result<Instant> {
        std::fs::write(self.dir.join("example.test.zone"), zone(serial, timers, www, extra))?;
        let at = Instant::now();
        match self.kind {
            Kind::Knot | Kind::KnotSigning => {
                let out = Command::new("knotc")
                    .arg("-c")
                    .arg(self.dir.join("knot.conf"))
                    .args(["zone-reload", "example.test"])
                    .output()?;
                if !out.status.success() {
                    return Err(format!("knotc zone-reload: {}", String::from_utf8_lossy(&out.stderr)).into());
                }
            }
            Kind::Bind { .. } => {
                let status = Command::new("kill").args(["-HUP", &self.proc.pid().to_string()]).status()?;
                if !status.success() {
                    return Err("kill -HUP named failed".into());
                }
            }
        }
        Ok(at)
    }

    fn log(&self) -> String {
        self.proc.output().join("\n")
    }
}

/// Morgana's DNS app following `example.test` from `primary` with `secret`.
fn secondary(port: u16, primary: u16, secret: &str) -> Running {
    secondary_with(port, primary, secret, &[])
}

fn secondary_with(port: u16, primary: u16, secret: &str, args: &[String]) -> Running {
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--tsig-key", &format!("xfr-key=hmac-sha256:{secret}")])
        .args(["--secondary", &format!("example.test=127.0.0.1:{primary},key=xfr-key")])
        .args(args);
    let mut p = Running::start(cmd);
    p.wait_for("serving DNS on", Duration::from_secs(30));
    p
}

/// The serial Morgana (or a peer) answers for `example.test`.
fn serial(port: u16) -> Result<Option<u32>> {
    Ok(dnspeers::serial(port, "example.test")?)
}

fn wait_serial(port: u16, want: u32, within: Duration) -> Result<Instant> {
    Ok(dnspeers::wait_serial(port, "example.test", want, within)?)
}

fn check(ok: bool, what: &str, out: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

/// Transfer, NOTIFY, IXFR, then SERVFAIL after expiry, with one primary.
fn follows(kind: Kind, ixfr_log: &str) -> Result {
    let port = free_port();
    let mut primary = Primary::start(kind, port)?;
    let m = secondary(port, primary.port, SECRET);
    wait_serial(port, 1, Duration::from_secs(10))?;
    let www = dig(port, &["+short", "www.example.test", "A"])?;
    check(www.trim() == "192.0.2.10", "the first transfer's data", &www)?;
    let morgana = || m.output().join("\n");
    check(morgana().contains("serial 1 from") && morgana().contains("by AXFR"), "the first transfer", &morgana())?;
    // One changed record: NOTIFY, then IXFR.
    // (Refresh is 600 s: only the NOTIFY can bring it.)
    let told = primary.edit(2, SLOW, "192.0.2.11", "")?;
    let served = wait_serial(port, 2, Duration::from_secs(5))?;
    eprintln!("  NOTIFY -> serial 2 served: {} ms after the primary was told to reload", (served - told).as_millis());
    let www = dig(port, &["+short", "www.example.test", "A"])?;
    check(www.trim() == "192.0.2.11", "the IXFR's data", &www)?;
    let txt = dig(port, &["+short", "h199.example.test", "TXT"])?;
    check(txt.trim() == "\"host number 199\"", "records the IXFR did not touch", &txt)?;
    check(morgana().contains("serial 2 from") && morgana().contains("by IXFR"), "IXFR", &morgana())?;
    check(primary.log().contains(ixfr_log), "the primary's log shows no IXFR", &primary.log())?;
    check(morgana().contains("NOTIFY from the primary"), "no NOTIFY arrived", &morgana())?;
    // Short timers, then the primary goes away: the zone expires (3 s
    // after the last check) and answers SERVFAIL.
    primary.edit(3, FAST, "192.0.2.11", "")?;
    wait_serial(port, 3, Duration::from_secs(5))?;
    std::thread::sleep(Duration::from_secs(2));
    check(serial(port)? == Some(3), "refreshing with the primary up", &morgana())?;
    drop(primary);
    let gone = Instant::now();
    loop {
        let out = dig(port, &["example.test", "SOA"])?;
        if out.contains("status: SERVFAIL") {
            eprintln!("  SERVFAIL {} ms after the primary stopped (expire 3 s)", gone.elapsed().as_millis());
            break;
        }
        check(gone.elapsed() < Duration::from_secs(10), "still answering 10 s after the primary stopped", &out)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    check(gone.elapsed() >= Duration::from_secs(1), "expired too early", &morgana())?;
    check(morgana().contains("expired"), "no log line about expiry", &morgana())
}

fn knot_primary_notify_ixfr_expire() -> Result {
    follows(Kind::Knot, "IXFR, outgoing")
}

fn bind_primary_notify_ixfr_expire() -> Result {
    follows(Kind::Bind { ixfr: true }, "transfer of 'example.test/IN': IXFR ended")
}

/// BIND told to send no IXFR answers with the whole zone: Morgana takes
/// it as such.
fn bind_without_ixfr_sends_whole_zone() -> Result {
    let port = free_port();
    let mut primary = Primary::start(Kind::Bind { ixfr: false }, port)?;
    let m = secondary(port, primary.port, SECRET);
    wait_serial(port, 1, Duration::from_secs(10))?;
    primary.edit(2, SLOW, "192.0.2.12", "new IN A 192.0.2.99\n")?;
    wait_serial(port, 2, Duration::from_secs(5))?;
    let new = dig(port, &["+short", "new.example.test", "A"])?;
    check(new.trim() == "192.0.2.99", "the added record", &new)?;
    let log = m.output().join("\n");
    check(log.contains("serial 2 from") && !log.contains("by IXFR"), "the second transfer was not a whole zone", &log)
}

/// A wrong secret: the primary refuses the transfer (its TSIG error is in
/// Morgana's log) and the zone answers SERVFAIL; a NOTIFY signed with a
/// wrong secret gets NOTAUTH/BADSIG, an unsigned one REFUSED.
fn wrong_keys_are_refused() -> Result {
    let port = free_port();
    let primary = Primary::start(Kind::Knot, port)?;
    let mut m = secondary(port, primary.port, WRONG);
    m.wait_for("refresh from", Duration::from_secs(10));
    let log = m.output().join("\n");
    check(log.contains("BADSIG") || log.contains("BADKEY"), "the primary's TSIG error", &log)?;
    let out = dig(port, &["example.test", "SOA"])?;
    check(out.contains("status: SERVFAIL"), "a zone never transferred", &out)?;
    // NOTIFY to Morgana, whose secret differs from the primary's.
    let notify = |key: Option<&str>| -> Result<String> {
        let mut args = vec!["+opcode=notify", "+norecurse", "example.test", "SOA"];
        let k;
        if let Some(key) = key {
            k = format!("hmac-sha256:xfr-key:{key}");
            args.extend(["-y", &k]);
        }
        Ok(dig(port, &args)?)
    };
    let bad = notify(Some(SECRET))?;
    check(bad.contains("status: NOTAUTH") && bad.contains("BADSIG"), "a NOTIFY with a wrong secret", &bad)?;
    let unsigned = notify(None)?;
    check(unsigned.contains("status: REFUSED"), "an unsigned NOTIFY for a zone with a key", &unsigned)?;
    let other = dig(port, &["+opcode=notify", "+norecurse", "example.com", "SOA"])?;
    check(other.contains("status: NOTAUTH"), "a NOTIFY for a zone we do not follow", &other)
}

/// A new version that fails the zone checks (a delegation inside the zone
/// with no glue) is not served: the old one stays.
fn transfer_failing_checks_is_rejected() -> Result {
    let port = free_port();
    let mut primary = Primary::start(Kind::Knot, port)?;
    let mut m = secondary(port, primary.port, SECRET);
    wait_serial(port, 1, Duration::from_secs(10))?;
    primary.edit(2, SLOW, "192.0.2.13", "sub IN NS ns.sub\n")?;
    m.wait_for("fails its checks", Duration::from_secs(10));
    check(serial(port)? == Some(1), "the old version is gone", &m.output().join("\n"))?;
    let www = dig(port, &["+short", "www.example.test", "A"])?;
    check(www.trim() == "192.0.2.10", "the old data is gone", &www)
}

/// NSD and Knot as secondaries of Morgana, itself a secondary of Knot:
/// a change at the top reaches both through Morgana's NOTIFY and their
/// TSIG-signed transfers from Morgana: AXFR first, then IXFR from
/// Morgana's journal.
fn nsd_and_knot_follow_morgana() -> Result {
    let (port, nsd_port, knot_port) = (free_port(), free_port(), free_port());
    let mut primary = Primary::start(Kind::Knot, port)?;
    let extra: Vec<String> = [
        "--axfr-allow".into(),
        "key=xfr-key".into(),
        "--notify".into(),
        format!("127.0.0.1:{nsd_port},key=xfr-key"),
        "--notify".into(),
        format!("127.0.0.1:{knot_port},key=xfr-key"),
    ]
    .into();
    let m = secondary_with(port, primary.port, SECRET, &extra);
    wait_serial(port, 1, Duration::from_secs(10))?;
    let dir = temp_dir("downstream")?;
    let nsd = dnspeers::nsd_secondary(&dir, nsd_port, "example.test", port, SECRET)?;
    let knot = dnspeers::knot_secondary(&dir, knot_port, "example.test", port, SECRET)?;
    wait_serial(nsd_port, 1, Duration::from_secs(20))?;
    wait_serial(knot_port, 1, Duration::from_secs(20))?;
    // The change at the top: primary -> Morgana -> NSD and Knot.
    let told = primary.edit(2, SLOW, "192.0.2.14", "")?;
    let at_nsd = wait_serial(nsd_port, 2, Duration::from_secs(10))?;
    let at_knot = wait_serial(knot_port, 2, Duration::from_secs(10))?;
    eprintln!(
        "  serial 2 at NSD {} ms, at Knot {} ms after the primary was told",
        (at_nsd - told).as_millis(),
        (at_knot - told).as_millis()
    );
    let www = dig(nsd_port, &["+short", "www.example.test", "A"])?;
    check(www.trim() == "192.0.2.14", "NSD's data", &www)?;
    let log = m.output().join("\n");
    for p in [nsd_port, knot_port] {
        let acked = format!("serial 2 to 127.0.0.1:{p}: acknowledged");
        check(log.contains(&acked), "Morgana's NOTIFY was not acknowledged", &log)?;
    }
    // (NSD's and Knot's refresh timers are 600 s: only NOTIFY brings serial 2.)
    let knot_log = knot.output().join("\n");
    drop(nsd);
    let _ = std::fs::remove_dir_all(&dir);
    check(knot_log.contains("notify, incoming") && knot_log.contains("serial 2"), "Knot got no NOTIFY", &knot_log)?;
    // Both asked for the difference only, and got it from Morgana's journal.
    check(knot_log.contains("IXFR, incoming") && knot_log.contains("serial 1 -> 2"), "Knot used no IXFR", &knot_log)?;
    let ixfrs = log.matches("IXFR example.test. from serial 1: 1 steps").count();
    check(ixfrs == 2, "Morgana did not serve IXFR to both", &log)
}

/// The VM image as a secondary of a zone Knot signs: under QEMU's user
/// networking the guest reaches the host's loopback (Knot) at 10.0.2.2,
/// and Knot's NOTIFY reaches the guest through the forwarded port (from
/// 10.0.2.2, as the guest sees it); `delv` validates the VM's answers
/// before and after an IXFR.
fn vm_secondary_follows_knot() -> Result {
    let image = xtask::build_image("dns", true)?;
    let port = free_port();
    let mut primary = Primary::start(Kind::KnotSigning, port)?;
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?, format!("tcp:127.0.0.1:{port}-:53").parse()?];
    vm.cmdline = format!(
        "--tsig-key=xfr-key=hmac-sha256:{SECRET} --secondary=example.test=10.0.2.2:{},key=xfr-key",
        primary.port
    );
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", Duration::from_secs(60));
    let anchors = knot_anchor(&primary)?;
    validated(port, &anchors, "192.0.2.10")?;
    let told = primary.edit(2, SLOW, "192.0.2.15", "")?;
    validated(port, &anchors, "192.0.2.15")?;
    eprintln!("  VM: the new signed record validated {} ms after the primary was told", told.elapsed().as_millis());
    let none = delv(port, &anchors, "nothere.example.test", "A")?;
    check(none.contains("fully validated") && none.contains("negative response"), "the VM's NXDOMAIN proof", &none)?;
    let log = qemu.output().join("\n");
    check(log.contains("by AXFR") && log.contains("by IXFR"), "VM transfers", &log)
}

/// The trust anchor of the zone Knot signs: its key-signing key, as
/// `delv -a` reads it.
fn knot_anchor(primary: &Primary) -> Result<PathBuf> {
    let anchors = primary.dir.join("anchors");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys = dig(primary.port, &["+short", "example.test", "DNSKEY"])?;
        if let Some(ksk) = keys.lines().find(|l| l.starts_with("257 ")) {
            let mut f = ksk.splitn(4, ' ');
            let (flags, proto, alg, key) = (f.next(), f.next(), f.next(), f.next().unwrap_or("").replace(' ', ""));
            let (flags, proto, alg) = (flags.unwrap_or(""), proto.unwrap_or(""), alg.unwrap_or(""));
            std::fs::write(
                &anchors,
                format!("trust-anchors {{ \"example.test.\" static-key {flags} {proto} {alg} \"{key}\"; }};\n"),
            )?;
            return Ok(anchors);
        }
        check(Instant::now() < deadline, "Knot published no KSK", &keys)?;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `delv` at `port` with `anchors`: its output.
fn delv(port: u16, anchors: &std::path::Path, name: &str, qtype: &str) -> Result<String> {
    let out = Command::new("delv")
        .args(["@127.0.0.1", "-p", &port.to_string(), "-a"])
        .arg(anchors)
        .args(["+root=example.test.", name, qtype])
        .output()?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Waits until `delv` validates www.example.test A as `want`.
fn validated(port: u16, anchors: &std::path::Path, want: &str) -> Result {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = delv(port, anchors, "www.example.test", "A")?;
        if out.contains("fully validated") && out.contains(want) {
            return Ok(());
        }
        check(Instant::now() < deadline, "www.example.test not validated", &out)?;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A zone Knot signs, served by Morgana as its secondary: `delv`, with
/// the zone's key-signing key as trust anchor, validates Morgana's answers
/// (positive and negative) after the first transfer and after an IXFR that
/// changed a record and its signatures.
fn signed_zone_from_knot_validates() -> Result {
    let port = free_port();
    let mut primary = Primary::start(Kind::KnotSigning, port)?;
    let m = secondary(port, primary.port, SECRET);
    let anchors = knot_anchor(&primary)?;
    validated(port, &anchors, "192.0.2.10")?;
    let none = delv(port, &anchors, "nothere.example.test", "A")?;
    check(none.contains("fully validated") && none.contains("negative response"), "NXDOMAIN proof", &none)?;
    let nodata = delv(port, &anchors, "www.example.test", "MX")?;
    check(nodata.contains("fully validated") && nodata.contains("negative response"), "NODATA proof", &nodata)?;
    primary.edit(2, SLOW, "192.0.2.16", "")?;
    validated(port, &anchors, "192.0.2.16")?;
    let none = delv(port, &anchors, "nothere.example.test", "A")?;
    check(none.contains("fully validated") && none.contains("negative response"), "NXDOMAIN after IXFR", &none)?;
    let log = m.output().join("\n");
    check(log.contains("by IXFR"), "the re-signed change did not come by IXFR", &log)
}

/// Bad flags are refused at start.
fn bad_secondary_flags_are_refused() -> Result {
    for (args, needle) in [
        (vec!["--secondary", "example.test"], "expected ORIGIN=ADDR:PORT"),
        (vec!["--secondary", "example.test=nowhere"], "is not ADDR or ADDR:PORT"),
        (vec!["--secondary", "example.test=127.0.0.1:53,key=nope"], "no --tsig-key named nope"),
        (vec!["--secondary", "a.test=127.0.0.1", "--secondary", "a.test=127.0.0.2"], "given twice"),
    ] {
        let out = Command::new(app_binary("dns")).args(["--listen", "127.0.0.1:0"]).args(&args).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !err.contains(needle) {
            return Err(format!("{args:?}: status {:?}, stderr {err}", out.status.code()).into());
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let knot = Prereq::program("knotd", "-V", "knot");
    let named = Prereq::program("named", "-v", "bind9");
    let nsd = Prereq::program("nsd", "-v", "nsd");
    let delv = Prereq::program("delv", "-v", "bind9-dnsutils");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let tests = vec![
        prereq::trial("knot_primary_notify_ixfr_expire", &[&dig, &knot], knot_primary_notify_ixfr_expire),
        prereq::trial("bind_primary_notify_ixfr_expire", &[&dig, &named], bind_primary_notify_ixfr_expire),
        prereq::trial("bind_without_ixfr_sends_whole_zone", &[&dig, &named], bind_without_ixfr_sends_whole_zone),
        prereq::trial("wrong_keys_are_refused", &[&dig, &knot], wrong_keys_are_refused),
        prereq::trial("transfer_failing_checks_is_rejected", &[&dig, &knot], transfer_failing_checks_is_rejected),
        prereq::trial("nsd_and_knot_follow_morgana", &[&dig, &knot, &nsd], nsd_and_knot_follow_morgana),
        prereq::trial("vm_secondary_follows_knot", &[&dig, &knot, &qemu, &delv], vm_secondary_follows_knot),
        prereq::trial("signed_zone_from_knot_validates", &[&dig, &knot, &delv], signed_zone_from_knot_validates),
        prereq::trial("bad_secondary_flags_are_refused", &[], bad_secondary_flags_are_refused),
    ];
    libtest_mimic::run(&args, tests).exit();
}
