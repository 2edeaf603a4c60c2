//! The web unikernel with real clients: curl over HTTP and HTTPS (a test CA
//! generated here), openssl s_client for TLS versions and ALPN, a table of
//! hostile requests, a slowloris client, the connection cap, the VM image
//! under QEMU, and headless Chromium rendering the site from the VM.
//!
//! The test target `web_rustcrypto` (`web_rustcrypto.rs`) runs the hosted
//! tests again against the web app built with its `rustcrypto` feature: the
//! VM image's TLS crypto instead of ring.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, app_binary_with, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

fn check(cond: bool, what: &str, detail: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(format!("{what}:\n{detail}").into())
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A CA and a localhost certificate it signed, made with openssl.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tag: &str) -> Result<Pki> {
        let dir = std::env::temp_dir().join(format!("morgana-pki-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let d = |f: &str| dir.join(f);
        let ossl = |args: &[&str]| -> Result { run(Command::new("openssl").args(args).current_dir(&dir)).map(|_| ()) };
        ossl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Morgana test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ])?;
        ossl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ])?;
        std::fs::write(d("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
        ossl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ])?;
        Ok(Pki { dir })
    }
    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

struct Web {
    p: Running,
    http: u16,
    https: u16,
}

/// The TLS crypto the web app under test uses (what it logs at start).
fn crypto() -> &'static str {
    if env!("CARGO_CRATE_NAME") == "web_rustcrypto" {
        "rustcrypto"
    } else {
        "ring"
    }
}

/// The web app's binary: the default build, or for `web_rustcrypto` the
/// build with the `rustcrypto` feature.
fn web_binary() -> PathBuf {
    match crypto() {
        "ring" => app_binary("web"),
        other => app_binary_with("web", other),
    }
}

fn start_web(pki: Option<&Pki>, extra: &[&str]) -> Result<Web> {
    let (http, https) = (free_port(), free_port());
    let mut cmd = Command::new(web_binary());
    cmd.args(["--http", &format!("127.0.0.1:{http}"), "--https", &format!("127.0.0.1:{https}")]);
    if let Some(pki) = pki {
        cmd.args(["--cert", &pki.path("server.pem"), "--key", &pki.path("server.key")]);
    }
    cmd.args(extra);
    let mut p = Running::start(cmd);
    p.wait_for("ready to serve", Duration::from_secs(30));
    let want = format!("HTTPS crypto: {}", crypto());
    if !extra.contains(&"--no-https") && !p.output().iter().any(|l| l.contains(&want)) {
        p.wait_for(&want, Duration::from_secs(5));
    }
    Ok(Web { p, http, https })
}

