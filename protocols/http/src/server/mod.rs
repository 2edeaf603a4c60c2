//! One HTTP/1.1 connection.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::time::Duration;

use embedded_io_async::{Read, Write};
use morgana_devices::Clock;
use morgana_runtime::Handle;

use crate::date;
use crate::site::{Entry, Site};

/// Limits and behaviour.
#[derive(Debug, Clone)]
pub struct Config {
    /// Time allowed to receive a whole request head once it has started
    /// (slow clients get 408).
    pub header_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time allowed to send one response.
    pub write_timeout: Duration,
    /// Longest request line (414 beyond).
    pub max_request_line: usize,
    /// Largest request head (431 beyond).
    pub max_head: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
    /// Largest request body read and discarded (413 beyond).
    pub max_body: usize,
    /// Answer every request with a redirect to HTTPS on this port.
    pub redirect_https: Option<u16>,
    /// Send `Strict-Transport-Security: max-age=N` with every response
    /// (RFC 6797; set it on HTTPS connections only).
    pub hsts: Option<u64>,
    /// ACME HTTP-01 answers to serve (plain HTTP only), before any redirect.
    pub acme_challenges: Option<crate::Challenges>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_request_line: 8 * 1024,
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
            redirect_https: None,
            hsts: None,
            acme_challenges: None,
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The client closed it, or asked to with `Connection: close`.
    Done,
    /// Idle too long between requests.
    Idle,
    /// Closed after an error response (or a 408).
    Error,
}

mod reply;
mod request;
#[cfg(test)]
mod tests;

use reply::*;
use request::*;

/// Serves requests on `stream` until the client closes, idles out, or an
/// error ends the connection. Returns how it ended and how many requests
/// were answered.
pub async fn serve_connection<S>(
    stream: &mut S,
    site: &Site,
    cfg: &Config,
    rt: &Handle,
    clock: &dyn Clock,
) -> Result<(Outcome, usize), S::Error>
where
    S: Read + Write,
{
    // The head buffer grows while a head arrives (up to `max_head`) and
    // shrinks back between requests: an idle or stalled connection holds
    // `HEAD_START` bytes, not `max_head`.
    let mut buf: Vec<u8> = Vec::new();
    let mut filled = 0usize;
    let mut served = 0usize;
    loop {
        if filled == 0 {
            if buf.len() > HEAD_START {
                buf = Vec::new();
            }
            if buf.is_empty() {
                grow_head(&mut buf, cfg.max_head);
            }
            match rt.timeout(cfg.idle_timeout, stream.read(&mut buf)).await {
                Err(_) => return Ok((Outcome::Idle, served)),
                Ok(r) => match r? {
                    0 => return Ok((Outcome::Done, served)),
                    n => filled = n,
                },
            }
        }
        let deadline = rt.now() + cfg.header_timeout;
        let mut scratch = String::new();
        // Read until the head is complete, or fail with a status.
        let parsed: Result<usize, u16> = loop {
            // Parse only once the head may be complete (a blank line has
            // arrived), so trickled bytes do not cost a parse each; but
            // reject a malformed request line as soon as it is complete.
            let blank_line = buf[..filled].windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
            let line_end = buf[..filled].iter().position(|b| *b == b'\n');
            let upto = if blank_line { Some(filled) } else { line_end.map(|e| e + 1) };
            if let Some(upto) = upto {
                let mut headers_storage = vec![httparse::EMPTY_HEADER; cfg.max_headers];
                let mut req = httparse::Request::new(&mut headers_storage);
                match req.parse(&buf[..upto]) {
                    Ok(httparse::Status::Complete(n)) if blank_line => break Ok(n),
                    Ok(_) => {}
                    Err(httparse::Error::TooManyHeaders) => break Err(431),
                    Err(httparse::Error::Version) => break Err(version_error(&buf[..filled])),
                    Err(_) => break Err(400),
                }
            }
            let line_done = buf[..filled].contains(&b'\n');
            if !line_done && filled >= cfg.max_request_line {
                break Err(414);
            }
            if filled == buf.len() && !grow_head(&mut buf, cfg.max_head) {
                break Err(431);
            }
            let left = deadline.saturating_since(rt.now());
            match rt.timeout(left, stream.read(&mut buf[filled..])).await {
                Err(_) => break Err(408),
                Ok(r) => match r? {
                    0 => return Ok((Outcome::Done, served)), // gone mid-request
                    n => filled += n,
                },
            }
        };
        let mut headers_storage2 = vec![httparse::EMPTY_HEADER; cfg.max_headers];
        let (reply, consumed) = match parsed {
            Err(status) => (error(status, clock, &mut scratch, ""), filled),
            Ok(head_len) => {
                let mut req = httparse::Request::new(&mut headers_storage2);
                let _ = req.parse(&buf[..head_len]);
                let (reply, body_len) = respond(&req, site, cfg, clock, &mut scratch);
                match body_len {
                    Ok(body) if head_len + body <= filled => (reply, head_len + body),
                    Ok(body) => {
                        // Discard the rest of a (small) request body.
                        let mut left = head_len + body - filled;
                        let mut sink = vec![0u8; left.min(1024)];
                        while left > 0 {
                            let n = left.min(sink.len());
                            match rt.timeout(deadline.saturating_since(rt.now()), stream.read(&mut sink[..n])).await {
                                Ok(r) => match r? {
                                    0 => return Ok((Outcome::Done, served)),
                                    k => left -= k,
                                },
                                Err(_) => return Ok((Outcome::Error, served)),
                            }
                        }
                        (reply, filled)
                    }
                    Err(()) => (reply, filled),
                }
            }
        };
        if log::log_enabled!(log::Level::Debug) {
            let line = buf[..filled].split(|b| *b == b'\n').next().unwrap_or(&[]);
            let line = core::str::from_utf8(line).unwrap_or("<binary>").trim_end();
            log::debug!("{} -> {}", line.get(..line.len().min(200)).unwrap_or(""), reply.status);
        }
        let close = reply.close;
        let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        head.push_str(&reply.headers);
        if let Some(max_age) = cfg.hsts {
            let _ = write!(head, "Strict-Transport-Security: max-age={max_age}\r\n");
        }
        head.push_str(if close { "Connection: close\r\n\r\n" } else { "\r\n" });
        let body = if reply.head_only { &[][..] } else { reply.body };
        let send = async {
            stream.write_all(head.as_bytes()).await?;
            if !body.is_empty() {
                stream.write_all(body).await?;
            }
            stream.flush().await
        };
        match rt.timeout(cfg.write_timeout, send).await {
            Ok(r) => r?,
            Err(_) => return Ok((Outcome::Error, served)),
        }
        served += 1;
        crate::metrics::response(reply.status);
        if close {
            let outcome = if reply.status >= 400 { Outcome::Error } else { Outcome::Done };
            return Ok((outcome, served));
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
    }
}

/// The head buffer's first size.
const HEAD_START: usize = 1024;

/// Doubles `buf` (from `HEAD_START`, up to `max`); false if it is at `max`.
fn grow_head(buf: &mut Vec<u8>, max: usize) -> bool {
    let new = (buf.len() * 2).clamp(HEAD_START.min(max), max);
    if new <= buf.len() {
        return false;
    }
    buf.resize(new, 0);
    true
}
