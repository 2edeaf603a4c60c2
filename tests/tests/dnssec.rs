//! DNSSEC for pre-signed zones: one zone (wildcards, a CNAME to a wildcard,
//! a delegation with DS, one without, empty non-terminals, an empty
//! non-terminal leading only to an unsigned delegation) is signed at test
//! time with keys made at test time, by `dnssec-signzone` (NSEC, NSEC3,
//! NSEC3 opt-out) and `ldns-signzone` (NSEC, NSEC3 opt-out). NSD and the
//! hosted dns app serve the five signed zones side by side on loopback and
//! every answer is compared (rcode, flags, sections as sets of records),
//! with and without DO, over UDP and TCP. `delv` then validates Morgana's
//! answers, positive and negative, from the zones' trust anchors.
//! Missing tools: ignored, failed under `CI=true`.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::dnsmsg::{self, Message, Record};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

const TEMPLATE: &str = "\
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
  NS ns1
  NS ns2
  MX 10 mail
ns1 A 192.0.2.53
ns2 A 192.0.2.54
    AAAA 2001:db8::54
mail A 192.0.2.25
www CNAME web
web A 192.0.2.80
    TXT \"web\"
dangling CNAME nothere
*.wild A 192.0.2.99
*.wild TXT \"wild\"
*.cw CNAME web
secure NS ns.secure
secure DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.secure A 192.0.2.10
insecure NS ns.insecure
ns.insecure A 192.0.2.11
a.b.c A 192.0.2.7
deleg.ent2 NS ns.example.net.
";

/// How a zone is signed: its origin, the signer and its arguments.
const SIGNINGS: [(&str, &str, &[&str]); 5] = [
    ("nsec.example", "bind", &[]),
    ("nsec3.example", "bind", &["-3", "aabbccdd", "-H", "2"]),
    ("optout.example", "bind", &["-3", "-", "-A"]),
    ("ldns.example", "ldns", &[]),
    ("ldns3.example", "ldns", &["-n", "-p", "-s", "0123", "-t", "1"]),
];

struct Signed {
    dir: PathBuf,
    /// Origin, signed file name (in `dir`), the KSK as DNSKEY data.
    zones: Vec<(String, String, String)>,
}

impl Drop for Signed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The DNSKEY data ("257 3 13 base64") in a `.key` file.
fn key_data(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path)?;
    let line = text.lines().find(|l| !l.starts_with(';') && l.contains("DNSKEY")).ok_or("no DNSKEY in key file")?;
    let line = line.split(';').next().unwrap_or(line);
    let rest = line.split_whitespace().skip_while(|t| *t != "DNSKEY").skip(1).collect::<Vec<_>>();
    Ok(rest.join(" "))
}

