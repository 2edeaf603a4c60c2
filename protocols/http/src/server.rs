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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// What to send back.
struct Reply<'a> {
    status: u16,
    headers: String,
    body: &'a [u8],
    /// Omit the body (HEAD, 304).
    head_only: bool,
    close: bool,
}

fn common_headers(h: &mut String, clock: &dyn Clock) {
    if let Some(now) = clock.wall() {
        let _ = write!(h, "Date: {}\r\n", date::format(now.unix_seconds()));
    }
    h.push_str("Server: morgana\r\n");
}

/// An error response: a short text body naming the status.
fn error<'a>(status: u16, clock: &dyn Clock, body: &'a mut String, extra: &str) -> Reply<'a> {
    let mut headers = String::new();
    common_headers(&mut headers, clock);
    headers.push_str(extra);
    *body = format!("{status} {}\n", reason(status));
    let _ = write!(headers, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n", body.len());
    Reply { status, headers, body: body.as_bytes(), head_only: false, close: !matches!(status, 404 | 416) }
}

/// 505 for a well-formed version we do not speak (`HTTP/2.0`), 400 for a
/// request line that is simply malformed.
fn version_error(head: &[u8]) -> u16 {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = core::str::from_utf8(line).unwrap_or("").trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (_m, _t, v) = (parts.next(), parts.next(), parts.next());
    let well_formed = v.and_then(|v| v.strip_prefix("HTTP/")).is_some_and(|n| {
        let b = n.as_bytes();
        b.len() == 3 && b[0].is_ascii_digit() && b[1] == b'.' && b[2].is_ascii_digit()
    });
    if well_formed && parts.next().is_none() {
        505
    } else {
        400
    }
}

/// Decodes a request target's path (origin or absolute form) into a site
/// path without the leading `/`, and returns the query too. `None`:
/// malformed, or an attempt to leave the site root.
fn decode_target(target: &str) -> Option<(String, &str)> {
    let target = match target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) {
        Some(rest) => &rest[rest.find('/')?..],
        None => target,
    };
    if !target.starts_with('/') {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let raw = path.as_bytes();
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hex = core::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            // An encoded slash or NUL would make one path look like another.
            if v == b'/' || v == 0 || v == b'\\' {
                return None;
            }
            bytes.push(v);
            i += 3;
        } else {
            if b == b'\\' || b == 0 {
                return None;
            }
            bytes.push(b);
            i += 1;
        }
    }
    let decoded = String::from_utf8(bytes).ok()?;
    let trailing = decoded.len() > 1 && decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded[1..].trim_end_matches('/').split('/') {
        match seg {
            ".." => return None,
            "." | "" => continue,
            s => segments.push(s),
        }
    }
    let mut out = segments.join("/");
    if trailing && !out.is_empty() {
        out.push('/');
    }
    Some((out, query))
}

/// Percent-encodes a decoded path for a `Location` header (RFC 3986
/// unreserved characters and `/` stay as they are).
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> impl Iterator<Item = &'h [u8]> + 'h {
    let name = String::from(name);
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(&name)).map(|h| h.value)
}

fn header_str<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h str> {
    header(headers, name).next().and_then(|v| core::str::from_utf8(v).ok()).map(str::trim)
}

fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    header(headers, name)
        .any(|v| core::str::from_utf8(v).is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

fn accepts_gzip(headers: &[httparse::Header<'_>]) -> bool {
    header(headers, "accept-encoding").any(|v| {
        core::str::from_utf8(v).is_ok_and(|v| {
            v.split(',').any(|t| {
                let mut parts = t.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let zero_q = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
                (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !zero_q
            })
        })
    })
}

/// `bytes=a-b` (one range) against `len`: `Ok(Some(range))`, `Ok(None)` to
/// ignore the header, `Err(())` for an unsatisfiable range (416).
fn parse_range(value: &str, len: usize) -> Result<Option<(usize, usize)>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None); // several ranges: send the whole representation
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Ok(None) };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<usize>() else { return Ok(None) };
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let Ok(start) = a.parse::<usize>() else { return Ok(None) };
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            let Ok(end) = b.parse::<usize>() else { return Ok(None) };
            if end < start {
                return Ok(None);
            }
            end.min(len.saturating_sub(1))
        };
        if start >= len {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
    })
}

