//! The web unikernel with real clients: curl over HTTP and HTTPS (a test CA
//! generated here), openssl s_client for TLS versions and ALPN, a table of
//! hostile requests, a slowloris client, the connection cap, the VM image
//! under QEMU, and headless Chromium rendering the site from the VM.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

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

fn start_web(pki: Option<&Pki>, extra: &[&str]) -> Result<Web> {
    let (http, https) = (free_port(), free_port());
    let mut cmd = Command::new(app_binary("web"));
    cmd.args(["--http", &format!("127.0.0.1:{http}"), "--https", &format!("127.0.0.1:{https}")]);
    if let Some(pki) = pki {
        cmd.args(["--cert", &pki.path("server.pem"), "--key", &pki.path("server.key")]);
    }
    cmd.args(extra);
    let mut p = Running::start(cmd);
    p.wait_for("ready to serve", Duration::from_secs(30));
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

fn s_client(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-servername", "localhost"])
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

fn tls_versions_and_refusals() -> Result {
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

/// Sends `req` on a new connection and returns the status code of the
/// first response (0 if the server closed without one).
fn raw_status(port: u16, req: &[u8]) -> Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let _ = s.write_all(req);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    Ok(text.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0))
}

fn hostile_requests() -> Result {
    let mut w = start_web(None, &[])?;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let many_headers = format!("GET / HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(100));
    let big_header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(20000));
    let big_body = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".to_string();
    let table: Vec<(&str, Vec<u8>, u16)> = vec![
        ("valid request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 200),
        ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n".to_vec(), 200),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(), 400),
        ("garbage request line", b"NONSENSE\r\n\r\n".to_vec(), 400),
        ("binary junk", vec![0, 1, 2, 3, 0xff, b'\r', b'\n', b'\r', b'\n'], 400),
        ("space in method", b"G ET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("bad header name", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".to_vec(), 400),
        ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n".to_vec(), 400),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
        ("HTTP/3.1", b"GET / HTTP/3.1\r\nHost: x\r\n\r\n".to_vec(), 505),
        ("POST", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), 405),
        ("PUT", b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA".to_vec(), 405),
        ("DELETE", b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405),
        ("CONNECT", b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 405),
        ("URI too long", long_uri.into_bytes(), 414),
        ("too many headers", many_headers.into_bytes(), 431),
        ("header too large", big_header.into_bytes(), 431),
        ("body too large", big_body.into_bytes(), 413),
        (
            "TE and CL (smuggling)",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two different CL",
            b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
        ),
        ("CL not a number", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(), 400),
        ("negative CL", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(), 400),
        ("chunked body", b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 501),
        ("dot-dot", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("encoded dot-dot", b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("encoded slash", b"GET /about%2findex.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("encoded NUL", b"GET /index.html%00.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("backslash", b"GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("bad percent escape", b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("relative target", b"GET index.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("absolute-form target", b"GET http://x/about/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 200),
        ("missing file", b"GET /missing.html HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 404),
        ("LF-only line ends", b"GET / HTTP/1.1\nHost: x\n\n".to_vec(), 200),
        ("unsatisfiable range", b"GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=99999-\r\n\r\n".to_vec(), 416),
        ("multiple ranges ignored", b"GET / HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,3-4\r\n\r\n".to_vec(), 200),
    ];
    let mut failures = Vec::new();
    for (what, req, want) in &table {
        let got = raw_status(w.http, req)?;
        if got != *want {
            failures.push(format!("{what}: got {got}, expected {want}"));
        }
        // The server must keep serving after each one.
        let ok = raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        if ok != 200 {
            failures.push(format!("after {what}: normal request got {ok}"));
        }
    }
    eprintln!("  {} hostile requests checked", table.len());
    check(w.p.is_running(), "server alive", "")?;
    check(failures.is_empty(), "hostile requests", &failures.join("\n"))
}

fn slowloris() -> Result {
    let w = start_web(None, &["--header-timeout", "2"])?;
    let mut slow = TcpStream::connect(("127.0.0.1", w.http))?;
    slow.set_read_timeout(Some(Duration::from_millis(100)))?;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")?;
    let start = Instant::now();
    let mut cut = None;
    let mut normal_served = 0;
    while start.elapsed() < Duration::from_secs(8) {
        // One header byte every 250 ms: never a complete head.
        if slow.write_all(b"X").is_err() && cut.is_none() {
            cut = Some(start.elapsed());
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                cut.get_or_insert(start.elapsed());
                break;
            }
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                check(text.starts_with("HTTP/1.1 408"), "slow client gets 408", &text)?;
                cut.get_or_insert(start.elapsed());
            }
            Err(_) => {}
        }
        // Meanwhile a normal client is served.
        if raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")? == 200 {
            normal_served += 1;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let cut = cut.ok_or("the slow client was never cut off")?;
    eprintln!(
        "  slow client cut off after {:.1} s; {normal_served} normal requests served meanwhile",
        cut.as_secs_f64()
    );
    check(cut < Duration::from_secs(4), "cut off within the timeout", &format!("{cut:?}"))?;
    check(normal_served >= 3, "normal client served meanwhile", &normal_served.to_string())
}

/// Reads what the server sent on `s` until it ends the connection; `None`
/// if it has not ended it within `within`.
fn drain(s: &mut TcpStream, within: Duration) -> Result<Option<Vec<u8>>> {
    s.set_read_timeout(Some(within))?;
    let mut buf = Vec::new();
    match s.read_to_end(&mut buf) {
        Ok(_) => Ok(Some(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(Some(buf)),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn connection_cap() -> Result {
    // A site with a file too large to fit in the socket buffers, so a client
    // that does not read keeps the server writing.
    let site = std::env::temp_dir().join(format!("morgana-cap-site-{}", std::process::id()));
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), "<p>hello</p>")?;
    std::fs::write(site.join("big.bin"), vec![7u8; 48 << 20])?;
    let mut w = start_web(None, &["--max-connections", "2", "--site", site.to_str().unwrap_or_default()])?;
    let pid = w.p.pid();
    // Two idle connections hold the cap; a newcomer makes the one that has
    // waited longest (a) go, and is served.
    let mut a = TcpStream::connect(("127.0.0.1", w.http))?;
    std::thread::sleep(Duration::from_millis(100));
    let mut b = TcpStream::connect(("127.0.0.1", w.http))?;
    std::thread::sleep(Duration::from_millis(200));
    let got = raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    check(got == 200, "a newcomer at the cap is served", &got.to_string())?;
    let ended = drain(&mut a, Duration::from_millis(500))?;
    check(ended.is_some_and(|b| b.is_empty()), "the longest-waiting idle connection was closed", "")?;
    b.set_read_timeout(Some(Duration::from_millis(300)))?;
    let r = b.read(&mut [0u8; 1]);
    check(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the younger idle connection stays",
        &format!("{r:?}"),
    )?;
    // Forty clients that ask and never read: each is admitted in turn, the
    // server keeps answering fresh clients, and holds no descriptor for the
    // ones it let go.
    let fds = open_fds(pid)?;
    let start = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", w.http))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        silent.push(s);
    }
    let got = raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    check(got == 200, "a fresh client among 40 silent ones is served", &got.to_string())?;
    check(start.elapsed() < Duration::from_secs(3), "promptly", &format!("{:?}", start.elapsed()))?;
    std::thread::sleep(Duration::from_millis(300));
    let after = open_fds(pid)?;
    check(after <= fds + 2, "at most the cap's descriptors", &format!("{fds} before, {after} after"))?;
    let ended = silent.iter_mut().filter_map(|s| drain(s, Duration::from_millis(300)).ok().flatten()).count();
    check(ended >= 38, "the silent clients were let go in turn", &format!("{ended} of 40 ended"))?;
    // Two clients download the large file without reading: the server is
    // writing to both, so neither can be shed and a newcomer gets a 503 at
    // once.
    let mut hogs = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(("127.0.0.1", w.http))?;
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")?;
        hogs.push(s);
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let got = raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    check(got == 503, "every slot busy writing: 503", &got.to_string())?;
    check(start.elapsed() < Duration::from_secs(2), "at once", &format!("{:?}", start.elapsed()))?;
    // Once they go, the server serves again.
    drop(hogs);
    std::thread::sleep(Duration::from_millis(300));
    let got = raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    check(got == 200, "served again", &got.to_string())?;
    let _ = std::fs::remove_dir_all(&site);
    check(w.p.is_running(), "server alive", "")
}

/// `--memory` budgets the process: a flood of silent HTTPS clients (12 KiB
/// each in their handshakes) is shed to stay within 4 MiB, while fresh
/// clients are served and the heap report shows the peak under the budget.
fn memory_budget() -> Result {
    let w = start_web(None, &["--memory", "4", "--memory-report", "1", "--max-connections", "5000"])?;
    let mut silent = Vec::new();
    for _ in 0..600 {
        let mut s = TcpStream::connect(("127.0.0.1", w.https))?;
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])?;
        silent.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let got = raw_status(w.http, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    check(got == 200, "a fresh client is served within the budget", &got.to_string())?;
    std::thread::sleep(Duration::from_millis(1200));
    let out = w.p.output();
    let report = out.iter().rev().find(|l| l.contains("heap: in use")).cloned().unwrap_or_default();
    let peak: u64 =
        report.split("peak ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
    check(report.contains("limit 4096 KiB") && peak <= 4096, "heap peak within the 4 MiB budget", &report)?;
    drop(silent);
    Ok(())
}

struct WebVm {
    _q: Running,
    http: u16,
    https: u16,
}

fn start_vm() -> Result<WebVm> {
    let image = xtask::build_image("web", true)?;
    let (http, https) = (free_port(), free_port());
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("tcp:127.0.0.1:{http}-:80").parse()?, format!("tcp:127.0.0.1:{https}-:443").parse()?];
    vm.memory_mib = 64;
    let mut q = Running::start(vm.command());
    q.wait_for("ready to serve", Duration::from_secs(60));
    Ok(WebVm { _q: q, http, https })
}

fn vm_curl() -> Result {
    let vm = start_vm()?;
    curl_suite(&format!("http://127.0.0.1:{}", vm.http), &[])?;
    // The image carries the development certificate: check it is the one
    // for localhost, then skip verification for the rest.
    let v = curl(&["-v", "-k", "-o", "/dev/null", &format!("https://127.0.0.1:{}/", vm.https)])?;
    check(v.contains("CN=localhost") || v.contains("CN = localhost"), "development certificate for localhost", &v)?;
    curl_suite(&format!("https://127.0.0.1:{}", vm.https), &["-k"])?;
    let t13 = s_client(vm.https, &["-tls1_3", "-alpn", "http/1.1"])?;
    check(t13.contains("TLSv1.3") && t13.contains("ALPN protocol: http/1.1"), "TLS 1.3 in the VM", &t13)?;
    let t12 = s_client(vm.https, &["-tls1_2"])?;
    check(t12.contains("Protocol  : TLSv1.2"), "TLS 1.2 in the VM", &t12)
}

/// Without virtio-rng (and no RDRAND in QEMU's default CPU) the image must
/// refuse HTTPS at boot, saying why, rather than fail at the first handshake.
fn vm_without_entropy_refuses_https() -> Result {
    let image = xtask::build_image("web", true)?;
    let mut vm = xtask::Vm::new(&image);
    vm.rng = false;
    vm.network = true;
    let out = vm.command().output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    check(
        xtask::app_exit_code(out.status) == Some(1) && text.contains("HTTPS needs an entropy source"),
        "exit 1 with a clear message",
        &text,
    )
}

fn chromium_renders_vm_site() -> Result {
    let vm = start_vm()?;
    let dir = std::env::temp_dir().join(format!("morgana-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let shot = dir.join("shot.png");
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--ignore-certificate-errors",
        "--window-size=800,600",
    ];
    let url = format!("https://127.0.0.1:{}/", vm.https);
    let profile = format!("--user-data-dir={}", dir.join("profile").display());
    let dom = run(Command::new("chromium").args(base).arg(&profile).arg("--dump-dom").arg(&url))?;
    check(
        dom.contains("<title>Morgana unikernel web server</title>") && dom.contains("About this site"),
        "rendered DOM",
        &dom,
    )?;
    let shot_arg = format!("--screenshot={}", shot.display());
    run(Command::new("chromium").args(base).arg(&profile).arg(&shot_arg).arg(&url))?;
    let png = std::fs::read(&shot)?;
    check(png.starts_with(b"\x89PNG") && png.len() > 2000, "non-empty screenshot", &png.len().to_string())?;
    eprintln!("  screenshot {} bytes at {}", png.len(), shot.display());
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let curl = Prereq::program("curl", "--version", "curl");
    let ossl = Prereq::program("openssl", "version", "openssl");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let chromium = Prereq::program("chromium", "--version", "chromium");
    let t = |name: &str, f: fn() -> Result, needs: &[&Prereq]| prereq::trial(name, needs, f);
    let tests = vec![
        t("curl_http_and_https_hosted", hosted_curl, &[&curl, &ossl]),
        t("redirect_https", redirect_https, &[&curl, &ossl]),
        t("tls_versions_alpn_and_refusals", tls_versions_and_refusals, &[&ossl]),
        t("hostile_requests_table", hostile_requests, &[]),
        t("slowloris_is_cut_off", slowloris, &[]),
        t("connection_cap", connection_cap, &[]),
        t("memory_budget", memory_budget, &[]),
        t("vm_image_curl_http_https", vm_curl, &[&qemu, &curl, &ossl]),
        t("vm_without_entropy_refuses_https", vm_without_entropy_refuses_https, &[&qemu]),
        t("chromium_renders_site_from_vm", chromium_renders_vm_site, &[&qemu, &chromium]),
    ];
    libtest_mimic::run(&args, tests).exit();
}
