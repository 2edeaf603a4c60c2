//! `cargo xtask image` driven as a user drives it: a directory of zones or
//! pages made into each format with the real command line, then booted
//! under QEMU (TCG, `-M q35`, no `-kernel`: the firmware boots the disk
//! through GRUB) and queried through virtio-net-pci on forwarded loopback
//! ports with real `dig` and `curl`; the answers must come from the
//! directory given with `--content`, not from the image's embedded zone or
//! site. The GPT is checked by `sgdisk`, the GCE tarball by `tar`, the
//! containerDisk by `skopeo` and `umoci`. Each image is made once per
//! app and format and shared by the tests. A missing tool reports the test
//! ignored (under `CI=true`, failed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{free_port, workspace, Running};
use xtask::{Machine, Vm, OVMF_VARS};

type Result<T = ()> = std::result::Result<T, Failed>;

/// OVMF under TCG takes several seconds before GRUB starts; GRUB's menu
/// waits its default second.
const BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// The archive's zone: www differs from the embedded zone's (a CNAME to
/// web, 192.0.2.80), and there is no MX.
const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 42 3600 600 86400 300\n@ IN NS ns1\n\
                    ns1 IN A 192.0.2.53\nwww IN A 203.0.113.99\n";
const WWW: &str = "203.0.113.99";
const PAGE: &str = "<title>served from the disk's archive</title>\n";

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("morgana-image-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

fn check(cond: bool, what: &str, detail: impl std::fmt::Display) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}:\n{detail}").into())
    }
}

/// The content directory for `app`, written once (the archive holds the
/// files' times): a zone for dns, a site for web.
fn content(app: &str) -> Result<PathBuf> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _lock = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = scratch().join(format!("{app}-content"));
    if dir.exists() {
        return Ok(dir);
    }
    let tmp = dir.with_extension("tmp");
    std::fs::create_dir_all(&tmp)?;
    match app {
        "dns" => std::fs::write(tmp.join("example.com.zone"), ZONE)?,
        _ => {
            std::fs::create_dir_all(tmp.join("docs"))?;
            std::fs::write(tmp.join("index.html"), PAGE)?;
            std::fs::write(tmp.join("docs/index.html"), "<p>docs from the archive</p>\n")?;
        }
    }
    // Whole or not at all.
    std::fs::rename(&tmp, &dir)?;
    Ok(dir)
}

/// `cargo xtask image ARGS...`.
fn xtask_image(args: &[&str]) -> Result<Output> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace()).args(["xtask", "image"]).args(args).env_remove("RUSTFLAGS");
    Ok(cmd.output()?)
}

/// APP's image in FORMAT (with `extra` options), made once with the
/// app's content directory and `--log=debug` as its boot argument (the
/// default is info: DEBUG lines prove GRUB passed it on).
fn made(app: &str, format: &str, extra: &[&str]) -> Result<PathBuf> {
    static MADE: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let key = format!("{app}-{format}{}", extra.join(""));
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(&key) {
        return Ok(p.clone());
    }
    let out = scratch().join(&key);
    let dir = content(app)?;
    let (o, d) = (out.display().to_string(), dir.display().to_string());
    let mut args = vec![app, "-o", &o, "--format", format, "--content", &d];
    args.extend(extra);
    args.extend(["--", "--log=debug"]);
    let r = xtask_image(&args)?;
    check(r.status.success(), &format!("cargo xtask image {args:?}"), String::from_utf8_lossy(&r.stderr))?;
    made.insert(key, out.clone());
    Ok(out)
}