/// Builds the response to a valid GET or HEAD for `entry`.
fn serve_entry<'a>(
    entry: &'a Entry,
    headers: &[httparse::Header<'_>],
    head_only: bool,
    clock: &dyn Clock,
) -> Reply<'a> {
    let gzip = entry.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let body: &[u8] = gzip.map_or(&entry.body, |g| g);
    let etag = match gzip {
        Some(_) => format!("{}-gz\"", entry.etag.trim_end_matches('"')),
        None => entry.etag.clone(),
    };
    let mut h = String::new();
    common_headers(&mut h, clock);
    let _ = write!(h, "Last-Modified: {}\r\nETag: {etag}\r\n", date::format(entry.modified));
    if entry.gzip.is_some() {
        h.push_str("Vary: Accept-Encoding\r\n");
    }
    let not_modified = match header_str(headers, "if-none-match") {
        Some(list) => etag_matches(list, &etag),
        None => header_str(headers, "if-modified-since").and_then(date::parse).is_some_and(|t| entry.modified <= t),
    };
    if not_modified {
        return Reply { status: 304, headers: h, body: &[], head_only: true, close: false };
    }
    let _ = write!(h, "Content-Type: {}\r\nAccept-Ranges: bytes\r\n", entry.content_type);
    if gzip.is_some() {
        h.push_str("Content-Encoding: gzip\r\n");
    }
    let if_range_ok = header_str(headers, "if-range").is_none_or(|v| v == etag);
    let range = match header_str(headers, "range").filter(|_| if_range_ok) {
        Some(v) => parse_range(v, body.len()),
        None => Ok(None),
    };
    match range {
        Err(()) => {
            let _ = write!(h, "Content-Range: bytes */{}\r\nContent-Length: 0\r\n", body.len());
            Reply { status: 416, headers: h, body: &[], head_only: true, close: false }
        }
        Ok(Some((a, b))) => {
            let _ = write!(h, "Content-Range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n", body.len(), b - a + 1);
            Reply { status: 206, headers: h, body: &body[a..=b], head_only, close: false }
        }
        Ok(None) => {
            let _ = write!(h, "Content-Length: {}\r\n", body.len());
            Reply { status: 200, headers: h, body, head_only, close: false }
        }
    }
}

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

