//! Measures whether a TCP service serves fresh clients: starts COUNT
//! attempts, one every INTERVAL milliseconds, each a new connection that
//! sends one request and must get the start of an answer within TIMEOUT
//! milliseconds. Prints `ok K of N, median M ms, max X ms` (over the
//! successful ones) and exits 0; exits 2 on bad arguments.
//!
//! tcp-probe ADDR:PORT COUNT INTERVAL_MS TIMEOUT_MS dns|http|connect

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use morgana_tests::dnsmsg;

#[derive(Clone, Copy)]
enum Kind {
    Dns,
    Http,
    Connect,
}

fn attempt(addr: SocketAddr, kind: Kind, timeout: Duration, id: u16) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    let left = |start: Instant| timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left(start))).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(left(start))).map_err(|e| e.to_string())?;
    match kind {
        Kind::Connect => return Ok(start.elapsed()),
        Kind::Dns => {
            let q = dnsmsg::query(id, "www.example.com", 1, 1, 0x0100, None);
            let mut framed = (q.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&q);
            s.write_all(&framed).map_err(|e| format!("write: {e}"))?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).map_err(|e| format!("read: {e}"))?;
            let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut m).map_err(|e| format!("read: {e}"))?;
            let r = dnsmsg::parse(&m)?;
            if r.id != id {
                return Err("answer to another query".into());
            }
        }
        Kind::Http => {
            s.write_all(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
                .map_err(|e| format!("write: {e}"))?;
            let mut head = [0u8; 12];
            s.read_exact(&mut head).map_err(|e| format!("read: {e}"))?;
            if &head[..9] != b"HTTP/1.1 " {
                return Err(format!("not HTTP: {:?}", String::from_utf8_lossy(&head)));
            }
            if &head[9..12] != b"200" {
                return Err(format!("status {}", String::from_utf8_lossy(&head[9..12])));
            }
        }
    }
    Ok(start.elapsed())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = (|| -> Option<(SocketAddr, usize, u64, u64, Kind)> {
        let kind = match args.get(4)?.as_str() {
            "dns" => Kind::Dns,
            "http" => Kind::Http,
            "connect" => Kind::Connect,
            _ => return None,
        };
        Some((args[0].parse().ok()?, args[1].parse().ok()?, args[2].parse().ok()?, args[3].parse().ok()?, kind))
    })();
    let Some((addr, count, interval, timeout, kind)) = parsed else {
        eprintln!("usage: tcp-probe ADDR:PORT COUNT INTERVAL_MS TIMEOUT_MS dns|http|connect");
        return ExitCode::from(2);
    };
    let t0 = Instant::now();
    let attempts: Vec<_> = (0..count)
        .map(|i| {
            let at = t0 + Duration::from_millis(interval * i as u64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            std::thread::spawn(move || attempt(addr, kind, Duration::from_millis(timeout), i as u16 + 1))
        })
        .collect();
    let mut ok = Vec::new();
    let mut errors = std::collections::BTreeMap::<String, usize>::new();
    for a in attempts {
        match a.join().unwrap_or_else(|_| Err("probe thread panicked".into())) {
            Ok(d) => ok.push(d),
            Err(e) => *errors.entry(e).or_default() += 1,
        }
    }
    ok.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    println!("ok {} of {count}, median {:.1} ms, max {:.1} ms", ok.len(), ms(ok.get(ok.len() / 2)), ms(ok.last()));
    for (e, n) in errors {
        println!("failed {n}: {e}");
    }
    ExitCode::SUCCESS
}
