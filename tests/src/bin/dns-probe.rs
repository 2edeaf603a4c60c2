//! Waits for a DNS server to answer: sends `NAME A` to ADDR every 10 ms
//! until an answer with the query's ID arrives, then prints the wall-clock
//! time of that answer in Unix nanoseconds (so a script can subtract its
//! own start time). Exits 1 after TIMEOUT seconds without an answer.
//!
//! dns-probe ADDR NAME TIMEOUT

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use morgana_tests::dnsmsg;

fn probe(addr: SocketAddr, name: &str, timeout: Duration) -> Result<u128, String> {
    let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(10))).map_err(|e| e.to_string())?;
    let end = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    let mut id = 1u16;
    while Instant::now() < end {
        id = id.wrapping_add(1);
        let q = dnsmsg::query(id, name, 1, 1, 0, None);
        // The route or ARP entry may not exist yet: keep trying.
        let _ = sock.send_to(&q, addr);
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(10) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { break };
            if from == addr && dnsmsg::parse(&buf[..n]).is_ok_and(|m| m.id == id) {
                return Ok(SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_nanos());
            }
        }
    }
    Err(format!("no answer from {addr} within {timeout:?}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [addr, name, secs] => addr
            .parse::<SocketAddr>()
            .map_err(|e| format!("bad address {addr}: {e}"))
            .and_then(|a| secs.parse::<u64>().map(|s| (a, name.clone(), s)).map_err(|_| format!("bad timeout {secs}"))),
        _ => Err("usage: dns-probe ADDR NAME TIMEOUT_SECONDS".into()),
    };
    let result = parsed.and_then(|(addr, name, secs)| probe(addr, &name, Duration::from_secs(secs)));
    match result {
        Ok(ns) => {
            println!("{ns}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dns-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
