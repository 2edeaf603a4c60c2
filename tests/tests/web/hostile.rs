//! Hostile requests, slowloris, the connection cap and the memory budget.

use super::*;

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

pub(super) fn hostile_requests() -> Result {
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

pub(super) fn slowloris() -> Result {
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

pub(super) fn connection_cap() -> Result {
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
pub(super) fn memory_budget() -> Result {
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
