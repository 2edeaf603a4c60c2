//! DNS cookies (RFC 7873, RFC 9018 server cookies) end to end against the
//! hosted DNS app: `dig +cookie` learns a server cookie and gets it back
//! "(good)" when it returns it, over UDP and TCP; `kdig +cookie` too; a
//! COOKIE of a malformed length gets FORMERR; two servers sharing
//! `--cookie-secret` accept each other's cookies (a third one does not);
//! and under a low `--rrl-rate` a burst from one socket is limited without
//! a cookie, answered in full with a valid one, and answered with
//! BADCOOKIE (which `dig` retries through) with a bad one. NSD 4.6, sharing
//! the secret, takes Morgana's cookies and Morgana takes NSD's.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::dnsmsg::{self, Message};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const TC: u16 = 0x0200;
const BADCOOKIE: u16 = 23;

fn check(cond: bool, what: &str, detail: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}\n{detail}").into())
    }
}

fn start_dns(extra: &[&str]) -> (Running, u16) {
    let port = free_port();
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")]).args(extra);
    let mut p = Running::start(cmd);
    p.wait_for("ready to serve", Duration::from_secs(20));
    (p, port)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0)).collect()
}

fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program).args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cookie and the verdict of dig's `; COOKIE: HEX (good)` line.
fn dig_cookie(out: &str) -> Option<(String, String)> {
    let line = out.lines().find_map(|l| l.strip_prefix("; COOKIE: "))?;
    let (cookie, verdict) = line.split_once(' ').unwrap_or((line, ""));
    Some((cookie.to_string(), verdict.to_string()))
}

/// A server cookie of RFC 9018's shape, stamped within a few seconds of
/// our wall clock.
fn check_server_cookie(server: &[u8], what: &str) -> Result {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let stamp = server.get(4..8).map_or(0, |t| u32::from_be_bytes([t[0], t[1], t[2], t[3]])) as i64;
    let shape = server.len() == 16 && server[..4] == [1, 0, 0, 0] && (now - stamp).abs() <= 5;
    check(shape, &format!("{what}: version 1, reserved 0, the time now"), &hex(server))
}

fn dig_learns_and_returns_the_cookie() -> Result {
    let (mut server, port) = start_dns(&[]);
    let p = port.to_string();
    let at = ["@127.0.0.1", "-p", &p, "+norec", "www.example.com", "A"];
    let out = run("dig", &[&at[..], &["+cookie"]].concat())?;
    let (cookie, verdict) = dig_cookie(&out).ok_or_else(|| format!("no COOKIE line:\n{out}"))?;
    eprintln!("  dig +cookie: COOKIE: {cookie} {verdict}");
    check(out.contains("status: NOERROR") && out.contains("web.example.com."), "an answer", &out)?;
    check(cookie.len() == 48 && verdict == "(good)", "client cookie echoed, 16-octet server cookie", &out)?;
    check_server_cookie(&unhex(&cookie[16..]), "dig's server cookie")?;
    // Returned within the half hour: echoed as it is, over UDP and TCP.
    for tcp in [false, true] {
        let with = format!("+cookie={cookie}");
        let mut args = [&at[..], &[&with[..]]].concat();
        if tcp {
            args.push("+tcp");
        }
        let out = run("dig", &args)?;
        let got = dig_cookie(&out).ok_or_else(|| format!("no COOKIE line:\n{out}"))?;
        eprintln!("  dig +cookie=<it> (tcp: {tcp}): COOKIE: {} {}", got.0, got.1);
        check(got == (cookie.clone(), "(good)".into()), "the same cookie back, (good)", &out)?;
        check(out.contains("status: NOERROR") && out.contains("web.example.com."), "an answer", &out)?;
    }
    // A server cookie we never made: answered, with a new one.
    let forged = format!("{}010000000000000000000000000000ff", &cookie[..16]);
    let out = run("dig", &[&at[..], &[&format!("+cookie={forged}")[..]]].concat())?;
    let got = dig_cookie(&out).ok_or_else(|| format!("no COOKIE line:\n{out}"))?;
    check(got.0 != forged && got.0[..16] == cookie[..16] && got.1 == "(good)", "a new server cookie", &out)?;
    check(out.contains("status: NOERROR") && out.contains("web.example.com."), "an answer", &out)?;
    // Errors carry it too: REFUSED outside our zones.
    let out = run("dig", &["@127.0.0.1", "-p", &p, "+norec", "+cookie", "example.org", "A"])?;
    check(
        out.contains("status: REFUSED") && dig_cookie(&out).is_some_and(|c| c.0.len() == 48),
        "REFUSED with it",
        &out,
    )?;
    check(server.is_running(), "server alive", "")
}

