//! Jitsu's xl launcher (`--launcher xl`) on a real Xen: Jitsu runs in the
//! dom0 of the nested Xen test host (Xen 4.17 under QEMU TCG, see
//! `tests/xen/`), and `dig` there looks its name up: the query boots the
//! DNS image as a PVH domain with its vif on dom0's bridge (named by
//! Jitsu) and is answered once the guest serves; the guest answers
//! itself; the idle domain is destroyed; the next query boots it again;
//! SIGTERM destroys Jitsu's domains.
//!
//! Needs root (debootstrap builds the host once, cached in
//! `target/xen-host`), debootstrap and qemu-system-x86_64; skipped without
//! them (under `CI=true`, failed).

use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::app_binary;
use xtask::xen::{self, XenHost};

const SCRIPT: &str = r#"
cp /share/dns /share/jitsu /tmp/
# xl console takes a lock in /var/lock (/run/lock), which this minimal
# dom0 lacks (a Debian dom0 booted with systemd has it).
mkdir -p /run/lock
printf '$ORIGIN jitsu.test.\n$TTL 300\n@ IN SOA ns.jitsu.test. admin.jitsu.test. 1 3600 600 86400 60\n@ IN NS ns\nns IN A 10.77.0.1\n' > /tmp/jitsu.test.zone
/tmp/jitsu --listen 10.77.0.1:53 --bridge xenbr0 --launcher xl --idle-stop 3 --boot-timeout 60 \
  --zone jitsu.test=/tmp/jitsu.test.zone --unikernel www.jitsu.test=/tmp/dns,ip=10.77.0.10 > /tmp/jitsu.log 2>&1 &
jitsu=$!
i=0; until grep -q "ready to serve" /tmp/jitsu.log; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.1; done
section first
dig @10.77.0.1 +tries=1 +time=60 +short www.jitsu.test A
section direct
dig @10.77.0.10 +tries=1 +time=5 +short www.example.com A
section running
xl list | awk 'NR > 2 { print $1 }'
ip -br link | awk '{ print $1 }' | grep '^j' || true
section idle
i=0; while xl list | grep -q jitsu-; do i=$((i+1)); [ $i -gt 300 ] && { echo "still running after 30 s"; break; }; sleep 0.1; done
xl list | awk 'NR > 2 { print $1 }'
section second
dig @10.77.0.1 +tries=1 +time=60 +short www.jitsu.test A
section term
kill -TERM $jitsu; wait $jitsu; echo "jitsu exit $?"
xl list | awk 'NR > 2 { print $1 }'
section log
cat /tmp/jitsu.log
"#;

fn run() -> Result<(), Failed> {
    let host = XenHost::ensure()?;
    let share = xen::share_dir("jitsu-xl")?;
    xen::put(&share, "dns", &xtask::build_image("dns", true)?)?;
    xen::put(&share, "jitsu", &app_binary("jitsu"))?;
    xen::put_script(&share, &format!("{}{SCRIPT}", xen::SCRIPT_PRELUDE))?;
    let run = host.run(&share, Duration::from_secs(400))?;
    let s = xen::sections(&run.log);
    let part = |name: &str| s.get(name).map(|t| t.trim().to_string()).unwrap_or_default();
    let log = part("log");
    let fail = |what: &str| -> Result<(), Failed> { Err(format!("{what}\n--- dom0 run log\n{}", run.log).into()) };
    if part("first") != "10.77.0.10" {
        return fail("the first query was not answered with the guest's address");
    }
    if !part("direct").lines().any(|l| l == "192.0.2.80") {
        return fail("the guest did not answer itself");
    }
    let running: Vec<String> = part("running").lines().map(String::from).collect();
    if !running.iter().any(|l| l.starts_with("jitsu-") && l.ends_with("-1-www.jitsu.test")) {
        return fail("no jitsu-PID-1-www.jitsu.test domain while it ran");
    }
    if !running.iter().any(|l| l.starts_with('j') && l.ends_with("-1") && !l.starts_with("jitsu-")) {
        return fail("the vif does not have Jitsu's name (jPID-1)");
    }
    if part("idle").contains("jitsu-") || !log.contains("stopping www.jitsu.test.: idle") {
        return fail("the idle domain was not destroyed");
    }
    if part("second") != "10.77.0.10" || log.matches("booting www.jitsu.test.").count() != 2 {
        return fail("the second query did not boot it again");
    }
    let term = part("term");
    if !term.starts_with("jitsu exit 0") || term.contains("jitsu-") {
        return fail("SIGTERM did not leave Jitsu's domains destroyed and exit 0");
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let root = Prereq::root();
    let debootstrap = Prereq::program("debootstrap", "--version", "debootstrap");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let tests = vec![prereq::trial("jitsu_xl_boots_idles_and_stops_xen_domains", &[&root, &debootstrap, &qemu], run)];
    libtest_mimic::run(&args, tests).exit();
}
