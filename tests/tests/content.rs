//! Content from outside the image, driven like a user: a directory made
//! into an archive with the real `tar --format=ustar`, given to the hosted
//! DNS and web apps with `--block FILE`, queried with `dig` and `curl`; bad
//! zones and corrupt archives stop the app with a clear message and a
//! non-zero exit; and the DNS VM image (QEMU TCG) with the archive as its
//! virtio-blk disk. Tests whose tools are missing are reported as ignored
//! (under `CI=true`, failed).

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
    ];
    libtest_mimic::run(&args, tests).exit();
}
