//! `--metrics ADDR:PORT`: the counters of the runtime, the network stack and
//! the app's protocols at `GET /metrics`, in the Prometheus text format.
//!
//! A small HTTP/1.1 responder of its own (no HTTP crate in every image):
//! one request per connection, then close. It is bounded like everything
//! else facing a network: at most [`MAX_CONNECTIONS`] at once (at the cap
//! the one that has waited longest makes way), a request head of at most
//! [`MAX_HEAD`] bytes (431 beyond), [`HEAD_TIMEOUT`] to send it (408 after)
//! and the same to take the answer.

use alloc::format;
use alloc::string::String;
use core::str::FromStr;
use core::time::Duration;

use morgana_net::{ListenAddr, Slots, Stack, TcpListener, TcpStream};
use morgana_runtime::metrics::{self, Encoder};
use morgana_runtime::Handle;

/// Scrapes served at once.
pub(crate) const MAX_CONNECTIONS: usize = 4;
/// The longest request head read.
pub(crate) const MAX_HEAD: usize = 1024;
/// Time to send the request head, and again to take the answer.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// `ADDR:PORT`, `[V6]:PORT` or `:PORT` (all addresses).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addr(pub(crate) ListenAddr);

impl FromStr for Addr {
    type Err = String;
    fn from_str(s: &str) -> Result<Addr, String> {
        s.parse().map(Addr)
    }
}

/// Serves scrapes on `listener` forever.
pub(crate) async fn serve(mut listener: TcpListener, net: Stack, rt: Handle) {
    let slots = Slots::new(MAX_CONNECTIONS, rt.clone()).with_cost(4 * MAX_HEAD);
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!("metrics: accept: {e}");
                continue;
            }
        };
        let Some(slot) = slots.admit().await else {
            stream.abort();
            continue;
        };
        stream.attach(slot);
        stream.set_timeout(Some(HEAD_TIMEOUT));
        let (net, rt2) = (net.clone(), rt.clone());
        rt.spawn(async move {
            if let Err(e) = answer(&mut stream, &net, &rt2).await {
                log::debug!("metrics: {peer}: {e}");
                return;
            }
            finish(stream, &rt2).await;
        });
    }
}

/// Reads one request head and answers it.
async fn answer(stream: &mut TcpStream, net: &Stack, rt: &Handle) -> Result<(), morgana_net::Error> {
    let mut buf = [0u8; MAX_HEAD];
    let read_head = async {
        let mut filled = 0;
        loop {
            if let Some(end) = head_end(&buf[..filled]) {
                return Ok(Some(end));
            }
            if filled == buf.len() {
                return Ok(None);
            }
            match stream.read(&mut buf[filled..]).await? {
                0 => return Err(morgana_net::Error::ConnectionReset),
                n => filled += n,
            }
        }
    };
    let (status, body) = match rt.timeout(HEAD_TIMEOUT, read_head).await {
        Err(_) | Ok(Err(morgana_net::Error::TimedOut)) => (408, String::new()),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(None)) => (431, String::new()),
        Ok(Ok(Some(end))) => route(&buf[..end], net),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Request Header Fields Too Large",
    };
    let content_type = if status == 200 { metrics::CONTENT_TYPE } else { "text/plain; charset=utf-8" };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

/// Closes after the answer. What the client sent beyond the head (an
/// oversized head, a body) is read and dropped for a short while first:
/// closing with it unread would reset the connection, and the client could
/// lose the answer.
async fn finish(mut stream: TcpStream, rt: &Handle) {
    if stream.shutdown_write().is_err() {
        return;
    }
    let mut sink = [0u8; 512];
    let mut left = DRAIN_BYTES;
    let drain = async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = rt.timeout(DRAIN_TIME, drain).await;
}

/// At most this much is read and dropped after the answer...
const DRAIN_BYTES: usize = 64 * 1024;
/// ...for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Where the head ends (after its blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The status and body for a request head.
fn route(head: &[u8], net: &Stack) -> (u16, String) {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = core::str::from_utf8(line).unwrap_or("").trim_end_matches('\r');
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return (400, String::new());
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return (400, String::new());
    }
    if method != "GET" {
        return (405, String::new());
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return (404, String::from("not found: the metrics are at /metrics\n"));
    }
    let mut body = String::new();
    metrics::render(&mut body);
    net.write_metrics(&mut Encoder::new(&mut body));
    (200, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn heads_end_at_their_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nrest"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn addresses_take_a_port_alone_or_an_address() {
        assert_eq!("127.0.0.1:9100".parse::<Addr>().unwrap().0.to_string(), "127.0.0.1:9100");
        assert_eq!(":9100".parse::<Addr>().unwrap().0, ListenAddr { ip: None, port: 9100 });
        assert_eq!("[::1]:9".parse::<Addr>().unwrap().0.to_string(), "[::1]:9");
        assert!("9100".parse::<Addr>().is_err() && ":x".parse::<Addr>().is_err());
    }
}
