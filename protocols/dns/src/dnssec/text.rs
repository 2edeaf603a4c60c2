//! Presentation formats of the DNSSEC record types (RFC 4034 §§2.2, 3.2,
//! 4.2, 5.3; RFC 5155 §§3.3, 4.3), as `dnssec-signzone` and
//! `ldns-signzone` write them. The data is kept in wire form.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;

use crate::name::Name;
use crate::rdata::{type_from_name, Token};
use crate::wire::rtype;

fn number<T: TryFrom<u64>>(t: &Token, what: &str) -> Result<T, String> {
    t.text
        .parse::<u64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("'{}' is not a valid {what}", t.text))
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not hexadecimal"));
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| "bad hex".into())).collect()
}

fn base64(tokens: &[Token]) -> Result<Vec<u8>, String> {
    let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
    base64::engine::general_purpose::STANDARD.decode(text.as_bytes()).map_err(|e| format!("bad base64: {e}"))
}

/// Decodes base32 with the extended hex alphabet (RFC 4648 §7), no padding.
pub fn base32hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c.to_ascii_lowercase() {
            b'0'..=b'9' => c - b'0',
            l @ b'a'..=b'v' => l - b'a' + 10,
            _ => return Err(format!("'{s}' is not base32hex")),
        };
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err(format!("'{s}' has trailing base32hex bits"));
    }
    Ok(out)
}

