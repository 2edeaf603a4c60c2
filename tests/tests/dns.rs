//! The DNS unikernel against real peers and clients: a differential test
//! against NSD over the same zones (UDP, TCP, AXFR), `dig` and `kdig`
//! end-to-end, hostile packets, bad zone files, TCP limits, and the VM image
//! under QEMU. Tests whose tools are missing are reported as ignored (under
//! `CI=true`, failed).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::dnsmsg::{self, Message, Record};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, workspace, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

const ZONES: [&str; 3] = ["example.com", "example.net", "child.example.net"];

fn zone_dir() -> PathBuf {
    workspace().join("tests/dns/zones")
}

struct Nsd {
    _dir: PathBuf,
    _p: Running,
    port: u16,
}

fn start_nsd() -> Result<Nsd> {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("morgana-nsd-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  pidfile: \"{d}/nsd.pid\"\n  verbosity: 0\n  rrl-ratelimit: 0\nremote-control:\n  control-enable: no\n",
        zone_dir().display(),
        d = dir.display()
    );
    for z in ZONES {
        conf.push_str(&format!(
            "zone:\n  name: \"{z}\"\n  zonefile: \"{z}.zone\"\n  provide-xfr: 127.0.0.1/32 NOKEY\n"
        ));
    }
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(&conf_path);
    let p = Running::start(cmd);
    let nsd = Nsd { _dir: dir, _p: p, port };
    wait_answering(port)?;
    Ok(nsd)
}

fn start_morgana(extra: &[&str]) -> Result<(Running, u16)> {
    let port = free_port();
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--axfr-allow", "127.0.0.1"]);
    for z in ZONES {
        cmd.arg("--zone").arg(format!("{z}.={}", zone_dir().join(format!("{z}.zone")).display()));
    }
    cmd.args(extra);
    let mut p = Running::start(cmd);
    p.wait_for("ready to serve", Duration::from_secs(20));
    Ok((p, port))
}

