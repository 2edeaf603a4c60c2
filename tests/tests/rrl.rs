//! Response rate limiting end to end. dnsperf floods the DNS app from
//! 127.0.0.1 while, at the same time, a paced client on the same /24 asks
//! for another name (its own bucket, so its full and truncated answers can
//! be counted exactly), a client on another /24 (127.0.2.1) must get every
//! answer, and TCP must answer the flooding network. `--rrl-rate 0` answers
//! the same flood in full. The VM image, behind QEMU's user network where
//! every client is one source, limits a flood too. Tests whose tools are
//! missing are reported as ignored, except under CI=true, where they fail.

use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use morgana_tests::dnsmsg;
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

/// Responses per second per bucket in the hosted tests.
const RATE: f64 = 100.0;
/// The dnsperf flood: seconds, queries per second.
const FLOOD_SECONDS: u32 = 3;
const FLOOD_QPS: u32 = 3000;
const TC: u16 = 0x0200;

fn start_dns(extra: &[&str]) -> (Running, u16) {
    let port = free_port();
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}")]).args(extra);
    let mut p = Running::start(cmd);
    p.wait_for("ready to serve", Duration::from_secs(20));
    (p, port)
}

#[derive(Debug, Default)]
struct Dnsperf {
    sent: f64,
    completed: f64,
    seconds: f64,
}

/// dnsperf from 127.0.0.1: `www.example.com A` at [`FLOOD_QPS`] for
/// [`FLOOD_SECONDS`] (at most that many queries; lost after one second).
fn dnsperf(port: u16) -> Result<Dnsperf> {
    let file = std::env::temp_dir().join(format!("morgana-rrl-{}-{port}.txt", std::process::id()));
    std::fs::write(&file, "www.example.com A\n")?;
    let (qps, secs) = (FLOOD_QPS.to_string(), FLOOD_SECONDS.to_string());
    let n = (FLOOD_QPS * FLOOD_SECONDS).to_string();
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-a", "127.0.0.1", "-p", &port.to_string(), "-l", &secs, "-n", &n, "-Q", &qps])
        .args(["-q", "5000", "-t", "1", "-d"])
        .arg(&file)
        .stderr(Stdio::null())
        .output()?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |label: &str| -> Result<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(label));
        let value = line.and_then(|l| l.split_once(':')).and_then(|(_, v)| v.split_whitespace().next());
        value.and_then(|v| v.parse().ok()).ok_or_else(|| format!("no '{label}' in dnsperf's report:\n{text}").into())
    };
    let r = Dnsperf {
        sent: field("Queries sent")?,
        completed: field("Queries completed")?,
        seconds: field("Run time (s)")?,
    };
    eprintln!("  dnsperf: {r:?}");
    Ok(r)
}

#[derive(Debug, Default)]
struct Counts {
    sent: usize,
    /// Seconds from the first query sent to the last.
    span: f64,
    full: usize,
    truncated: usize,
    none: usize,
}

/// Sends `count` queries for `name` A from `from` to 127.0.0.1:`port`,
/// `per_second` evenly spaced, and sorts the answers (waiting one more
/// second for late ones). Fails on an answer that is neither a full
/// answer nor a proper truncated one.
fn paced(from: &str, port: u16, name: &str, count: u16, per_second: f64) -> Result<Counts> {
    let s = UdpSocket::bind((from, 0))?;
    s.set_read_timeout(Some(Duration::from_millis(1)))?;
    let start = Instant::now();
    let last = Duration::from_secs_f64(f64::from(count) / per_second) + Duration::from_secs(1);
    let mut seen = vec![false; count as usize];
    let (mut c, mut next, mut buf) = (Counts::default(), 0u16, [0u8; 4096]);
    while start.elapsed() < last {
        if next < count && start.elapsed() >= Duration::from_secs_f64(f64::from(next) / per_second) {
            s.send_to(&dnsmsg::query(next, name, 1, 1, 0, None), ("127.0.0.1", port))?;
            c.span = start.elapsed().as_secs_f64();
            next += 1;
            continue;
        }
        let Ok(n) = s.recv(&mut buf) else { continue };
        let m = dnsmsg::parse(&buf[..n])?;
        let asked = m.question.as_ref().is_some_and(|q| q.0.trim_end_matches('.') == name && q.1 == 1);
        if !asked || m.id >= count || std::mem::replace(&mut seen[m.id as usize], true) {
            return Err(format!("unexpected or repeated answer: {m:?}").into());
        }
        match (m.flags & TC != 0, m.answer.len(), m.authority.len() + m.additional.len(), m.opt) {
            (true, 0, 0, None) => c.truncated += 1,
            (false, a, _, _) if a > 0 => c.full += 1,
            _ => return Err(format!("neither a full nor a slipped answer: {m:?}").into()),
        }
    }
    c.sent = next as usize;
    c.none = c.sent - c.full - c.truncated;
    eprintln!("  {name} from {from}: {c:?}");
    Ok(c)
}

