//! Plays many idle or stalling clients: opens COUNT connections to
//! ADDR:PORT, each sending the start of KIND, holds them for SECONDS
//! (slowloris ones send one more byte every 2 s), then closes them all.
//! Prints `opened O of N, closed by server C` and exits 0 (2 on bad
//! arguments). Bounded: at most 10,000 connections and 600 seconds.
//!
//! conn-hold ADDR:PORT COUNT SECONDS KIND
//!
//! KIND: idle (connect only), http-head (a request head without its end),
//! tls-hello (the first bytes of a ClientHello), keepalive (one full HTTP
//! request, its answer read, then idle), dns-partial (half a DNS-over-TCP
//! query), slowloris (a request head a byte at a time), or mixed (round
//! robin over idle, http-head, tls-hello, keepalive, slowloris).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const KINDS: [&str; 5] = ["idle", "http-head", "tls-hello", "keepalive", "slowloris"];

/// A TLS record header announcing a 512-byte handshake message, and the
/// start of a ClientHello.
const TLS_START: [u8; 15] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x11, 0x22, 0x33, 0x44];
const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: hold\r\nUser-Agent: conn-hold\r\n";

fn open(addr: SocketAddr, kind: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_write_timeout(Some(Duration::from_secs(3)))?;
    match kind {
        "idle" => {}
        "http-head" => s.write_all(HEAD)?,
        "tls-hello" => s.write_all(&TLS_START)?,
        "dns-partial" => s.write_all(&[0, 33, 0x12, 0x34, 1, 0])?,
        "slowloris" => s.write_all(&HEAD[..1])?,
        "keepalive" => {
            s.write_all(b"GET / HTTP/1.1\r\nHost: hold\r\n\r\n")?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf)?;
            if n == 0 || !buf.starts_with(b"HTTP/1.1 ") {
                return Err(std::io::Error::other("no HTTP answer"));
            }
        }
        _ => return Err(std::io::Error::other("unknown kind")),
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Whether the server has closed or reset `s` (reading and discarding
/// whatever it sent).
fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Option<(SocketAddr, usize, u64, String)> {
        let kind = args.get(3)?.clone();
        if kind != "mixed" && kind != "dns-partial" && !KINDS.contains(&kind.as_str()) {
            return None;
        }
        let (count, secs) = (args[1].parse().ok()?, args[2].parse().ok()?);
        (count <= 10_000 && secs <= 600).then_some((args[0].parse().ok()?, count, secs, kind))
    })();
    let Some((addr, count, secs, kind)) = parsed else {
        eprintln!("usage: conn-hold ADDR:PORT COUNT(<=10000) SECONDS(<=600) idle|http-head|tls-hello|keepalive|dns-partial|slowloris|mixed");
        return ExitCode::from(2);
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let mut conns: Vec<(TcpStream, &str, usize, bool)> = Vec::new();
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..count {
        if Instant::now() >= end {
            break;
        }
        let k = if kind == "mixed" { KINDS[i % KINDS.len()] } else { kind.as_str() };
        match open(addr, k) {
            Ok(s) => conns.push((s, k, 1, false)),
            Err(e) => *failures.entry(format!("{k}: {e}")).or_default() += 1,
        }
    }
    let opened = conns.len();
    println!("opened {opened} of {count}");
    let mut last_drip = Instant::now();
    while Instant::now() < end {
        let drip = last_drip.elapsed() >= Duration::from_secs(2);
        for (s, k, sent, gone) in conns.iter_mut().filter(|c| !c.3) {
            if closed(s) {
                *gone = true;
            } else if drip && *k == "slowloris" && *sent < HEAD.len() && s.write(&HEAD[*sent..*sent + 1]).is_ok() {
                *sent += 1;
            }
        }
        if drip {
            last_drip = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let gone = conns.iter_mut().map(|c| c.3 || closed(&mut c.0)).filter(|&g| g).count();
    println!("held {secs} s: closed by server {gone} of {opened}");
    for (e, n) in failures {
        println!("failed {n}: {e}");
    }
    ExitCode::SUCCESS
}