fn kdig_cookie() -> Result {
    let (mut server, port) = start_dns(&[]);
    let p = port.to_string();
    let at = ["@127.0.0.1", "-p", &p, "+norec", "www.example.com", "A"];
    let out = run("kdig", &[&at[..], &["+cookie"]].concat())?;
    let cookie = out
        .lines()
        .find_map(|l| l.strip_prefix(";; COOKIE: "))
        .map(|c| c.split_whitespace().next().unwrap_or("").to_ascii_lowercase())
        .ok_or_else(|| format!("no COOKIE line:\n{out}"))?;
    eprintln!("  kdig +cookie: COOKIE: {cookie}");
    check(cookie.len() == 48 && out.contains("status: NOERROR"), "kdig got a server cookie", &out)?;
    check_server_cookie(&unhex(&cookie[16..]), "kdig's server cookie")?;
    let out = run("kdig", &[&at[..], &[&format!("+cookie={cookie}"), "+tcp"]].concat())?;
    let back = out.lines().find_map(|l| l.strip_prefix(";; COOKIE: ")).unwrap_or("").to_ascii_lowercase();
    check(back.starts_with(&cookie), "kdig's returned cookie echoed over TCP", &out)?;
    check(server.is_running(), "server alive", "")
}

/// One UDP exchange from `s`; `None` when nothing came back in `wait`.
fn udp(s: &UdpSocket, port: u16, query: &[u8], wait: Duration) -> Result<Option<Vec<u8>>> {
    s.set_read_timeout(Some(wait))?;
    s.send_to(query, ("127.0.0.1", port))?;
    let mut buf = [0u8; 4096];
    match s.recv(&mut buf) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(_) => Ok(None),
    }
}

fn malformed_cookie_is_formerr() -> Result {
    let (mut server, port) = start_dns(&[]);
    let p = port.to_string();
    let out = run("dig", &["@127.0.0.1", "-p", &p, "+cookie=0102030405", "www.example.com", "A"])?;
    check(out.contains("status: FORMERR"), "dig +cookie= of 5 octets: FORMERR", &out)?;
    let out = run("dig", &["@127.0.0.1", "-p", &p, "+cookie=0102030405060708090a", "www.example.com", "A"])?;
    check(out.contains("status: FORMERR"), "dig +cookie= of 10 octets: FORMERR", &out)?;
    let s = UdpSocket::bind("127.0.0.1:0")?;
    for len in [0usize, 7, 9, 15, 41] {
        let q = dnsmsg::cookie_query(4000 + len as u16, "www.example.com", 1, &vec![7; len]);
        let r = udp(&s, port, &q, Duration::from_secs(2))?.ok_or("no answer")?;
        let m = dnsmsg::parse(&r)?;
        check(m.id == 4000 + len as u16 && m.rcode() == 1, &format!("{len} octets: FORMERR"), &format!("{m:?}"))?;
    }
    for len in [8usize, 16, 40] {
        let r = udp(&s, port, &dnsmsg::cookie_query(9, "www.example.com", 1, &vec![7; len]), Duration::from_secs(2))?;
        let m = dnsmsg::parse(&r.ok_or("no answer")?)?;
        check(m.rcode() == 0 && !m.answer.is_empty(), &format!("{len} octets: answered"), &format!("{m:?}"))?;
    }
    let mut t = TcpStream::connect(("127.0.0.1", port))?;
    t.set_read_timeout(Some(Duration::from_secs(5)))?;
    let m = dnsmsg::parse(&dnsmsg::tcp_exchange(&mut t, &dnsmsg::cookie_query(5, "www.example.com", 1, &[1; 12]))?)?;
    check(m.rcode() == 1, "over TCP too", &format!("{m:?}"))?;
    check(server.is_running(), "server alive", "")
}

/// `curl`-free scrape of the metrics endpoint: the value of `sample`.
fn metric(port: u16, sample: &str) -> Result<u64> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let line = text.lines().find(|l| l.starts_with(sample)).ok_or_else(|| format!("no {sample}:\n{text}"))?;
    Ok(line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX))
}