fn sign_zones() -> Result<Signed> {
    let dir = std::env::temp_dir().join(format!("morgana-dnssec-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir)?;
    let mut signed = Signed { dir: dir.clone(), zones: Vec::new() };
    for (origin, signer, args) in SIGNINGS {
        let unsigned = format!("{origin}.zone");
        std::fs::write(dir.join(&unsigned), format!("$ORIGIN {origin}.\n{TEMPLATE}"))?;
        let out = format!("{origin}.signed");
        let ksk = if signer == "bind" {
            let keygen = |extra: &[&str]| {
                run(Command::new("dnssec-keygen")
                    .current_dir(&dir)
                    .args(["-q", "-K", ".", "-a", "ECDSAP256SHA256"])
                    .args(extra)
                    .arg(origin))
            };
            let ksk = keygen(&["-f", "KSK"])?;
            keygen(&[])?;
            run(Command::new("dnssec-signzone")
                .current_dir(&dir)
                .args(["-q", "-S", "-K", ".", "-o", origin, "-f", &out])
                .args(args)
                .arg(&unsigned))?;
            ksk
        } else {
            let keygen = |extra: &[&str]| {
                run(Command::new("ldns-keygen")
                    .current_dir(&dir)
                    .args(["-a", "ECDSAP256SHA256"])
                    .args(extra)
                    .arg(origin))
            };
            let ksk = keygen(&["-k"])?;
            let zsk = keygen(&[])?;
            run(Command::new("ldns-signzone")
                .current_dir(&dir)
                .args(args)
                .args(["-o", origin, "-f", &out, &unsigned, &ksk, &zsk]))?;
            ksk
        };
        let key = key_data(&dir.join(format!("{ksk}.key")))?;
        if !key.starts_with("257 ") {
            return Err(format!("{origin}: KSK {ksk} has data {key}").into());
        }
        signed.zones.push((origin.to_string(), out, key));
    }
    Ok(signed)
}

fn start_nsd(s: &Signed) -> Result<(Running, u16)> {
    let port = free_port();
    let d = s.dir.display();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  pidfile: \"{d}/nsd.pid\"\n  verbosity: 0\n  rrl-ratelimit: 0\nremote-control:\n  control-enable: no\n"
    );
    for (origin, file, _) in &s.zones {
        conf.push_str(&format!(
            "zone:\n  name: \"{origin}\"\n  zonefile: \"{file}\"\n  provide-xfr: 127.0.0.1/32 NOKEY\n"
        ));
    }
    std::fs::write(s.dir.join("nsd.conf"), conf)?;
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(s.dir.join("nsd.conf"));
    let p = Running::start(cmd);
    wait_answering(port, &s.zones[0].0)?;
    Ok((p, port))
}

fn start_morgana(s: &Signed) -> Result<(Running, u16)> {
    let port = free_port();
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--rrl-rate", "0", "--axfr-allow", "127.0.0.1"]);
    for (origin, file, _) in &s.zones {
        cmd.arg("--zone").arg(format!("{origin}.={}", s.dir.join(file).display()));
    }
    let mut p = Running::start(cmd);
    p.wait_for("ready to serve", Duration::from_secs(30));
    Ok((p, port))
}

fn wait_answering(port: u16, zone: &str) -> Result {
    for _ in 0..100 {
        if udp(port, &dnsmsg::query(1, zone, 6, 1, 0, None)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing answers DNS on port {port}").into())
}

fn udp(port: u16, q: &[u8]) -> Result<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(700)))?;
    let mut buf = vec![0u8; 65535];
    for _ in 0..3 {
        s.send_to(q, ("127.0.0.1", port))?;
        if let Ok(n) = s.recv(&mut buf) {
            return Ok(buf[..n].to_vec());
        }
    }
    Err("no UDP answer".into())
}

fn tcp(port: u16, q: &[u8]) -> Result<Vec<u8>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(dnsmsg::tcp_exchange(&mut s, q)?)
}

/// Flags (RA aside), rcode, question, each section as a sorted list of
/// records in wire form, and the OPT record (size, extended rcode, DO).
fn normalize(m: &Message) -> String {
    let sorted = |v: &[Record]| -> Vec<String> {
        let mut s: Vec<String> = v.iter().map(|r| r.to_string()).collect();
        s.sort();
        s
    };
    format!(
        "rcode {} flags {:#06x} q {:?}\nanswer {:#?}\nauthority {:#?}\nadditional {:#?}\nopt {:?}",
        m.rcode(),
        m.flags & !0x0080 & !0xf,
        m.question,
        sorted(&m.answer),
        sorted(&m.authority),
        sorted(&m.additional),
        m.opt
    )
}

/// One query: name, type, EDNS buffer size (None: no EDNS), DO, TCP.
struct Case {
    name: String,
    qtype: u16,
    edns: Option<u16>,
    dnssec_ok: bool,
    tcp: bool,
}

const NAMES: [&str; 29] = [
    "@",
    "www",
    "web",
    "mail",
    "ns1",
    "ns2",
    "nothere",
    "x.y.nothere",
    "dangling",
    "foo.wild",
    "a.b.wild",
    "*.wild",
    "wild",
    "foo.cw",
    "c",
    "b.c",
    "a.b.c",
    "z.a.b.c",
    "secure",
    "x.secure",
    "ns.secure",
    "insecure",
    "x.insecure",
    "ns.insecure",
    "ent2",
    "deleg.ent2",
    "x.deleg.ent2",
    "WwW",
    "zzz",
];
// A AAAA MX TXT NS SOA CNAME DS DNSKEY RRSIG NSEC NSEC3 NSEC3PARAM ANY
const TYPES: [u16; 14] = [1, 28, 15, 16, 2, 6, 5, 43, 48, 46, 47, 50, 51, 255];