fn wait_answering(port: u16) -> Result {
    for _ in 0..100 {
        if udp(port, &dnsmsg::query(1, "example.com", 6, 1, 0, None)).is_ok() {
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

/// Sends one framed query and reads responses until `done` says so.
fn tcp(port: u16, q: &[u8], done: impl Fn(&[Vec<u8>]) -> bool) -> Result<Vec<Vec<u8>>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    s.write_all(&framed)?;
    let mut out = Vec::new();
    while !done(&out) {
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut m)?;
        out.push(m);
    }
    Ok(out)
}

/// The comparable part of a response: flags except RA, question, sorted
/// sections, OPT presence with its size and extended rcode.
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

struct Case {
    name: String,
    qtype: u16,
    qclass: u16,
    edns: Option<(u16, u8)>,
    tcp: bool,
}

fn corpus() -> Vec<Case> {
    let names = [
        "example.com",
        "www.example.com",
        "web.example.com",
        "mail.example.com",
        "ns1.example.com",
        "ns.sub.example.com",
        "x.sub.example.com",
        "sub.example.com",
        "deep.x.sub.example.com",
        "chain1.example.com",
        "chain2.example.com",
        "dangling.example.com",
        "outside.example.com",
        "foo.wild.example.com",
        "a.b.wild.example.com",
        "wild.example.com",
        "*.wild.example.com",
        "x.cw.example.com",
        "b.c.example.com",
        "a.b.c.example.com",
        "c.example.com",
        "nothere.example.com",
        "deep.nothere.example.com",
        "big.example.com",
        "many.example.com",
        "_sip._tcp.example.com",
        "sip.example.com",
        "caa.example.com",
        "gen.example.com",
        "ptr.example.com",
        "mixed.example.com",
        "child.example.com",
        "x.child.example.com",
        "deep.a.example.com",
        "ent.deep.a.example.com",
        "loop1.example.com",
        "WwW.ExAmPlE.CoM",
        "MiXeD.example.COM",
        "example.net",
        "ns.example.net",
        "host.example.net",
        "alias.example.net",
        "txt.example.net",
        "child.example.net",
        "www.child.example.net",
        "anything.child.example.net",
        "ns.child.example.net",
        "nope.example.net",
        "example.org",
        "www.example.org",
        "com",
        ".",
    ];
    let types = [1u16, 28, 2, 6, 15, 16, 5, 33, 12, 257, 65534, 255, 43];
    let mut cases = Vec::new();
    for n in names {
        for t in types {
            cases.push(Case { name: n.into(), qtype: t, qclass: 1, edns: Some((1232, 0)), tcp: false });
        }
    }
    // Buffer sizes, no EDNS, TCP, versions, classes.
    for n in ["big.example.com", "many.example.com", "example.com", "www.example.com", "x.sub.example.com"] {
        for t in [1u16, 16, 2, 255] {
            for edns in [None, Some((512, 0)), Some((4096, 0)), Some((1232, 1))] {
                cases.push(Case { name: n.into(), qtype: t, qclass: 1, edns, tcp: false });
            }
            cases.push(Case { name: n.into(), qtype: t, qclass: 1, edns: None, tcp: true });
        }
    }
    for (n, t, c) in [
        ("example.com", 1, 3),
        ("example.com", 16, 3),
        ("example.com", 1, 255),
        ("example.com", 252, 1),
        ("example.com", 0, 1),
        ("example.com", 46, 1),
        ("example.com", 254, 1),
    ] {
        cases.push(Case { name: n.into(), qtype: t, qclass: c, edns: Some((1232, 0)), tcp: false });
    }
    cases
}

fn differential() -> Result {
    let nsd = start_nsd()?;
    // Rate limiting off on both sides: the corpus comes from one source.
    let (_m, port) = start_morgana(&["--rrl-rate", "0"])?;
    let cases = corpus();
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let q = dnsmsg::query(i as u16, &c.name, c.qtype, c.qclass, 0, c.edns);
        let ask = |p: u16| -> Result<Message> {
            let raw = if c.tcp { tcp(p, &q, |v| !v.is_empty())?.remove(0) } else { udp(p, &q)? };
            Ok(dnsmsg::parse(&raw)?)
        };
        let (a, b) = (normalize(&ask(nsd.port)?), normalize(&ask(port)?));
        if a != b {
            failures.push(format!(
                "{} type {} class {} edns {:?}{}:\n--- NSD\n{a}\n--- Morgana\n{b}",
                c.name,
                c.qtype,
                c.qclass,
                c.edns,
                if c.tcp { " tcp" } else { "" }
            ));
        }
    }
    eprintln!("  {} queries compared, {} differences", cases.len(), failures.len());
    if cases.len() < 300 {
        return Err(format!("corpus has only {} queries", cases.len()).into());
    }
    if !failures.is_empty() {
        return Err(failures.join("\n\n").into());
    }
    Ok(())
}

fn axfr_records(port: u16, zone: &str) -> Result<BTreeSet<String>> {
    let q = dnsmsg::query(7, zone, 252, 1, 0, None);
    let soa_count = |msgs: &[Vec<u8>]| -> usize {
        msgs.iter()
            .filter_map(|m| dnsmsg::parse(m).ok())
            .map(|m| m.answer.iter().filter(|r| r.rtype == 6).count())
            .sum()
    };
    let msgs = tcp(port, &q, |v| soa_count(v) >= 2 || v.iter().any(|m| m.len() > 3 && m[3] & 0xf != 0))?;
    let mut set = BTreeSet::new();
    for m in &msgs {
        let m = dnsmsg::parse(m)?;
        if m.rcode() != 0 {
            return Err(format!("AXFR {zone}: rcode {}", m.rcode()).into());
        }
        set.extend(m.answer.iter().map(|r| r.to_string()));
    }
    Ok(set)
}