fn shared_secret_across_servers() -> Result {
    // Each server's ports are taken before the next one picks its own.
    let with_metrics = |secret: &str| {
        let (port, metrics) = loop {
            let (p, m) = (free_port(), free_port());
            if p != m {
                break (p, m);
            }
        };
        let mut cmd = Command::new(app_binary("dns"));
        cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--metrics", &format!("127.0.0.1:{metrics}")]);
        cmd.args(["--cookie-secret", secret]);
        let mut p = Running::start(cmd);
        p.wait_for("ready to serve", Duration::from_secs(20));
        (p, port, metrics)
    };
    let (mut a, pa, mp1) = with_metrics(SECRET);
    let (mut b, pb, mp2) = with_metrics(&SECRET.to_ascii_uppercase());
    let (mut c, pc, mp3) = with_metrics("ffeeddccbbaa99887766554433221100");
    check(a.output().iter().any(|l| l.contains("DNS cookies: secret from --cookie-secret")), "logged", "")?;
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let client = [0x5a; 8];
    let r = udp(&s, pa, &dnsmsg::cookie_query(1, "www.example.com", 1, &client), Duration::from_secs(2))?;
    let cookie = dnsmsg::edns_option(&r.ok_or("no answer from A")?, 10)?.ok_or("no cookie from A")?;
    check(cookie.len() == 24 && cookie[..8] == client, "A: client cookie and a server cookie", &hex(&cookie))?;
    // A second later, a server that regenerated would stamp a new time:
    // an identical cookie back means it was judged valid and echoed.
    std::thread::sleep(Duration::from_millis(1100));
    let ask = |port: u16| -> Result<Vec<u8>> {
        let r = udp(&s, port, &dnsmsg::cookie_query(2, "www.example.com", 1, &cookie), Duration::from_secs(2))?;
        Ok(dnsmsg::edns_option(&r.ok_or("no answer")?, 10)?.ok_or("no cookie")?)
    };
    let (from_b, from_c) = (ask(pb)?, ask(pc)?);
    eprintln!("  A made {}; B returned {}; C returned {}", hex(&cookie), hex(&from_b), hex(&from_c));
    check(from_b == cookie, "B (same secret) takes A's cookie as its own", &hex(&from_b))?;
    check(from_c != cookie && from_c[..8] == client, "C (another secret) gives a new one", &hex(&from_c))?;
    check_server_cookie(&from_c[8..], "C's new cookie")?;
    let valid = "morgana_dns_cookies_total{server_cookie=\"valid\"}";
    let invalid = "morgana_dns_cookies_total{server_cookie=\"invalid\"}";
    let none = "morgana_dns_cookies_total{server_cookie=\"none\"}";
    let counts = [metric(mp1, none)?, metric(mp2, valid)?, metric(mp2, invalid)?, metric(mp3, invalid)?];
    check(counts == [1, 1, 0, 1], "metrics: A one client-only, B one valid, C one invalid", &format!("{counts:?}"))?;
    check(a.is_running() && b.is_running() && c.is_running(), "servers alive", "")
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Burst {
    full: usize,
    truncated: usize,
    badcookie: usize,
    none: usize,
}

/// Sends `count` queries for www.example.com A from `s` at once, each with
/// the COOKIE `cookie` if given, and sorts the answers.
fn burst(s: &UdpSocket, port: u16, count: u16, cookie: Option<&[u8]>) -> Result<Burst> {
    for id in 0..count {
        let q = match cookie {
            Some(c) => dnsmsg::cookie_query(id, "www.example.com", 1, c),
            None => dnsmsg::query(id, "www.example.com", 1, 1, 0, None),
        };
        s.send_to(&q, ("127.0.0.1", port))?;
    }
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    let (mut b, mut seen, mut buf) = (Burst::default(), 0, [0u8; 4096]);
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let Ok(n) = s.recv(&mut buf) else { continue };
        let m: Message = dnsmsg::parse(&buf[..n])?;
        seen += 1;
        let echoed = dnsmsg::edns_option(&buf[..n], 10)?;
        match (m.rcode(), m.flags & TC != 0, m.answer.len()) {
            (BADCOOKIE, false, 0) if echoed.as_ref().is_some_and(|c| c.len() == 24) => b.badcookie += 1,
            (0, true, 0) => b.truncated += 1,
            (0, false, a) if a > 0 && (cookie.is_none() || echoed.is_some()) => b.full += 1,
            _ => return Err(format!("unexpected answer: {m:?}").into()),
        }
    }
    b.none = count as usize - seen;
    Ok(b)
}