/// One query over TCP from 127.0.0.1; the answer's (TC set, answer count).
fn tcp_query(port: u16, name: &str) -> Result<(bool, usize)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let m = dnsmsg::parse(&dnsmsg::tcp_exchange(&mut s, &dnsmsg::query(77, name, 1, 1, 0, None))?)?;
    Ok((m.flags & TC != 0, m.answer.len()))
}

/// Waits until a UDP query for `name` is answered (the VM's network is up).
fn answered(port: u16, name: &str) -> Result {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 4096];
    for _ in 0..20 {
        s.send_to(&dnsmsg::query(1, name, 1, 1, 0, None), ("127.0.0.1", port))?;
        if s.recv(&mut buf).is_ok() {
            return Ok(());
        }
    }
    Err(format!("no answer for {name} on port {port}").into())
}

fn check(cond: bool, what: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

fn need(tool: &str, arg: &str) -> Result {
    check(have(tool, arg), &format!("{tool} is not installed"))
}

fn flood_is_limited_other_networks_are_not() -> Result {
    need("dnsperf", "-h")?;
    let (mut server, port) = start_dns(&["--rrl-rate", "100", "--rrl-slip", "2"]);
    let flood = std::thread::spawn(move || dnsperf(port).map_err(|e| format!("{e:?}")));
    std::thread::sleep(Duration::from_millis(200));
    // Same /24 as the flood, another name: 400/s for 2 s against 100/s.
    let probe = std::thread::spawn(move || {
        paced("127.0.0.1", port, "mail.example.com", 800, 400.0).map_err(|e| format!("{e:?}"))
    });
    // Another /24, the flooded name, at the rate: all answered.
    let other = paced("127.0.2.1", port, "www.example.com", 200, RATE)?;
    // TCP is never limited, even for the flooding network.
    let (tc, answers) = tcp_query(port, "www.example.com")?;
    let (flood, probe) = (flood.join().map_err(|_| "dnsperf thread")??, probe.join().map_err(|_| "probe thread")??);

    check(other.full == 200 && other.truncated == 0, "the other /24 got every answer in full")?;
    check(!tc && answers > 0, "a full answer over TCP during the flood")?;
    // The probe's bucket: a burst of RATE, then RATE per second; of the
    // rest, every second one is slipped (TC), the others dropped.
    let allowed = RATE * (1.0 + probe.span) * 1.05 + 2.0;
    check(probe.full as f64 >= RATE && probe.full as f64 <= allowed, "probe: full answers within the rate")?;
    let limited = probe.truncated + probe.none;
    check(probe.truncated == limited / 2, "probe: exactly every second limited answer slipped")?;
    // dnsperf counts full and slipped answers alike: completed = A +
    // (sent - A) / 2 for A full answers.
    let full = 2.0 * flood.completed - flood.sent;
    eprintln!("  flood: about {full:.0} full answers, {:.0} slipped", flood.completed - full);
    check(flood.sent >= 0.9 * f64::from(FLOOD_QPS * FLOOD_SECONDS), "dnsperf sent the flood")?;
    check(full >= RATE - 2.0, "flood: at least the burst answered")?;
    check(full <= RATE * (1.0 + flood.seconds) * 1.1 + 2.0, "flood: full answers within rate × seconds")?;
    check(server.is_running(), "server alive")
}

fn rate_zero_answers_the_flood() -> Result {
    need("dnsperf", "-h")?;
    let (mut server, port) = start_dns(&["--rrl-rate", "0"]);
    let flood = std::thread::spawn(move || dnsperf(port).map_err(|e| format!("{e:?}")));
    std::thread::sleep(Duration::from_millis(200));
    let probe = paced("127.0.0.1", port, "mail.example.com", 800, 400.0)?;
    let flood = flood.join().map_err(|_| "dnsperf thread")??;
    check(probe.full == probe.sent && probe.sent == 800, "probe: every answer in full")?;
    check(flood.sent >= 0.9 * f64::from(FLOOD_QPS * FLOOD_SECONDS), "dnsperf sent the flood")?;
    check(flood.completed >= 0.995 * flood.sent, "flood: (nearly) every query answered")?;
    check(server.is_running(), "server alive")
}

fn bad_rrl_flags_are_refused() -> Result {
    for (flags, want) in [
        (["--rrl-rate", "1000001"], "invalid value '1000001' for --rrl-rate: at most 1000000"),
        (["--rrl-slip", "-1"], "--rrl-slip"),
        (["--rrl-size", "2000000"], "invalid value '2000000' for --rrl-size: at most 1048576"),
    ] {
        let out = Command::new(app_binary("dns")).args(flags).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        check(
            out.status.code() == Some(2) && err.contains(want),
            &format!("{flags:?}: exit 2 and {want:?}, got {err}"),
        )?;
    }
    Ok(())
}

/// Under QEMU's user network every client is the host's 10.0.2.2. The
/// bound on full answers is loose on purpose: under a loaded host the VM's
/// TSC calibration can be off several times, and with it the refill rate.
fn vm_limits_a_flood() -> Result {
    need("qemu-system-x86_64", "--version")?;
    let image = xtask::build_image("dns", true)?;
    let port = free_port();
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?, format!("tcp:127.0.0.1:{port}-:53").parse()?];
    vm.cmdline = "--rrl-rate=20 --rrl-slip=2".into();
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("rate limiting: 20/s per network, kind and name, slip 2", Duration::from_secs(30));
    qemu.wait_for("ready to serve", Duration::from_secs(30));
    answered(port, "mail.example.com")?; // its own bucket
                                         // 300/s for 2 s against 20/s: about 20 + 2 × 20 full answers.
    let c = paced("127.0.0.1", port, "www.example.com", 600, 300.0)?;
    let (tc, answers) = tcp_query(port, "www.example.com")?;
    check(c.full >= 18 && c.full <= c.sent / 3, "the burst answered, and far fewer than sent")?;
    let limited = c.truncated + c.none;
    check(c.truncated > 0 && c.truncated <= limited / 2 + 1, "about every second limited answer slipped")?;
    check(!tc && answers > 0, "a full answer over TCP")?;
    check(qemu.is_running(), "VM still running")
}

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd).arg(arg).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn main() {
    let args = Arguments::from_args();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let (dnsperf_ok, qemu) = (have("dnsperf", "-h"), have("qemu-system-x86_64", "--version"));
    for (ok, what) in [(dnsperf_ok, "dnsperf"), (qemu, "qemu-system-x86_64")] {
        if !ok {
            eprintln!(
                "RRL tests needing {what}: {}",
                if ci { "not installed, failing (CI=true)" } else { "skipped, not installed" }
            );
        }
    }
    let t = |name: &str, f: fn() -> Result, ok: bool| Trial::test(name, f).with_ignored_flag(!ok && !ci);
    let tests = vec![
        t("flood_is_limited_other_networks_are_not", flood_is_limited_other_networks_are_not, dnsperf_ok),
        t("rate_zero_answers_the_flood", rate_zero_answers_the_flood, dnsperf_ok),
        t("bad_rrl_flags_are_refused", bad_rrl_flags_are_refused, true),
        t("vm_limits_a_flood", vm_limits_a_flood, qemu),
    ];
    libtest_mimic::run(&args, tests).exit();
}