/// A VM on q35 booting `disk` through its firmware (SeaBIOS, or OVMF with
/// a fresh variable store). A disk is copied first: QEMU locks the file it
/// writes to, and tests run side by side.
fn vm(disk: &Path, format: &'static str, ovmf: bool, memory_mib: u32) -> Result<Vm> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut vm = Vm::new(disk);
    vm.machine = Machine::Q35;
    vm.memory_mib = memory_mib;
    if format == "iso" {
        vm.cdrom = Some(disk.to_path_buf());
    } else {
        let copy = scratch().join(format!("vm-{n}.{format}"));
        std::fs::copy(disk, &copy)?;
        vm.disk = Some(copy);
        vm.disk_format = format;
        vm.boot_from_disk = true;
    }
    if ovmf {
        let vars = scratch().join(format!("vm-{n}-vars.fd"));
        std::fs::copy(OVMF_VARS, &vars)?;
        vm.ovmf_vars = Some(vars);
    }
    Ok(vm)
}

/// Removes a VM's disk copy and OVMF variables.
fn forget(vm: &Vm) {
    for f in [&vm.disk, &vm.ovmf_vars].into_iter().flatten() {
        let _ = std::fs::remove_file(f);
    }
}

/// Boots `vm` until it is ready and checks GRUB offered its menu for
/// editing, then loaded the image with the boot argument from its entry
/// and the content as a boot module.
fn boot(vm: &Vm, what: &str) -> Result<Running> {
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", BOOT_TIMEOUT);
    let log = qemu.output().join("\n");
    check(log.contains("`e' to edit the commands"), "GRUB's menu on the serial console", &log)?;
    check(log.contains("boot: multiboot2 entry") && log.contains("1 boot module(s)"), "booted by GRUB", &log)?;
    check(log.contains(" DEBUG "), "--log=debug from the GRUB entry", &log)?;
    check(log.contains("virtio-net at pci"), "virtio-net-pci", &log)?;
    check(log.contains(what) && log.contains("from the boot module"), &format!("{what} from the boot module"), &log)?;
    Ok(qemu)
}

fn dig(port: u16, proto: &str, name: &str, kind: &str) -> Result<String> {
    let mut cmd = Command::new("dig");
    cmd.args(["+short", "+time=3", "+tries=3", "@127.0.0.1", "-p", &port.to_string(), name, kind]);
    if proto == "tcp" {
        cmd.arg("+tcp");
    }
    let out = cmd.output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The DNS image from `disk` answers with the archive's zone, over UDP and
/// TCP, and not with the embedded one.
fn dns_from(disk: &Path, format: &'static str, ovmf: bool) -> Result {
    let mut vm = vm(disk, format, ovmf, 64)?;
    let port = free_port();
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?, format!("tcp:127.0.0.1:{port}-:53").parse()?];
    let qemu = boot(&vm, "content: 1 file")?;
    let www = dig(port, "udp", "www.example.com", "A")?;
    check(www == WWW, "www.example.com over UDP from the archive", &www)?;
    let tcp = dig(port, "tcp", "www.example.com", "A")?;
    check(tcp == WWW, "www.example.com over TCP from the archive", &tcp)?;
    let mx = dig(port, "udp", "example.com", "MX")?;
    check(mx.is_empty(), "no MX: the embedded zone is not served", &mx)?;
    drop(qemu);
    forget(&vm);
    Ok(())
}

fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl").args(["-s", "-S", "--max-time", "30"]).args(args).output()?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The web image from `disk` serves the archive's pages, not the embedded
/// site.
fn web_from(disk: &Path, ovmf: bool) -> Result {
    let mut vm = vm(disk, "raw", ovmf, 96)?;
    let port = free_port();
    vm.forwards = vec![format!("tcp:127.0.0.1:{port}-:80").parse()?];
    let qemu = boot(&vm, "site: 2 files")?;
    let base = format!("http://127.0.0.1:{port}");
    let page = curl(&[&format!("{base}/")])?;
    check(page == PAGE, "GET / from the archive", &page)?;
    let docs = curl(&["-L", &format!("{base}/docs")])?;
    check(docs == "<p>docs from the archive</p>\n", "a directory's index from the archive", &docs)?;
    let logo = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/logo.svg")])?;
    check(logo == "404", "the embedded site's logo is not served", &logo)?;
    drop(qemu);
    forget(&vm);
    Ok(())
}