fn valid_cookie_exempts_from_rate_limiting() -> Result {
    // Every limited answer slipped (TC): BADCOOKIE takes a slip's place.
    let (mut server, port) = start_dns(&["--rrl-rate", "5", "--rrl-slip", "1"]);
    // The cookie learned over TCP, which is never rate limited.
    let mut t = TcpStream::connect(("127.0.0.1", port))?;
    t.set_read_timeout(Some(Duration::from_secs(5)))?;
    let client = [0x42; 8];
    let r = dnsmsg::tcp_exchange(&mut t, &dnsmsg::cookie_query(1, "www.example.com", 1, &client))?;
    let cookie = dnsmsg::edns_option(&r, 10)?.ok_or("no cookie over TCP")?;
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let plain = burst(&s, port, 60, None)?;
    let with_cookie = burst(&s, port, 60, Some(&cookie))?;
    let mut bad = cookie.clone();
    bad[23] ^= 0xff;
    let with_bad = burst(&s, port, 60, Some(&bad))?;
    eprintln!("  60 queries at once, rate 5/s, slip 1: without a cookie {plain:?}; with a valid one {with_cookie:?}; with a bad one {with_bad:?}");
    check(plain.full <= 10 && plain.truncated + plain.full == 60, "no cookie: limited", &format!("{plain:?}"))?;
    check(with_cookie.full == 60, "a valid cookie: every answer in full", &format!("{with_cookie:?}"))?;
    check(
        with_bad.full <= 10 && with_bad.badcookie + with_bad.full == 60,
        "a bad cookie: BADCOOKIE in place of every slipped answer",
        &format!("{with_bad:?}"),
    )?;
    // dig retries a BADCOOKIE with the cookie it brings, and gets through
    // (the bucket emptied first: it has refilled during the bursts).
    for id in 0..20 {
        s.send_to(&dnsmsg::query(id, "www.example.com", 1, 1, 0, None), ("127.0.0.1", port))?;
    }
    let forged = format!("{}0100000000000000000000000000abcd", hex(&client));
    let p = port.to_string();
    let out = run("dig", &["@127.0.0.1", "-p", &p, "+norec", &format!("+cookie={forged}"), "www.example.com", "A"])?;
    check(out.contains(";; BADCOOKIE, retrying."), "dig was told BADCOOKIE", &out)?;
    check(out.contains("status: NOERROR") && out.contains("web.example.com."), "and then answered", &out)?;
    check(server.is_running(), "server alive", "")?;
    // Without slips, limited answers are dropped, forged cookie or not: a
    // flood with bad cookies reflects nothing more than one without.
    let (_quiet, port) = start_dns(&["--rrl-rate", "5", "--rrl-slip", "0"]);
    let mut t = TcpStream::connect(("127.0.0.1", port))?;
    t.set_read_timeout(Some(Duration::from_secs(5)))?;
    let r = dnsmsg::tcp_exchange(&mut t, &dnsmsg::cookie_query(1, "www.example.com", 1, &client))?;
    let mut bad = dnsmsg::edns_option(&r, 10)?.ok_or("no cookie over TCP")?;
    bad[23] ^= 0xff;
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let dropped = burst(&s, port, 60, Some(&bad))?;
    eprintln!("  slip 0, a bad cookie: {dropped:?}");
    check(
        dropped.full <= 10 && dropped.badcookie == 0 && dropped.none >= 50,
        "drops stay drops",
        &format!("{dropped:?}"),
    )
}

