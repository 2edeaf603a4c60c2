//! Pebble (with pebble-challtestsrv as its DNS) and the web app under it,
//! for the ACME tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use libtest_mimic::Failed;
use morgana_tests::process::{app_binary, free_port, Running};

pub type Result<T = ()> = std::result::Result<T, Failed>;

/// The name the certificate is for (pebble-challtestsrv answers every A
/// query with 127.0.0.1).
pub const NAME: &str = "web.acme.test";

pub fn check(cond: bool, what: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-acme-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    check(out.status.success(), &format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A CA and a certificate for 127.0.0.1 signed by it, for Pebble's HTTPS
/// (kept if `dir` has them already).
pub fn pebble_tls(dir: &Path) -> Result {
    if dir.join("cert.pem").exists() {
        return Ok(());
    }
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    run_ok(
        Command::new("openssl").args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]).args([
            "-nodes",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=Morgana test CA for Pebble",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]),
    )?;
    run_ok(
        Command::new("openssl").args(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]).args([
            "-keyout",
            &p("key.pem"),
            "-out",
            &p("req.csr"),
            "-subj",
            "/CN=localhost",
        ]),
    )?;
    // 10.0.2.2: the host as a QEMU guest reaches it.
    let ext = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:10.0.2.2\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("ext.cnf"), ext)?;
    run_ok(Command::new("openssl").args(["x509", "-req", "-in", &p("req.csr"), "-CA", &p("ca.pem")]).args([
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-out",
        &p("cert.pem"),
        "-days",
        "2",
        "-extfile",
        &p("ext.cnf"),
    ]))?;
    Ok(())
}

/// Pebble and its DNS, for a web app whose plain HTTP is on `http_port`.
pub struct Pebble {
    pub dir: PathBuf,
    pub pebble: Running,
    _dns: Running,
    pub acme_port: u16,
}

impl Pebble {
    /// `validity`: the certificates' lifetime in seconds (Pebble's default
    /// is five years).
    pub fn start(dir: &Path, http_port: u16, validity: Option<u64>) -> Result<Pebble> {
        Pebble::start_with_ports(dir, http_port, free_port(), validity)
    }

    /// Validation of HTTP-01 on `http_port`, of TLS-ALPN-01 on `tls_port`.
    pub fn start_with_ports(dir: &Path, http_port: u16, tls_port: u16, validity: Option<u64>) -> Result<Pebble> {
        pebble_tls(dir)?;
        let (acme_port, mgmt_port, dns_port) = (free_port(), free_port(), free_port());
        let validity = validity.map(|v| format!(r#", "certificateValidityPeriod": {v}"#)).unwrap_or_default();
        let config = format!(
            r#"{{"pebble": {{"listenAddress": "127.0.0.1:{acme_port}", "managementListenAddress": "127.0.0.1:{mgmt_port}",
            "certificate": "{d}/cert.pem", "privateKey": "{d}/key.pem", "httpPort": {http_port}, "tlsPort": {tls_port},
            "ocspResponderURL": "", "externalAccountBindingRequired": false{validity}}}}}"#,
            d = dir.display(),
        );
        std::fs::write(dir.join("pebble.json"), config)?;
        let mut dns = Command::new("pebble-challtestsrv");
        dns.args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", &format!("127.0.0.1:{dns_port}")]);
        dns.args([
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_port()),
        ]);
        let mut dns = Running::start(dns);
        dns.wait_for("Creating TCP and UDP DNS-01 challenge server", Duration::from_secs(10));
        let mut cmd = Command::new("pebble");
        cmd.arg("-config").arg(dir.join("pebble.json")).args(["-dnsserver", &format!("127.0.0.1:{dns_port}")]);
        // Real validation, every time: no sleeps, no reused authorizations,
        // and never PEBBLE_VA_ALWAYS_VALID.
        cmd.env("PEBBLE_VA_NOSLEEP", "1").env("PEBBLE_AUTHZREUSE", "0").env_remove("PEBBLE_VA_ALWAYS_VALID");
        let mut pebble = Running::start(cmd);
        pebble.wait_for("ACME directory available", Duration::from_secs(10));
        let p = Pebble { dir: dir.into(), pebble, _dns: dns, acme_port };
        // The root that issues the web app's certificates (made at start).
        let root = run_ok(
            Command::new("curl")
                .args(["-sS", "--max-time", "10", "--cacert"])
                .arg(dir.join("ca.pem"))
                .arg(format!("https://127.0.0.1:{mgmt_port}/roots/0")),
        )?;
        check(root.contains("BEGIN CERTIFICATE"), "Pebble's root from /roots/0")?;
        std::fs::write(dir.join("pebble-root.pem"), root)?;
        Ok(p)
    }

    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.join("pebble-root.pem")
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill").arg(self.pebble.pid().to_string()).status();
        let _ = self.pebble.wait_exit(Duration::from_secs(10));
    }
}

/// The web app with ACME from `pebble`.
pub fn web(pebble: &Pebble, http: u16, https: u16, extra: &[&str]) -> Running {
    let mut cmd = Command::new(app_binary("web"));
    cmd.args(["--http", &format!("127.0.0.1:{http}"), "--https", &format!("127.0.0.1:{https}")]);
    cmd.args(["--acme-directory", &pebble.directory(), "--acme-domain", NAME, "--acme-email", "ops@acme.test"]);
    cmd.arg("--acme-ca").arg(pebble.dir.join("ca.pem")).args(extra);
    Running::start(cmd)
}

/// `curl https://NAME:port/` verifying the chain against `root`: the
/// certificate's expiry date as curl shows it.
pub fn fetch(root: &Path, port: u16) -> Result<String> {
    let out = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(root)
        .args(["--resolve", &format!("{NAME}:{port}:127.0.0.1"), &format!("https://{NAME}:{port}/")])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(out.status.success(), &format!("curl over HTTPS with Pebble's root: {err}"))?;
    check(out.stdout == b"200", &format!("status {:?}", String::from_utf8_lossy(&out.stdout)))?;
    check(err.contains("issuer: CN=Pebble Intermediate CA"), &format!("issued by Pebble: {err}"))?;
    let expiry = err.lines().find(|l| l.contains("expire date:")).ok_or("curl shows the expiry")?;
    Ok(expiry.trim().to_string())
}