fn corpus(s: &Signed) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let full = |n: &str, origin: &str| if n == "@" { origin.to_string() } else { format!("{n}.{origin}") };
    for (origin, file, _) in &s.zones {
        for n in NAMES {
            for t in TYPES {
                for dnssec_ok in [true, false] {
                    cases.push(Case { name: full(n, origin), qtype: t, edns: Some(1232), dnssec_ok, tcp: false });
                }
            }
        }
        // Sizes and transports where signatures make answers large.
        for n in ["@", "www", "nothere", "foo.wild", "b.c", "x.insecure", "secure", "foo.cw", "ent2"] {
            for t in [1u16, 48, 255, 43, 46, 15] {
                for (edns, tcp) in
                    [(None, false), (Some(512), false), (Some(900), false), (Some(4096), false), (Some(1232), true)]
                {
                    cases.push(Case { name: full(n, origin), qtype: t, edns, dnssec_ok: edns.is_some(), tcp });
                }
            }
        }
        // Hashed NSEC3 owner names are no names of the zone.
        let text = std::fs::read_to_string(s.dir.join(file))?;
        let hashed = text.lines().filter(|l| l.contains("NSEC3") && !l.contains("RRSIG") && !l.contains("PARAM"));
        for line in hashed.take(2) {
            let owner = line.split_whitespace().next().unwrap_or_default().to_string();
            for t in [1u16, 50, 46, 255] {
                cases.push(Case { name: owner.clone(), qtype: t, edns: Some(1232), dnssec_ok: true, tcp: false });
            }
        }
    }
    Ok(cases)
}

fn ask(port: u16, c: &Case, id: u16) -> Result<Message> {
    let mut q = dnsmsg::query(id, &c.name, c.qtype, 1, 0, c.edns.map(|size| (size, 0)));
    if c.dnssec_ok {
        let n = q.len();
        q[n - 4] |= 0x80; // the DO bit, first octet of the OPT flags
    }
    let raw = if c.tcp { tcp(port, &q)? } else { udp(port, &q)? };
    Ok(dnsmsg::parse(&raw)?)
}

fn differential() -> Result {
    let signed = sign_zones()?;
    let (_nsd, nsd_port) = start_nsd(&signed)?;
    let (_m, port) = start_morgana(&signed)?;
    let cases = corpus(&signed)?;
    let mut failures = Vec::new();
    let (mut with_do, mut signed_answers) = (0, 0);
    for (i, c) in cases.iter().enumerate() {
        let (a, b) = (ask(nsd_port, c, i as u16)?, ask(port, c, i as u16)?);
        with_do += c.dnssec_ok as usize;
        signed_answers += [&a.answer, &a.authority].iter().any(|s| s.iter().any(|r| r.rtype == 46)) as usize;
        let (a, b) = (normalize(&a), normalize(&b));
        if a != b {
            failures.push(format!(
                "{} type {} edns {:?} do {}{}:\n--- NSD\n{a}\n--- Morgana\n{b}",
                c.name,
                c.qtype,
                c.edns,
                c.dnssec_ok,
                if c.tcp { " tcp" } else { "" }
            ));
        }
    }
    eprintln!(
        "  {} queries compared ({with_do} with DO, {signed_answers} answers carrying RRSIGs), {} differences",
        cases.len(),
        failures.len()
    );
    if cases.len() < 4000 || signed_answers < 1000 {
        return Err(format!("corpus too small: {} queries, {signed_answers} signed answers", cases.len()).into());
    }
    // Zone transfers carry the signed zone whole: same records as NSD's.
    for (origin, _, _) in &signed.zones {
        let (a, b) = (axfr(nsd_port, origin)?, axfr(port, origin)?);
        if a != b || a.len() < 60 {
            failures.push(format!("AXFR {origin}: NSD {} records, Morgana {}, same: {}", a.len(), b.len(), a == b));
        }
        eprintln!("  AXFR {origin}: {} records, same as NSD: {}", b.len(), a == b);
    }
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(20);
        return Err(format!("{n} differences, the first:\n{}", failures.join("\n\n")).into());
    }
    Ok(())
}

/// The records of an AXFR of `zone` from `port`, as a set.
fn axfr(port: u16, zone: &str) -> Result<std::collections::BTreeSet<String>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let q = dnsmsg::query(7, zone, 252, 1, 0, None);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed)?;
    let (mut set, mut soas) = (std::collections::BTreeSet::new(), 0);
    while soas < 2 {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m)?;
        let m = dnsmsg::parse(&m)?;
        if m.rcode() != 0 {
            return Err(format!("AXFR {zone}: rcode {}", m.rcode()).into());
        }
        soas += m.answer.iter().filter(|r| r.rtype == 6).count();
        set.extend(m.answer.iter().map(|r| r.to_string()));
    }
    Ok(set)
}

