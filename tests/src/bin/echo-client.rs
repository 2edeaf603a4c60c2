//! A command-line echo client for tests and benchmarks (runs inside network
//! namespaces and next to VMs).
//!
//! echo-client tcp ADDR BYTES | udp ADDR COUNT SIZE | concurrent ADDR N
//!             | tcp-rate ADDR SECONDS | udp-rate ADDR SECONDS

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use morgana_tests::client;

fn num<T: std::str::FromStr>(s: Option<&String>, what: &str) -> Result<T, String> {
    s.ok_or(format!("missing {what}"))?.parse().map_err(|_| format!("bad {what}"))
}

/// Round trips per second of 64-byte messages over one TCP connection.
fn tcp_rate(addr: SocketAddr, secs: u64) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let msg = [7u8; 64];
    let mut buf = [0u8; 64];
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        s.write_all(&msg).map_err(|e| e.to_string())?;
        s.read_exact(&mut buf).map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(format!("{:.0} tcp round trips/s", n as f64 / secs as f64))
}

/// Round trips per second of 8-byte UDP datagrams, one in flight.
fn udp_rate(addr: SocketAddr, secs: u64) -> Result<String, String> {
    let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    s.connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(200))).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut n, mut lost) = (0u64, 0u64);
    while Instant::now() < end {
        s.send(&n.to_le_bytes()).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(8) if buf[..8] == n.to_le_bytes() => n += 1,
            _ => lost += 1,
        }
    }
    Ok(format!("{:.0} udp round trips/s ({lost} lost)", n as f64 / secs as f64))
}

fn run(args: &[String]) -> Result<String, String> {
    let addr: SocketAddr = num(args.get(1), "address")?;
    match args.first().map(String::as_str) {
        Some("tcp") => {
            let bytes: usize = num(args.get(2), "byte count")?;
            let t = client::tcp_echo(addr, &client::pattern(bytes, 42))?;
            let mib = bytes as f64 / (1 << 20) as f64;
            Ok(format!("tcp {bytes} bytes echoed in {:.3} s ({:.1} MiB/s)", t.as_secs_f64(), mib / t.as_secs_f64()))
        }
        Some("udp") => {
            let count: usize = num(args.get(2), "count")?;
            let size: usize = num(args.get(3), "size")?;
            client::udp_echo(addr, count, size)?;
            Ok(format!("udp {count} datagrams of {size} bytes echoed"))
        }
        Some("concurrent") => {
            let n: usize = num(args.get(2), "connection count")?;
            client::concurrent(addr, n)?;
            Ok(format!("{n} concurrent connections echoed"))
        }
        Some("tcp-rate") => tcp_rate(addr, num(args.get(2), "seconds")?),
        Some("udp-rate") => udp_rate(addr, num(args.get(2), "seconds")?),
        _ => Err("usage: echo-client tcp|udp|concurrent|tcp-rate|udp-rate ADDR ...".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo-client: {e}");
            ExitCode::FAILURE
        }
    }
}
