//! TSIG-signed zone transfers (RFC 8945) out of the DNS app, checked by two
//! independent implementations: BIND's `dig -y` and Knot's `kdig -y` verify
//! every message of a multi-message AXFR; a wrong secret, an unknown key
//! and an unsigned request each get their refusal; bad key flags are
//! refused at start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

const SECRET: &str = "bW9yZ2FuYS10c2lnLWVuZC10by1lbmQtdGVzdC1rZXktMzI=";
const RECORDS: usize = 3000;

/// A zone big enough for several AXFR messages (16 KiB each).
fn big_zone(dir: &Path) -> Result<PathBuf> {
    let mut z = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 7 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n",
    );
    for i in 0..RECORDS {
        z.push_str(&format!("host{i} IN A 10.{}.{}.{}\n", i >> 16 & 255, i >> 8 & 255, i & 255));
    }
    let path = dir.join("big.test.zone");
    std::fs::write(&path, z)?;
    Ok(path)
}

struct Server {
    _p: Running,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(allow: &[&str]) -> Result<Server> {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("morgana-tsig-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let zone = big_zone(&dir)?;
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--zone"])
        .arg(format!("big.test={}", zone.display()))
        .args(["--tsig-key", &format!("transfer-key=hmac-sha256:{SECRET}")])
        .args(["--tsig-key", &format!("other-key.example=hmac-sha512:{SECRET}")]);
    for a in allow {
        cmd.args(["--axfr-allow", a]);
    }
    let mut p = Running::start(cmd);
    p.wait_for("serving DNS on", Duration::from_secs(30));
    Ok(Server { _p: p, port, dir })
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn dig(port: u16, key: Option<&str>) -> Result<String> {
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), "+tries=1", "+time=10", "big.test", "AXFR"]);
    if let Some(k) = key {
        cmd.args(["-y", k]);
    }
    output(&mut cmd)
}

/// Records in an AXFR as dig or kdig print them (TSIG lines aside).
fn records(out: &str) -> usize {
    out.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty() && !l.contains("TSIG")).count()
}

