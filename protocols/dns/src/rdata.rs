//! Record data: the types Morgana knows by name, and RFC 3597 opaque data
//! for every other type.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{Ipv4Addr, Ipv6Addr};

use crate::name::Name;
use crate::wire::{rtype, Writer};

/// The SOA record's fields (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// Primary name server.
    pub mname: Name,
    /// Responsible mailbox.
    pub rname: Name,
    /// Serial number.
    pub serial: u32,
    /// Refresh interval.
    pub refresh: u32,
    /// Retry interval.
    pub retry: u32,
    /// Expiry.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    pub minimum: u32,
}

/// The data of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// A: an IPv4 address.
    A(Ipv4Addr),
    /// AAAA: an IPv6 address.
    Aaaa(Ipv6Addr),
    /// NS, CNAME or PTR: one name (compressed on output).
    Name(Name),
    /// MX: preference and exchange.
    Mx(u16, Name),
    /// SOA (boxed: it is rare and large, and keeps every other record
    /// small).
    Soa(alloc::boxed::Box<Soa>),
    /// SRV: priority, weight, port, target (never compressed, RFC 2782).
    Srv(u16, u16, u16, Name),
    /// Any other type (TXT, CAA, unknown): the wire bytes.
    Opaque(Vec<u8>),
}

impl Rdata {
    /// Appends the data in wire form, compressing the names that RFC 3597
    /// §4 allows to be compressed.
    pub fn write(&self, w: &mut Writer) {
        match self {
            Rdata::A(a) => w.bytes(&a.octets()),
            Rdata::Aaaa(a) => w.bytes(&a.octets()),
            Rdata::Name(n) => w.write_name(n.wire(), true),
            Rdata::Mx(pref, n) => {
                w.bytes(&pref.to_be_bytes());
                w.write_name(n.wire(), true);
            }
            Rdata::Soa(s) => {
                w.write_name(s.mname.wire(), true);
                w.write_name(s.rname.wire(), true);
                for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
                    w.bytes(&v.to_be_bytes());
                }
            }
            Rdata::Srv(p, wt, port, n) => {
                w.bytes(&p.to_be_bytes());
                w.bytes(&wt.to_be_bytes());
                w.bytes(&port.to_be_bytes());
                w.write_name(n.wire(), false);
            }
            Rdata::Opaque(b) => w.bytes(b),
        }
    }

    /// The uncompressed wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Rdata::A(a) => out.extend_from_slice(&a.octets()),
            Rdata::Aaaa(a) => out.extend_from_slice(&a.octets()),
            Rdata::Name(n) => out.extend_from_slice(n.wire()),
            Rdata::Mx(p, n) => {
                out.extend_from_slice(&p.to_be_bytes());
                out.extend_from_slice(n.wire());
            }
            Rdata::Soa(s) => {
                out.extend_from_slice(s.mname.wire());
                out.extend_from_slice(s.rname.wire());
                for v in [s.serial, s.refresh, s.retry, s.expire, s.minimum] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
            }
            Rdata::Srv(p, wt, port, n) => {
                for v in [p, wt, port] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                out.extend_from_slice(n.wire());
            }
            Rdata::Opaque(b) => out.extend_from_slice(b),
        }
        out
    }

    /// The name this record points at, for additional-section processing
    /// (NS, MX, SRV targets).
    pub fn target(&self) -> Option<&Name> {
        match self {
            Rdata::Name(n) | Rdata::Mx(_, n) | Rdata::Srv(_, _, _, n) => Some(n),
            _ => None,
        }
    }

    /// Decodes uncompressed wire data of type `rtype` (RFC 3597 generic
    /// syntax for a known type is stored in the known form).
    pub fn from_wire(rtype: u16, b: &[u8]) -> Result<Rdata, String> {
        let name = |b: &[u8]| Name::from_wire_bytes(b).map_err(|e| format!("bad name in record data: {e}"));
        let u16_at = |i: usize| b.get(i..i + 2).map(|x| u16::from_be_bytes([x[0], x[1]]));
        Ok(match rtype {
            rtype::A => Rdata::A(<[u8; 4]>::try_from(b).map_err(|_| "A data must be 4 octets")?.into()),
            rtype::AAAA => Rdata::Aaaa(<[u8; 16]>::try_from(b).map_err(|_| "AAAA data must be 16 octets")?.into()),
            rtype::NS | rtype::CNAME | rtype::PTR => Rdata::Name(name(b)?),
            rtype::MX => Rdata::Mx(u16_at(0).ok_or("MX data too short")?, name(&b[2..])?),
            rtype::SRV => {
                let (p, w, port) = (u16_at(0), u16_at(2), u16_at(4));
                match (p, w, port) {
                    (Some(p), Some(w), Some(port)) => Rdata::Srv(p, w, port, name(&b[6..])?),
                    _ => return Err("SRV data too short".into()),
                }
            }
            rtype::SOA => {
                let (mname, p) = Name::read(b, 0).map_err(|e| format!("bad SOA MNAME: {e}"))?;
                let (rname, p) = Name::read(b, p).map_err(|e| format!("bad SOA RNAME: {e}"))?;
                if b.len() != p + 20 {
                    return Err("SOA data has the wrong length".into());
                }
                let v = |i: usize| u32::from_be_bytes(b[p + 4 * i..p + 4 * i + 4].try_into().unwrap_or([0; 4]));
                Rdata::Soa(
                    Soa { mname, rname, serial: v(0), refresh: v(1), retry: v(2), expire: v(3), minimum: v(4) }.into(),
                )
            }
            _ => Rdata::Opaque(b.to_vec()),
        })
    }
}