fn differential_axfr() -> Result {
    let nsd = start_nsd()?;
    let (_m, port) = start_morgana(&[])?;
    for z in ZONES {
        let (a, b) = (axfr_records(nsd.port, z)?, axfr_records(port, z)?);
        if a != b {
            return Err(format!(
                "AXFR {z} differs:\nNSD only: {:#?}\nMorgana only: {:#?}",
                a.difference(&b),
                b.difference(&a)
            )
            .into());
        }
        eprintln!("  AXFR {z}: {} records, same as NSD", a.len());
    }
    Ok(())
}

fn dig(args: &[&str]) -> Result<String> {
    let out = Command::new("dig").args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(cond: bool, what: &str, out: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

fn real_clients() -> Result {
    let (_m, port) = start_morgana(&[])?;
    let p = format!("-p{port}");
    let out = dig(&["@127.0.0.1", &p, "+norec", "www.example.com", "A"])?;
    check(
        out.contains("status: NOERROR") && out.contains("192.0.2.80") && out.contains("flags: qr aa"),
        "dig UDP",
        &out,
    )?;
    let out = dig(&["@127.0.0.1", &p, "+norec", "+tcp", "mail.example.com", "AAAA"])?;
    check(out.contains("2001:db8::25"), "dig TCP", &out)?;
    let out = dig(&["@127.0.0.1", &p, "+norec", "nothere.example.com"])?;
    check(out.contains("status: NXDOMAIN"), "dig NXDOMAIN", &out)?;
    let out = dig(&["@127.0.0.1", &p, "example.com", "AXFR"])?;
    check(out.matches("\tSOA\t").count() == 2 && out.contains("XFR size"), "dig AXFR allowed", &out)?;
    // From another loopback address, not on the allow-list.
    let out = dig(&["@127.0.0.1", &p, "-b", "127.0.0.2", "example.com", "AXFR"])?;
    check(out.contains("Transfer failed"), "dig AXFR from a refused address", &out)?;
    Ok(())
}

fn kdig_client() -> Result {
    let (_m, port) = start_morgana(&[])?;
    let p = format!("-p{port}");
    let out =
        Command::new("kdig").args(["@127.0.0.1", &p, "+tcp", "+norec", "_sip._tcp.example.com", "SRV"]).output()?;
    let out = String::from_utf8_lossy(&out.stdout);
    check(out.contains("10 5 5060 sip.example.com."), "kdig SRV over TCP", &out)
}

fn hostile_input() -> Result {
    let (mut m, port) = start_morgana(&[])?;
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(300)))?;
    let hdr = |qd: u16, an: u16| -> Vec<u8> {
        let mut h = vec![0xab, 0xcd, 0, 0];
        for c in [qd, an, 0, 0] {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    };
    let mut bad: Vec<(&str, Vec<u8>, Option<u8>)> = vec![
        ("truncated header", vec![1, 2, 3, 4, 5], None),
        ("header only, no question", hdr(1, 0), Some(1)),
        ("pointer to itself", [hdr(1, 0), vec![0xc0, 12, 0, 1, 0, 1]].concat(), Some(1)),
        ("forward pointer", [hdr(1, 0), vec![0xc0, 20, 0, 1, 0, 1, 0, 0, 0, 0]].concat(), Some(1)),
        ("label over 63", [hdr(1, 0), vec![64], vec![b'a'; 64], vec![0, 0, 1, 0, 1]].concat(), Some(1)),
        ("count lies", [hdr(5, 3), vec![0, 0, 1, 0, 1]].concat(), Some(1)),
        ("reserved label type", [hdr(1, 0), vec![0x40, 0, 0, 1, 0, 1]].concat(), Some(1)),
        (
            "a response",
            {
                let mut h = hdr(1, 0);
                h[2] = 0x80;
                [h, vec![0, 0, 1, 0, 1]].concat()
            },
            None,
        ),
    ];
    let mut long = hdr(1, 0);
    for _ in 0..30 {
        long.extend_from_slice(&[9, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i']);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    bad.push(("name over 255", long, Some(1)));
    let mut seed = 0x1234_5678_u64;
    for _ in 0..500 {
        let len = (seed % 300) as usize;
        let pkt: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        bad.push(("random bytes", pkt, None));
    }
    let mut buf = [0u8; 4096];
    for (what, pkt, expect) in &bad {
        s.send_to(pkt, ("127.0.0.1", port))?;
        if expect.is_none() {
            // Dropping or answering random bytes are both fine; just drain.
            s.set_read_timeout(Some(Duration::from_millis(1)))?;
            while s.recv(&mut buf).is_ok() {}
            continue;
        }
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        match (s.recv(&mut buf), expect) {
            (Ok(n), Some(code)) if n >= 4 && buf[3] & 0xf == *code && buf[..2] == pkt[..2] => {}
            (Err(_), Some(code)) => return Err(format!("{what}: no answer, expected rcode {code}").into()),
            (Ok(n), Some(code)) => {
                return Err(format!("{what}: got {:02x?}, expected rcode {code}", &buf[..n.min(16)]).into())
            }
            (_, None) => {}
        }
    }
    // Still serving, and still the same process.
    let ok = udp(port, &dnsmsg::query(9, "www.example.com", 1, 1, 0, None))?;
    let msg = dnsmsg::parse(&ok)?;
    check(msg.rcode() == 0 && msg.answer.len() == 3, "answer after hostile input", &format!("{msg:?}"))?;
    check(m.is_running(), "server alive", "")?;
    Ok(())
}

fn bad_zone_file() -> Result {
    let dir = std::env::temp_dir().join(format!("morgana-badzone-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bad.zone");
    std::fs::write(&path, "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\nwww A 192.0.2.300\n")?;
    let out = Command::new(app_binary("dns"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--zone"])
        .arg(format!("bad.example.={}", path.display()))
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:5: '192.0.2.300' is not an IPv4 address", path.display());
    check(out.status.code() == Some(1) && err.contains(&want), &format!("expected exit 1 and {want:?}"), &err)?;
    let out = Command::new(app_binary("dns")).args(["--zone", "nonsense"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(out.status.code() == Some(2) && err.contains("expected ORIGIN=PATH"), "bad --zone flag", &err)
}

fn tcp_limits() -> Result {
    let (_m, port) = start_morgana(&["--tcp-idle", "1", "--tcp-max", "2"])?;
    // Several queries on one connection (RFC 7766 §6.2.1).
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    for i in 0..3u16 {
        let m = dnsmsg::tcp_exchange(&mut s, &dnsmsg::query(100 + i, "www.example.com", 1, 1, 0, None))?;
        check(dnsmsg::parse(&m)?.id == 100 + i, "pipelined TCP answers", "")?;
    }
    // Idle connections are closed after the timeout.
    let start = std::time::Instant::now();
    let mut one = [0u8; 1];
    let closed = matches!(s.read(&mut one), Ok(0) | Err(_));
    check(
        closed && start.elapsed() < Duration::from_secs(4),
        "idle connection closed",
        &format!("{:?}", start.elapsed()),
    )?;
    // The cap: two idle connections are held; a third makes the one that
    // has waited longest (a) go, and is served.
    let mut a = TcpStream::connect(("127.0.0.1", port))?;
    std::thread::sleep(Duration::from_millis(100));
    let mut b = TcpStream::connect(("127.0.0.1", port))?;
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let m = dnsmsg::tcp_exchange(&mut c, &dnsmsg::query(7, "www.example.com", 1, 1, 0, None))?;
    check(dnsmsg::parse(&m)?.id == 7, "the newcomer at the cap is served", "")?;
    a.set_read_timeout(Some(Duration::from_millis(500)))?;
    let r = a.read(&mut one);
    check(
        matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock),
        "the longest-waiting connection was closed",
        &format!("{r:?}"),
    )?;
    b.set_read_timeout(Some(Duration::from_millis(300)))?;
    let r = b.read(&mut one);
    check(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the younger idle connection stays open",
        &format!("{r:?}"),
    )?;
    Ok(())
}

fn vm_image() -> Result {
    let image = xtask::build_image("dns", true)?;
    let port = free_port();
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?, format!("tcp:127.0.0.1:{port}-:53").parse()?];
    vm.cmdline = "--axfr-allow=10.0.2.0/24".into();
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", Duration::from_secs(30));
    let p = format!("-p{port}");
    let out = dig(&["@127.0.0.1", &p, "+norec", "+tries=3", "www.example.com"])?;
    check(out.contains("192.0.2.80") && out.contains("flags: qr aa"), "dig UDP to the VM", &out)?;
    let out = dig(&["@127.0.0.1", &p, "+norec", "+tcp", "mail.example.com", "MX"])?;
    check(out.contains("status: NODATA") || out.contains("status: NOERROR"), "dig TCP to the VM", &out)?;
    let out = dig(&["@127.0.0.1", &p, "example.com", "AXFR"])?;
    check(out.matches("\tSOA\t").count() == 2, "AXFR from the VM", &out)?;
    let out = dig(&["@127.0.0.1", &p, "+norec", "example.org"])?;
    check(out.contains("status: REFUSED"), "REFUSED from the VM", &out)?;
    check(qemu.is_running(), "VM still running", "")
}

/// Bursts of queries from several sockets at once, so the server receives
/// them in batches and answers in batches: every query gets exactly one
/// answer, to the socket that asked, with its ID and question.
fn udp_bursts_all_answered() -> Result {
    // 250 queries per name from one network: more than rate limiting allows.
    let (_m, port) = start_morgana(&["--rrl-rate", "0"])?;
    let socks: Vec<UdpSocket> = (0..4).map(|_| UdpSocket::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
    let names = ["www.example.com", "mail.example.com", "nothere.example.com", "example.com"];
    for round in 0..5u16 {
        for (k, s) in socks.iter().enumerate() {
            for i in 0..50u16 {
                let id = round * 1000 + k as u16 * 100 + i;
                s.send_to(&dnsmsg::query(id, names[k], 1, 1, 0, None), ("127.0.0.1", port))?;
            }
        }
        for (k, s) in socks.iter().enumerate() {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut seen = BTreeSet::new();
            let mut buf = [0u8; 4096];
            while seen.len() < 50 {
                let n = s
                    .recv(&mut buf)
                    .map_err(|e| format!("round {round}, socket {k}: {} of 50 answers: {e}", seen.len()))?;
                let m = dnsmsg::parse(&buf[..n])?;
                let base = round * 1000 + k as u16 * 100;
                check(
                    (base..base + 50).contains(&m.id)
                        && m.question
                            .as_ref()
                            .is_some_and(|q| q.0.trim_end_matches('.').eq_ignore_ascii_case(names[k])),
                    "answer to this socket's own query",
                    &format!("{m:?}"),
                )?;
                check(seen.insert(m.id), "one answer per query", &format!("id {}", m.id))?;
            }
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let nsd = Prereq::program("nsd", "-v", "nsd");
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let kdig = Prereq::program("kdig", "-V", "knot-dnsutils");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let tests = vec![
        t("differential_against_nsd", differential, &[&nsd]),
        t("differential_axfr_against_nsd", differential_axfr, &[&nsd]),
        t("dig_end_to_end", real_clients, &[&dig]),
        t("kdig_end_to_end", kdig_client, &[&kdig]),
        t("hostile_packets_do_not_disturb", hostile_input, &[]),
        t("udp_bursts_all_answered", udp_bursts_all_answered, &[]),
        t("bad_zone_file_names_the_line", bad_zone_file, &[]),
        t("tcp_pipelining_idle_timeout_and_cap", tcp_limits, &[]),
        t("vm_image_answers_dig", vm_image, &[&qemu, &dig]),
    ];
    libtest_mimic::run(&args, tests).exit();
}