fn check(ok: bool, what: &str, out: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

fn signed_axfr_verified_by_dig_and_kdig() -> Result {
    let s = start(&["key=transfer-key"])?;
    let key = format!("hmac-sha256:transfer-key:{SECRET}");
    let out = dig(s.port, Some(&key))?;
    // SOA, NS, A for ns1, the hosts, and the closing SOA.
    check(records(&out) == RECORDS + 4, "dig: not the whole zone", &out)?;
    let messages = out.lines().find(|l| l.contains("XFR size")).unwrap_or_default().to_string();
    check(!messages.contains("messages 1,"), "dig: the zone fit in one message", &out)?;
    check(!out.contains("failure") && !out.contains("Transfer failed"), "dig: TSIG failed", &out)?;
    eprintln!("  dig: {}", messages.trim());
    let kdig = output(Command::new("kdig").args([
        "@127.0.0.1",
        "-p",
        &s.port.to_string(),
        "-y",
        &key,
        "+noall",
        "+answer",
        "big.test",
        "AXFR",
    ]))?;
    check(records(&kdig) == RECORDS + 4, "kdig: not the whole zone", &kdig)?;
    check(!kdig.contains("failed") && !kdig.contains("error"), "kdig: TSIG failed", &kdig)
}

fn bad_and_missing_signatures_are_refused() -> Result {
    let s = start(&["key=transfer-key"])?;
    let wrong = dig(s.port, Some("hmac-sha256:transfer-key:c2VjcmV0LWJ1dC13cm9uZw=="))?;
    check(wrong.contains("BADSIG") && records(&wrong) == 0, "a wrong secret", &wrong)?;
    let unknown = dig(s.port, Some(&format!("hmac-sha256:nobody:{SECRET}")))?;
    check(unknown.contains("BADKEY") && records(&unknown) == 0, "an unknown key", &unknown)?;
    // A known key the rules do not name gets a signed REFUSED.
    let other = dig(s.port, Some(&format!("hmac-sha512:other-key.example:{SECRET}")))?;
    check(other.contains("Transfer failed") && records(&other) == 0, "a key not allowed", &other)?;
    check(!other.contains("failure"), "the refusal was not signed", &other)?;
    let unsigned = dig(s.port, None)?;
    check(unsigned.contains("Transfer failed") && records(&unsigned) == 0, "an unsigned request", &unsigned)?;
    // An address rule still lets unsigned requests from that address in.
    let open = start(&["127.0.0.1", "key=transfer-key"])?;
    let out = dig(open.port, None)?;
    check(records(&out) == RECORDS + 4, "an unsigned request from an allowed address", &out)
}

/// Signed answers to ordinary queries, over UDP and TCP; a bad MAC gets
/// NOTAUTH with BADSIG.
fn signed_queries_get_signed_answers() -> Result {
    let s = start(&[])?;
    for transport in ["+notcp", "+tcp"] {
        let key = format!("hmac-sha256:transfer-key:{SECRET}");
        let out = output(Command::new("dig").args([
            "@127.0.0.1",
            "-p",
            &s.port.to_string(),
            "+tries=1",
            transport,
            "-y",
            &key,
            "host7.big.test",
            "A",
        ]))?;
        let signed = out.contains("status: NOERROR") && out.contains("10.0.0.7") && out.contains("TSIG PSEUDOSECTION");
        check(signed && !out.contains("could not be validated"), "a signed query's answer", &out)?;
    }
    let bad = output(Command::new("dig").args([
        "@127.0.0.1",
        "-p",
        &s.port.to_string(),
        "+tries=1",
        "-y",
        "hmac-sha256:transfer-key:c2VjcmV0LWJ1dC13cm9uZw==",
        "host7.big.test",
        "A",
    ]))?;
    check(bad.contains("status: NOTAUTH") && bad.contains("BADSIG") && !bad.contains("10.0.0.7"), "a bad MAC", &bad)
}

/// NSD as a secondary of Morgana: it transfers the zone with TSIG and
/// serves it.
fn nsd_transfers_from_morgana() -> Result {
    let s = start(&["key=transfer-key"])?;
    let port = free_port();
    let dir = s.dir.join("nsd");
    std::fs::create_dir_all(&dir)?;
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  verbosity: 2\nremote-control:\n  control-enable: no\nkey:\n  name: \"transfer-key\"\n  algorithm: hmac-sha256\n  secret: \"{SECRET}\"\nzone:\n  name: \"big.test\"\n  zonefile: \"big.test.secondary\"\n  request-xfr: AXFR 127.0.0.1@{m} transfer-key\n  allow-notify: 127.0.0.1 transfer-key\n",
        d = dir.display(),
        m = s.port
    );
    std::fs::write(dir.join("nsd.conf"), conf)?;
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(dir.join("nsd.conf"));
    let _nsd = Running::start(cmd);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = output(Command::new("dig").args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+tries=1",
            "+time=1",
            "+short",
            "host2999.big.test",
            "A",
        ]))?;
        if out.trim() == "10.0.11.183" {
            eprintln!("  NSD serves the zone it transferred with TSIG");
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("NSD did not serve the transferred zone within 20 s: {out}").into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bad_key_flags_are_refused() -> Result {
    for (args, needle) in [
        (vec!["--tsig-key", "k=hmac-md5:AAAA"], "hmac-md5 is refused"),
        (vec!["--tsig-key", "k=hmac-sha1:AAAA"], "unsupported TSIG algorithm"),
        (vec!["--tsig-key", "k=hmac-sha256:not base64!"], "not base64"),
        (vec!["--tsig-key", "k"], "NAME=ALGORITHM:BASE64"),
        (vec!["--axfr-allow", "key=missing"], "no --tsig-key of that name"),
        (vec!["--tsig-key", "k=hmac-sha256:AAAA", "--tsig-key", "k=hmac-sha512:AAAA"], "given twice"),
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
    let kdig = Prereq::program("kdig", "-V", "knot-dnsutils");
    let nsd = Prereq::program("nsd", "-v", "nsd");
    let tests = vec![
        prereq::trial("signed_axfr_verified_by_dig_and_kdig", &[&dig, &kdig], signed_axfr_verified_by_dig_and_kdig),
        prereq::trial("bad_and_missing_signatures_are_refused", &[&dig], bad_and_missing_signatures_are_refused),
        prereq::trial("bad_key_flags_are_refused", &[], bad_key_flags_are_refused),
        prereq::trial("signed_queries_get_signed_answers", &[&dig], signed_queries_get_signed_answers),
        prereq::trial("nsd_transfers_from_morgana", &[&dig, &nsd], nsd_transfers_from_morgana),
    ];
    libtest_mimic::run(&args, tests).exit();
}