/// One token of record data: its text and whether it was quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The text with escapes still in it.
    pub text: String,
    /// It was a "quoted string".
    pub quoted: bool,
}

/// Parses a TTL: seconds, or units `1w2d3h4m5s` (RFC 2308 style, any case).
pub fn parse_ttl(s: &str) -> Result<u32, String> {
    let bad = || format!("'{s}' is not a TTL");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(v) = s.parse::<u64>() {
        return u32::try_from(v)
            .ok()
            .filter(|v| *v <= i32::MAX as u32)
            .ok_or_else(|| format!("TTL {s} is over 2147483647"));
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10).and_then(|n| n.checked_add(d as u64)).ok_or_else(bad)?);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        total = total.checked_add(num.take().ok_or_else(bad)?.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    if num.is_some() {
        return Err(bad());
    }
    u32::try_from(total).ok().filter(|v| *v <= i32::MAX as u32).ok_or_else(|| format!("TTL {s} is over 2147483647"))
}

/// Unescapes a character-string (`\"`, `\\`, `\DDD`) into bytes.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let next = *b.get(i + 1).ok_or("escape at end of string")?;
        if next.is_ascii_digit() {
            let d = b.get(i + 1..i + 4).filter(|d| d.iter().all(u8::is_ascii_digit)).ok_or("bad \\DDD escape")?;
            let v = d.iter().fold(0u32, |a, x| a * 10 + (x - b'0') as u32);
            out.push(u8::try_from(v).map_err(|_| "\\DDD escape over 255")?);
            i += 4;
        } else {
            out.push(next);
            i += 2;
        }
    }
    Ok(out)
}

fn character_string(out: &mut Vec<u8>, t: &Token) -> Result<(), String> {
    let bytes = unescape(&t.text)?;
    if bytes.len() > 255 {
        return Err(format!("character string of {} octets (at most 255)", bytes.len()));
    }
    out.push(bytes.len() as u8);
    out.extend_from_slice(&bytes);
    Ok(())
}

fn number<T: TryFrom<u64>>(t: &Token, what: &str) -> Result<T, String> {
    t.text
        .parse::<u64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
        .ok_or_else(|| format!("'{}' is not a valid {what}", t.text))
}

