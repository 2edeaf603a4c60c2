//! The VM images as Xen PVH guests, on a real Xen (4.17, nested in QEMU
//! under TCG; see `tests/xen/`), with a boot module from `ramdisk=` too,
//! and the DNS image fed a content archive (made by the real `tar`) as its
//! `ramdisk=` and as a read-only vbd.
//! One boot of the test host runs every scenario from dom0 with real
//! clients (the echo client, `dig`, `xl`); each test then checks its part
//! of the log. Among them: a timer keeps running while blkfront is busy,
//! and `xl shutdown` is honoured meanwhile.
//!
//! Needs root (debootstrap builds the host once, cached in
//! `target/xen-host`), debootstrap and qemu-system-x86_64; skipped without
//! them (under `CI=true`, failed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::Arguments;
use morgana_tests::client;
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::Running;
use xtask::xen::{self, Domain, XenHost};

type Result = std::result::Result<(), libtest_mimic::Failed>;

fn check(ok: bool, what: &str, detail: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}\n--- output\n{detail}").into())
    }
}

/// What the host run produced: the log split into sections, and the share.
struct HostRun {
    sections: BTreeMap<String, String>,
    share: PathBuf,
}

const SCRIPT: &str = r#"
cp /share/echo /share/dns /share/vmcheck /share/echo-client /share/dns-probe /tmp/

section echo-boot
xl create /share/echo.cfg 2>&1 || echo "xl create failed"
i=0; until /tmp/echo-client udp 10.77.0.2:7 1 8 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 150 ] && break; sleep 0.2; done
section echo-tcp
/tmp/echo-client tcp 10.77.0.2:7 1048576 2>&1
section echo-udp
/tmp/echo-client udp 10.77.0.2:7 50 1200 2>&1
section echo-concurrent
/tmp/echo-client concurrent 10.77.0.2:7 20 2>&1
section echo-shutdown
timeout 60 xl shutdown -w echo 2>&1; echo "xl shutdown status $?"
section echo-gone
wait_gone echo 30
section echo-console
cat /var/log/xen/guest-echo.log

section dns-boot
xl create /share/dns.cfg 2>&1 || echo "xl create failed"
/tmp/dns-probe 10.77.0.3:53 www.example.com 60 >/dev/null && echo "dns answered"
section dns-udp
dig @10.77.0.3 +norec +tries=3 www.example.com A 2>&1
section dns-tcp
dig @10.77.0.3 +norec +tcp mail.example.com MX 2>&1
section dns-refused
dig @10.77.0.3 +norec +tries=3 example.org A 2>&1
section dns-reboot
old=$(xl domid dns)
timeout 60 xl reboot dns 2>&1
i=0; while new=$(xl domid dns 2>/dev/null); [ -z "$new" ] || [ "$new" = "$old" ]; do i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.1; done
echo "dns domain $old -> $new"
/tmp/dns-probe 10.77.0.3:53 www.example.com 60 >/dev/null && echo "dns answered after reboot"
section dns-shutdown
timeout 60 xl shutdown -w dns 2>&1; echo "xl shutdown status $?"
section dns-console
cat /var/log/xen/guest-dns.log

truncate -s 8M /tmp/disk.img
section blk-write
timeout 120 xl create -F /share/blkw.cfg 2>&1; echo "xl create -F status $?"
section blk-write-console
cat /var/log/xen/guest-blkw.log
section blk-read
timeout 120 xl create -F /share/blkr.cfg 2>&1; echo "xl create -F status $?"
section blk-read-console
cat /var/log/xen/guest-blkr.log

section busy
timeout 120 xl create -F /share/busy.cfg 2>&1; echo "xl create -F status $?"
section busy-console
cat /var/log/xen/guest-busy.log
section busy-shutdown
xl create /share/busylong.cfg 2>&1 || echo "xl create failed"
sleep 5
timeout 60 xl shutdown -w busylong 2>&1; echo "xl shutdown status $?"
section busy-shutdown-console
cat /var/log/xen/guest-busylong.log
section module
timeout 120 xl create -F /share/module.cfg 2>&1; echo "xl create -F status $?"
section module-console
cat /var/log/xen/guest-module.log

