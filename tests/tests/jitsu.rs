//! Jitsu (`apps/jitsu`): unikernels booted by DNS queries. Each test runs
//! Jitsu in a network namespace it creates, with a bridge (10.78.0.1/24,
//! nothing routed out) where the unikernels' TAP devices go; the
//! unikernel is the DNS image (`apps/dns`) under QEMU microvm (TCG), and
//! the client is `dig`. Needs root, iproute2, QEMU and dig: ignored
//! without them, failed under CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::jitsu::{pids, Answer, Dig};
use morgana_tests::netns::Namespace;
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, Running};

type Result = std::result::Result<(), Failed>;

const JITSU: &str = "10.78.0.1";
const ZONE: &str = "$ORIGIN jitsu.test.
$TTL 300
@ IN SOA ns.jitsu.test. admin.jitsu.test. 1 3600 600 86400 60
@ IN NS ns
ns IN A 10.78.0.1
plain IN A 10.78.0.99
";

/// The DNS and vmcheck images, built once.
fn images() -> &'static (PathBuf, PathBuf) {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dns = xtask::build_image("dns", true).expect("build dns");
        let vmcheck = xtask::build_image("vmcheck", true).expect("build vmcheck");
        (dns, vmcheck)
    })
}

/// Jitsu in its namespace. On drop: SIGTERM (which must stop its VMs),
/// then anything left in the namespace is killed and the namespace (with
/// the bridge and any TAP device) deleted.
struct Jitsu {
    proc: Running,
    ns: Namespace,
    dir: PathBuf,
}

