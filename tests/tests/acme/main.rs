//! ACME end to end: the web unikernel (hosted) gets its HTTPS certificate
//! from Pebble, a test ACME CA, on loopback. Pebble really fetches the
//! HTTP-01 answer from the web app's plain-HTTP port (its `httpPort`;
//! names resolve to 127.0.0.1 through pebble-challtestsrv's DNS), and curl
//! checks the served chain against Pebble's root. The same with TLS-ALPN-01
//! on the HTTPS port. Then: a short-lived
//! certificate renewed while requests keep succeeding; Pebble stopped
//! during renewal (the old certificate stays, retries are logged); a
//! restart with `--acme-state` that reuses the stored certificate without
//! Pebble; a hostile server whose bad answers give errors and retries.
//! Pebble's own HTTPS uses a CA made here with openssl (the Debian
//! package ships no test certificates). Tests whose tools are missing are
//! ignored, or fail under CI=true.

mod pebble;

use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::Arguments;
use morgana_tests::prereq::{trial, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};
use pebble::{check, fetch, pebble_tls, run_ok, tmp, web, Pebble, Result, NAME};

fn first_certificate() -> Result {
    let dir = tmp("first");
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, http, None)?;
    // With the redirect, the answer must still come before it (the CA
    // would follow it to HTTPS, where there is no answer).
    let mut web = web(&pebble, http, https, &["--redirect-https"]);
    web.wait_for("temporary self-signed certificate for web.acme.test", Duration::from_secs(60));
    // Before the certificate arrives HTTPS serves a self-signed one,
    // which Pebble's root does not vouch for; afterwards it must.
    let start = Instant::now();
    web.wait_for("ACME: new certificate for web.acme.test in use", Duration::from_secs(60));
    eprintln!("certificate after {:?}", start.elapsed());
    fetch(&pebble.root(), https)?;
    check(
        pebble.pebble.output().iter().any(|l| {
            l.contains(&format!("Attempting to validate w/ HTTP: http://{NAME}:{http}/.well-known/acme-challenge/"))
        }),
        "Pebble fetched the HTTP-01 answer from the web app",
    )?;
    // Once validated the answer is withdrawn; unknown tokens are 404.
    let code = run_ok(
        Command::new("curl")
            .args(["-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{http}/.well-known/acme-challenge/unknownTokenAAAAAAAAAAAAAAAAAAAAAA")),
    )?;
    check(code == "404", &format!("unknown token: {code}"))?;
    check(dir.join("pebble-root.pem").exists(), "root kept")?;
    Ok(())
}