cp /share/content.tar /tmp/content.tar
section content-ramdisk
xl create /share/dnsramdisk.cfg 2>&1 || echo "xl create failed"
/tmp/dns-probe 10.77.0.4:53 www.archive.test 60 >/dev/null && echo "dns answered"
dig @10.77.0.4 +norec +tries=3 www.archive.test A 2>&1
dig @10.77.0.4 +norec +tries=3 www.example.com A 2>&1
xl destroy dnsramdisk 2>&1; echo "xl destroy status $?"
section content-ramdisk-console
cat /var/log/xen/guest-dnsramdisk.log
section content-vbd
xl create /share/dnsvbd.cfg 2>&1 || echo "xl create failed"
/tmp/dns-probe 10.77.0.5:53 www.archive.test 60 >/dev/null && echo "dns answered"
dig @10.77.0.5 +norec +tries=3 www.archive.test A 2>&1
dig @10.77.0.5 +norec +tries=3 www.example.com A 2>&1
xl destroy dnsvbd 2>&1; echo "xl destroy status $?"
section content-vbd-console
cat /var/log/xen/guest-dnsvbd.log
section content-bad
timeout 60 xl create -F /share/dnsbad.cfg 2>&1; echo "xl create -F status $?"
section content-bad-console
cat /var/log/xen/guest-dnsbad.log

section end
"#;

