//! The smallest DNS image, built the way a user leaves parts out
//! (`--no-default-features --features virtio`: no Xen, IPv6, DHCP, DNSSEC,
//! zone transfers or cookies), under QEMU: every flag of a part it left
//! out is refused at start naming the feature, a signed zone is refused
//! when loaded, and with a static address it answers `dig` over UDP and
//! TCP, ignoring the DO bit and refusing AXFR. Tests whose tools are
//! missing are reported as ignored (under `CI=true`, failed).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::dnsmsg::{query, tcp_exchange};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{free_port, workspace, Running};
use xtask::{app_exit_code, Vm};

type Result<T = ()> = std::result::Result<T, Failed>;

const STATIC: &str = "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2";
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// The smallest DNS image, built once and copied out of the build
/// directory (other tests build the default image to the same place).
fn smallest_dns() -> Result<PathBuf> {
    static IMAGE: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let built = xtask::build_image_with("dns", true, Some("virtio"))?;
            let copy = std::env::temp_dir().join(format!("morgana-dns-smallest-{}", std::process::id()));
            std::fs::copy(&built, &copy).map_err(|e| format!("copy {}: {e}", built.display()))?;
            Ok(copy)
        })
        .clone()
        .map_err(Failed::from)
}

fn check(cond: bool, what: &str, out: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

/// Boots the image with `cmdline` (and `initrd`) and waits for it to end:
/// the app's exit status and the console.
fn boot_to_exit(cmdline: &str, initrd: Option<PathBuf>) -> Result<(Option<i32>, String)> {
    let mut vm = Vm::new(&smallest_dns()?);
    vm.rng = false;
    vm.cmdline = cmdline.into();
    vm.initrd = initrd;
    let mut p = Running::start(vm.command());
    let code = app_exit_code(p.wait_status(BOOT_TIMEOUT));
    Ok((code, p.output().join("\n")))
}

fn refuses_left_out_flags() -> Result {
    let cases = [
        ("", "--ipv4=dhcp (the default) needs the `dhcp` feature"),
        ("--ipv4=dhcp", "needs the `dhcp` feature"),
        (&format!("{STATIC} --ipv6=slaac"), "without the `ipv6` feature"),
        (&format!("{STATIC} --ipv6=fd00::2/64"), "without the `ipv6` feature"),
        (
            &format!("{STATIC} --axfr-allow=10.0.2.0/24"),
            "--axfr-allow: this image was built without the `transfers` feature",
        ),
        (
            &format!("{STATIC} --secondary=example.org=10.0.2.2"),
            "--secondary: this image was built without the `transfers` feature",
        ),
        (
            &format!("{STATIC} --tsig-key=k.=hmac-sha256:AAECAwQFBgcICQoLDA0ODw=="),
            "--tsig-key: this image was built without the `transfers` feature",
        ),
        (
            &format!("{STATIC} --notify=example.com=10.0.2.2"),
            "--notify: this image was built without the `transfers` feature",
        ),
        (&format!("{STATIC} --cookie-secret=00112233445566778899aabbccddeeff"), "without the `cookies` feature"),
    ];
    for (cmdline, want) in cases {
        let (code, out) = boot_to_exit(cmdline, None)?;
        check(code == Some(2) && out.contains(want), &format!("'{cmdline}': exit 2 and {want:?}, got {code:?}"), &out)?;
    }
    Ok(())
}

fn refuses_signed_zone() -> Result {
    let dir = std::env::temp_dir().join(format!("morgana-signed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let zone = workspace().join("fuzz/seeds/dns_zone/signed-nsec3.zone");
    std::fs::copy(&zone, dir.join("example.com.zone"))?;
    let tar = dir.join("content.tar");
    let status = Command::new("tar")
        .arg("--format=ustar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg("example.com.zone")
        .status()?;
    check(status.success(), "tar", "")?;
    let (code, out) = boot_to_exit(STATIC, Some(tar))?;
    let _ = std::fs::remove_dir_all(&dir);
    check(
        code == Some(1) && out.contains("type RRSIG: this image was built without the `dnssec` feature"),
        &format!("a signed zone refused at start, naming the feature (exit {code:?})"),
        &out,
    )
}

fn dig(args: &[&str]) -> Result<String> {
    let out = Command::new("dig").args(args).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn answers_dig() -> Result {
    let port = free_port();
    let mut vm = Vm::new(&smallest_dns()?);
    vm.rng = false;
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?, format!("tcp:127.0.0.1:{port}-:53").parse()?];
    vm.cmdline = STATIC.into();
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", BOOT_TIMEOUT);
    let p = format!("-p{port}");
    let out = dig(&["@127.0.0.1", &p, "+norec", "+tries=3", "www.example.com"])?;
    check(out.contains("192.0.2.80") && out.contains("flags: qr aa"), "dig over UDP", &out)?;
    let out = dig(&["@127.0.0.1", &p, "+norec", "+tcp", "www.example.com"])?;
    check(out.contains("192.0.2.80"), "dig over TCP", &out)?;
    // No DNSSEC: the DO bit is not echoed (RFC 3225), no signatures.
    let out = dig(&["@127.0.0.1", &p, "+norec", "+dnssec", "www.example.com"])?;
    check(out.contains("; EDNS: version: 0, flags:;") && !out.contains("RRSIG"), "DO ignored", &out)?;
    // No zone transfers: AXFR and IXFR are not implemented (NOTIMP), where
    // the default image refuses a client not in --axfr-allow (REFUSED).
    for (qtype, what) in [(252, "AXFR"), (251, "IXFR")] {
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reply = tcp_exchange(&mut tcp, &query(7, "example.com", qtype, 1, 0, None))?;
        let rcode = reply.get(3).map(|b| b & 0xf);
        check(rcode == Some(4) && reply[6..8] == [0, 0], &format!("{what}: NOTIMP, no answer (rcode {rcode:?})"), "")?;
    }
    let out = dig(&["@127.0.0.1", &p, "+norec", "example.org"])?;
    check(out.contains("status: REFUSED"), "REFUSED outside its zones", &out)?;
    check(qemu.is_running(), "VM still running", "")
}

fn main() {
    let args = Arguments::from_args();
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let tar = Prereq::program("tar", "--version", "tar");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let tests = vec![
        t("smallest_dns_image_refuses_left_out_flags", refuses_left_out_flags, &[&qemu]),
        t("smallest_dns_image_refuses_a_signed_zone", refuses_signed_zone, &[&qemu, &tar]),
        t("smallest_dns_image_answers_dig", answers_dig, &[&qemu, &dig]),
    ];
    libtest_mimic::run(&args, tests).exit();
}
