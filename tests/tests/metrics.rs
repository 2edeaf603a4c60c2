//! `--metrics ADDR:PORT` end to end: known traffic from `dig` and `curl`,
//! then `curl /metrics`, whose counts must match exactly; the DNS image
//! under QEMU (TCG) with the metrics port forwarded, where the device's
//! frame counters must account for the traffic too; and clients that
//! misbehave towards the metrics listener. Tests whose tools are missing
//! are ignored, or fail under CI=true.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{trial, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

type Result<T = ()> = std::result::Result<T, Failed>;

fn check(cond: bool, what: &str) -> Result {
    if cond {
        Ok(())
    } else {
        Err(what.into())
    }
}

/// A scrape: `name{labels}` as written → value. Checks the text format on
/// the way: `# HELP` then `# TYPE` once per family, before its samples.
fn parse(text: &str) -> Result<HashMap<String, f64>> {
    let (mut typed, mut helped) = (Vec::<String>::new(), Vec::<String>::new());
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            check(!helped.iter().any(|h| h == name), &format!("two HELP lines for {name}"))?;
            helped.push(name.into());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or("TYPE line without a type")?;
            check(helped.last().map(String::as_str) == Some(name), &format!("TYPE of {name} right after its HELP"))?;
            check(!typed.iter().any(|t| t == name), &format!("two TYPE lines for {name}"))?;
            check(kind == "counter" || kind == "gauge", &format!("{name}: type {kind}"))?;
            check(kind != "counter" || name.ends_with("_total"), &format!("counter {name} ends in _total"))?;
            typed.push(name.into());
        } else {
            let (key, value) = line.rsplit_once(' ').ok_or_else(|| format!("bad line {line:?}"))?;
            let name = key.split('{').next().unwrap_or("");
            check(name.starts_with("morgana_"), &format!("{name} has the morgana_ prefix"))?;
            check(typed.last().map(String::as_str) == Some(name), &format!("{line:?} follows its family's TYPE"))?;
            let value: f64 = value.parse().map_err(|_| format!("bad value in {line:?}"))?;
            check(samples.insert(key.to_string(), value).is_none(), &format!("{key} twice"))?;
        }
    }
    Ok(samples)
}

/// `curl http://127.0.0.1:port/metrics`, parsed.
fn scrape(port: u16) -> Result<HashMap<String, f64>> {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-D", "/dev/stderr", &format!("http://127.0.0.1:{port}/metrics")])
        .output()?;
    let headers = String::from_utf8_lossy(&out.stderr).to_lowercase();
    check(out.status.success(), &format!("curl /metrics: {headers}"))?;
    check(headers.starts_with("http/1.1 200"), &format!("200 for /metrics: {headers}"))?;
    check(headers.contains("content-type: text/plain; version=0.0.4"), "the 0.0.4 text content type")?;
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// The value of `key`, which must be there.
fn get(m: &HashMap<String, f64>, key: &str) -> Result<f64> {
    m.get(key).copied().ok_or_else(|| format!("no {key} in the scrape").into())
}

/// Every sample of the family `name` is as `want` says, 0 where it says
/// nothing.
fn family_is(m: &HashMap<String, f64>, name: &str, want: &[(&str, f64)]) -> Result {
    let mut seen = 0;
    for (key, v) in m.iter().filter(|(k, _)| k.split('{').next() == Some(name)) {
        let expect = want.iter().find(|(k, _)| k == key).map_or(0.0, |w| w.1);
        check(*v == expect, &format!("{key} is {v}, expected {expect}"))?;
        seen += 1;
    }
    for (key, _) in want {
        check(m.contains_key(*key), &format!("{key} in the scrape"))?;
    }
    check(seen > 0, &format!("family {name} in the scrape"))
}

/// `dig @127.0.0.1 -p PORT NAME` (one try), returning its status word.
fn dig(port: u16, name: &str, tcp: bool) -> Result<String> {
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string(), name, "A", "+tries=1", "+time=5"]);
    if tcp {
        cmd.arg("+tcp");
    }
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let status = text.split("status: ").nth(1).and_then(|s| s.split(',').next());
    status.map(String::from).ok_or_else(|| format!("dig {name}: no answer:\n{text}").into())
}