/// TLS-ALPN-01 (RFC 8737): Pebble's `tlsPort` is the web app's HTTPS
/// port, its `httpPort` a port where nothing listens, so only the
/// `acme-tls/1` handshake can prove the name.
fn tls_alpn_01() -> Result {
    let dir = tmp("alpn");
    let (http, https, nothing) = (free_port(), free_port(), free_port());
    let pebble = Pebble::start_with_ports(&dir, nothing, https, None)?;
    let mut web = web(&pebble, http, https, &["--acme-challenge", "tls-alpn-01"]);
    web.wait_for("ACME: web.acme.test validated (tls-alpn-01)", Duration::from_secs(60));
    web.wait_for("ACME: new certificate for web.acme.test in use", Duration::from_secs(60));
    fetch(&pebble.root(), https)?;
    check(
        !pebble.pebble.output().iter().any(|l| l.contains("Attempting to validate w/ HTTP")),
        "no HTTP-01 validation",
    )?;
    // With no challenge pending, `acme-tls/1` gets no certificate at all.
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{https}"), "-servername", NAME, "-alpn", "acme-tls/1"])
        .stdin(std::process::Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    check(text.contains("alert") && !text.contains("BEGIN CERTIFICATE"), &format!("acme-tls/1 refused: {text}"))?;
    Ok(())
}

fn renewal_keeps_serving() -> Result {
    let dir = tmp("renew");
    let (http, https) = (free_port(), free_port());
    // 20 s certificates renewed at half their life: every 10 s.
    let pebble = Pebble::start(&dir, http, Some(20))?;
    let mut web = web(&pebble, http, https, &["--acme-renew-at", "50"]);
    web.wait_for("ACME: new certificate for web.acme.test in use", Duration::from_secs(60));
    let first = fetch(&pebble.root(), https)?;
    // A connection opened now and used after the renewal.
    let mut held = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{https}"), "-servername", NAME])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    // Requests all along; the served certificate must change.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut requests = 0;
    loop {
        let now = fetch(&pebble.root(), https)?;
        requests += 1;
        if now != first {
            eprintln!("renewed after {requests} requests: {first} -> {now}");
            break;
        }
        check(Instant::now() < deadline, "the certificate was renewed within 40 s")?;
        std::thread::sleep(Duration::from_millis(300));
    }
    check(web.output().iter().filter(|l| l.contains("ACME: new certificate for")).count() >= 2, "two issuances")?;
    // The connection from before the renewal still works.
    use std::io::{Read as _, Write as _};
    let mut stdin = held.stdin.take().ok_or("s_client stdin")?;
    stdin.write_all(format!("GET / HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n").as_bytes())?;
    let mut stdout = held.stdout.take().ok_or("s_client stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = held.kill();
    let _ = held.wait();
    let out = String::from_utf8_lossy(&reader.join().map_err(|_| "reader")?).into_owned();
    check(out.starts_with("HTTP/1.1 200"), &format!("the connection opened before the renewal: {out:.200}"))?;
    Ok(())
}

fn failed_renewal_keeps_the_certificate() -> Result {
    let dir = tmp("fail");
    let (http, https) = (free_port(), free_port());
    // 90 s certificates renewed after 10%: 9 s in, while Pebble is gone.
    let pebble = Pebble::start(&dir, http, Some(90))?;
    let root = pebble.root();
    let mut web = web(&pebble, http, https, &["--acme-renew-at", "10"]);
    web.wait_for("ACME: new certificate for web.acme.test in use", Duration::from_secs(60));
    let before = fetch(&root, https)?;
    pebble.stop();
    let line = web.wait_for("ACME: attempt 1 failed", Duration::from_secs(30));
    check(line.contains("retrying in 5 s; the current certificate stays"), &line)?;
    let line = web.wait_for("ACME: attempt 2 failed", Duration::from_secs(30));
    check(line.contains("retrying in 10 s"), &format!("backoff doubles: {line}"))?;
    check(fetch(&root, https)? == before, "the old certificate is still served")?;
    check(web.is_running(), "the web app is still running")?;
    Ok(())
}

fn restart_reuses_the_stored_certificate() -> Result {
    let dir = tmp("state");
    let state = dir.join("state");
    let state_arg = state.to_string_lossy().into_owned();
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start(&dir, http, None)?;
    let root = pebble.root();
    let metrics = free_port();
    let metrics_arg = format!("127.0.0.1:{metrics}");
    let mut first = web(&pebble, http, https, &["--acme-state", &state_arg, "--metrics", &metrics_arg]);
    first.wait_for("ACME: certificate stored in", Duration::from_secs(60));
    let expiry = fetch(&root, https)?;
    first.wait_for("renewal in", Duration::from_secs(10));
    let scrape =
        run_ok(Command::new("curl").args(["-sS", "--max-time", "10"]).arg(format!("http://{metrics_arg}/metrics")))?;
    let value = |name: &str| -> Option<f64> {
        scrape.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    check(value("morgana_acme_orders_total") == Some(1.0), &format!("one order: {scrape}"))?;
    check(value("morgana_acme_order_failures_total") == Some(0.0), &format!("no failure: {scrape}"))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as f64;
    let not_after = value("morgana_acme_certificate_not_after_seconds").unwrap_or(0.0);
    check(not_after > now + 86_400.0, &format!("the expiry, years ahead: {scrape}"))?;
    drop(first);
    for f in ["account.key", "cert.key", "cert.pem"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(state.join(f))?.permissions());
        check(mode & 0o077 == 0, &format!("{f} is private: {mode:o}"))?;
    }
    // Pebble is gone: the restart must not need it.
    let dir_url = pebble.directory();
    pebble.stop();
    let mut cmd = Command::new(app_binary("web"));
    cmd.args(["--http", &format!("127.0.0.1:{http}"), "--https", &format!("127.0.0.1:{https}")]);
    cmd.args(["--acme-directory", &dir_url, "--acme-domain", NAME, "--acme-state", &state_arg]);
    cmd.arg("--acme-ca").arg(dir.join("ca.pem"));
    let mut second = Running::start(cmd);
    second.wait_for("ACME: reusing the stored certificate for web.acme.test", Duration::from_secs(30));
    check(fetch(&root, https)? == expiry, "the same certificate after the restart")?;
    std::thread::sleep(Duration::from_secs(1));
    check(!second.output().iter().any(|l| l.contains("ordering a certificate")), "no order after the restart")?;
    Ok(())
}

/// An "ACME server" that answers badly: `openssl s_server -HTTP` sends
/// files holding whole HTTP responses. Each answer must give a logged
/// error and a retry, with the web app still serving.
fn hostile_server_gives_errors_and_retries() -> Result {
    let dir = tmp("hostile");
    pebble_tls(&dir)?;
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    let response = |ctype: &str, len: Option<usize>, body: &[u8]| {
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\n").into_bytes();
        if let Some(n) = len {
            r.extend(format!("Content-Length: {n}\r\n").bytes());
        }
        r.extend(b"\r\n");
        r.extend(body);
        r
    };
    let big = vec![b'{'; 1 << 20];
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", response("application/json", Some(9), br#"{"newNonc"#), "directory: EOF while parsing"),
        ("html", response("text/html", Some(2), b"{}"), "content type \"text/html\", not JSON"),
        ("huge", response("application/json", Some(big.len()), &big), "bytes is over 131072"),
        ("endless", response("application/json", None, &big), "response larger than"),
    ];
    for (name, body, _) in &cases {
        std::fs::write(www.join(name), body)?;
    }
    let port = free_port();
    let mut server = Command::new("openssl");
    server.current_dir(&www).args(["s_server", "-quiet", "-HTTP", "-accept", &format!("127.0.0.1:{port}")]);
    server.arg("-cert").arg(dir.join("cert.pem")).arg("-key").arg(dir.join("key.pem"));
    let _server = Running::start(server);
    std::thread::sleep(Duration::from_millis(500));
    for (name, _, want) in &cases {
        let (http, https) = (free_port(), free_port());
        let mut cmd = Command::new(app_binary("web"));
        cmd.args(["--http", &format!("127.0.0.1:{http}"), "--https", &format!("127.0.0.1:{https}")]);
        cmd.args(["--acme-directory", &format!("https://127.0.0.1:{port}/{name}"), "--acme-domain", NAME]);
        cmd.arg("--acme-ca").arg(dir.join("ca.pem"));
        let mut web = Running::start(cmd);
        let line = web.wait_for("ACME: attempt 1 failed", Duration::from_secs(30));
        check(line.contains(want) && line.contains("retrying in 5 s"), &format!("{name}: want {want:?}: {line}"))?;
        web.wait_for("ACME: ordering a certificate for web.acme.test", Duration::from_secs(15));
        // Meanwhile HTTPS serves the temporary self-signed certificate.
        let out = Command::new("curl")
            .args(["-sSkv", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["--resolve", &format!("{NAME}:{https}:127.0.0.1"), &format!("https://{NAME}:{https}/")])
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        check(out.stdout == b"200" && web.is_running(), &format!("{name}: still serving HTTPS: {err}"))?;
        check(
            err.contains(&format!("subject: CN={NAME}")) && err.contains(&format!("issuer: CN={NAME}")),
            &format!("{name}: the temporary self-signed certificate: {err}"),
        )?;
    }
    Ok(())
}

/// The VM image: Pebble's test CA embedded at build time
/// (`MORGANA_WEB_ACME_CA`), the directory reached at 10.0.2.2 through QEMU's
/// user networking, the HTTP-01 fetch forwarded to the guest's port 80.
/// Nothing is kept: the log says the certificate is obtained at every boot.
fn vm_certificate_at_boot() -> Result {
    let dir = tmp("vm");
    pebble_tls(&dir)?;
    // Its own build (the CA path is part of the image), copied away at once.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(xtask::workspace())
        .args(["build", "--quiet", "--release", "-p", "web", "--target", "x86_64-unknown-none"])
        .env("MORGANA_WEB_ACME_CA", dir.join("ca.pem"))
        .env_remove("RUSTFLAGS")
        .status()?;
    check(status.success(), "building the web image with the ACME CA")?;
    let image = dir.join("web.img");
    run_ok(Command::new("strip").arg("-o").arg(&image).arg(xtask::debug_elf("web", true)))?;
    let (http, https) = (free_port(), free_port());
    let pebble = Pebble::start_with_ports(&dir, http, free_port(), None)?;
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("tcp:127.0.0.1:{http}-:80").parse()?, format!("tcp:127.0.0.1:{https}-:443").parse()?];
    vm.memory_mib = 128;
    vm.cmdline = format!("--acme-directory=https://10.0.2.2:{}/dir --acme-domain={NAME}", pebble.acme_port);
    let mut q = Running::start(vm.command());
    q.wait_for("the certificate is obtained anew at every start", Duration::from_secs(120));
    q.wait_for("ACME: new certificate for web.acme.test in use", Duration::from_secs(180));
    fetch(&pebble.root(), https)?;
    check(
        pebble.pebble.output().iter().any(|l| l.contains("Attempting to validate w/ HTTP")),
        "Pebble fetched the HTTP-01 answer from the VM",
    )?;
    Ok(())
}

fn bad_flags_are_refused() -> Result {
    let garbage = tmp("garbage-ca");
    std::fs::write(garbage.join("ca.pem"), "not a certificate")?;
    let garbage = garbage.join("ca.pem").to_string_lossy().into_owned();
    let dir = "https://127.0.0.1:1/dir";
    let cases: [(&[&str], &str); 8] = [
        (&["--acme-directory", dir, "--acme-domain", NAME, "--acme-ca", "/nonexistent/ca.pem"], "--acme-ca"),
        (&["--acme-directory", dir, "--acme-domain", NAME, "--acme-ca", &garbage], "no root certificate"),
        (&["--acme-domain", NAME], "need --acme-directory"),
        (&["--acme-directory", "https://127.0.0.1:1/dir", "--acme-ca", "/x"], "at least one --acme-domain"),
        (&["--acme-directory", "https://127.0.0.1:1/dir", "--acme-domain", NAME], "needs --acme-ca"),
        (&["--acme-directory", "https://ca.example/dir", "--acme-domain", NAME, "--acme-ca", "/x"], "IP address"),
        (&["--acme-directory", "https://127.0.0.1:1/d", "--acme-domain", "a b", "--acme-ca", "/x"], "not a DNS name"),
        (&["--sandbox", "--acme-directory", dir, "--acme-domain", NAME, "--acme-ca", "/x"], "which --sandbox forbids"),
    ];
    for (args, want) in cases {
        let out = Command::new(app_binary("web"))
            .args(["--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
            .args(args)
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        check(!out.status.success() && err.contains(want), &format!("{args:?}: want {want:?}, got {err}"))?;
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let pebble = Prereq::program("pebble", "-h", "pebble");
    let curl = Prereq::program("curl", "--version", "curl");
    let openssl = Prereq::program("openssl", "version", "openssl");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let all = [&pebble, &curl, &openssl];
    let tests = vec![
        trial("acme_first_certificate_from_pebble", &all, first_certificate),
        trial("acme_tls_alpn_01", &all, tls_alpn_01),
        trial("acme_renewal_keeps_serving", &all, renewal_keeps_serving),
        trial("acme_failed_renewal_keeps_the_certificate", &all, failed_renewal_keeps_the_certificate),
        trial("acme_restart_reuses_the_stored_certificate", &all, restart_reuses_the_stored_certificate),
        trial(
            "acme_hostile_server_gives_errors_and_retries",
            &[&curl, &openssl],
            hostile_server_gives_errors_and_retries,
        ),
        trial("acme_bad_flags_are_refused", &[], bad_flags_are_refused),
        trial("acme_vm_certificate_at_boot", &[&pebble, &curl, &openssl, &qemu], vm_certificate_at_boot),
    ];
    libtest_mimic::run(&args, tests).exit();
}