/// The boot module handed to a domU with `ramdisk=`: not a whole number of
/// pages, and no repeating pattern.
fn module_bytes() -> Vec<u8> {
    (0..100_003u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// FNV-1a, 64 bits, as vmcheck's `--check=boot-module` computes it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A zone for `example.com` whose `www` differs from the embedded zone's
/// (192.0.2.80), and one for `archive.test`, which only the archive has.
const CONTENT_ZONE: &str =
    "$TTL 300\n@ IN SOA ns1 hostmaster 42 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A 203.0.113.7\n";

/// `tar --format=ustar -cf share/NAME.tar -C DIR .` over the two zones,
/// with `extra` appended to `example.com.zone` (line 6 on).
fn content_archive(share: &std::path::Path, name: &str, extra: &str) -> std::result::Result<(), String> {
    let dir = share.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("example.com.zone"), format!("{CONTENT_ZONE}{extra}")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("archive.test.zone"), CONTENT_ZONE).map_err(|e| e.to_string())?;
    let out = std::process::Command::new("tar")
        .args(["--format=ustar", "-cf"])
        .arg(share.join(format!("{name}.tar")))
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    if !out.status.success() {
        return Err(format!("tar failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

fn host_run() -> &'static std::result::Result<HostRun, String> {
    static RUN: OnceLock<std::result::Result<HostRun, String>> = OnceLock::new();
    RUN.get_or_init(|| {
        let host = XenHost::ensure()?;
        let share = xen::share_dir("test")?;
        for app in ["echo", "dns", "vmcheck"] {
            xen::put(&share, app, &xtask::build_image(app, true)?)?;
        }
        xen::put(&share, "echo-client", env!("CARGO_BIN_EXE_echo-client").as_ref())?;
        xen::put(&share, "dns-probe", env!("CARGO_BIN_EXE_dns-probe").as_ref())?;
        let mut echo = Domain::new("echo", "/tmp/echo");
        echo.cmdline = "--ipv4=10.77.0.2/24".into();
        echo.mac = Some("00:16:3e:00:00:02".into());
        let mut dns = Domain::new("dns", "/tmp/dns");
        dns.cmdline = "--ipv4=10.77.0.3/24".into();
        dns.mac = Some("00:16:3e:00:00:03".into());
        let mut blkw = Domain::new("blkw", "/tmp/vmcheck");
        blkw.cmdline = "--check=blk-write".into();
        blkw.disk = Some("/tmp/disk.img".into());
        let mut blkr = blkw.clone();
        blkr.name = "blkr".into();
        blkr.cmdline = "--check=blk-read".into();
        let mut busy = blkw.clone();
        busy.name = "busy".into();
        busy.cmdline = "--check=busy-devices --seconds=3".into();
        let mut busylong = busy.clone();
        busylong.name = "busylong".into();
        busylong.cmdline = "--check=busy-devices --seconds=600".into();
        std::fs::write(share.join("module.bin"), module_bytes()).map_err(|e| e.to_string())?;
        let mut module = Domain::new("module", "/tmp/vmcheck");
        module.cmdline = "--check=boot-module".into();
        module.ramdisk = Some("/share/module.bin".into());
        content_archive(&share, "content", "")?;
        content_archive(&share, "content-bad", "oops IN A 300.1.2.3\n")?;
        let mut dnsbad = Domain::new("dnsbad", "/tmp/dns");
        dnsbad.ramdisk = Some("/share/content-bad.tar".into());
        let mut dnsramdisk = Domain::new("dnsramdisk", "/tmp/dns");
        dnsramdisk.cmdline = "--ipv4=10.77.0.4/24".into();
        dnsramdisk.mac = Some("00:16:3e:00:00:04".into());
        dnsramdisk.ramdisk = Some("/tmp/content.tar".into());
        let mut dnsvbd = Domain::new("dnsvbd", "/tmp/dns");
        dnsvbd.cmdline = "--ipv4=10.77.0.5/24".into();
        dnsvbd.mac = Some("00:16:3e:00:00:05".into());
        dnsvbd.disk = Some("/tmp/content.tar".into());
        dnsvbd.disk_read_only = true;
        let domains = [
            (&echo, "echo.cfg"),
            (&dns, "dns.cfg"),
            (&blkw, "blkw.cfg"),
            (&blkr, "blkr.cfg"),
            (&busy, "busy.cfg"),
            (&busylong, "busylong.cfg"),
            (&module, "module.cfg"),
            (&dnsramdisk, "dnsramdisk.cfg"),
            (&dnsvbd, "dnsvbd.cfg"),
            (&dnsbad, "dnsbad.cfg"),
        ];
        for (d, file) in domains {
            std::fs::write(share.join(file), d.config()).map_err(|e| e.to_string())?;
        }
        xen::put_script(&share, &format!("{}{SCRIPT}", xen::SCRIPT_PRELUDE))?;
        let run = host.run(&share, Duration::from_secs(600))?;
        eprintln!("xen host run took {:.0} s", run.elapsed.as_secs_f64());
        if run.status != Some(0) {
            return Err(format!(
                "dom0's script did not finish ({:?})\n--- run.log\n{}\n--- serial\n{}",
                run.status,
                run.log,
                xen::tail(&run.serial, 3000)
            ));
        }
        Ok(HostRun { sections: xen::sections(&run.log), share })
    })
}

/// The section `name` of the host run's log.
fn section(name: &str) -> std::result::Result<String, libtest_mimic::Failed> {
    let run = host_run().as_ref().map_err(|e| e.clone())?;
    run.sections.get(name).cloned().ok_or_else(|| format!("no section {name} in the run log").into())
}

fn echo_over_netfront() -> Result {
    let out = section("echo-tcp")?;
    check(out.contains("tcp 1048576 bytes echoed"), "1 MiB TCP echo through netfront, byte-exact", &out)?;
    let out = section("echo-udp")?;
    check(out.contains("udp 50 datagrams of 1200 bytes echoed"), "UDP echo through netfront", &out)?;
    let out = section("echo-concurrent")?;
    check(out.contains("20 concurrent connections echoed"), "20 concurrent TCP connections", &out)
}

fn xl_shutdown_ends_the_app() -> Result {
    let out = section("echo-shutdown")?;
    check(
        out.contains("has been shut down, reason code 0") && out.contains("xl shutdown status 0"),
        "xl shutdown acknowledged, domain powered off",
        &out,
    )?;
    let gone = section("echo-gone")?;
    check(gone.contains("domain echo ended"), "domain destroyed after xl shutdown", &gone)?;
    let console = section("echo-console")?;
    check(
        console.contains("Xen vif, MAC [00, 16, 3e, 00, 00, 02]")
            && console.contains("ready to serve")
            && console.contains("Xen asked for poweroff: exiting"),
        "PV console log shows the boot, the vif and the app's exit path",
        &console,
    )
}

fn dns_over_netfront() -> Result {
    check(section("dns-boot")?.contains("dns answered"), "DNS domU answers", &section("dns-boot")?)?;
    let out = section("dns-udp")?;
    check(
        out.contains("status: NOERROR") && out.contains("flags: qr aa") && out.contains("192.0.2.80"),
        "dig over UDP",
        &out,
    )?;
    let out = section("dns-tcp")?;
    check(out.contains("status: NOERROR") && out.contains("(TCP)"), "dig over TCP", &out)?;
    let out = section("dns-refused")?;
    check(out.contains("status: REFUSED"), "dig for a zone not served", &out)?;
    let out = section("dns-shutdown")?;
    check(out.contains("reason code 0"), "DNS domU shut down cleanly", &out)
}

/// `xl reboot`: the app exits with Xen's reboot reason, the toolstack starts
/// a new domain from the same image, and it serves again.
fn xl_reboot_restarts_the_app() -> Result {
    let out = section("dns-reboot")?;
    let ids: Vec<&str> = out.lines().find_map(|l| l.strip_prefix("dns domain ")).unwrap_or("").split(" -> ").collect();
    check(
        ids.len() == 2 && !ids[1].is_empty() && ids[0] != ids[1] && out.contains("dns answered after reboot"),
        "a new DNS domain that answers",
        &out,
    )?;
    let console = section("dns-console")?;
    check(console.contains("Xen asked for reboot: exiting"), "the app saw the reboot request", &console)
}

fn blkfront_data_survives_a_second_domain() -> Result {
    let out = section("blk-write")?;
    check(out.contains("reason code 0 ") && out.contains("xl create -F status 0"), "writer domU powered off", &out)?;
    let console = section("blk-write-console")?;
    check(console.contains("blk: wrote and flushed 1048576 bytes"), "writer wrote and flushed", &console)?;
    let out = section("blk-read")?;
    check(out.contains("reason code 0 ") && out.contains("xl create -F status 0"), "reader domU powered off", &out)?;
    let console = section("blk-read-console")?;
    check(console.contains("blk: pattern intact (1048576 bytes)"), "a second domU reads the pattern back", &console)
}

/// The figures of the line "timer: 300 ticks of 10 ms, late by at most X
/// ms (tick N), mean Y ms, Z late by over a period" in `console`.
fn timer_figures(console: &str) -> Option<(f64, f64, u32)> {
    let line = console.lines().find(|l| l.contains("timer: "))?;
    let parts: Vec<&str> = line.split(", ").collect();
    let word = |part: usize, word: usize| parts.get(part)?.split_whitespace().nth(word);
    Some((word(1, 4)?.parse().ok()?, word(2, 1)?.parse().ok()?, word(3, 0)?.parse().ok()?))
}

/// A 10 ms timer keeps running while blkfront writes and flushes in a loop
/// and entropy (RDRAND) is read every millisecond. Nested Xen under TCG
/// gives the domU's vCPU up to dom0's disk work (17 ms late on average,
/// against 1.6 ms without the disk), too much noise to tell a driver that
/// waits for its device from one that does not: only a gross stall fails,
/// a tick over 500 ms late.
fn timer_runs_while_blkfront_is_busy() -> Result {
    let out = section("busy")?;
    check(out.contains("reason code 0 ") && out.contains("xl create -F status 0"), "busy domU powered off", &out)?;
    let console = section("busy-console")?;
    let figures = timer_figures(&console);
    let rounds = console.lines().find_map(|l| l.split("KiB written in ").nth(1)).unwrap_or("?");
    let entropy = console.lines().find_map(|l| l.split("busy: entropy: ").nth(1)).unwrap_or("?");
    eprintln!("  blkfront: {rounds}; entropy: {entropy}; timer (max ms, mean ms, late ticks): {figures:?}");
    check(
        matches!(figures, Some((max, _, _)) if max < 500.0) && !rounds.starts_with("0 ") && rounds != "?",
        "the timer kept running while the disk was busy",
        &console,
    )
}

/// `xl shutdown` is acknowledged while the app keeps the executor and the
/// disk busy: the watch reads and clears `control/shutdown` as a task.
fn xl_shutdown_while_busy() -> Result {
    let out = section("busy-shutdown")?;
    check(
        out.contains("has been shut down, reason code 0") && out.contains("xl shutdown status 0"),
        "xl shutdown acknowledged during a busy check",
        &out,
    )?;
    let console = section("busy-shutdown-console")?;
    check(console.contains("Xen asked for poweroff: exiting"), "the app saw the request", &console)
}

/// `ramdisk=` reaches the guest as a PVH boot module, byte for byte.
fn ramdisk_is_a_boot_module() -> Result {
    let out = section("module")?;
    check(out.contains("reason code 0 ") && out.contains("xl create -F status 0"), "module domU powered off", &out)?;
    let bytes = module_bytes();
    let want = format!("boot-module: {} bytes, fnv1a64 {:016x}", bytes.len(), fnv1a64(&bytes));
    let console = section("module-console")?;
    check(console.contains(&want), &format!("the domU saw the ramdisk ({want})"), &console)
}

/// The DNS domU given the content archive (`source`: "ramdisk" as its
/// `ramdisk=`, "vbd" as a read-only disk) answers dig from dom0 with the
/// archive's records, not the embedded zone's, and logs where they came from.
fn dns_content_on_xen(source: &str, logged: &str) -> Result {
    let out = section(&format!("content-{source}"))?;
    check(out.contains("dns answered"), "the DNS domU answers", &out)?;
    let answers: Vec<&str> = out.lines().filter(|l| l.contains("\tIN\tA\t")).collect();
    check(
        answers.iter().any(|l| l.starts_with("www.archive.test.") && l.ends_with("203.0.113.7")),
        "www.archive.test (only in the archive) answered",
        &out,
    )?;
    check(
        answers.iter().any(|l| l.starts_with("www.example.com.") && l.ends_with("203.0.113.7")),
        "www.example.com from the archive",
        &out,
    )?;
    check(!out.contains("192.0.2.80"), "not the embedded zone's www.example.com", &out)?;
    check(out.contains("xl destroy status 0"), "the domU destroyed", &out)?;
    let console = section(&format!("content-{source}-console"))?;
    check(
        console.contains("content: 2 files, ") && console.contains(&format!("from {logged}")),
        &format!("the console says the content came from {logged}"),
        &console,
    )
}

fn dns_content_from_a_xen_ramdisk() -> Result {
    dns_content_on_xen("ramdisk", "the boot module")
}

fn dns_content_from_a_read_only_vbd() -> Result {
    dns_content_on_xen("vbd", "the block device")
}

/// A bad zone in the ramdisk: the domU ends with the app's exit status 1
/// (Xen's crash reason) and its PV console, where `xl console` and the
/// console log show it, names the file and line.
fn dns_bad_zone_in_a_xen_ramdisk() -> Result {
    let out = section("content-bad")?;
    check(out.contains("reason code 3") && out.contains("xl create -F status 0"), "the domU ended with exit 1", &out)?;
    let console = section("content-bad-console")?;
    check(
        console.contains("dns: error: content from the boot module: example.com.zone:6: '300.1.2.3' is not an IPv4"),
        "file:line on the PV console",
        &console,
    )?;
    check(!console.contains("ready to serve"), "nothing served", &console)
}

/// The very file dom0 booted on Xen, booted under QEMU with virtio.
fn same_elf_serves_virtio() -> Result {
    let run = host_run().as_ref().map_err(|e| e.clone())?;
    let image = run.share.join("echo");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("tcp:127.0.0.1:{port}-:7").parse()?, format!("udp:127.0.0.1:{port}-:7").parse()?];
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", Duration::from_secs(30));
    let addr = format!("127.0.0.1:{port}").parse()?;
    let data = client::pattern(256 * 1024, 7);
    client::tcp_echo(addr, &data)?;
    client::udp_echo(addr, 10, 100)?;
    let out = qemu.output().join("\n");
    check(out.contains("virtio-net"), "virtio devices used under QEMU", &out)
}

fn main() {
    let args = Arguments::from_args();
    let root = Prereq::root();
    let debootstrap = Prereq::program("debootstrap", "--version", "debootstrap");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let tar = Prereq::program("tar", "--version", "tar");
    let t = |name: &str, f: fn() -> Result| prereq::trial(name, &[&root, &debootstrap, &qemu, &tar], f);
    let tests = vec![
        t("echo_over_netfront", echo_over_netfront),
        t("xl_shutdown_ends_the_app", xl_shutdown_ends_the_app),
        t("dns_over_netfront", dns_over_netfront),
        t("xl_reboot_restarts_the_app", xl_reboot_restarts_the_app),
        t("blkfront_data_survives_a_second_domain", blkfront_data_survives_a_second_domain),
        t("timer_runs_while_blkfront_is_busy", timer_runs_while_blkfront_is_busy),
        t("xl_shutdown_while_busy", xl_shutdown_while_busy),
        t("same_elf_serves_virtio", same_elf_serves_virtio),
        t("ramdisk_is_a_boot_module", ramdisk_is_a_boot_module),
        t("dns_content_from_a_xen_ramdisk", dns_content_from_a_xen_ramdisk),
        t("dns_content_from_a_read_only_vbd", dns_content_from_a_read_only_vbd),
        t("dns_bad_zone_in_a_xen_ramdisk", dns_bad_zone_in_a_xen_ramdisk),
    ];
    libtest_mimic::run(&args, tests).exit();
}