/// NSD serving the test zone from a temporary directory with cookies on
/// and `secret`; killed and removed on drop.
struct Nsd {
    p: Option<Running>,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // SIGTERM, so NSD stops its server process too, before the
        // directory goes (SIGKILL would orphan it).
        if let Some(mut p) = self.p.take() {
            let _ = Command::new("kill").arg(p.pid().to_string()).status();
            p.wait_exit(Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_nsd(secret: &str) -> Result<Nsd> {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("morgana-cookies-nsd-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let zones = morgana_tests::process::workspace().join("tests/dns/zones");
    let d = dir.display();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{}\"\n  database: \"\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  pidfile: \"{d}/nsd.pid\"\n  verbosity: 0\n  answer-cookie: yes\n  cookie-secret: \"{secret}\"\n  cookie-secret-file: \"{d}/no-such-file\"\nremote-control:\n  control-enable: no\nzone:\n  name: \"example.com\"\n  zonefile: \"example.com.zone\"\n",
        zones.display()
    );
    std::fs::write(dir.join("nsd.conf"), conf)?;
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(dir.join("nsd.conf"));
    let nsd = Nsd { p: Some(Running::start(cmd)), dir, port };
    let s = UdpSocket::bind("127.0.0.1:0")?;
    for _ in 0..100 {
        if udp(&s, port, &dnsmsg::query(1, "example.com", 6, 1, 0, None), Duration::from_millis(100))?.is_some() {
            return Ok(nsd);
        }
    }
    Err("NSD does not answer".into())
}

/// RFC 9018's point across implementations: NSD and Morgana sharing a
/// secret take each other's cookies (echoed a second later, not
/// restamped), and NSD with another secret does not. NSD answers malformed
/// COOKIE lengths with FORMERR as Morgana does.
fn interoperates_with_nsd() -> Result {
    let nsd = start_nsd(SECRET)?;
    let other = start_nsd("ffeeddccbbaa99887766554433221100")?;
    let (mut morgana, port) = start_dns(&["--cookie-secret", SECRET]);
    let s = UdpSocket::bind("127.0.0.1:0")?;
    let learn = |port: u16, client: &[u8]| -> Result<Vec<u8>> {
        let r = udp(&s, port, &dnsmsg::cookie_query(1, "www.example.com", 1, client), Duration::from_secs(2))?;
        Ok(dnsmsg::edns_option(&r.ok_or("no answer")?, 10)?.ok_or("no cookie")?)
    };
    let from_morgana = learn(port, &[0x11; 8])?;
    let from_nsd = learn(nsd.port, &[0x22; 8])?;
    std::thread::sleep(Duration::from_millis(1100));
    let (at_nsd, at_morgana, at_other) =
        (learn(nsd.port, &from_morgana)?, learn(port, &from_nsd)?, learn(other.port, &from_morgana)?);
    eprintln!("  Morgana made {}, NSD returned {}", hex(&from_morgana), hex(&at_nsd));
    eprintln!("  NSD made {}, Morgana returned {}", hex(&from_nsd), hex(&at_morgana));
    eprintln!("  NSD with another secret returned {}", hex(&at_other));
    check(at_nsd == from_morgana, "NSD takes Morgana's cookie", &hex(&at_nsd))?;
    check(at_morgana == from_nsd, "Morgana takes NSD's cookie", &hex(&at_morgana))?;
    check(at_other != from_morgana, "NSD with another secret makes a new one", &hex(&at_other))?;
    for len in [5usize, 10, 41] {
        let q = dnsmsg::cookie_query(7, "www.example.com", 1, &vec![3; len]);
        let rcodes = [nsd.port, port].map(|p| udp(&s, p, &q, Duration::from_secs(2)).ok().flatten());
        let rcodes = rcodes.map(|r| r.and_then(|r| dnsmsg::parse(&r).ok()).map(|m| m.rcode()));
        check(rcodes == [Some(1), Some(1)], &format!("{len} octets: FORMERR from both"), &format!("{rcodes:?}"))?;
    }
    check(morgana.is_running(), "server alive", "")
}

fn main() {
    let args = Arguments::from_args();
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let kdig = Prereq::program("kdig", "-V", "knot-dnsutils");
    let nsd = Prereq::program("nsd", "-v", "nsd");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let tests = vec![
        t("dig_learns_and_returns_the_cookie", dig_learns_and_returns_the_cookie, &[&dig]),
        t("kdig_cookie", kdig_cookie, &[&kdig]),
        t("malformed_cookie_is_formerr", malformed_cookie_is_formerr, &[&dig]),
        t("shared_secret_across_servers", shared_secret_across_servers, &[]),
        t("valid_cookie_exempts_from_rate_limiting", valid_cookie_exempts_from_rate_limiting, &[&dig]),
        t("interoperates_with_nsd", interoperates_with_nsd, &[&nsd]),
    ];
    libtest_mimic::run(&args, tests).exit();
}