/// QEMU with the serial console on pipes, read as raw bytes (GRUB's menu
/// is drawn with escape sequences, not lines).
struct Console {
    child: std::process::Child,
    seen: std::sync::Arc<Mutex<Vec<u8>>>,
}

impl Console {
    fn start(vm: &Vm) -> Result<Console> {
        use std::io::Read;
        let mut cmd = vm.command();
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn()?;
        let mut out = child.stdout.take().ok_or("no stdout")?;
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                into.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        Ok(Console { child, seen })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> Result {
        let deadline = std::time::Instant::now() + timeout;
        while !self.text().contains(needle) {
            if std::time::Instant::now() > deadline {
                return Err(format!("no {needle:?} within {timeout:?}:\n{}", self.text()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Types `keys` on the serial console, a little at a time.
    fn type_keys(&mut self, keys: &[u8]) -> Result {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        for k in keys {
            stdin.write_all(&[*k])?;
            stdin.flush()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The boot arguments can be edited in GRUB's menu on the serial console,
/// as an operator would: `e` on the entry, Ctrl-N twice to its multiboot2
/// line (GRUB shows `setparams 'morgana'` and a blank line first), Ctrl-E
/// to the end of it, ` --rrl-rate=0`, Ctrl-X to boot; the app runs with the
/// edited arguments (rate limiting off) and answers from the archive.
fn boot_arguments_edited_in_grub() -> Result {
    let disk = made("dns", "raw", &["--grub-timeout", "30"])?;
    let mut vm = vm(&disk, "raw", false, 64)?;
    let port = free_port();
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
    let mut console = Console::start(&vm)?;
    console.wait_for("`e' to edit the commands", BOOT_TIMEOUT)?;
    console.type_keys(b"e")?;
    console.wait_for("Minimum Emacs-like screen editing", Duration::from_secs(30))?;
    console.type_keys(b"\x0e\x0e\x05 --rrl-rate=0\x18")?;
    console.wait_for("ready to serve", BOOT_TIMEOUT)?;
    let log = console.text();
    check(log.contains("multiboot2 /boot/morgana --log=debug --rrl-rate=0"), "the edited line in GRUB", &log)?;
    check(log.contains("UDP response rate limiting off"), "the app got the edited arguments", &log)?;
    check(log.contains(" DEBUG "), "and kept the entry's own (--log=debug)", &log)?;
    let www = dig(port, "udp", "www.example.com", "A")?;
    check(www == WWW, "www.example.com from the archive", &www)?;
    drop(console);
    forget(&vm);
    Ok(())
}

/// The raw disk is a valid GPT (as `sgdisk` reads it) with the BIOS boot
/// and EFI system partitions, GRUB's boot code in the MBR, a few MiB, and
/// the same bytes when made again.
fn raw_disk_is_a_small_valid_gpt() -> Result {
    let raw = made("dns", "raw", &[])?;
    let v = Command::new("sgdisk").arg("-v").arg(&raw).output()?;
    let text = String::from_utf8_lossy(&v.stdout).into_owned();
    check(v.status.success() && text.contains("No problems found"), "sgdisk -v", &text)?;
    let p = Command::new("sgdisk").arg("-p").arg(&raw).output()?;
    let table = String::from_utf8_lossy(&p.stdout).into_owned();
    check(table.contains("EF02  BIOS boot") && table.contains("EF00  EFI system"), "the two partitions", &table)?;
    let bytes = std::fs::read(&raw)?;
    check(bytes.len() <= 16 << 20 && bytes.len() % 512 == 0, "a few MiB", bytes.len())?;
    check(bytes[510..512] == [0x55, 0xAA] && bytes[..440].iter().any(|b| *b != 0), "boot code in the MBR", "")?;
    // No clock or random number goes into the disk.
    let again = scratch().join("dns-raw-again");
    let (a, d) = (again.display().to_string(), content("dns")?.display().to_string());
    let r = xtask_image(&["dns", "-o", &a, "--content", &d, "--", "--log=debug"])?;
    check(r.status.success(), "cargo xtask image again", String::from_utf8_lossy(&r.stderr))?;
    check(std::fs::read(&again)? == bytes, "the same inputs make the same disk", "")
}

/// The GCE tarball: gzip'd GNU (oldgnu) tar holding exactly `disk.raw`, a
/// whole number of GiB, whose bytes are the raw disk's made at that size.
fn gce_tarball_holds_the_raw_disk() -> Result {
    let gce = made("dns", "gce", &[])?;
    check(std::fs::metadata(&gce)?.len() < 16 << 20, "the tarball is small (the disk is sparse)", "")?;
    let list = Command::new("tar").arg("-tzf").arg(&gce).output()?;
    let names = String::from_utf8_lossy(&list.stdout).into_owned();
    check(list.status.success() && names == "disk.raw\n", "exactly disk.raw", &names)?;
    let head = Command::new("sh").arg("-c").arg(format!("gzip -dc '{}' | head -c 512", gce.display())).output()?;
    check(head.stdout.len() == 512 && head.stdout[257..265] == *b"ustar  \0", "GNU tar format (oldgnu magic)", "")?;
    let raw = made("dns", "raw", &["--size", "1G"])?;
    check(std::fs::metadata(&raw)?.len() == 1 << 30, "the raw disk at 1 GiB", "")?;
    let out = scratch().join("gce-extract");
    std::fs::create_dir_all(&out)?;
    let x = Command::new("tar").arg("-xzf").arg(&gce).arg("-C").arg(&out).output()?;
    check(x.status.success(), "tar -x", String::from_utf8_lossy(&x.stderr))?;
    let disk = out.join("disk.raw");
    check(std::fs::metadata(&disk)?.len() % (1 << 30) == 0, "disk.raw is a whole number of GiB", "")?;
    let same = Command::new("cmp").arg(&disk).arg(&raw).output()?;
    let _ = std::fs::remove_dir_all(&out);
    check(same.status.success(), "disk.raw has the raw disk's bytes", String::from_utf8_lossy(&same.stdout))
}

/// The containerDisk is an OCI image `skopeo` inspects and `umoci` unpacks,
/// with one layer holding `/disk/*.qcow2`, owned by 107:107, whose bytes
/// are those of the qcow2 that boots in `dns_qcow2_on_seabios_q35`.
fn containerdisk_is_an_oci_image_of_the_qcow2() -> Result {
    let oci = made("dns", "containerdisk", &[])?;
    let qcow2 = made("dns", "qcow2", &[])?;
    let inspect = Command::new("skopeo").arg("inspect").arg(format!("oci:{}:latest", oci.display())).output()?;
    let json = String::from_utf8_lossy(&inspect.stdout).into_owned();
    check(inspect.status.success(), "skopeo inspect", String::from_utf8_lossy(&inspect.stderr))?;
    check(json.contains(r#""Architecture": "amd64""#) && json.matches("sha256:").count() == 2, "one layer", &json)?;
    let bundle = scratch().join("bundle");
    let unpack = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:latest", oci.display()))
        .arg(&bundle)
        .output()?;
    check(unpack.status.success(), "umoci unpack", String::from_utf8_lossy(&unpack.stderr))?;
    let disks: Vec<PathBuf> =
        std::fs::read_dir(bundle.join("rootfs/disk"))?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<_>>()?;
    check(
        disks.len() == 1 && disks[0].extension().is_some_and(|e| e == "qcow2"),
        "one /disk/*.qcow2",
        format!("{disks:?}"),
    )?;
    check(std::fs::read(&disks[0])? == std::fs::read(&qcow2)?, "the qcow2 that boots", "")?;
    let _ = std::fs::remove_dir_all(&bundle);
    // Ownership as KubeVirt needs it, from the layer itself (a rootless
    // unpack cannot keep it).
    let index = std::fs::read_to_string(oci.join("index.json"))?;
    let digest = |text: &str, after: &str| -> Option<String> {
        let at = text.find(after)?;
        let d = text[at..].split("\"digest\":\"sha256:").nth(1)?;
        Some(d[..64].to_string())
    };
    let manifest_digest = digest(&index, "manifests").ok_or("no manifest digest in index.json")?;
    let manifest = std::fs::read_to_string(oci.join("blobs/sha256").join(manifest_digest))?;
    let layer = digest(&manifest, "layers").ok_or("no layer digest in the manifest")?;
    let list =
        Command::new("tar").args(["--numeric-owner", "-tvzf"]).arg(oci.join("blobs/sha256").join(layer)).output()?;
    let listing = String::from_utf8_lossy(&list.stdout).into_owned();
    let lines: Vec<&str> = listing.lines().collect();
    check(
        lines.len() == 2 && lines.iter().all(|l| l.contains(" 107/107 ")),
        "disk/ and its qcow2 owned by 107:107",
        &listing,
    )
}

/// Every format is made by an unprivileged user (`nobody`, through
/// `setpriv` when the tests run as root) from a released ELF (`--elf`,
/// nothing built), and the raw disk has the same bytes as root's.
fn made_without_root() -> Result {
    let raw = made("dns", "raw", &[])?;
    let dir = scratch().join("nobody");
    std::fs::create_dir_all(&dir)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
    let elf = dir.join("dns.elf");
    std::fs::copy(xtask::build_image("dns", true)?, &elf)?;
    std::fs::set_permissions(&elf, std::fs::Permissions::from_mode(0o644))?;
    // `cargo xtask` built this binary in made() above.
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    let xtask_bin = target.join("debug/xtask");
    let root = Prereq::root().present();
    let content = content("dns")?;
    for format in ["raw", "qcow2", "iso", "gce", "containerdisk"] {
        let out = dir.join(format!("dns.{format}"));
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&xtask_bin);
            c
        } else {
            Command::new(&xtask_bin)
        };
        cmd.args(["image", "--elf"]).arg(&elf).arg("-o").arg(&out).args(["--format", format, "--content"]);
        cmd.arg(&content).args(["--", "--log=debug"]).env("TMPDIR", &dir).env("HOME", &dir);
        let r = cmd.output()?;
        check(r.status.success(), &format!("{format} as nobody"), String::from_utf8_lossy(&r.stderr))?;
        use std::os::unix::fs::MetadataExt;
        check(!root || std::fs::metadata(&out)?.uid() == 65534, &format!("{format} written by nobody"), "")?;
    }
    check(std::fs::read(dir.join("dns.raw"))? == std::fs::read(&raw)?, "nobody's raw disk is root's", "")
}

/// Bad input: a clear message, a non-zero exit, and no output left.
fn bad_input_is_refused() -> Result {
    let dir = content("dns")?;
    let d = dir.display().to_string();
    let out = scratch().join("refused.raw").display().to_string();
    let file = scratch().join("a-file");
    std::fs::write(&file, "not a directory")?;
    let under_file = file.join("x.raw").display().to_string();
    let not_elf = file.display().to_string();
    let cases: [(Vec<&str>, &str); 7] = [
        (vec!["dns", "-o", &out, "--content", "/nonexistent/zones"], "--content /nonexistent/zones: not a directory"),
        (vec!["dns", "-o", &out, "--format", "vmdk"], "unknown format 'vmdk'"),
        (vec!["dns", "-o", &under_file, "--content", &d], "cannot write"),
        (vec!["dns", "--content", &d], "-o FILE is needed"),
        (vec!["dns", "-o", &out, "--format", "gce", "--size", "2G"], "--size is for the raw and qcow2 formats"),
        (vec!["--elf", "/nonexistent/dns", "-o", &out], "--elf /nonexistent/dns: no such file"),
        (vec!["--elf", &not_elf, "-o", &out], "not a multiboot2 image"),
    ];
    for (args, message) in cases {
        let r = xtask_image(&args)?;
        let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
        check(!r.status.success() && stderr.contains(message), &format!("{args:?}: {message}"), &stderr)?;
    }
    check(!Path::new(&out).exists(), "no output left behind", &out)
}

fn main() {
    let args = Arguments::from_args();
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let mkimage = Prereq::program("grub-mkimage", "--version", "grub-common");
    let mtools = Prereq::program("mformat", "--version", "mtools");
    let qemu_img = Prereq::program("qemu-img", "--version", "qemu-utils");
    let xorriso = Prereq::program("xorriso", "-version", "xorriso");
    let tar = Prereq::program("tar", "--version", "tar");
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let curl = Prereq::program("curl", "--version", "curl");
    let sgdisk = Prereq::program("sgdisk", "--version", "gdisk");
    let skopeo = Prereq::program("skopeo", "--version", "skopeo");
    let umoci = Prereq::program("umoci", "--version", "umoci");
    let file = |name: &str, path: &str, package: &str| {
        let missing = (!Path::new(path).exists()).then(|| format!("no {path} (apt-get install {package})"));
        Prereq::new(name, missing)
    };
    let grub_bios = file("GRUB for BIOS", "/usr/lib/grub/i386-pc/boot.img", "grub-pc-bin");
    let grub_efi = file("GRUB for UEFI", "/usr/lib/grub/x86_64-efi/multiboot2.mod", "grub-efi-amd64-bin");
    let ovmf = file("OVMF", xtask::OVMF_CODE, "ovmf");
    let ovmf_vars = file("OVMF variables", OVMF_VARS, "ovmf");
    let disk = [&mkimage, &mtools, &tar, &grub_bios, &grub_efi];
    let with = |more: &[&Prereq]| -> Vec<Prereq> { disk.iter().chain(more).map(|p| (*p).clone()).collect() };
    let t =
        |name: &str, needs: Vec<Prereq>, f: fn() -> Result| prereq::trial(name, &needs.iter().collect::<Vec<_>>(), f);
    let tests = vec![
        t("raw_disk_is_a_small_valid_gpt", with(&[&sgdisk]), raw_disk_is_a_small_valid_gpt),
        t("dns_raw_on_seabios_q35", with(&[&qemu, &dig]), || dns_from(&made("dns", "raw", &[])?, "raw", false)),
        t("boot_arguments_edited_in_grub", with(&[&qemu, &dig]), boot_arguments_edited_in_grub),
        t("dns_raw_on_ovmf_q35", with(&[&qemu, &dig, &ovmf, &ovmf_vars]), || {
            dns_from(&made("dns", "raw", &[])?, "raw", true)
        }),
        t("web_raw_on_seabios_q35", with(&[&qemu, &curl]), || web_from(&made("web", "raw", &[])?, false)),
        t("web_raw_on_ovmf_q35", with(&[&qemu, &curl, &ovmf, &ovmf_vars]), || {
            web_from(&made("web", "raw", &[])?, true)
        }),
        t("dns_qcow2_on_seabios_q35", with(&[&qemu, &qemu_img, &dig]), || {
            dns_from(&made("dns", "qcow2", &[])?, "qcow2", false)
        }),
        t("dns_iso_from_cdrom_on_seabios_q35", with(&[&qemu, &xorriso, &dig]), || {
            dns_from(&made("dns", "iso", &[])?, "iso", false)
        }),
        t("gce_tarball_holds_the_raw_disk", with(&[]), gce_tarball_holds_the_raw_disk),
        t("containerdisk_is_an_oci_image_of_the_qcow2", with(&[&qemu_img, &skopeo, &umoci]), || {
            containerdisk_is_an_oci_image_of_the_qcow2()
        }),
        t("made_without_root", with(&[&qemu_img, &xorriso]), made_without_root),
        t("bad_input_is_refused", vec![], bad_input_is_refused),
    ];
    let conclusion = libtest_mimic::run(&args, tests);
    let _ = std::fs::remove_dir_all(scratch());
    conclusion.exit();
}
