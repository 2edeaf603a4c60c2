//! Echo clients over the host's sockets (std::net), checking every byte.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// `len` reproducible pseudo-random bytes (xorshift from `seed`).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(format!("connect {addr}: {e}")),
        }
    }
}

/// Sends `data` over one connection while reading the echo, then half-closes
/// and expects a clean end of stream. Returns the time taken.
pub fn tcp_echo(addr: SocketAddr, data: &[u8]) -> Result<Duration, String> {
    let stream = connect(addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let owned = data.to_vec();
    let sender = std::thread::spawn(move || -> Result<(), String> {
        writer.write_all(&owned).map_err(|e| format!("write: {e}"))?;
        writer.shutdown(Shutdown::Write).map_err(|e| format!("shutdown: {e}"))
    });
    let mut got = Vec::with_capacity(data.len());
    let mut reader = stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| format!("read after {} bytes: {e}", got.len()))?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() > data.len() {
            return Err(format!("echo longer than sent: {} > {}", got.len(), data.len()));
        }
    }
    sender.join().map_err(|_| "sender panicked".to_string())??;
    if got.len() != data.len() {
        return Err(format!("echo ended early: {} of {} bytes", got.len(), data.len()));
    }
    if let Some(i) = got.iter().zip(data).position(|(a, b)| a != b) {
        return Err(format!("echo differs at byte {i}"));
    }
    Ok(start.elapsed())
}

/// Sends `count` datagrams of `size` bytes one after another and checks each
/// echo; a lost datagram is retried up to 3 times.
pub fn udp_echo(addr: SocketAddr, count: usize, size: usize) -> Result<(), String> {
    let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().unwrap();
    let sock = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(1000))).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65536];
    for i in 0..count {
        let msg = pattern(size, i as u64 + 1);
        let mut ok = false;
        for _ in 0..3 {
            sock.send_to(&msg, addr).map_err(|e| format!("send: {e}"))?;
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from == addr && buf[..n] == msg[..] => {
                    ok = true;
                    break;
                }
                Ok((n, from)) => return Err(format!("datagram {i}: wrong echo ({n} bytes from {from})")),
                Err(_) => continue,
            }
        }
        if !ok {
            return Err(format!("datagram {i}: no echo after 3 tries"));
        }
    }
    Ok(())
}

/// Opens `n` connections and holds them all open, sends a distinct message
/// on each, checks every echo, then closes them all cleanly.
pub fn concurrent(addr: SocketAddr, n: usize) -> Result<(), String> {
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let s = connect(addr, Duration::from_secs(10)).map_err(|e| format!("connection {i}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
        streams.push(s);
    }
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(&pattern(1000, i as u64 + 7)).map_err(|e| format!("connection {i}: write: {e}"))?;
    }
    for (i, s) in streams.iter_mut().enumerate() {
        let mut got = vec![0u8; 1000];
        s.read_exact(&mut got).map_err(|e| format!("connection {i}: read: {e}"))?;
        if got != pattern(1000, i as u64 + 7) {
            return Err(format!("connection {i}: wrong echo"));
        }
    }
    for (i, s) in streams.iter_mut().enumerate() {
        s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map_err(|e| format!("connection {i}: close: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("connection {i}: {} unexpected bytes at close", rest.len()));
        }
    }
    Ok(())
}