/// Encodes base32hex, lowercase, no padding (the NSEC3 owner label form).
pub fn base32hex_encode(b: &[u8]) -> String {
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(b.len() * 8 / 5 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &x in b {
        acc = (acc << 8) | x as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(DIGITS[((acc >> bits) & 31) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(DIGITS[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The RFC 4034 §4.1.2 type bitmap of the given type mnemonics.
fn type_bitmap(tokens: &[Token]) -> Result<Vec<u8>, String> {
    let mut types = Vec::with_capacity(tokens.len());
    for t in tokens {
        types.push(type_from_name(&t.text).ok_or_else(|| format!("unknown record type '{}' in bitmap", t.text))?);
    }
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while i < types.len() {
        let window = (types[i] >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while i < types.len() && (types[i] >> 8) as u8 == window {
            let low = (types[i] & 0xff) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.extend_from_slice(&[window, len as u8]);
        out.extend_from_slice(&bits[..len]);
    }
    Ok(out)
}

/// Whether `bitmap` (RFC 4034 §4.1.2 form) lists `t`.
pub fn bitmap_has(bitmap: &[u8], t: u16) -> bool {
    let mut p = 0;
    while p + 2 <= bitmap.len() {
        let (window, len) = (bitmap[p], bitmap[p + 1] as usize);
        let bits = bitmap.get(p + 2..p + 2 + len).unwrap_or(&[]);
        if window as u16 == t >> 8 {
            let low = (t & 0xff) as usize;
            return bits.get(low / 8).is_some_and(|b| b & (0x80 >> (low % 8)) != 0);
        }
        p += 2 + len;
    }
    false
}

/// Seconds since 1970 of a `YYYYMMDDHHmmSS` time (UTC), or a plain number
/// of seconds (RFC 4034 §3.2).
fn sig_time(t: &Token) -> Result<u32, String> {
    let s = t.text.as_str();
    let bad = || format!("'{s}' is not a signature time");
    if s.len() != 14 {
        return number(t, "signature time");
    }
    let d = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok()).ok_or_else(bad);
    let (y, m, day, h, min, sec) = (d(0, 4)?, d(4, 6)?, d(6, 8)?, d(8, 10)?, d(10, 12)?, d(12, 14)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    // Serial number arithmetic (RFC 4034 §3.1.5): the value is mod 2^32.
    Ok(secs.rem_euclid(1 << 32) as u32)
}

/// Parses the presentation form of a DNSSEC type into wire bytes; `None`
/// for other types.
pub fn parse(rt: u16, tokens: &[Token], origin: &Name) -> Option<Result<Vec<u8>, String>> {
    let at_least = |n: usize, what: &str| -> Result<(), String> {
        if tokens.len() >= n {
            Ok(())
        } else {
            Err(format!("{what} expects at least {n} fields, found {}", tokens.len()))
        }
    };
    let name = |t: &Token| Name::parse(&t.text, Some(origin)).map_err(|e| format!("bad name '{}': {e}", t.text));
    let salt = |t: &Token| -> Result<Vec<u8>, String> {
        let s = if t.text == "-" { Vec::new() } else { hex(&t.text)? };
        if s.len() > 255 {
            return Err("NSEC3 salt over 255 octets".into());
        }
        let mut out = alloc::vec![s.len() as u8];
        out.extend_from_slice(&s);
        Ok(out)
    };
    let r = || -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        match rt {
            rtype::DS | rtype::CDS => {
                at_least(4, "DS")?;
                out.extend_from_slice(&number::<u16>(&tokens[0], "key tag")?.to_be_bytes());
                out.push(number(&tokens[1], "algorithm")?);
                out.push(number(&tokens[2], "digest type")?);
                let digest: String = tokens[3..].iter().map(|t| t.text.as_str()).collect();
                out.extend_from_slice(&hex(&digest)?);
            }
            rtype::DNSKEY | rtype::CDNSKEY => {
                at_least(4, "DNSKEY")?;
                out.extend_from_slice(&number::<u16>(&tokens[0], "DNSKEY flags")?.to_be_bytes());
                out.push(number(&tokens[1], "protocol")?);
                out.push(number(&tokens[2], "algorithm")?);
                out.extend_from_slice(&base64(&tokens[3..])?);
            }
            rtype::RRSIG => {
                at_least(9, "RRSIG")?;
                let covered = type_from_name(&tokens[0].text)
                    .ok_or_else(|| format!("unknown type covered '{}'", tokens[0].text))?;
                out.extend_from_slice(&covered.to_be_bytes());
                out.push(number(&tokens[1], "algorithm")?);
                out.push(number(&tokens[2], "label count")?);
                out.extend_from_slice(&number::<u32>(&tokens[3], "original TTL")?.to_be_bytes());
                out.extend_from_slice(&sig_time(&tokens[4])?.to_be_bytes());
                out.extend_from_slice(&sig_time(&tokens[5])?.to_be_bytes());
                out.extend_from_slice(&number::<u16>(&tokens[6], "key tag")?.to_be_bytes());
                out.extend_from_slice(name(&tokens[7])?.wire());
                out.extend_from_slice(&base64(&tokens[8..])?);
            }
            rtype::NSEC => {
                at_least(1, "NSEC")?;
                out.extend_from_slice(name(&tokens[0])?.wire());
                out.extend_from_slice(&type_bitmap(&tokens[1..])?);
            }
            rtype::NSEC3 => {
                at_least(5, "NSEC3")?;
                out.push(number(&tokens[0], "hash algorithm")?);
                out.push(number(&tokens[1], "NSEC3 flags")?);
                out.extend_from_slice(&number::<u16>(&tokens[2], "iterations")?.to_be_bytes());
                out.extend_from_slice(&salt(&tokens[3])?);
                let next = base32hex_decode(&tokens[4].text)?;
                if next.is_empty() || next.len() > 255 {
                    return Err("bad NSEC3 next hashed owner".into());
                }
                out.push(next.len() as u8);
                out.extend_from_slice(&next);
                out.extend_from_slice(&type_bitmap(&tokens[5..])?);
            }
            rtype::NSEC3PARAM => {
                if tokens.len() != 4 {
                    return Err(format!("NSEC3PARAM expects 4 fields, found {}", tokens.len()));
                }
                out.push(number(&tokens[0], "hash algorithm")?);
                out.push(number(&tokens[1], "NSEC3PARAM flags")?);
                out.extend_from_slice(&number::<u16>(&tokens[2], "iterations")?.to_be_bytes());
                out.extend_from_slice(&salt(&tokens[3])?);
            }
            _ => unreachable!("checked below"),
        }
        Ok(out)
    };
    matches!(
        rt,
        rtype::DS
            | rtype::CDS
            | rtype::DNSKEY
            | rtype::CDNSKEY
            | rtype::RRSIG
            | rtype::NSEC
            | rtype::NSEC3
            | rtype::NSEC3PARAM
    )
    .then(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn toks(s: &str) -> Vec<Token> {
        s.split_whitespace().map(|t| Token { text: t.to_string(), quoted: false }).collect()
    }

    fn origin() -> Name {
        Name::parse("example.", None).unwrap()
    }

    #[test]
    fn rfc4648_base32hex_round_trip() {
        let b = base32hex_decode("0p9mhaveqvm6t7vbl5lop2u3t2rp3tom").unwrap();
        assert_eq!(b.len(), 20);
        assert_eq!(base32hex_encode(&b), "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom");
        assert!(base32hex_decode("wxyz").is_err());
    }

    #[test]
    fn rfc4034_4_1_2_bitmap() {
        // The example of RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let b = type_bitmap(&toks("A MX RRSIG NSEC TYPE1234")).unwrap();
        let mut want = alloc::vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend_from_slice(&[0; 26]);
        want.push(0x20);
        assert_eq!(b, want);
        assert!(bitmap_has(&b, rtype::MX) && bitmap_has(&b, 1234) && !bitmap_has(&b, rtype::AAAA));
    }

    #[test]
    fn rfc4034_3_2_rrsig_time() {
        // RFC 4034 §3.3's example: 20030322173103 is 1048354263.
        assert_eq!(sig_time(&toks("20030322173103")[0]), Ok(1_048_354_263));
        assert_eq!(sig_time(&toks("1048354263")[0]), Ok(1_048_354_263));
        assert!(sig_time(&toks("20031322173103")[0]).is_err());
    }

    #[test]
    fn rfc5155_3_3_nsec3_text() {
        let t = toks("1 1 12 aabbccdd 2t7b4g4vsa5smi47k61mv5bv1a22bojr MX DNSKEY NS SOA NSEC3PARAM RRSIG");
        let w = parse(rtype::NSEC3, &t, &origin()).unwrap().unwrap();
        assert_eq!(&w[..9], [1, 1, 0, 12, 4, 0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(w[9], 20);
        let p = parse(rtype::NSEC3PARAM, &toks("1 0 0 -"), &origin()).unwrap().unwrap();
        assert_eq!(p, [1, 0, 0, 0, 0]);
        assert!(parse(rtype::A, &t, &origin()).is_none());
        assert!(parse(rtype::NSEC3, &toks("1 1 12 xyz 2t7b"), &origin()).unwrap().is_err());
    }
}