/// 5 NOERROR and 3 NXDOMAIN over UDP, 2 NOERROR over TCP.
fn dns_traffic(port: u16) -> Result {
    for _ in 0..5 {
        check(dig(port, "www.example.com", false)? == "NOERROR", "www: NOERROR")?;
    }
    for i in 0..3 {
        check(dig(port, &format!("nope{i}.example.com"), false)? == "NXDOMAIN", "nope: NXDOMAIN")?;
    }
    for _ in 0..2 {
        check(dig(port, "www.example.com", true)? == "NOERROR", "www over TCP: NOERROR")?;
    }
    Ok(())
}

/// The DNS counts [`dns_traffic`] must leave, exactly.
fn dns_counts_are_exact(m: &HashMap<String, f64>) -> Result {
    family_is(
        m,
        "morgana_dns_queries_total",
        &[("morgana_dns_queries_total{transport=\"udp\"}", 8.0), ("morgana_dns_queries_total{transport=\"tcp\"}", 2.0)],
    )?;
    family_is(
        m,
        "morgana_dns_responses_total",
        &[
            ("morgana_dns_responses_total{transport=\"udp\",rcode=\"NOERROR\"}", 5.0),
            ("morgana_dns_responses_total{transport=\"udp\",rcode=\"NXDOMAIN\"}", 3.0),
            ("morgana_dns_responses_total{transport=\"tcp\",rcode=\"NOERROR\"}", 2.0),
        ],
    )?;
    check(get(m, "morgana_dns_rrl_dropped_total")? == 0.0, "nothing rate-limited")?;
    check(get(m, "morgana_dns_tcp_connections_admitted_total")? == 2.0, "2 DNS-over-TCP connections")?;
    check(get(m, "morgana_dns_tcp_connections_refused_total")? == 0.0, "none refused")?;
    let (used, peak) = (get(m, "morgana_heap_in_use_bytes")?, get(m, "morgana_heap_peak_bytes")?);
    check(used > 0.0 && peak >= used, &format!("heap in use {used} > 0, peak {peak} ≥ it"))
}

