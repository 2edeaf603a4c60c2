//! Reading a request: the target, headers, ranges and validators.

use super::*;

/// 505 for a well-formed version we do not speak (`HTTP/2.0`), 400 for a
/// request line that is simply malformed.
pub(super) fn version_error(head: &[u8]) -> u16 {
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
pub(super) fn decode_target(target: &str) -> Option<(String, &str)> {
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
pub(super) fn percent_encode(path: &str) -> String {
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

pub(super) fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> impl Iterator<Item = &'h [u8]> + 'h {
    let name = String::from(name);
    headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(&name)).map(|h| h.value)
}

pub(super) fn header_str<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h str> {
    header(headers, name).next().and_then(|v| core::str::from_utf8(v).ok()).map(str::trim)
}

pub(super) fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    header(headers, name)
        .any(|v| core::str::from_utf8(v).is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

pub(super) fn accepts_gzip(headers: &[httparse::Header<'_>]) -> bool {
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
pub(super) fn parse_range(value: &str, len: usize) -> Result<Option<(usize, usize)>, ()> {
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

pub(super) fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
    })
}
