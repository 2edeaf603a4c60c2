//! Building a reply: status lines, common headers, files, errors, redirects.

use super::*;

pub(super) fn reason(status: u16) -> &'static str {
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
pub(super) struct Reply<'a> {
    pub(super) status: u16,
    pub(super) headers: String,
    pub(super) body: &'a [u8],
    /// Omit the body (HEAD, 304).
    pub(super) head_only: bool,
    pub(super) close: bool,
}

pub(super) fn common_headers(h: &mut String, clock: &dyn Clock) {
    if let Some(now) = clock.wall() {
        let _ = write!(h, "Date: {}\r\n", date::format(now.unix_seconds()));
    }
    h.push_str("Server: morgana\r\n");
}

/// An error response: a short text body naming the status.
pub(super) fn error<'a>(status: u16, clock: &dyn Clock, body: &'a mut String, extra: &str) -> Reply<'a> {
    let mut headers = String::new();
    common_headers(&mut headers, clock);
    headers.push_str(extra);
    *body = format!("{status} {}\n", reason(status));
    let _ = write!(headers, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n", body.len());
    Reply { status, headers, body: body.as_bytes(), head_only: false, close: !matches!(status, 404 | 416) }
}

/// Builds the response to a valid GET or HEAD for `entry`.
pub(super) fn serve_entry<'a>(
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

/// The reply to a parsed request, and the length of the body that follows
/// the head (`Err` when the body cannot be read and the connection closes).
pub(super) fn respond<'a>(
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
    let challenge = cfg.acme_challenges.as_ref().and_then(|c| c.lookup(&path));
    let mut reply = if let Some(answer) = challenge {
        match answer {
            Some(key_authorization) => {
                *scratch = key_authorization;
                let mut headers = String::new();
                common_headers(&mut headers, clock);
                let _ =
                    write!(headers, "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n", scratch.len());
                Reply { status: 200, headers, body: scratch.as_bytes(), head_only: false, close: false }
            }
            None => error(404, clock, scratch, ""),
        }
    } else if let Some(port) = cfg.redirect_https {
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

pub(super) fn redirect<'a>(location: &str, clock: &dyn Clock, scratch: &'a mut String) -> Reply<'a> {
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
