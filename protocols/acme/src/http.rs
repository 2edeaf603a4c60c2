//! One HTTP/1.1 request and its response, over any byte stream (the ACME
//! server is reached over TLS). `Connection: close`: one request per
//! connection. Sizes are bounded; a response past the bound is an error.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use embedded_io_async::{Read, Write};

use crate::Error;

/// Largest response head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest response body (a certificate chain is a few KiB).
pub const MAX_BODY: usize = 128 * 1024;

/// What the server answered, with the headers ACME uses.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Location`.
    pub location: Option<String>,
    /// `Replay-Nonce`.
    pub nonce: Option<String>,
    /// `Content-Type`, without parameters, lower case.
    pub content_type: String,
    /// `Retry-After`, when given in seconds.
    pub retry_after: Option<u64>,
    /// The body.
    pub body: Vec<u8>,
}

/// A request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// GET, HEAD or POST.
    pub method: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    /// The origin-form target, starting with `/`.
    pub path: &'a str,
    /// The body, sent as `application/jose+json` (POST).
    pub body: Option<&'a [u8]>,
}

/// Sends `req` on `stream` and reads the whole response.
pub async fn exchange<S: Read + Write>(stream: &mut S, req: &Request<'_>) -> Result<Response, Error> {
    let mut head = String::new();
    let _ = write!(
        head,
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: morgana-acme\r\nAccept: */*\r\nConnection: close\r\n",
        req.method, req.path, req.host
    );
    if let Some(body) = req.body {
        let _ = write!(head, "Content-Type: application/jose+json\r\nContent-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let io = |e: S::Error| Error::new(alloc::format!("HTTP: {e:?}"));
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    if let Some(body) = req.body {
        stream.write_all(body).await.map_err(io)?;
    }
    stream.flush().await.map_err(io)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(resp) = parse(&buf, req.method == "HEAD", false)? {
            return Ok(resp);
        }
        let n = stream.read(&mut chunk).await.map_err(io)?;
        if n == 0 {
            return parse(&buf, req.method == "HEAD", true)?.ok_or_else(|| Error::new("HTTP: response truncated"));
        }
        if buf.len() + n > MAX_HEAD + MAX_BODY {
            return Err(Error::new(alloc::format!("HTTP: response larger than {} bytes", MAX_HEAD + MAX_BODY)));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete response in `buf`, `None` if more is needed. At `eof`, a
/// body without a length ends with the stream.
pub fn parse(buf: &[u8], head_only: bool, eof: bool) -> Result<Option<Response>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Error::new("HTTP: response head too large"))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::new(alloc::format!("HTTP: malformed response: {e}"))),
    };
    let mut resp = Response { status: r.code.unwrap_or(0), ..Response::default() };
    let mut length = None;
    let mut chunked = false;
    for h in r.headers.iter() {
        let value = core::str::from_utf8(h.value).map_err(|_| Error::new("HTTP: header not UTF-8"))?.trim();
        match h.name.to_ascii_lowercase().as_str() {
            "location" => resp.location = Some(value.into()),
            "replay-nonce" => resp.nonce = Some(value.into()),
            "content-type" => resp.content_type = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase(),
            "retry-after" => resp.retry_after = value.parse().ok(),
            "content-length" => {
                let n: usize = value.parse().map_err(|_| Error::new("HTTP: bad Content-Length"))?;
                if n > MAX_BODY {
                    return Err(Error::new(alloc::format!("HTTP: body of {n} bytes is over {MAX_BODY}")));
                }
                length = Some(n);
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let rest = &buf[head_len..];
    let no_body = head_only || resp.status == 204 || resp.status == 304 || (100..200).contains(&resp.status);
    if no_body {
        return Ok(Some(resp));
    }
    if chunked {
        return Ok(dechunk(rest)?.map(|body| Response { body, ..resp }));
    }
    match length {
        Some(n) if rest.len() >= n => resp.body = rest[..n].to_vec(),
        Some(_) if eof => return Err(Error::new("HTTP: body truncated")),
        Some(_) => return Ok(None),
        None if eof => resp.body = rest.to_vec(),
        None => return Ok(None),
    }
    Ok(Some(resp))
}

/// Decodes a chunked body; `None` until the last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = core::str::from_utf8(&rest[..eol]).map_err(|_| Error::new("HTTP: bad chunk size"))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| Error::new("HTTP: bad chunk size"))?;
        if size > MAX_BODY || body.len() + size > MAX_BODY {
            return Err(Error::new("HTTP: chunked body too large"));
        }
        rest = &rest[eol + 2..];
        if size == 0 {
            // Trailers are not used; the body is complete.
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body_and_headers() {
        let r = b"HTTP/1.1 201 Created\r\nLocation: https://ca/o/1\r\nReplay-Nonce: abc\r\n\
            Content-Type: application/json; charset=utf-8\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}";
        let resp = parse(r, false, false).unwrap().unwrap();
        assert_eq!(resp.status, 201);
        assert_eq!(resp.location.as_deref(), Some("https://ca/o/1"));
        assert_eq!(resp.nonce.as_deref(), Some("abc"));
        assert_eq!(resp.content_type, "application/json");
        assert_eq!(resp.retry_after, Some(3));
        assert_eq!(resp.body, b"{}");
        assert!(parse(&r[..r.len() - 1], false, false).unwrap().is_none());
        assert!(parse(&r[..r.len() - 1], false, true).is_err());
    }

    #[test]
    fn chunked_and_until_close() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(r, false, false).unwrap().unwrap().body, b"abcde");
        assert!(parse(&r[..r.len() - 7], false, false).unwrap().is_none());
        let r = b"HTTP/1.1 200 OK\r\n\r\nall of it";
        assert!(parse(r, false, false).unwrap().is_none());
        assert_eq!(parse(r, false, true).unwrap().unwrap().body, b"all of it");
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert!(parse(r, true, false).unwrap().unwrap().body.is_empty());
    }

    #[test]
    fn hostile_responses_are_errors() {
        assert!(parse(b"SMTP ready\r\n\r\n", false, false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false, false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFF\r\n", false, false).is_err());
        let huge_head = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD + 10]].concat();
        assert!(parse(&huge_head, false, false).is_err());
    }
}