/// Waits until `key` reads `want` (a gauge that follows a client's close).
fn settles(port: u16, key: &str, want: f64) -> Result<HashMap<String, f64>> {
    let start = Instant::now();
    loop {
        let m = scrape(port)?;
        if get(&m, key)? == want || start.elapsed() > Duration::from_secs(5) {
            check(get(&m, key)? == want, &format!("{key} settles at {want}"))?;
            return Ok(m);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(app: &str, args: &[String]) -> Running {
    let mut p = Running::start({
        let mut c = Command::new(app_binary(app));
        c.args(args);
        c
    });
    p.wait_for("ready to serve", Duration::from_secs(20));
    p
}

fn dns_hosted() -> Result {
    let (port, mport) = (free_port(), free_port());
    let mut p = start("dns", &["--listen".into(), format!("127.0.0.1:{port}"), format!("--metrics=127.0.0.1:{mport}")]);
    dns_traffic(port)?;
    let m = scrape(mport)?;
    dns_counts_are_exact(&m)?;
    // The host stack hands over the 2 DNS connections and this scrape's.
    check(get(&m, "morgana_tcp_connections_accepted_total")? == 3.0, "3 TCP connections accepted")?;
    let m = settles(mport, "morgana_dns_tcp_connections_open", 0.0)?;
    dns_counts_are_exact(&m)?; // scraping changes no DNS count
    check(p.is_running(), "server alive")
}

fn web_hosted() -> Result {
    let (port, mport) = (free_port(), free_port());
    let mut p = start(
        "web",
        &["--http".into(), format!("127.0.0.1:{port}"), "--no-https".into(), format!("--metrics=127.0.0.1:{mport}")],
    );
    let status = |path: &str| -> Result<String> {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{port}{path}"))
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (k, m) = (4, 3);
    for _ in 0..k {
        check(status("/")? == "200", "/ is 200")?;
    }
    for i in 0..m {
        check(status(&format!("/missing{i}"))? == "404", "/missingN is 404")?;
    }
    let scraped = settles(mport, "morgana_web_connections_open", 0.0)?;
    family_is(
        &scraped,
        "morgana_http_responses_total",
        &[
            ("morgana_http_responses_total{code=\"200\"}", f64::from(k)),
            ("morgana_http_responses_total{code=\"404\"}", f64::from(m)),
        ],
    )?;
    check(get(&scraped, "morgana_web_connections_admitted_total")? == f64::from(k + m), "one connection per curl")?;
    check(get(&scraped, "morgana_web_connections_refused_total")? == 0.0, "none refused")?;
    check(p.is_running(), "server alive")
}

/// Sends `request` on a fresh connection and reads until the server closes
/// (at most `limit`); returns what came back and how long it took.
fn raw(port: u16, request: &[u8], limit: Duration) -> Result<(String, Duration)> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(limit))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out); // a timeout leaves what arrived
    Ok((String::from_utf8_lossy(&out).into_owned(), start.elapsed()))
}

fn hostile_clients() -> Result {
    let (port, mport) = (free_port(), free_port());
    let mut p = start("dns", &["--listen".into(), format!("127.0.0.1:{port}"), format!("--metrics=127.0.0.1:{mport}")]);
    // A partial request, held: the others are served meanwhile, and it
    // ends (408, or shed for a newcomer).
    let slow =
        std::thread::spawn(move || raw(mport, b"GET /metr", Duration::from_secs(15)).map_err(|e| format!("{e:?}")));
    // More silent connections than the listener serves at once (4): the
    // longest-waiting make way for newcomers.
    let silent: Vec<TcpStream> =
        (0..6).map(|_| TcpStream::connect(("127.0.0.1", mport))).collect::<std::io::Result<_>>()?;
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    scrape(mport)?;
    check(t.elapsed() < Duration::from_secs(3), "a scrape is served while others hold connections")?;
    // An oversized head: 431, and the connection closed.
    let big = format!("GET /metrics HTTP/1.1\r\nX-Fill: {}\r\n\r\n", "a".repeat(4000));
    let (answer, took) = raw(mport, big.as_bytes(), Duration::from_secs(10))?;
    check(answer.starts_with("HTTP/1.1 431 "), &format!("431 for an oversized head, got {answer:?}"))?;
    check(took < Duration::from_secs(3), "answered and closed at once")?;
    // Methods, paths and garbage.
    for (req, want) in [
        (&b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"[..], "HTTP/1.1 405 "),
        (b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 "),
        (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "),
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n", "HTTP/1.1 400 "),
    ] {
        let (answer, _) = raw(mport, req, Duration::from_secs(10))?;
        check(answer.starts_with(want), &format!("{want}for {:?}, got {answer:?}", String::from_utf8_lossy(req)))?;
        check(!answer.starts_with("HTTP/1.1 405") || answer.contains("\r\nAllow: GET\r\n"), "405 names GET")?;
    }
    let (answer, took) = slow.join().map_err(|_| "slow client thread")??;
    check(answer.is_empty() || answer.starts_with("HTTP/1.1 408 "), &format!("408 or shed, got {answer:?}"))?;
    check(took < Duration::from_secs(8), &format!("the partial request ended after {took:?}"))?;
    drop(silent);
    // Alone, a partial request gets its 408 once the 5 s head timeout passes.
    let (answer, took) = raw(mport, b"GET /metrics HTTP/1.1\r\nHo", Duration::from_secs(15))?;
    check(answer.starts_with("HTTP/1.1 408 "), &format!("408 for a stalled head, got {answer:?}"))?;
    check(took >= Duration::from_secs(4) && took < Duration::from_secs(8), &format!("408 after {took:?}"))?;
    // Still serving: metrics and DNS.
    scrape(mport)?;
    check(dig(port, "www.example.com", false)? == "NOERROR", "DNS still answers")?;
    check(p.is_running(), "server alive")
}

/// A bad address is a usage error (2); a port in use fails the start (1).
fn bad_flags() -> Result {
    let out = Command::new(app_binary("dns")).args(["--metrics", "9100"]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(
        out.status.code() == Some(2) && err.contains("invalid value '9100' for --metrics"),
        &format!("exit 2: {err}"),
    )?;
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?;
    let out =
        Command::new(app_binary("dns")).args(["--listen", "127.0.0.1:0", "--metrics", &addr.to_string()]).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    check(out.status.code() == Some(1) && err.contains(&format!("metrics listener {addr}")), &format!("exit 1: {err}"))
}

/// The listener is bound before the sandbox goes on, and serving it needs
/// no call the sandbox refuses.
fn sandboxed() -> Result {
    let (port, mport) = (free_port(), free_port());
    let args =
        ["--sandbox".into(), "--listen".into(), format!("127.0.0.1:{port}"), format!("--metrics=127.0.0.1:{mport}")];
    let mut p = start("dns", &args);
    check(p.output().iter().any(|l| l.contains("sandbox on")), "the sandbox is on")?;
    check(dig(port, "www.example.com", true)? == "NOERROR", "DNS over TCP")?;
    let m = scrape(mport)?;
    check(get(&m, "morgana_dns_queries_total{transport=\"tcp\"}")? == 1.0, "1 TCP query counted")?;
    let (answer, _) = raw(mport, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", Duration::from_secs(10))?;
    check(answer.starts_with("HTTP/1.1 405 "), "405 under the sandbox")?;
    scrape(mport)?;
    check(p.is_running(), "not killed by the sandbox")
}

/// The DNS image under QEMU (TCG), DNS and metrics ports forwarded.
fn dns_vm() -> Result {
    let image = xtask::build_image("dns", true)?;
    let (port, mport) = (free_port(), free_port());
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![
        format!("udp:127.0.0.1:{port}-:53").parse()?,
        format!("tcp:127.0.0.1:{port}-:53").parse()?,
        format!("tcp:127.0.0.1:{mport}-:9100").parse()?,
    ];
    vm.cmdline = "--metrics=:9100".into();
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", Duration::from_secs(30));
    dns_traffic(port)?;
    let m = scrape(mport)?;
    dns_counts_are_exact(&m)?;
    // The direct stack: the 2 DNS connections and this scrape's.
    check(get(&m, "morgana_tcp_connections_accepted_total")? == 3.0, "3 TCP connections accepted")?;
    check(get(&m, "morgana_tcp_connections_refused_total")? == 0.0, "none refused")?;
    // Frames: 8 UDP queries and at least 3 frames per TCP connection came
    // in; 8 UDP answers and the TCP answers went out; every frame carries
    // at least Ethernet, IP and UDP headers (42 bytes).
    let (rx, rx_bytes) = (get(&m, "morgana_net_rx_frames_total")?, get(&m, "morgana_net_rx_bytes_total")?);
    let (tx, tx_bytes) = (get(&m, "morgana_net_tx_frames_total")?, get(&m, "morgana_net_tx_bytes_total")?);
    eprintln!("  frames: rx {rx} ({rx_bytes} bytes), tx {tx} ({tx_bytes} bytes)");
    check(rx >= 8.0 + 3.0 * 3.0, &format!("rx frames {rx} ≥ the queries' 17"))?;
    check(tx >= 8.0 + 2.0 * 2.0, &format!("tx frames {tx} ≥ the answers' 12"))?;
    check(rx_bytes >= 42.0 * rx && tx_bytes >= 42.0 * tx, "≥ 42 bytes a frame")?;
    check(get(&m, "morgana_net_rx_dropped_total")? == 0.0, "no frame dropped")?;
    // A second scrape sees the first's frames.
    let again = scrape(mport)?;
    check(get(&again, "morgana_net_rx_frames_total")? > rx, "rx frames grow with traffic")?;
    check(qemu.is_running(), "VM still running")
}

fn main() {
    let args = Arguments::from_args();
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let curl = Prereq::program("curl", "--version", "curl");
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let tests = vec![
        trial("dns_hosted_counts_are_exact", &[&dig, &curl], dns_hosted),
        trial("web_hosted_counts_are_exact", &[&curl], web_hosted),
        trial("metrics_listener_survives_hostile_clients", &[&dig, &curl], hostile_clients),
        trial("bad_metrics_flags_are_refused", &[], bad_flags),
        trial("metrics_under_the_sandbox", &[&dig, &curl], sandboxed),
        trial("dns_vm_counts_are_exact", &[&dig, &curl, &qemu], dns_vm),
    ];
    libtest_mimic::run(&args, tests).exit();
}
