//! TLS versions, ALPN and refusals, with openssl s_client.

use super::*;

pub(super) fn s_client(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

pub(super) fn tls_versions_and_refusals() -> Result {
    let pki = Pki::new("tls")?;
    let mut w = start_web(Some(&pki), &[])?;
    let ca = pki.path("ca.pem");
    let t13 = s_client(w.https, &["-tls1_3", "-alpn", "http/1.1", "-CAfile", &ca])?;
    check(
        t13.contains("TLSv1.3")
            && t13.contains("ALPN protocol: http/1.1")
            && t13.contains("Verify return code: 0 (ok)"),
        "TLS 1.3 + ALPN",
        &t13,
    )?;
    let t12 = s_client(w.https, &["-tls1_2", "-alpn", "http/1.1", "-CAfile", &ca])?;
    check(t12.contains("Protocol  : TLSv1.2") && t12.contains("ALPN protocol: http/1.1"), "TLS 1.2 + ALPN", &t12)?;
    // OpenSSL 3 offers TLS 1.1 only at security level 0. The same client
    // must complete a TLS 1.2 handshake, so a client that cannot connect at
    // all fails here rather than pass as "refused".
    let old_tls = ["-cipher", "DEFAULT:@SECLEVEL=0", "-msg", "-CAfile", &ca];
    let t12 = s_client(w.https, &[&["-tls1_2"][..], &old_tls].concat())?;
    check(
        t12.contains("Protocol  : TLSv1.2") && !t12.contains("Cipher is (NONE)"),
        "TLS 1.2 with the TLS 1.1 client's options",
        &t12,
    )?;
    let t11 = s_client(w.https, &[&["-tls1_1"][..], &old_tls].concat())?;
    check(t11.contains(">>> TLS 1.1, Handshake") && t11.contains("ClientHello"), "the client offered TLS 1.1", &t11)?;
    check(
        t11.contains("Cipher is (NONE)")
            && t11.lines().any(|l| l.starts_with("<<< ") && l.contains("Alert") && l.contains("fatal"))
            && !t11.contains("New, TLSv1.1"),
        "TLS 1.1 refused by the server (an alert, no session)",
        &t11,
    )?;
    // A connection kept open while bad clients come and go.
    let mut good = TcpStream::connect(("127.0.0.1", w.http))?;
    good.set_read_timeout(Some(Duration::from_secs(10)))?;
    // Plain HTTP to the HTTPS port, and garbage where a ClientHello belongs.
    for junk in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5], &[0xff; 300]]
    {
        let mut s = TcpStream::connect(("127.0.0.1", w.https))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(junk)?;
        s.shutdown(std::net::Shutdown::Write)?;
        // The server must end the connection (a reset counts), not leave it
        // hanging: a read timeout fails the test.
        let mut buf = Vec::new();
        let ended = match s.read_to_end(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        check(ended, "the server closes a connection with junk on the HTTPS port", &format!("{junk:?}"))?;
        check(
            !String::from_utf8_lossy(&buf).contains("HTTP/1.1"),
            "no HTTP answer on the HTTPS port",
            &format!("{buf:?}"),
        )?;
    }
    good.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut resp = String::new();
    good.read_to_string(&mut resp)?;
    check(resp.starts_with("HTTP/1.1 200"), "other connection undisturbed", &resp)?;
    let t13 = s_client(w.https, &["-tls1_3", "-CAfile", &ca])?;
    check(t13.contains("Verify return code: 0 (ok)"), "TLS still works", &t13)?;
    check(w.p.is_running(), "server alive", "")
}

/// The server's cipher-suite order wins whatever the client lists first
/// (testssl.sh's "server cipher order"), in TLS 1.2 and 1.3; `--hsts`
/// sends Strict-Transport-Security over HTTPS only.
pub(super) fn server_cipher_order_and_hsts() -> Result {
    let pki = Pki::new("order")?;
    let w = start_web(Some(&pki), &["--hsts", "31536000"])?;
    let ca = pki.path("ca.pem");
    for (version, flag, suites) in [
        ("-tls1_2", "-cipher", ["ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        ("-tls1_3", "-ciphersuites", ["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]),
    ] {
        let mut chosen = Vec::new();
        for list in [format!("{}:{}", suites[0], suites[1]), format!("{}:{}", suites[1], suites[0])] {
            let out = s_client(w.https, &[version, flag, &list, "-CAfile", &ca])?;
            let cipher = out.lines().find_map(|l| l.split("Cipher is ").nth(1)).unwrap_or("").trim().to_string();
            check(!cipher.is_empty() && cipher != "(NONE)", "a handshake", &out)?;
            chosen.push(cipher);
        }
        check(chosen[0] == chosen[1], &format!("{version}: the client's order chose"), &format!("{chosen:?}"))?;
        eprintln!("  {version}: {} whichever the client lists first", chosen[0]);
    }
    let resolve = format!("localhost:{}:127.0.0.1", w.https);
    let https = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--cacert",
        &ca,
        "--resolve",
        &resolve,
        &format!("https://localhost:{}/", w.https),
    ])?;
    check(https.contains("Strict-Transport-Security: max-age=31536000\r\n"), "HSTS over HTTPS", &https)?;
    let http = curl(&["-D", "-", "-o", "/dev/null", &format!("http://127.0.0.1:{}/", w.http)])?;
    check(http.contains("200 OK") && !http.contains("Strict-Transport-Security"), "no HSTS over HTTP", &http)?;
    // --hsts without an HTTPS listener is refused.
    let out = Command::new(app_binary("web")).args(["--no-https", "--hsts", "60"]).output()?;
    check(out.status.code() == Some(2), "--hsts without HTTPS", &String::from_utf8_lossy(&out.stderr))
}

/// With ring, a key that does not belong to the certificate is refused at
/// start, saying so (RustCrypto's keys cannot be compared: that build
/// starts and its handshakes fail).
pub(super) fn mismatched_key_refused() -> Result {
    let pki = Pki::new("mismatch")?;
    let out = Command::new(web_binary())
        .args(["--http", &format!("127.0.0.1:{}", free_port()), "--https", &format!("127.0.0.1:{}", free_port())])
        .args(["--cert", &pki.path("server.pem"), "--key", &pki.path("ca.key")])
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(
        out.status.code() == Some(1) && err.contains("KeyMismatch"),
        "exit 1 naming the key mismatch",
        &format!("{:?}\n{err}", out.status),
    )
}