/// Parses presentation-format record data of type `rtype`. Relative names
/// are completed with `origin`.
pub fn parse_text(rtype: u16, tokens: &[Token], origin: &Name) -> Result<Rdata, String> {
    if tokens.first().is_some_and(|t| t.text == "\\#" && !t.quoted) {
        return parse_generic(rtype, &tokens[1..]);
    }
    let want = |n: usize| -> Result<(), String> {
        if tokens.len() == n {
            Ok(())
        } else {
            Err(format!("{} expects {n} field(s), found {}", type_name(rtype), tokens.len()))
        }
    };
    let name = |t: &Token| Name::parse(&t.text, Some(origin)).map_err(|e| format!("bad name '{}': {e}", t.text));
    Ok(match rtype {
        rtype::A => {
            want(1)?;
            Rdata::A(tokens[0].text.parse().map_err(|_| format!("'{}' is not an IPv4 address", tokens[0].text))?)
        }
        rtype::AAAA => {
            want(1)?;
            Rdata::Aaaa(tokens[0].text.parse().map_err(|_| format!("'{}' is not an IPv6 address", tokens[0].text))?)
        }
        rtype::NS | rtype::CNAME | rtype::PTR => {
            want(1)?;
            Rdata::Name(name(&tokens[0])?)
        }
        rtype::MX => {
            want(2)?;
            Rdata::Mx(number(&tokens[0], "MX preference")?, name(&tokens[1])?)
        }
        rtype::SRV => {
            want(4)?;
            Rdata::Srv(
                number(&tokens[0], "SRV priority")?,
                number(&tokens[1], "SRV weight")?,
                number(&tokens[2], "SRV port")?,
                name(&tokens[3])?,
            )
        }
        rtype::SOA => {
            want(7)?;
            let t = |i: usize, what: &str| -> Result<u32, String> {
                if i == 2 {
                    number(&tokens[i], what)
                } else {
                    parse_ttl(&tokens[i].text).map_err(|e| format!("SOA {what}: {e}"))
                }
            };
            Rdata::Soa(
                Soa {
                    mname: name(&tokens[0])?,
                    rname: name(&tokens[1])?,
                    serial: t(2, "serial")?,
                    refresh: t(3, "refresh")?,
                    retry: t(4, "retry")?,
                    expire: t(5, "expire")?,
                    minimum: t(6, "minimum")?,
                }
                .into(),
            )
        }
        rtype::TXT => {
            if tokens.is_empty() {
                return Err("TXT needs at least one string".into());
            }
            let mut out = Vec::new();
            for t in tokens {
                character_string(&mut out, t)?;
            }
            Rdata::Opaque(out)
        }
        rtype::CAA => {
            want(3)?;
            let flags: u8 = number(&tokens[0], "CAA flags")?;
            let tag = &tokens[1].text;
            if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("'{tag}' is not a CAA tag (1 to 15 letters and digits)"));
            }
            let value = unescape(&tokens[2].text)?;
            let mut out = Vec::with_capacity(2 + tag.len() + value.len());
            out.push(flags);
            out.push(tag.len() as u8);
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(&value);
            Rdata::Opaque(out)
        }
        #[cfg(feature = "dnssec")]
        other => match crate::dnssec::text::parse(other, tokens, origin) {
            Some(wire) => Rdata::Opaque(wire?),
            None => return Err(format!("type {} needs the generic \\# syntax (RFC 3597)", type_name(other))),
        },
        #[cfg(not(feature = "dnssec"))]
        other => {
            let _ = origin;
            use rtype::{CDNSKEY, CDS, DNSKEY, DS, NSEC, NSEC3, NSEC3PARAM, RRSIG};
            if matches!(other, DS | CDS | DNSKEY | CDNSKEY | RRSIG | NSEC | NSEC3 | NSEC3PARAM) {
                return Err(format!(
                    "type {}: this image was built without the `dnssec` feature (or give the data in the generic \\# syntax, RFC 3597)",
                    type_name(other)
                ));
            }
            return Err(format!("type {} needs the generic \\# syntax (RFC 3597)", type_name(other)));
        }
    })
}

fn parse_generic(rtype: u16, tokens: &[Token]) -> Result<Rdata, String> {
    let len: usize = tokens.first().ok_or("\\# needs a length")?.text.parse().map_err(|_| "bad \\# length")?;
    let hex: String = tokens[1..].iter().map(|t| t.text.as_str()).collect();
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("bad hex digit in \\# data".into());
    }
    if hex.len() % 2 != 0 {
        return Err("odd number of hex digits in \\# data".into());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| "bad hex digit in \\# data".to_string())?;
    if bytes.len() != len {
        return Err(format!("\\# says {len} octets but has {}", bytes.len()));
    }
    if len > 65535 {
        return Err("record data over 65535 octets".into());
    }
    Rdata::from_wire(rtype, &bytes)
}

/// The mnemonic of a type, or `TYPEnnn`.
pub fn type_name(t: u16) -> String {
    let s = match t {
        rtype::A => "A",
        rtype::NS => "NS",
        rtype::CNAME => "CNAME",
        rtype::SOA => "SOA",
        rtype::PTR => "PTR",
        rtype::HINFO => "HINFO",
        rtype::MX => "MX",
        rtype::TXT => "TXT",
        rtype::AAAA => "AAAA",
        rtype::SRV => "SRV",
        rtype::DS => "DS",
        rtype::RRSIG => "RRSIG",
        rtype::NSEC => "NSEC",
        rtype::DNSKEY => "DNSKEY",
        rtype::NSEC3 => "NSEC3",
        rtype::NSEC3PARAM => "NSEC3PARAM",
        rtype::CDS => "CDS",
        rtype::CDNSKEY => "CDNSKEY",
        rtype::CAA => "CAA",
        rtype::AXFR => "AXFR",
        rtype::IXFR => "IXFR",
        rtype::ANY => "ANY",
        _ => return format!("TYPE{t}"),
    };
    s.to_string()
}

