//! Jitsu's libvirt launcher (`--launcher libvirt`) against a real libvirtd
//! (Debian's libvirt-daemon-system, QEMU driver, TCG): a query boots the
//! DNS image as a transient domain on the bridge and is answered once the
//! guest serves; the guest answers itself; an idle domain is destroyed
//! and the next query boots it again; a domain destroyed behind Jitsu's
//! back is noticed; SIGTERM destroys Jitsu's domains.
//!
//! The test runs its own libvirtd and virtlogd inside a network namespace
//! it creates, with the bridge there, and Jitsu in that namespace too; it
//! fails if another libvirtd already runs on the machine. Needs root.

use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::jitsu::{Answer, Dig};
use morgana_tests::libvirtd::{running_domains, Libvirtd};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, Running};

type Result = std::result::Result<(), Failed>;

const JITSU: &str = "10.78.0.1";
const GUEST: &str = "10.78.0.10";
const ZONE: &str = "$ORIGIN jitsu.test.
$TTL 300
@ IN SOA ns.jitsu.test. admin.jitsu.test. 1 3600 600 86400 60
@ IN NS ns
ns IN A 10.78.0.1
";

fn ensure(ok: bool, what: impl std::fmt::Display) -> Result {
    if ok {
        Ok(())
    } else {
        Err(what.to_string().into())
    }
}

/// Jitsu's domains among the running ones.
fn jitsu_domains() -> Vec<String> {
    running_domains().unwrap_or_default().into_iter().filter(|d| d.starts_with("jitsu-")).collect()
}

/// Waits up to `secs` for `cond`; the error shows Jitsu's log.
fn wait_until(jitsu: &Running, secs: u64, what: &str, mut cond: impl FnMut() -> bool) -> Result {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("not within {secs} s: {what}; Jitsu: {:#?}", jitsu.output()).into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn logged(jitsu: &Running, needle: &str) -> usize {
    jitsu.output().iter().filter(|l| l.contains(needle)).count()
}

fn boots_idles_and_stops_libvirt_domains() -> Result {
    let dns = xtask::build_image("dns", true)?;
    let lv = Libvirtd::start("jitsu-libvirt", "jbr0", "10.78.0.1/24")?;
    let ns = lv.ns.name.clone();
    let dir = std::env::temp_dir().join(&ns);
    std::fs::create_dir_all(&dir)?;
    let zone = dir.join("jitsu.test.zone");
    std::fs::write(&zone, ZONE)?;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns]).arg(app_binary("jitsu"));
    cmd.args(["--listen", &format!("{JITSU}:53"), "--bridge", "jbr0", "--launcher", "libvirt"]);
    cmd.args(["--libvirt-uri", "qemu:///system", "--idle-stop=3", "--boot-timeout=40"]);
    cmd.arg(format!("--zone=jitsu.test={}", zone.display()));
    cmd.arg(format!("--unikernel=www.jitsu.test={},ip={GUEST}", dns.display()));
    let mut j = Running::start(cmd);
    j.wait_for("ready to serve", Duration::from_secs(30));
    let dig = |server: &str, name: &str| Answer::of(Dig::spawn(&ns, server, name, &["+notcp", "+time=40"]));
    let taps = || {
        let out = Command::new("ip").args(["netns", "exec", &ns, "ip", "-br", "link"]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.split_whitespace().next()?.split('@').next().map(String::from))
            .collect::<Vec<_>>()
    };
    let tap = format!("j{}-1", j.pid());

    // A query boots the domain and is answered once the guest serves.
    let started = Instant::now();
    let a = dig(JITSU, "www.jitsu.test");
    ensure(a.address()? == GUEST, format!("first answer: {}", a.output))?;
    eprintln!("  first answer {} ms after the query", started.elapsed().as_millis());
    let domains = jitsu_domains();
    ensure(domains == [format!("jitsu-{}-1-www.jitsu.test", j.pid())], format!("domains: {domains:?}"))?;
    ensure(taps().contains(&tap), format!("libvirt's TAP device has Jitsu's name {tap}: {:?}", taps()))?;
    let direct = dig(GUEST, "www.example.com");
    ensure(direct.output.contains("192.0.2.80"), format!("the guest itself: {}", direct.output))?;

    // Idle: destroyed (and its TAP device gone); the next query boots it.
    wait_until(&j, 20, "idle domain destroyed", || jitsu_domains().is_empty() && !taps().contains(&tap))?;
    ensure(logged(&j, "stopping www.jitsu.test.: idle") == 1, "idle stop logged")?;
    ensure(dig(JITSU, "www.jitsu.test").address()? == GUEST, "second boot")?;
    ensure(logged(&j, "booting www.jitsu.test.") == 2 && jitsu_domains().len() == 1, "booted again")?;

    // A domain destroyed behind Jitsu's back is noticed.
    let second = jitsu_domains().remove(0);
    morgana_tests::libvirtd::virsh(&["destroy", &second])?;
    wait_until(&j, 5, "the destroyed domain noticed", || logged(&j, "stopped by itself") == 1)?;
    ensure(dig(JITSU, "www.jitsu.test").address()? == GUEST, "third boot")?;

    // SIGTERM destroys Jitsu's domains.
    Command::new("kill").args(["-TERM", &j.pid().to_string()]).status()?;
    ensure(j.wait_exit(Duration::from_secs(20)) == Some(0), "Jitsu exits 0 on SIGTERM")?;
    ensure(jitsu_domains().is_empty(), format!("left behind: {:?}", jitsu_domains()))?;
    ensure(!taps().iter().any(|t| t.starts_with(&format!("j{}-", j.pid()))), format!("TAP devices: {:?}", taps()))?;
    let _ = std::fs::remove_dir_all(&dir);
    // libvirt's log of the domain destroyed behind Jitsu's back (kept by
    // Jitsu, as for any domain that ended by itself).
    let _ = std::fs::remove_file(format!("/var/log/libvirt/qemu/{second}.log"));
    Ok(())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1); // one libvirtd at a time
    let root = Prereq::root();
    let ip = Prereq::program("ip", "-V", "iproute2");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let libvirtd = Prereq::program("libvirtd", "--version", "libvirt-daemon-system");
    let virsh = Prereq::program("virsh", "--version", "libvirt-clients");
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let needs = [&root, &ip, &qemu, &libvirtd, &virsh, &dig];
    let tests = vec![prereq::trial(
        "jitsu_libvirt_boots_idles_and_stops_domains",
        &needs,
        boots_idles_and_stops_libvirt_domains,
    )];
    libtest_mimic::run(&args, tests).exit();
}
