//! AES-GCM on the CPU's AES-NI and PCLMULQDQ in the VM images, under QEMU
//! TCG (never KVM). QEMU's `-cpu max` has AES-NI, PCLMULQDQ and SSSE3;
//! its default `qemu64` has none of them.
//!
//! * vmcheck `--check=aes-gcm` runs the TLS provider's self-test (NIST
//!   vectors, TLS records against RustCrypto's software suites) in the VM:
//!   with `-cpu max` the boot log and the result name the AES-NI engine;
//!   with `qemu64`, and with `max` minus PCLMULQDQ, they name software, and
//!   the answers are the same.
//! * The web image with `-cpu max` serves a 1 MiB file byte-exact to curl
//!   over TLS 1.3 and 1.2 with each AES-GCM suite, and openssl s_client
//!   completes handshakes on them.
//!
//! Without QEMU, curl, openssl or tar the tests are reported as ignored
//! (under `CI=true`, failed).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{free_port, Running};
use xtask::{app_exit_code, build_image, Vm};

type Result<T = ()> = std::result::Result<T, Failed>;

/// Under TCG on a shared machine a boot takes a few seconds; allow many.
const TIMEOUT: Duration = Duration::from_secs(90);

const HARDWARE: &str = "AES-NI and PCLMULQDQ";

fn check(cond: bool, what: &str, out: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}:\n{out}").into())
    }
}

/// vmcheck `--check=aes-gcm` on `cpu`: the exit code and the console.
fn self_test(cpu: Option<&str>) -> Result<(Option<i32>, String)> {
    let mut vm = Vm::new(build_image("vmcheck", true)?);
    vm.cpu = cpu.map(String::from);
    vm.cmdline = "--check=aes-gcm".into();
    let mut p = Running::start(vm.command());
    let status = p.wait_status(TIMEOUT);
    Ok((app_exit_code(status), p.output().join("\n")))
}

fn self_test_on_aes_ni() -> Result {
    let (code, log) = self_test(Some("max"))?;
    check(code == Some(0), "exit 0", &log)?;
    check(log.contains(&format!("AES-GCM: {HARDWARE} (hardware)")), "the boot registered the engine", &log)?;
    check(
        log.contains(&format!(
            "aes-gcm: AES-GCM by {HARDWARE}: 8 of 8 NIST vectors, 3 of 3 TLS suites agree with software"
        )),
        "the self-test ran on the engine and passed",
        &log,
    )?;
    let rates: Vec<&str> = log.lines().filter(|l| l.contains(" seals ")).collect();
    check(rates.len() == 2, "sealing speeds logged", &log)?;
    eprintln!("  {}", rates.join("\n  "));
    Ok(())
}

fn self_test_without_aes_ni(cpu: Option<&str>) -> Result {
    let (code, log) = self_test(cpu)?;
    check(code == Some(0), "exit 0", &log)?;
    check(
        log.contains("AES-GCM: software (the CPU lacks AES-NI, PCLMULQDQ or SSSE3)"),
        "the boot fell back to software",
        &log,
    )?;
    check(
        log.contains("aes-gcm: AES-GCM by software (RustCrypto): 8 of 8 NIST vectors, 3 of 3 TLS suites agree"),
        "the same answers in software",
        &log,
    )
}

/// A content archive with a 1 MiB file of fixed pseudo-random bytes.
fn content() -> Result<(PathBuf, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("morgana-aesni-{}", std::process::id()));
    let files = dir.join("content");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&files)?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(files.join("big.bin"), &big)?;
    std::fs::write(files.join("index.html"), "<title>aes-ni</title>\n")?;
    let tar = dir.join("content.tar");
    let ok = Command::new("tar").args(["--format=ustar", "-cf"]).arg(&tar).arg("-C").arg(&files).arg(".").status()?;
    check(ok.success(), "tar", "")?;
    Ok((tar, big))
}

/// curl `url` with `args`, returning the body and curl's verbose log.
fn curl(args: &[&str], url: &str) -> Result<(Vec<u8>, String)> {
    let out = Command::new("curl").args(["-sS", "-k", "-v", "--max-time", "120"]).args(args).arg(url).output()?;
    Ok((out.stdout, String::from_utf8_lossy(&out.stderr).into_owned()))
}

fn web_https_on_aes_ni() -> Result {
    let (tar, big) = content()?;
    let https = free_port();
    let mut vm = Vm::new(build_image("web", true)?);
    vm.cpu = Some("max".into());
    vm.initrd = Some(tar);
    vm.forwards = vec![format!("tcp:127.0.0.1:{https}-:443").parse()?];
    let mut q = Running::start(vm.command());
    q.wait_for("ready to serve", TIMEOUT);
    let log = q.output().join("\n");
    check(log.contains(&format!("AES-GCM: {HARDWARE} (hardware)")), "the web image registered the engine", &log)?;
    let url = format!("https://127.0.0.1:{https}/big.bin");
    for (suite, args) in [
        ("TLS_AES_128_GCM_SHA256", &["--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"][..]),
        ("TLS_AES_256_GCM_SHA384", &["--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"]),
        ("ECDHE-ECDSA-AES128-GCM-SHA256", &["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        ("ECDHE-ECDSA-AES256-GCM-SHA384", &["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
    ] {
        let (body, verbose) = curl(args, &url)?;
        check(verbose.contains(suite), &format!("curl negotiated {suite}"), &verbose)?;
        check(body == big, &format!("the 1 MiB file byte-exact over {suite} ({} bytes came)", body.len()), &verbose)?;
    }
    for (flag, ciphers) in [("-ciphersuites", "TLS_AES_256_GCM_SHA384"), ("-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")] {
        let version = if flag == "-cipher" { "-tls1_2" } else { "-tls1_3" };
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{https}"), "-servername", "localhost"])
            .args([version, flag, ciphers])
            .stdin(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let name = if flag == "-cipher" { "ECDHE-ECDSA-AES128-GCM-SHA256" } else { ciphers };
        check(text.contains(&format!("Cipher is {name}")), &format!("openssl s_client on {name}"), &text)?;
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let curl = Prereq::program("curl", "--version", "curl");
    let ossl = Prereq::program("openssl", "version", "openssl");
    let tar = Prereq::program("tar", "--version", "tar");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let tests = vec![
        t("aes_gcm_self_test_on_aes_ni_cpu_max", self_test_on_aes_ni, &[&qemu]),
        t("aes_gcm_self_test_in_software_on_qemu64", || self_test_without_aes_ni(None), &[&qemu]),
        t(
            "aes_gcm_self_test_in_software_without_pclmulqdq",
            || self_test_without_aes_ni(Some("max,-pclmulqdq")),
            &[&qemu],
        ),
        t("web_vm_https_1mib_on_aes_ni", web_https_on_aes_ni, &[&qemu, &curl, &ossl, &tar]),
    ];
    libtest_mimic::run(&args, tests).exit();
}