/// The reply to a parsed request, and the length of the body that follows
/// the head (`Err` when the body cannot be read and the connection closes).
fn respond<'a>(
    req: &httparse::Request<'_, '_>,
    site: &'a Site,
    cfg: &Config,
    clock: &dyn Clock,
    scratch: &'a mut String,
) -> (Reply<'a>, Result<usize, ()>) {
    let headers = &*req.headers;
    let version = req.version.unwrap_or(1);
    // Request smuggling: never guess between two body lengths (RFC 9112 §6.3).
    let te = header(headers, "transfer-encoding").next().is_some();
    // Strictly digits (after spaces and tabs): `+5` or odd whitespace could
    // make this server and a proxy disagree about where the body ends.
    let strict = |v: &[u8]| -> Option<usize> {
        let v = core::str::from_utf8(v).ok()?.trim_matches([' ', '\t']);
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
    };
    let mut lengths = header(headers, "content-length").map(strict);
    let first = lengths.next();
    let consistent = lengths.all(|l| l == first.flatten() && l.is_some());
    if te {
        let status = if first.is_some() { 400 } else { 501 };
        return (error(status, clock, scratch, ""), Err(()));
    }
    let body = match first {
        None => 0,
        Some(Some(n)) if consistent => n,
        Some(_) => return (error(400, clock, scratch, ""), Err(())),
    };
    if body > cfg.max_body {
        return (error(413, clock, scratch, ""), Err(()));
    }
    let hosts = header(headers, "host").count();
    if hosts > 1 || (version == 1 && hosts == 0) {
        return (error(400, clock, scratch, ""), Err(()));
    }
    let method = req.method.unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && method != "HEAD" {
        return (error(405, clock, scratch, "Allow: GET, HEAD\r\n"), Err(()));
    }
    let target = req.path.unwrap_or("");
    if target.len() > cfg.max_request_line {
        return (error(414, clock, scratch, ""), Err(()));
    }
    let Some((path, query)) = decode_target(target) else {
        return (error(400, clock, scratch, ""), Err(()));
    };
    let keep_alive = if version == 1 {
        !has_token(headers, "connection", "close")
    } else {
        has_token(headers, "connection", "keep-alive")
    };
    let mut reply = if let Some(port) = cfg.redirect_https {
        let host = header_str(headers, "host").unwrap_or("");
        let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !valid {
            return (error(400, clock, scratch, ""), Err(()));
        }
        let bare = match host.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') => h,
            _ => host,
        };
        let port = if port == 443 { String::new() } else { format!(":{port}") };
        // The origin-form part of the target (an absolute-form target names
        // its own host, which is not trusted for the redirect).
        let origin_form = match target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")) {
            Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
            None => target,
        };
        redirect(&format!("https://{bare}{port}{origin_form}"), clock, scratch)
    } else {
        let index = if path.is_empty() || path.ends_with('/') { Some(format!("{path}index.html")) } else { None };
        match index.as_deref().or(Some(path.as_str())).and_then(|p| site.get(p)) {
            Some(entry) => serve_entry(entry, headers, head_only, clock),
            None if index.is_none() && site.is_dir(&path) => {
                let q = if query.is_empty() { String::new() } else { format!("?{query}") };
                redirect(&format!("/{}/{q}", percent_encode(&path)), clock, scratch)
            }
            None => error(404, clock, scratch, ""),
        }
    };
    reply.head_only |= head_only;
    if !keep_alive {
        reply.close = true;
    } else if version == 0 {
        reply.headers.push_str("Connection: keep-alive\r\n");
    }
    (reply, Ok(body))
}

fn redirect<'a>(location: &str, clock: &dyn Clock, scratch: &'a mut String) -> Reply<'a> {
    let mut headers = String::new();
    common_headers(&mut headers, clock);
    *scratch = format!("Moved to {location}\n");
    let _ = write!(
        headers,
        "Location: {location}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        scratch.len()
    );
    Reply { status: 301, headers, body: scratch.as_bytes(), head_only: false, close: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3986_targets_cannot_leave_the_root() {
        assert_eq!(decode_target("/a/b.html?x=1"), Some(("a/b.html".into(), "x=1")));
        assert_eq!(decode_target("/a/"), Some(("a/".into(), "")));
        assert_eq!(decode_target("/"), Some(("".into(), "")));
        assert_eq!(decode_target("/a%20b"), Some(("a b".into(), "")));
        assert_eq!(decode_target("http://host/x"), Some(("x".into(), "")));
        for bad in
            ["/../etc/passwd", "/a/../../x", "/%2e%2e/x", "/%2E%2E%2fx", "/a%2fb", "/a%00", "/a\\b", "/%zz", "x", "*"]
        {
            assert_eq!(decode_target(bad), None, "{bad}");
        }
        assert_eq!(decode_target("/./a"), Some(("a".into(), "")));
    }

    #[test]
    fn rfc9110_14_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range("items=0-1", 100), Ok(None));
        assert_eq!(parse_range("bytes=9-0", 100), Ok(None));
    }

    #[test]
    fn rfc9110_12_accept_encoding() {
        let h = |v: &'static str| [httparse::Header { name: "Accept-Encoding", value: v.as_bytes() }];
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
    }

    #[test]
    fn rfc9110_13_etags() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