fn curl(args: &[&str]) -> Result<String> {
    let out = Command::new("curl").args(["-s", "-S", "--max-time", "20"]).args(args).output()?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn status(args: &[&str]) -> Result<String> {
    let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    a.extend_from_slice(args);
    curl(&a)
}

/// The checks shared by the hosted and the VM server, over `base`
/// (http://... or https://...), with `ca` for HTTPS.
fn curl_suite(base: &str, extra: &[&str]) -> Result {
    let with = |args: &[&str]| -> Vec<String> { extra.iter().chain(args).map(|s| s.to_string()).collect() };
    let s = |args: &[&str]| -> Result<String> {
        let a = with(args);
        status(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let page = {
        let a = with(&[&format!("{base}/")]);
        curl(&a.iter().map(String::as_str).collect::<Vec<_>>())?
    };
    check(page.contains("<title>Morgana unikernel web server</title>"), "GET /", &page)?;
    check(s(&[&format!("{base}/nope")])? == "404", "404", "")?;
    check(s(&["-X", "POST", &format!("{base}/")])? == "405", "405", "")?;
    check(s(&["-I", &format!("{base}/style.css")])? == "200", "HEAD", "")?;
    check(s(&[&format!("{base}/about")])? == "301", "301 to add the slash", "")?;
    check(s(&["-r", "0-9", &format!("{base}/")])? == "206", "206", "")?;
    check(s(&["-r", "99999-", &format!("{base}/")])? == "416", "416", "")?;
    // ETag → 304.
    let head = {
        let a = with(&["-I", &format!("{base}/")]);
        curl(&a.iter().map(String::as_str).collect::<Vec<_>>())?
    };
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: ").or_else(|| l.strip_prefix("ETag: ")))
        .unwrap_or("")
        .trim()
        .to_string();
    check(!etag.is_empty(), "ETag header", &head)?;
    check(s(&["-H", &format!("If-None-Match: {etag}"), &format!("{base}/")])? == "304", "304 on If-None-Match", &etag)?;
    // Keep-alive: two requests, one connection.
    let v = {
        let a = with(&["-v", "-o", "/dev/null", "-o", "/dev/null", &format!("{base}/"), &format!("{base}/about/")]);
        curl(&a.iter().map(String::as_str).collect::<Vec<_>>())?
    };
    check(v.contains("Re-using existing") || v.contains("Reusing existing"), "keep-alive reuse", &v)?;
    // Range body is exact.
    let body = {
        let a = with(&["-r", "2-5", &format!("{base}/")]);
        curl(&a.iter().map(String::as_str).collect::<Vec<_>>())?
    };
    check(body == "doct", "range body", &body)
}

fn hosted_curl() -> Result {
    let pki = Pki::new("curl")?;
    let w = start_web(Some(&pki), &[])?;
    curl_suite(&format!("http://127.0.0.1:{}", w.http), &[])?;
    let ca = pki.path("ca.pem");
    curl_suite(
        &format!("https://localhost:{}", w.https),
        &["--cacert", &ca, "--resolve", &format!("localhost:{}:127.0.0.1", w.https)],
    )?;
    // Precompressed variant.
    let h = curl(&["-I", "-H", "Accept-Encoding: gzip", &format!("http://127.0.0.1:{}/style.css", w.http)])?;
    check(h.to_ascii_lowercase().contains("content-encoding: gzip"), "gzip variant", &h)
}

/// `--redirect-https`: plain HTTP answers 301 to the same host, path and
/// query on the HTTPS listener's port; HTTPS serves the content.
fn redirect_https() -> Result {
    let pki = Pki::new("redirect")?;
    let w = start_web(Some(&pki), &["--redirect-https"])?;
    let (http, https) = (w.http, w.https);
    let resolve = |port: u16| format!("localhost:{port}:127.0.0.1");
    let head = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--resolve",
        &resolve(http),
        &format!("http://localhost:{http}/about/?x=1&y=%20z"),
    ])?;
    check(head.starts_with("HTTP/1.1 301"), "plain HTTP gets 301", &head)?;
    let location = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim()))
        .unwrap_or("");
    check(location == format!("https://localhost:{https}/about/?x=1&y=%20z"), "Location", &head)?;
    // An IP literal host keeps its form.
    let ip = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://127.0.0.1:{http}/style.css"),
    ])?;
    check(ip == format!("301 https://127.0.0.1:{https}/style.css"), "redirect for an IP host", &ip)?;
    // Following the redirect reaches the page over HTTPS.
    let ca = pki.path("ca.pem");
    let page = curl(&[
        "-L",
        "--cacert",
        &ca,
        "--resolve",
        &resolve(http),
        "--resolve",
        &resolve(https),
        "-w",
        "\n%{http_code} %{url_effective}",
        &format!("http://localhost:{http}/"),
    ])?;
    check(
        page.contains("<title>Morgana unikernel web server</title>")
            && page.ends_with(&format!("200 https://localhost:{https}/")),
        "redirect followed to the HTTPS page",
        &page,
    )
}

mod hostile;
mod resumption;
mod tls;
mod vm;

pub fn main() {
    let args = Arguments::from_args();
    let curl = Prereq::program("curl", "--version", "curl");
    let ossl = Prereq::program("openssl", "version", "openssl");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let chromium = Prereq::program("chromium", "--version", "chromium");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let mut tests = vec![
        t("curl_http_and_https_hosted", hosted_curl, &[&curl, &ossl]),
        t("redirect_https", redirect_https, &[&curl, &ossl]),
        t("tls_versions_alpn_and_refusals", tls::tls_versions_and_refusals, &[&ossl]),
        t("server_cipher_order_and_hsts", tls::server_cipher_order_and_hsts, &[&ossl, &curl]),
        t("session_resumption_hosted", resumption::hosted_resumption, &[&ossl]),
        t("hostile_requests_table", hostile::hostile_requests, &[]),
        t("slowloris_is_cut_off", hostile::slowloris, &[]),
        t("connection_cap", hostile::connection_cap, &[]),
        t("memory_budget", hostile::memory_budget, &[]),
        t("vm_image_curl_http_https", vm::vm_curl, &[&qemu, &curl, &ossl]),
        t("vm_without_entropy_refuses_https", vm::vm_without_entropy_refuses_https, &[&qemu]),
        t("vm_session_resumption", resumption::vm_resumption, &[&qemu, &ossl]),
        t("chromium_renders_site_from_vm", vm::chromium_renders_vm_site, &[&qemu, &chromium]),
    ];
    if crypto() == "ring" {
        tests.push(t("mismatched_key_refused", tls::mismatched_key_refused, &[&ossl]));
    } else {
        // The VM image has one crypto, tested by `web`.
        tests.retain(|t| !t.name().starts_with("vm_") && !t.name().contains("from_vm"));
    }
    libtest_mimic::run(&args, tests).exit();
}
