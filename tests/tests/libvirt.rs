//! The DNS image under a real libvirtd (Debian's libvirt-daemon-system, QEMU
//! driver, TCG), from the domain XML `cargo xtask libvirt` prints: it
//! serves its zone from a content archive on a read-only disk, `virsh
//! shutdown` ends it cleanly ("shut off (shutdown)"), a failing app is
//! reported as crashed through pvpanic, and a GPT disk from `cargo xtask
//! image` boots with UEFI firmware and serves the zones it carries.
//!
//! The test runs its own libvirtd and virtlogd inside a network namespace
//! it creates, with a bridge there, so the guest reaches nothing else; it
//! fails if another libvirtd already runs on the machine. Needs root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::Arguments;
use morgana_tests::libvirtd::{virsh, Libvirtd};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::workspace;

type Result = std::result::Result<(), libtest_mimic::Failed>;

const GUEST: &str = "10.94.0.2";

/// `dig +short` for `name` at the guest, from inside the namespace.
fn dig(lv: &Libvirtd, name: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &lv.ns.name, "dig", "+short", "+time=1", "+tries=1", &format!("@{GUEST}"), name, "A"])
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn start_libvirtd() -> std::result::Result<Libvirtd, String> {
    Libvirtd::start("libvirt", "br0", "10.94.0.1/24")
}
/// A scratch directory under target/.
fn scratch(tag: &str) -> PathBuf {
    let dir = workspace().join(format!("target/libvirt-test/{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A content archive: the embedded zone plus a record only it has.
fn content(dir: &Path) -> PathBuf {
    let zones = dir.join("zones");
    std::fs::create_dir_all(&zones).expect("zones dir");
    let mut zone = std::fs::read_to_string(workspace().join("apps/dns/zones/example.com.zone")).expect("zone");
    zone.push_str("\nlibvirt.example.com. 300 IN A 192.0.2.94\n");
    std::fs::write(zones.join("example.com.zone"), zone).expect("zone file");
    let tar = dir.join("content.tar");
    let ok = Command::new("tar")
        .args(["--format=ustar", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&zones)
        .arg(".")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tar failed");
    tar
}

/// `cargo xtask ARGS...` as a user runs it; its standard output.
fn xtask(args: &[&str]) -> std::result::Result<Vec<u8>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args(["run", "-q", "-p", "xtask", "--"])
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("cargo xtask {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(out.stdout)
}

/// `cargo xtask libvirt APP ...` into `dir/NAME.xml` (APP may be `--elf
/// FILE`, a released image).
fn domain_xml_for(
    dir: &Path,
    app: &[&str],
    name: &str,
    extra: &[&str],
    boot_args: &[&str],
) -> std::result::Result<PathBuf, String> {
    let mut args = vec!["libvirt"];
    args.extend_from_slice(app);
    args.extend_from_slice(&["--tcg", "--bridge", "br0", "--name", name]);
    args.extend_from_slice(extra);
    if !boot_args.is_empty() {
        args.push("--");
        args.extend_from_slice(boot_args);
    }
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, xtask(&args)?).map_err(|e| e.to_string())?;
    Ok(file)
}

/// `cargo xtask libvirt dns ...` into `dir/NAME.xml`.
fn domain_xml(dir: &Path, name: &str, extra: &[&str], boot_args: &[&str]) -> std::result::Result<PathBuf, String> {
    domain_xml_for(dir, &["dns"], name, extra, boot_args)
}

/// Waits (up to `timeout`) until the guest answers for `name` with an
/// address; returns the last answer.
fn wait_answer(lv: &Libvirtd, name: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = dig(lv, name);
        if answer.parse::<std::net::Ipv4Addr>().is_ok() || Instant::now() > deadline {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn console(name: &str) -> String {
    std::fs::read_to_string(format!("/var/log/libvirt/qemu/{name}-console.log")).unwrap_or_default()
}

/// Waits until the domain is shut off; returns `virsh domstate --reason`.
fn wait_shut_off(name: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let state = virsh(&["domstate", "--reason", name]).unwrap_or_else(|e| e);
        if state.contains("shut off") || Instant::now() > deadline {
            return state.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A defined domain, undefined (and destroyed if running) on drop.
struct Defined(String);

impl Drop for Defined {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        let _ = virsh(&["undefine", "--nvram", &self.0]);
    }
}

fn define_and_start(xml: &Path, name: &str) -> std::result::Result<Defined, String> {
    virsh(&["define", &xml.display().to_string()])?;
    let d = Defined(name.into());
    virsh(&["start", name])?;
    Ok(d)
}

fn serves_content_and_shuts_down() -> Result {
    let lv = start_libvirtd()?;
    let dir = scratch("shutdown");
    let tar = content(&dir);
    let name = format!("morgana-dns-{}", std::process::id());
    let tar_arg = tar.display().to_string();
    let xml = domain_xml(&dir, &name, &["--content", &tar_arg], &[&format!("--ipv4={GUEST}/24")])?;
    let _domain = define_and_start(&xml, &name)?;
    let answer = wait_answer(&lv, "libvirt.example.com", Duration::from_secs(60));
    let log = console(&name);
    if answer != "192.0.2.94" {
        return Err(format!("dig for the archive's record gave {answer:?}\n--- console\n{log}").into());
    }
    if !log.contains("from the block device") {
        return Err(format!("the console does not say the content came from the disk\n--- console\n{log}").into());
    }
    virsh(&["shutdown", &name])?;
    let state = wait_shut_off(&name, Duration::from_secs(30));
    let log = console(&name);
    eprintln!("  after virsh shutdown: {state}");
    if state != "shut off (shutdown)" {
        return Err(format!("virsh shutdown left the domain {state:?}\n--- console\n{log}").into());
    }
    if !log.contains("ACPI power button pressed: exiting") {
        return Err(format!("the app did not see the power button\n--- console\n{log}").into());
    }
    Ok(())
}

/// The user's path with no kernel: `cargo xtask image` makes a GPT disk
/// with the zones on it, `cargo xtask libvirt --disk --uefi` boots it with
/// OVMF (libvirt picks the firmware), and the answers come from the disk.
fn uefi_disk_from_xtask_image() -> Result {
    let lv = start_libvirtd()?;
    let dir = scratch("disk");
    content(&dir); // writes dir/zones too
    let zones = dir.join("zones");
    let disk = dir.join("dns.raw");
    let (zones_arg, disk_arg) = (zones.display().to_string(), disk.display().to_string());
    let guest = format!("--ipv4={GUEST}/24");
    xtask(&["image", "dns", "-o", &disk_arg, "--content", &zones_arg, "--grub-timeout", "0", "--", &guest])?;
    let name = format!("morgana-disk-{}", std::process::id());
    let xml = domain_xml(&dir, &name, &["--disk", &disk_arg, "--uefi"], &[])?;
    let _domain = define_and_start(&xml, &name)?;
    let answer = wait_answer(&lv, "libvirt.example.com", Duration::from_secs(120));
    let log = console(&name);
    if answer != "192.0.2.94" {
        return Err(format!("dig for the disk's record gave {answer:?}\n--- console\n{log}").into());
    }
    if !log.contains("multiboot2 entry") || !log.contains("from the boot module") {
        return Err(format!("not booted by GRUB with the content module\n--- console\n{log}").into());
    }
    virsh(&["shutdown", &name])?;
    let state = wait_shut_off(&name, Duration::from_secs(60));
    eprintln!("  UEFI disk after virsh shutdown: {state}");
    if state != "shut off (shutdown)" {
        return Err(format!("virsh shutdown left the domain {state:?}\n--- console\n{}", console(&name)).into());
    }
    Ok(())
}

fn failure_shows_as_crashed() -> Result {
    let _lv = start_libvirtd()?;
    let dir = scratch("crash");
    let name = format!("morgana-bad-{}", std::process::id());
    // A released image, as a user without the source would have it.
    let released = dir.join("dns");
    std::fs::copy(xtask::build_image("dns", true)?, &released).map_err(|e| e.to_string())?;
    let released = released.display().to_string();
    let xml = domain_xml_for(&dir, &["--elf", &released], &name, &[], &["--no-such-flag"])?;
    let _domain = define_and_start(&xml, &name)?;
    let state = wait_shut_off(&name, Duration::from_secs(60));
    let log = console(&name);
    eprintln!("  after a bad flag: {state}");
    if state != "shut off (crashed)" || !log.contains("unknown flag '--no-such-flag'") {
        return Err(format!("state {state:?}\n--- console\n{log}").into());
    }
    if !log.contains("reported through pvpanic") {
        return Err(format!("no pvpanic report on the console\n--- console\n{log}").into());
    }
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
    let trial = |name: &str, f: fn() -> Result| prereq::trial(name, &needs, f);
    let tests = vec![
        trial("libvirt_serves_content_and_virsh_shutdown_powers_off", serves_content_and_shuts_down),
        trial("libvirt_failure_shows_as_crashed", failure_shows_as_crashed),
        trial("libvirt_boots_a_uefi_disk_from_xtask_image", uefi_disk_from_xtask_image),
    ];
    libtest_mimic::run(&args, tests).exit();
}