impl Jitsu {
    /// Starts Jitsu for the zone `jitsu.test` with `args` (the
    /// `--unikernel` flags and limits) and waits until it serves.
    fn start(tag: &str, args: &[String]) -> Jitsu {
        let ns = Namespace::create(tag);
        ns.exec_ok(&["ip", "link", "add", "jbr0", "type", "bridge"]);
        ns.exec_ok(&["ip", "addr", "add", "10.78.0.1/24", "dev", "jbr0"]);
        ns.exec_ok(&["ip", "link", "set", "jbr0", "up"]);
        let dir = std::env::temp_dir().join(&ns.name);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let zone = dir.join("jitsu.test.zone");
        std::fs::write(&zone, ZONE).expect("write zone");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name]).arg(app_binary("jitsu"));
        cmd.args(["--listen", &format!("{JITSU}:53"), "--bridge", "jbr0", "--launcher", "qemu"]);
        cmd.arg(format!("--zone=jitsu.test={}", zone.display())).args(args);
        let mut proc = Running::start(cmd);
        proc.wait_for("ready to serve", Duration::from_secs(30));
        Jitsu { proc, ns, dir }
    }

    /// The QEMU processes in the namespace, by the unikernel name in their
    /// command line (`-name jitsu:NAME`).
    fn qemus(&self) -> Vec<String> {
        pids(&self.ns.name)
            .into_iter()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with("qemu-system")))
            .map(|p| {
                let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let words: Vec<String> =
                    cmdline.split(|b| *b == 0).map(|w| String::from_utf8_lossy(w).into()).collect();
                let name = words.iter().find_map(|w| w.strip_prefix("jitsu:"));
                name.unwrap_or("?").to_string()
            })
            .collect()
    }

    /// Jitsu's TAP devices in the namespace.
    fn taps(&self) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "exec", &self.ns.name, "ip", "-br", "link"]).output();
        let text = String::from_utf8_lossy(&out.expect("ip link").stdout).to_string();
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with('j') && *n != "jbr0")
            .map(String::from)
            .collect()
    }

    /// `dig` in the namespace, in the background.
    fn dig_spawn(&self, server: &str, name: &str) -> Dig {
        Dig::spawn(&self.ns.name, server, name, &["+notcp"])
    }

    /// `dig` with one more option (a later `+tries` wins).
    fn dig_with(&self, server: &str, name: &str, option: &str) -> Dig {
        Dig::spawn(&self.ns.name, server, name, &["+notcp", option])
    }

    fn dig(&self, server: &str, name: &str) -> Answer {
        Answer::of(self.dig_spawn(server, name))
    }

    /// Lines Jitsu logged containing `needle`.
    fn logged(&self, needle: &str) -> usize {
        self.proc.output().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits up to `secs` for `cond`.
    fn wait_until(&self, secs: u64, what: &str, mut cond: impl FnMut() -> bool) -> Result {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond() {
            if Instant::now() > deadline {
                return Err(format!("not within {secs} s: {what}; Jitsu: {:#?}", self.proc.output()).into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Jitsu {
    fn drop(&mut self) {
        let pid = self.proc.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.proc.is_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in pids(&self.ns.name) {
            let _ = Command::new("kill").args(["-KILL", &p]).stderr(Stdio::null()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unikernel(name: &str, image: &Path, ip: &str, extra: &str) -> String {
    format!("--unikernel={name}.jitsu.test={},ip={ip}{extra}", image.display())
}

fn ensure(ok: bool, what: impl std::fmt::Display) -> Result {
    if ok {
        Ok(())
    } else {
        Err(what.to_string().into())
    }
}

/// 20 parallel queries for a stopped name: one VM, every query answered
/// with its address; the VM serves DNS itself; ordinary names answer; a
/// running one is answered without a second boot; SIGTERM stops the VM
/// and deletes its TAP device.
fn boots_on_query() -> Result {
    let (dns, _) = images();
    let mut j = Jitsu::start("jitsu-boot", &[unikernel("www", dns, "10.78.0.10", ""), "--idle-stop=30".into()]);
    // Two tries of 10 s each, as resolvers retry: one reply in a burst of
    // 20 was once lost in about a dozen runs (see /work/notes/jitsu.md).
    let digs: Vec<Dig> = (0..20).map(|_| j.dig_with(JITSU, "www.jitsu.test", "+tries=2")).collect();
    for d in digs {
        let a = Answer::of(d);
        ensure(a.address()? == "10.78.0.10", format!("address: {}", a.output))?;
        ensure(a.records[0].0 <= 30, format!("TTL longer than --idle-stop: {}", a.output))?;
    }
    ensure(j.qemus() == ["www.jitsu.test."], format!("QEMU processes: {:?}", j.qemus()))?;
    ensure(j.logged("booting www.jitsu.test.") == 1, "one boot for 20 queries")?;
    let direct = j.dig("10.78.0.10", "www.example.com");
    ensure(direct.output.contains("192.0.2.80"), format!("the unikernel itself: {}", direct.output))?;
    ensure(j.dig(JITSU, "plain.jitsu.test").address()? == "10.78.0.99", "ordinary name")?;
    ensure(j.dig(JITSU, "www.jitsu.test").address()? == "10.78.0.10", "running unikernel")?;
    ensure(j.logged("booting ") == 1 && j.qemus().len() == 1, "no second boot while it runs")?;
    ensure(j.taps().len() == 1, format!("TAP devices: {:?}", j.taps()))?;
    Command::new("kill").args(["-TERM", &j.proc.pid().to_string()]).status()?;
    ensure(j.proc.wait_exit(Duration::from_secs(10)) == Some(0), "Jitsu exits 0 on SIGTERM")?;
    ensure(j.qemus().is_empty() && j.taps().is_empty(), format!("left: {:?} {:?}", j.qemus(), j.taps()))
}

/// An idle unikernel is stopped (QEMU gone, TAP deleted); the next query
/// (over TCP this time) boots it again.
fn idle_stop() -> Result {
    let (dns, _) = images();
    let j = Jitsu::start("jitsu-idle", &[unikernel("www", dns, "10.78.0.10", ""), "--idle-stop=2".into()]);
    ensure(j.dig(JITSU, "www.jitsu.test").address()? == "10.78.0.10", "first boot")?;
    ensure(j.qemus().len() == 1, "running")?;
    j.wait_until(25, "idle VM stopped", || j.qemus().is_empty() && j.taps().is_empty())?;
    ensure(j.logged("stopping www.jitsu.test.: idle") == 1, "idle stop logged")?;
    let tcp = Answer::of(j.dig_with(JITSU, "www.jitsu.test", "+tcp"));
    ensure(tcp.address()? == "10.78.0.10" && tcp.output.contains("(TCP)"), "second boot, by a query over TCP")?;
    ensure(j.qemus().len() == 1 && j.logged("booting www.jitsu.test.") == 2, "booted again")
}

/// Failing boots get SERVFAIL and a log line naming the image: a guest
/// that panics, a file that is no image, and a guest that never says it
/// is ready (the boot timeout). Ordinary names answer at once meanwhile,
/// and a failed unikernel is tried again on the next query.
fn failing_boots() -> Result {
    let (dns, vmcheck) = images();
    let bogus = std::env::temp_dir().join(format!("jitsu-bogus-{}", std::process::id()));
    std::fs::write(&bogus, "not an image\n")?;
    let j = Jitsu::start(
        "jitsu-fail",
        &[
            unikernel("panic", vmcheck, "10.78.0.11", ",args=\"--check=panic\""),
            unikernel("bogus", &bogus, "10.78.0.12", ""),
            // Serves, but logs nothing Jitsu could take for readiness.
            unikernel("slow", dns, "10.78.0.13", ",args=--log=error"),
            "--boot-timeout=4".into(),
        ],
    );
    let slow = j.dig_spawn(JITSU, "slow.jitsu.test");
    for name in ["panic", "bogus"] {
        let a = j.dig(JITSU, &format!("{name}.jitsu.test"));
        ensure(a.status == "SERVFAIL", format!("{name}: {}", a.output))?;
    }
    let started = Instant::now();
    ensure(j.dig(JITSU, "plain.jitsu.test").address()? == "10.78.0.99", "ordinary name during a boot")?;
    let took = started.elapsed();
    ensure(took < Duration::from_secs(2), format!("ordinary name took {took:?} during a boot"))?;
    ensure(j.logged("slow.jitsu.test. is up") == 0 && j.logged("boot of") == 2, "the slow boot is still under way")?;
    let a = Answer::of(slow);
    ensure(a.status == "SERVFAIL", format!("slow: {}", a.output))?;
    let image = |p: &Path| format!("boot of {} failed", p.display());
    ensure(j.logged(&image(vmcheck)) == 1 && j.logged(&image(&bogus)) == 1, "failures name their image")?;
    ensure(j.logged(&format!("{}: not ready to serve within 4 s", image(dns))) == 1, "timeout logged")?;
    ensure(j.dig(JITSU, "panic.jitsu.test").status == "SERVFAIL", "second try")?;
    ensure(j.logged("booting panic.jitsu.test.") == 2, "a failed unikernel is booted again on the next query")?;
    let _ = std::fs::remove_file(&bogus);
    ensure(j.qemus().is_empty() && j.taps().is_empty(), format!("left: {:?} {:?}", j.qemus(), j.taps()))
}

/// `--max-running 2` with three names: the third boot stops the least
/// recently queried one.
fn max_running() -> Result {
    let (dns, _) = images();
    let mut args: Vec<String> =
        ["a", "b", "c"].iter().zip(10..).map(|(n, i)| unikernel(n, dns, &format!("10.78.0.{i}"), ",mem=16")).collect();
    args.extend(["--max-running=2".into(), "--idle-stop=60".into()]);
    let j = Jitsu::start("jitsu-max", &args);
    for n in ["a", "b", "c"] {
        ensure(j.dig(JITSU, &format!("{n}.jitsu.test")).address().is_ok(), format!("{n} boots"))?;
    }
    j.wait_until(5, "a stopped", || j.qemus().len() == 2 && j.taps().len() == 2)?;
    let mut running = j.qemus();
    running.sort();
    ensure(running == ["b.jitsu.test.", "c.jitsu.test."], format!("running: {running:?}"))?;
    ensure(j.logged("stopping a.jitsu.test. (least recently queried) to make way for c.jitsu.test.") == 1, "logged")
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1); // each test boots VMs on its own
    let root = Prereq::root();
    let ip = Prereq::program("ip", "-V", "iproute2");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let needs = [&root, &ip, &qemu, &dig];
    let trial = |name: &str, f: fn() -> Result| prereq::trial(name, &needs, f);
    let tests = vec![
        trial("jitsu_boots_on_query", boots_on_query),
        trial("jitsu_idle_stop", idle_stop),
        trial("jitsu_failing_boots", failing_boots),
        trial("jitsu_max_running", max_running),
    ];
    libtest_mimic::run(&args, tests).exit();
}