/// The type for a mnemonic or `TYPEnnn` (case-insensitive).
pub fn type_from_name(s: &str) -> Option<u16> {
    let up = s.to_ascii_uppercase();
    Some(match up.as_str() {
        "A" => rtype::A,
        "NS" => rtype::NS,
        "CNAME" => rtype::CNAME,
        "SOA" => rtype::SOA,
        "PTR" => rtype::PTR,
        "HINFO" => rtype::HINFO,
        "MX" => rtype::MX,
        "TXT" => rtype::TXT,
        "AAAA" => rtype::AAAA,
        "SRV" => rtype::SRV,
        "DS" => rtype::DS,
        "RRSIG" => rtype::RRSIG,
        "NSEC" => rtype::NSEC,
        "DNSKEY" => rtype::DNSKEY,
        "NSEC3" => rtype::NSEC3,
        "NSEC3PARAM" => rtype::NSEC3PARAM,
        "CDS" => rtype::CDS,
        "CDNSKEY" => rtype::CDNSKEY,
        "CAA" => rtype::CAA,
        _ => return up.strip_prefix("TYPE").and_then(|n| n.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn toks(s: &[&str]) -> Vec<Token> {
        s.iter().map(|t| Token { text: t.to_string(), quoted: false }).collect()
    }

    fn origin() -> Name {
        Name::parse("example.com.", None).unwrap()
    }

    #[test]
    fn rfc2308_4_ttl_units() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("1h30m"), Ok(5400));
        assert_eq!(parse_ttl("1W1d"), Ok(691_200));
        assert!(parse_ttl("1x").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("2147483648").is_err());
    }

    #[test]
    fn rfc1035_3_3_known_types() {
        assert_eq!(parse_text(rtype::A, &toks(&["192.0.2.1"]), &origin()), Ok(Rdata::A([192, 0, 2, 1].into())));
        assert!(parse_text(rtype::A, &toks(&["192.0.2.256"]), &origin()).is_err());
        let mx = parse_text(rtype::MX, &toks(&["10", "mail"]), &origin()).unwrap();
        assert_eq!(mx.to_wire(), b"\x00\x0a\x04mail\x07example\x03com\x00");
        let txt = parse_text(rtype::TXT, &toks(&["a b", "c\\\"d", "\\065"]), &origin()).unwrap();
        assert_eq!(txt.to_wire(), b"\x03a b\x03c\"d\x01A");
        let caa = parse_text(rtype::CAA, &toks(&["0", "issue", "ca.example.net"]), &origin()).unwrap();
        assert_eq!(caa.to_wire(), b"\x00\x05issueca.example.net");
    }

    #[test]
    fn rfc3597_5_generic_syntax() {
        let t = parse_text(65534, &toks(&["\\#", "3", "abcdef"]), &origin()).unwrap();
        assert_eq!(t, Rdata::Opaque(vec![0xab, 0xcd, 0xef]));
        // A known type in generic form is stored as that type.
        let a = parse_text(rtype::A, &toks(&["\\#", "4", "c0000201"]), &origin()).unwrap();
        assert_eq!(a, Rdata::A([192, 0, 2, 1].into()));
        assert!(parse_text(65534, &toks(&["\\#", "4", "abcdef"]), &origin()).is_err());
        assert!(parse_text(rtype::A, &toks(&["\\#", "3", "c00002"]), &origin()).is_err());
        assert_eq!(parse_text(65534, &toks(&["\\#", "0"]), &origin()), Ok(Rdata::Opaque(vec![])));
        // Found by the zone fuzzer: non-ASCII where hex digits belong.
        assert!(parse_text(65534, &toks(&["\\#", "2", "9\u{de}4"]), &origin()).is_err());
    }

    #[test]
    fn types_by_name() {
        assert_eq!(type_from_name("aaaa"), Some(rtype::AAAA));
        assert_eq!(type_from_name("TYPE65534"), Some(65534));
        assert_eq!(type_from_name("BOGUS"), None);
        assert_eq!(type_name(65534), "TYPE65534");
    }
}
