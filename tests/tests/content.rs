//! Content from outside the image, driven like a user: a directory made
//! into an archive with the real `tar --format=ustar`, given to the hosted
//! DNS and web apps with `--block FILE`, queried with `dig` and `curl`; bad
//! zones and corrupt archives stop the app with a clear message and a
//! non-zero exit; and the DNS and web VM images (QEMU TCG) with the archive
//! as their virtio-blk disk or as a PVH boot module (`-kernel IMAGE -initrd
//! content.tar`), answering `dig` and `curl` through user networking
//! forwarded to 127.0.0.1. Bad zones and bad archives given as a boot
//! module end the VM with exit status 1 (QEMU's 3) and one clear line.
//! Tests whose tools are missing are reported as ignored (under `CI=true`,
//! failed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

fn check(cond: bool, what: &str, out: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

/// A fresh directory for one test.
fn scratch(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("morgana-content-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("content"))?;
    Ok(dir)
}

/// Writes `files` under `dir/content`, then `tar --format=ustar -cf
/// dir/content.tar -C dir/content .`, as the README tells users to.
fn archive(dir: &Path, files: &[(&str, &str)]) -> Result<PathBuf> {
    for (path, text) in files {
        let p = dir.join("content").join(path);
        std::fs::create_dir_all(p.parent().expect("parent"))?;
        std::fs::write(&p, text)?;
    }
    let tar = dir.join("content.tar");
    let out = Command::new("tar")
        .args(["--format=ustar", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(dir.join("content"))
        .arg(".")
        .output()?;
    check(out.status.success(), "tar failed", &String::from_utf8_lossy(&out.stderr))?;
    Ok(tar)
}

const ZONE: &str =
    "$TTL 300\n@ IN SOA ns1 hostmaster 42 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\nwww IN A 203.0.113.7\n";

fn dns(tar: &Path) -> (Running, u16) {
    let port = free_port();
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--block"]).arg(tar);
    (Running::start(cmd), port)
}

fn dig(port: u16, name: &str, kind: &str) -> Result<String> {
    let out =
        Command::new("dig").args(["+short", "+time=2", "@127.0.0.1", "-p", &port.to_string(), name, kind]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The app must exit non-zero with one stderr line holding every `needles`.
fn refused(mut p: Running, needles: &[&str]) -> Result {
    let code = p.wait_exit(Duration::from_secs(20));
    let out = p.output().join("\n");
    check(code == Some(1), &format!("exit status {code:?}, wanted 1"), &out)?;
    let line = p.output().into_iter().find(|l| needles.iter().all(|n| l.contains(n)));
    check(line.is_some(), &format!("no line with all of {needles:?}"), &out)
}

fn dns_serves_zones_from_the_archive() -> Result {
    let dir = scratch("dns")?;
    // The same origin as the embedded zone, with other records, and one more.
    let tar = archive(&dir, &[("example.com.zone", ZONE), ("archive.test.zone", ZONE), ("README", "not a zone")])?;
    let (mut p, port) = dns(&tar);
    p.wait_for("ready to serve", Duration::from_secs(30));
    let log = p.output().join("\n");
    check(log.contains("content: 3 files") && log.contains("from the block device"), "content logged", &log)?;
    let www = dig(port, "www.example.com", "A")?;
    check(www == "203.0.113.7", "www.example.com from the archive, not the embedded zone", &www)?;
    let other = dig(port, "www.archive.test", "A")?;
    check(other == "203.0.113.7", "the archive's second zone", &other)?;
    // The embedded zone's MX is not served.
    let mx = dig(port, "example.com", "MX")?;
    check(mx.is_empty(), "no embedded records", &mx)
}

fn dns_embedded_without_content() -> Result {
    let dir = scratch("blank")?;
    let disk = dir.join("blank.img");
    std::fs::write(&disk, vec![0u8; 64 * 1024])?;
    let (mut p, port) = dns(&disk);
    p.wait_for("ready to serve", Duration::from_secs(30));
    let log = p.output().join("\n");
    check(log.contains("content: none (the block device holds no ustar archive)"), "no content logged", &log)?;
    let mx = dig(port, "example.com", "MX")?;
    check(mx.contains("mail.example.com."), "the embedded zone answers", &mx)
}

fn dns_bad_zone_stops_the_boot() -> Result {
    let dir = scratch("badzone")?;
    let bad = format!("{ZONE}oops IN A 300.1.2.3\n");
    let tar = archive(&dir, &[("archive.test.zone", ZONE), ("example.com.zone", &bad)])?;
    let (p, _) = dns(&tar);
    refused(p, &["error: content from the block device: example.com.zone:6:"])
}

/// Flips a byte of `tar` at `at` (in the first entry's header: the
/// checksum no longer matches), or cuts it short.
fn damage(tar: &Path, name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Result<PathBuf> {
    let mut bytes = std::fs::read(tar)?;
    f(&mut bytes);
    let out = tar.with_file_name(name);
    std::fs::write(&out, bytes)?;
    Ok(out)
}

fn corrupt_archives_are_refused() -> Result {
    let dir = scratch("corrupt")?;
    let big = "x".repeat(5000);
    let tar = archive(&dir, &[("example.com.zone", ZONE), ("zz-big.txt", &big)])?;
    // tar lists `./` first: the second header is the zone's.
    let flipped = damage(&tar, "flipped.tar", |b| b[512 + 3] ^= 0x20)?;
    refused(
        dns(&flipped).0,
        &["error: content archive in the block device: tar entry './eXample.com.zone' at byte 512: bad header checksum"],
    )?;
    // Cut inside the big file's data, at a sector boundary (as --block needs).
    let cut = damage(&tar, "cut.tar", |b| b.truncate(512 * 6))?;
    refused(dns(&cut).0, &["tar entry './zz-big.txt'", "its 5000 bytes of data run past the end of the archive"])?;
    // A name with `..`, made by hand.
    let dotdot = damage(&tar, "dotdot.tar", |b| {
        b[512..512 + 18].copy_from_slice(b"../example.com.zo\0");
        b[512 + 148..512 + 156].fill(b' ');
        let sum: u32 = b[512..1024].iter().map(|x| *x as u32).sum();
        b[512 + 148..512 + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    })?;
    refused(dns(&dotdot).0, &["'../example.com.zo'", "name with a '..' component"])?;
    refused(web(&flipped).0, &["error: content archive in the block device", "bad header checksum"])
}

fn web(tar: &Path) -> (Running, u16) {
    let port = free_port();
    let mut cmd = Command::new(app_binary("web"));
    cmd.args(["--http", &format!("127.0.0.1:{port}"), "--no-https", "--block"]).arg(tar);
    (Running::start(cmd), port)
}

fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl").args(["-s", "-S", "--max-time", "20"]).args(args).output()?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn web_serves_the_archive() -> Result {
    let dir = scratch("web")?;
    let files = [
        ("index.html", "<title>from the archive</title>\n"),
        ("docs/index.html", "<p>docs</p>\n"),
        ("style.css", "body { color: red }\n"),
    ];
    let content = dir.join("content");
    for (path, text) in files {
        let p = content.join(path);
        std::fs::create_dir_all(p.parent().expect("parent"))?;
        std::fs::write(&p, text)?;
    }
    // A known modification time, to find in Last-Modified.
    let touched =
        Command::new("touch").args(["-d", "2001-02-03 04:05:06 UTC"]).arg(content.join("style.css")).status()?;
    check(touched.success(), "touch", "")?;
    let tar = archive(&dir, &[])?;
    let (mut p, port) = web(&tar);
    p.wait_for("ready to serve", Duration::from_secs(30));
    let log = p.output().join("\n");
    check(log.contains("site: 3 files") && log.contains("content from the block device"), "site logged", &log)?;
    let base = format!("http://127.0.0.1:{port}");
    let page = curl(&[&format!("{base}/")])?;
    check(page == "<title>from the archive</title>\n", "GET / from the archive", &page)?;
    let docs = curl(&["-L", &format!("{base}/docs")])?;
    check(docs == "<p>docs</p>\n", "a directory's index", &docs)?;
    let head = curl(&["-I", &format!("{base}/style.css")])?.to_ascii_lowercase();
    check(head.contains("content-type: text/css"), "content type", &head)?;
    check(head.contains("last-modified: sat, 03 feb 2001 04:05:06 gmt"), "Last-Modified from the tar mtime", &head)?;
    let gone = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/logo.svg")])?;
    check(gone == "404", "the embedded site is not served", &gone)
}

/// The DNS image under QEMU (TCG) with the archive as its virtio-blk disk
/// answers from it; with a bad zone in it the VM exits 1 naming file:line.
fn vm_dns_from_a_virtio_blk_archive() -> Result {
    let dir = scratch("vm")?;
    let tar = archive(&dir, &[("example.com.zone", ZONE)])?;
    let image = xtask::build_image("dns", true)?;
    let port = free_port();
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
    vm.disk = Some(tar);
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", Duration::from_secs(60));
    let log = qemu.output().join("\n");
    check(log.contains("content: 1 file") && log.contains("from the block device"), "content logged", &log)?;
    let www = dig(port, "www.example.com", "A")?;
    check(www == "203.0.113.7", "www.example.com from the archive on the disk", &www)?;
    drop(qemu);

    let bad = format!("{ZONE}oops IN A 300.1.2.3\n");
    let bad_dir = scratch("vm-bad")?;
    vm.disk = Some(archive(&bad_dir, &[("example.com.zone", &bad)])?);
    vm.forwards.clear();
    let mut qemu = Running::start(vm.command());
    let status = qemu.wait_status(Duration::from_secs(60));
    let out = qemu.output().join("\n");
    check(xtask::app_exit_code(status) == Some(1), "the VM exits 1", &out)?;
    check(out.contains("error: content from the block device: example.com.zone:6:"), "file:line on the console", &out)
}

/// A VM of `app`'s image with `initrd` as its boot module and `disk` as its
/// virtio-blk disk.
fn content_vm(app: &str, initrd: Option<PathBuf>, disk: Option<PathBuf>) -> Result<xtask::Vm> {
    let mut vm = xtask::Vm::new(xtask::build_image(app, true)?);
    vm.initrd = initrd;
    vm.disk = disk;
    Ok(vm)
}

/// Boots `vm`, waits until it serves, and returns QEMU and its log.
fn serving(vm: &xtask::Vm) -> (Running, String) {
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", VM_BOOT);
    let log = qemu.output().join("\n");
    (qemu, log)
}

/// Under TCG on a shared machine a boot takes a few seconds; allow many.
const VM_BOOT: Duration = Duration::from_secs(90);

/// Boots `vm`, which must refuse its content: QEMU exits with status 3
/// (isa-debug-exit for the app's exit code 1), one console line holds every
/// `needles`, and nothing panicked.
fn vm_refuses(vm: &xtask::Vm, needles: &[&str]) -> Result {
    let mut qemu = Running::start(vm.command());
    let status = qemu.wait_status(VM_BOOT);
    let out = qemu.output().join("\n");
    check(status.code() == Some(3), &format!("QEMU exit status {:?}, wanted 3 (app exit 1)", status.code()), &out)?;
    check(xtask::app_exit_code(status) == Some(1), "the app exits 1", &out)?;
    check(!out.to_ascii_lowercase().contains("panic"), "no panic", &out)?;
    let line = qemu.output().into_iter().find(|l| needles.iter().all(|n| l.contains(n)));
    check(line.is_some(), &format!("no console line with all of {needles:?}"), &out)
}

/// The DNS image with `-initrd content.tar` serves the archive's zones in
/// place of the embedded ones and says the content came from the module.
fn vm_dns_from_a_boot_module() -> Result {
    let dir = scratch("vm-module")?;
    let tar = archive(&dir, &[("example.com.zone", ZONE), ("archive.test.zone", ZONE)])?;
    let port = free_port();
    let mut vm = content_vm("dns", Some(tar), None)?;
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
    let (_qemu, log) = serving(&vm);
    check(log.contains("boot: PVH entry") && log.contains(" 1 boot module(s)"), "a PVH boot module", &log)?;
    check(log.contains("content: 2 files") && log.contains("from the boot module"), "content logged", &log)?;
    check(log.contains("(example.com.zone, content from the boot module)"), "the zone's source logged", &log)?;
    let www = dig(port, "www.example.com", "A")?;
    check(www == "203.0.113.7", "www.example.com from the module, not the embedded zone", &www)?;
    let other = dig(port, "www.archive.test", "A")?;
    check(other == "203.0.113.7", "the module's second zone", &other)?;
    let mx = dig(port, "example.com", "MX")?;
    check(mx.is_empty(), "the embedded zone's MX is gone", &mx)
}

/// With a boot module and a content disk, the module is the content (and
/// the log says the disk is left to the app).
fn vm_boot_module_comes_before_the_disk() -> Result {
    let dir = scratch("vm-both")?;
    let module = archive(&dir, &[("example.com.zone", ZONE)])?;
    let disk_dir = scratch("vm-both-disk")?;
    let on_disk = ZONE.replace("203.0.113.7", "198.51.100.9");
    let disk = archive(&disk_dir, &[("example.com.zone", &on_disk)])?;
    let port = free_port();
    let mut vm = content_vm("dns", Some(module), Some(disk))?;
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
    let (_qemu, log) = serving(&vm);
    check(log.contains("content: 1 file, ") && log.contains("from the boot module"), "content from the module", &log)?;
    check(
        log.contains("content: the boot module comes first; the block device is left to the app"),
        "the log says the module wins",
        &log,
    )?;
    check(!log.contains("from the block device"), "nothing from the disk", &log)?;
    let www = dig(port, "www.example.com", "A")?;
    check(www == "203.0.113.7", "www.example.com from the module, not the disk", &www)
}

fn vm_bad_zone_in_a_boot_module() -> Result {
    let dir = scratch("vm-module-badzone")?;
    let bad = format!("{ZONE}oops IN A 300.1.2.3\n");
    let tar = archive(&dir, &[("archive.test.zone", ZONE), ("example.com.zone", &bad)])?;
    vm_refuses(
        &content_vm("dns", Some(tar), None)?,
        &["dns: error: content from the boot module: example.com.zone:6: '300.1.2.3' is not an IPv4 address"],
    )
}

/// The offset of the header of `name` (as tar wrote it) in `tar`.
fn header_of(tar: &[u8], name: &str) -> Result<usize> {
    let mut field = [0u8; 100];
    field[..name.len()].copy_from_slice(name.as_bytes());
    (0..tar.len() / 512)
        .map(|i| i * 512)
        .find(|&at| tar[at..at + 100] == field && &tar[at + 257..at + 262] == b"ustar")
        .ok_or_else(|| format!("no header for {name}").into())
}

/// Recomputes the checksum of the header at `at`, as tar would.
fn fix_checksum(tar: &mut [u8], at: usize) {
    tar[at + 148..at + 156].fill(b' ');
    let sum: u32 = tar[at..at + 512].iter().map(|x| *x as u32).sum();
    tar[at + 148..at + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Bad archives given as a boot module: cut inside a file's data, cut
/// before the end-of-archive block, a `..` name, a huge size field, and
/// no archive at all. Each ends the VM with exit status 1 and one line
/// naming the entry and the problem, never a panic.
fn vm_bad_archives_in_a_boot_module() -> Result {
    let dir = scratch("vm-module-corrupt")?;
    let big = "x".repeat(5000);
    let tar = archive(&dir, &[("example.com.zone", ZONE), ("zz-big.txt", &big)])?;
    let bytes = std::fs::read(&tar)?;
    let zone_at = header_of(&bytes, "./example.com.zone")?;
    let big_at = header_of(&bytes, "./zz-big.txt")?;
    // The end of the last entry's data, where the end-of-archive blocks start.
    let end = [zone_at + 512 + 512, big_at + 512 + 5120].into_iter().max().unwrap_or(0);
    let module = |name: &str, f: &dyn Fn(&mut Vec<u8>)| -> Result<xtask::Vm> {
        let mut b = bytes.clone();
        f(&mut b);
        let path = dir.join(name);
        std::fs::write(&path, b)?;
        content_vm("dns", Some(path), None)
    };
    let prefix = "dns: error: content archive in the boot module: ";
    // Not at a sector boundary: a module's length is the file's.
    let cut = module("cut.tar", &|b| b.truncate(big_at + 512 + 1000 + 7))?;
    vm_refuses(
        &cut,
        &[prefix, &format!("tar entry './zz-big.txt' at byte {big_at}: its 5000 bytes of data run past the end")],
    )?;
    let no_end = module("noend.tar", &|b| b.truncate(end))?;
    vm_refuses(&no_end, &[prefix, &format!("tar archive at byte {end}: archive is truncated")])?;
    let dotdot = module("dotdot.tar", &|b| {
        b[zone_at..zone_at + 18].copy_from_slice(b"../example.com.zo\0");
        fix_checksum(b, zone_at);
    })?;
    vm_refuses(
        &dotdot,
        &[prefix, &format!("tar entry '../example.com.zo' at byte {zone_at}: name with a '..' component")],
    )?;
    let huge = module("huge.tar", &|b| {
        b[zone_at + 124..zone_at + 136].copy_from_slice(b"77777777777\0");
        fix_checksum(b, zone_at);
    })?;
    vm_refuses(
        &huge,
        &[prefix, &format!("tar entry './example.com.zone' at byte {zone_at}: its 8589934591 bytes of data run past")],
    )?;
    let not_tar = module("not-tar.bin", &|b| b.iter_mut().for_each(|x| *x = x.wrapping_mul(7) ^ 0x5a))?;
    vm_refuses(&not_tar, &[&format!("{prefix}tar archive at byte 0: not a ustar header (no 'ustar' magic)")])
}

/// Writes a site of `files` (name, bytes) under `dir/content` and archives it.
fn site_archive(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    for (path, bytes) in files {
        let p = dir.join("content").join(path);
        std::fs::create_dir_all(p.parent().expect("parent"))?;
        std::fs::write(&p, bytes)?;
    }
    archive(dir, &[])
}

/// `len` bytes with no repeating pattern (a misplaced page would show).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The web image with its site as `-initrd content.tar` serves the
/// archive's pages, not the embedded site.
fn vm_web_from_a_boot_module() -> Result {
    let dir = scratch("vm-web-module")?;
    let files = [
        ("index.html".to_string(), b"<title>from the boot module</title>\n".to_vec()),
        ("docs/index.html".to_string(), b"<p>module docs</p>\n".to_vec()),
    ];
    let tar = site_archive(&dir, &files)?;
    let port = free_port();
    let mut vm = content_vm("web", Some(tar), None)?;
    vm.forwards = vec![format!("tcp:127.0.0.1:{port}-:80").parse()?];
    let (_qemu, log) = serving(&vm);
    check(log.contains("content: 2 files") && log.contains("from the boot module"), "content logged", &log)?;
    check(log.contains("site: 2 files") && log.contains("(content from the boot module)"), "site logged", &log)?;
    let base = format!("http://127.0.0.1:{port}");
    let page = curl(&[&format!("{base}/")])?;
    check(page == "<title>from the boot module</title>\n", "GET / from the module", &page)?;
    let docs = curl(&["-L", &format!("{base}/docs/")])?;
    check(docs == "<p>module docs</p>\n", "a directory's index", &docs)?;
    let gone = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/logo.svg")])?;
    check(gone == "404", "the embedded site is not served", &gone)
}

/// A site of about 6 MiB as the boot module of a 64 MiB web VM: the app
/// serves the module's bytes in place, and every file comes back byte for
/// byte.
fn vm_web_large_site_from_a_boot_module() -> Result {
    let dir = scratch("vm-web-large")?;
    let mut files = vec![
        ("index.html".to_string(), b"<title>large</title>\n".to_vec()),
        ("big/two-mib-and-three.bin".to_string(), noise((2 << 20) + 3, 1)),
        ("big/one-mib.bin".to_string(), noise(1 << 20, 2)),
        ("big/half-mib-less-one.bin".to_string(), noise((512 << 10) - 1, 3)),
        ("text/words.txt".to_string(), "all work and no play\n".repeat(15_000).into_bytes()),
    ];
    for i in 0..16 {
        files.push((format!("assets/{i:02}/part.bin"), noise((128 << 10) + i * 1000 + 1, 10 + i as u64)));
    }
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let tar = site_archive(&dir, &files)?;
    let port = free_port();
    let mut vm = content_vm("web", Some(tar), None)?;
    vm.memory_mib = 64;
    vm.forwards = vec![format!("tcp:127.0.0.1:{port}-:80").parse()?];
    let (qemu, log) = serving(&vm);
    let want = format!("site: {} files, {total} bytes (content from the boot module)", files.len());
    check(log.contains(&want), &format!("site logged as {want:?}"), &log)?;
    eprintln!("  {} files, {total} bytes in a 64 MiB VM", files.len());
    let got = dir.join("got");
    for (path, bytes) in &files {
        let url = format!("http://127.0.0.1:{port}/{path}");
        let code = curl(&["-o", &got.display().to_string(), "-w", "%{http_code}", &url])?;
        check(code == "200", &format!("GET /{path}"), &code)?;
        let body = std::fs::read(&got)?;
        check(
            &body == bytes,
            &format!("/{path}: {} bytes served, {} in the archive, not the same bytes", body.len(), bytes.len()),
            "",
        )?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    drop(qemu);
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let tar = Prereq::program("tar", "--version", "tar");
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let curl = Prereq::program("curl", "--version", "curl");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let tests = vec![
        t("dns_serves_zones_from_the_archive", dns_serves_zones_from_the_archive, &[&tar, &dig]),
        t("dns_embedded_without_content", dns_embedded_without_content, &[&dig]),
        t("dns_bad_zone_stops_the_boot", dns_bad_zone_stops_the_boot, &[&tar]),
        t("corrupt_archives_are_refused", corrupt_archives_are_refused, &[&tar]),
        t("web_serves_the_archive", web_serves_the_archive, &[&tar, &curl]),
        t("vm_dns_from_a_virtio_blk_archive", vm_dns_from_a_virtio_blk_archive, &[&qemu, &tar, &dig]),
        t("vm_dns_from_a_boot_module", vm_dns_from_a_boot_module, &[&qemu, &tar, &dig]),
        t("vm_boot_module_comes_before_the_disk", vm_boot_module_comes_before_the_disk, &[&qemu, &tar, &dig]),
        t("vm_bad_zone_in_a_boot_module", vm_bad_zone_in_a_boot_module, &[&qemu, &tar]),
        t("vm_bad_archives_in_a_boot_module", vm_bad_archives_in_a_boot_module, &[&qemu, &tar]),
        t("vm_web_from_a_boot_module", vm_web_from_a_boot_module, &[&qemu, &tar, &curl]),
        t("vm_web_large_site_from_a_boot_module", vm_web_large_site_from_a_boot_module, &[&qemu, &tar, &curl]),
    ];
    libtest_mimic::run(&args, tests).exit();
}