/// `delv` output for `name type` against Morgana with `anchors`.
fn delv(port: u16, anchors: &Path, zone: &str, name: &str, qtype: &str) -> Result<String> {
    let out = Command::new("delv")
        .args(["@127.0.0.1", "-p", &port.to_string(), "-a"])
        .arg(anchors)
        .arg(format!("+root={zone}."))
        .args([name, qtype])
        .output()?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn validated_by_delv() -> Result {
    let signed = sign_zones()?;
    let (_m, port) = start_morgana(&signed)?;
    let mut checked = 0;
    for (i, (origin, _, key)) in signed.zones.iter().enumerate() {
        let mut parts = key.splitn(4, ' ');
        let (f, p, a, k) =
            (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or_default().replace(' ', ""));
        let anchors = signed.dir.join(format!("{origin}.anchors"));
        std::fs::write(
            &anchors,
            format!(
                "trust-anchors {{ \"{origin}.\" static-key {} {} {} \"{k}\"; }};\n",
                f.unwrap_or(""),
                p.unwrap_or(""),
                a.unwrap_or("")
            ),
        )?;
        let positive =
            [("www", "A"), ("@", "DNSKEY"), ("foo.wild", "A"), ("foo.cw", "A"), ("secure", "DS"), ("ns2", "AAAA")];
        let negative = [
            ("nothere", "A"),
            ("x.y.nothere", "TXT"),
            ("web", "MX"),
            ("b.c", "A"),
            ("c", "AAAA"),
            ("foo.wild", "MX"),
            ("a.b.wild", "AAAA"),
            ("insecure", "DS"),
            ("deleg.ent2", "DS"),
            ("ent2", "A"),
            ("zzz", "A"),
        ];
        for (n, t) in positive.iter().chain(negative.iter()) {
            let name = if *n == "@" { origin.clone() } else { format!("{n}.{origin}") };
            let out = delv(port, &anchors, origin, &name, t)?;
            let want_negative = negative.contains(&(*n, *t));
            // Under opt-out, the NSEC3 covering a wildcard's next closer
            // name may be an opt-out span: the answer is then insecure
            // (RFC 5155 §9.2), NSD's the same.
            let optout = origin.starts_with("optout") || origin.starts_with("ldns3");
            let insecure_ok = optout && matches!(*n, "foo.wild" | "foo.cw") && out.contains("; unsigned answer");
            let ok =
                insecure_ok || out.contains("fully validated") && (out.contains("negative response") == want_negative);
            if !ok {
                return Err(format!("delv {name} {t} ({origin}): not validated as expected:\n{out}").into());
            }
            checked += 1;
        }
        // A control: the next zone's key is no anchor for this one.
        let (other, _, _) = &signed.zones[(i + 1) % signed.zones.len()];
        let wrong = signed.dir.join(format!("{origin}.wrong"));
        let text = std::fs::read_to_string(&anchors)?.replacen(&format!("\"{origin}.\""), &format!("\"{other}.\""), 1);
        std::fs::write(&wrong, text)?;
        let out = delv(port, &wrong, origin, &format!("www.{origin}"), "A")?;
        if out.contains("fully validated") {
            return Err(format!("delv validated {origin} with another zone's anchor:\n{out}").into());
        }
    }
    eprintln!("  {checked} answers validated by delv (positive and negative, 5 zones)");
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let nsd = Prereq::program("nsd", "-v", "nsd");
    let signzone = Prereq::program("dnssec-signzone", "-V", "bind9-utils");
    let keygen = Prereq::program("dnssec-keygen", "-V", "bind9-utils");
    let ldns_sign = Prereq::program("ldns-signzone", "-v", "ldnsutils");
    let ldns_keygen = Prereq::program("ldns-keygen", "-v", "ldnsutils");
    let delv = Prereq::program("delv", "-v", "bind9-dnsutils");
    let signers: [&Prereq; 4] = [&signzone, &keygen, &ldns_sign, &ldns_keygen];
    let tests = vec![
        prereq::trial(
            "signed_zones_differential_against_nsd",
            &[&nsd, signers[0], signers[1], signers[2], signers[3]],
            differential,
        ),
        prereq::trial(
            "signed_answers_validated_by_delv",
            &[&delv, signers[0], signers[1], signers[2], signers[3]],
            validated_by_delv,
        ),
    ];
    libtest_mimic::run(&args, tests).exit();
}
