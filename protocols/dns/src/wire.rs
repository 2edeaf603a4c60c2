//! The DNS message format (RFC 1035 §4) and EDNS(0) (RFC 6891).

use alloc::vec::Vec;

use crate::cookie::{self, Received};
use crate::name::{self, Name, NameError};

/// Record types Morgana knows by name.
pub mod rtype {
    #![allow(missing_docs)]
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const NSEC3: u16 = 50;
    pub const NSEC3PARAM: u16 = 51;
    pub const CDS: u16 = 59;
    pub const CDNSKEY: u16 = 60;
    pub const CAA: u16 = 257;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
}

/// The IN class.
pub const CLASS_IN: u16 = 1;
/// The QCLASS "any".
pub const CLASS_ANY: u16 = 255;

/// Response codes.
pub mod rcode {
    #![allow(missing_docs)]
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const NOTAUTH: u16 = 9;
    /// Extended (needs EDNS): 16.
    pub const BADVERS: u16 = 16;
}

/// Header flag bits (in the second 16-bit word).
pub mod flags {
    #![allow(missing_docs)]
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
}

/// Size of the fixed header.
pub const HEADER: usize = 12;
/// UDP payload size without EDNS.
pub const CLASSIC_UDP: usize = 512;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// EDNS(0) parameters from a query's OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// The DO bit.
    pub dnssec_ok: bool,
    /// The first COOKIE option (EDNS version 0 only).
    pub cookie: Option<Received>,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// Opcode (0 = QUERY).
    pub opcode: u8,
    /// RD flag as received (copied into the response).
    pub rd: bool,
    /// CD flag as received.
    pub cd: bool,
    /// The question name, lowercased.
    pub qname: Name,
    /// The question name exactly as it appears in the query (uncompressed).
    pub qname_raw: Vec<u8>,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// EDNS, if the query has an OPT record.
    pub edns: Option<Edns>,
    /// For IXFR: the serial of the version the client has (the SOA in
    /// the authority section, RFC 1995 §3).
    pub ixfr_serial: Option<u32>,
}

/// Why a message is not a usable query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// Too short for a header: nothing can be answered.
    NoHeader,
    /// A response (QR set): never answered, to avoid loops.
    IsResponse,
    /// Opcode other than QUERY; answer NOTIMP with this ID and opcode.
    NotImplemented {
        /// ID to echo.
        id: u16,
        /// The opcode.
        opcode: u8,
    },
    /// Malformed; answer FORMERR with this ID.
    Malformed {
        /// ID to echo.
        id: u16,
        /// Opcode to echo.
        opcode: u8,
        /// What is wrong.
        why: &'static str,
    },
}

impl From<NameError> for &'static str {
    fn from(_: NameError) -> &'static str {
        "bad name"
    }
}

/// Skips a resource record at `pos`; returns (type, class, ttl, rdata range,
/// end) and the owner.
fn read_rr(msg: &[u8], pos: usize) -> Result<(Name, u16, u16, u32, core::ops::Range<usize>), &'static str> {
    let (owner, p) = Name::read(msg, pos).map_err(|_| "bad owner name in record")?;
    let rtype = u16_at(msg, p).ok_or("truncated record")?;
    let class = u16_at(msg, p + 2).ok_or("truncated record")?;
    let ttl = u32_at(msg, p + 4).ok_or("truncated record")?;
    let len = u16_at(msg, p + 8).ok_or("truncated record")? as usize;
    let start = p + 10;
    if start + len > msg.len() {
        return Err("record data runs past the end");
    }
    Ok((owner, rtype, class, ttl, start..start + len))
}

/// Parses a query: header, exactly one question, and the OPT record if any.
/// Answer and authority sections must be empty; other additional records
/// are skipped (but must be well formed).
pub fn parse_query(msg: &[u8]) -> Result<Query, QueryError> {
    if msg.len() < HEADER {
        return Err(QueryError::NoHeader);
    }
    let id = u16_at(msg, 0).unwrap_or(0);
    let flags = u16_at(msg, 2).unwrap_or(0);
    if flags & flags::QR != 0 {
        return Err(QueryError::IsResponse);
    }
    let opcode = ((flags >> 11) & 0xf) as u8;
    let bad = |why| QueryError::Malformed { id, opcode, why };
    if opcode != 0 {
        return Err(QueryError::NotImplemented { id, opcode });
    }
    let counts = [u16_at(msg, 4), u16_at(msg, 6), u16_at(msg, 8), u16_at(msg, 10)].map(|c| c.unwrap_or(0));
    if counts[0] != 1 {
        return Err(bad("a query needs exactly one question"));
    }
    let (qname, mut pos) = Name::read(msg, HEADER).map_err(|_| bad("bad question name"))?;
    let qname_raw = raw_name(msg, HEADER).ok_or(bad("bad question name"))?;
    let qtype = u16_at(msg, pos).ok_or(bad("truncated question"))?;
    let qclass = u16_at(msg, pos + 2).ok_or(bad("truncated question"))?;
    pos += 4;
    let ixfr = qtype == rtype::IXFR && counts[2] == 1;
    if counts[1] != 0 || (counts[2] != 0 && !ixfr) {
        return Err(bad("a query has no answer or authority records"));
    }
    let mut ixfr_serial = None;
    if ixfr {
        let (owner, rt, _, _, rdata) = read_rr(msg, pos).map_err(bad)?;
        if rt != rtype::SOA || owner != qname {
            return Err(bad("an IXFR query's authority record must be the zone's SOA"));
        }
        let names = Name::read(msg, rdata.start).and_then(|(_, p)| Name::read(msg, p)).map_err(|_| bad("bad SOA"))?;
        if names.1 + 20 != rdata.end {
            return Err(bad("bad SOA"));
        }
        ixfr_serial = u32_at(msg, names.1);
        pos = rdata.end;
    }
    let mut edns = None;
    for _ in 0..counts[3] {
        let (owner, rt, class, ttl, rdata) = read_rr(msg, pos).map_err(bad)?;
        pos = rdata.end;
        if rt == rtype::OPT {
            if edns.is_some() {
                return Err(bad("more than one OPT record"));
            }
            if owner != Name::root() {
                return Err(bad("OPT record not owned by the root"));
            }
            // Options must be well formed (RFC 6891 §6.1.2); only the
            // first COOKIE is read (as BIND), the others are ignored.
            let version = (ttl >> 16) as u8;
            let mut cookie = None;
            let mut o = rdata.start;
            while o < rdata.end {
                let code = u16_at(msg, o).ok_or(bad("truncated EDNS option"))?;
                let len = u16_at(msg, o + 2).ok_or(bad("truncated EDNS option"))? as usize;
                if code == cookie::OPTION && version == 0 && cookie.is_none() {
                    let data = msg.get(o + 4..(o + 4 + len).min(rdata.end)).unwrap_or(&[]);
                    // RFC 7873 §5.2.2: a malformed COOKIE is a FORMERR.
                    cookie = Some(Received::parse(data).ok_or(bad("malformed COOKIE option"))?);
                }
                o += 4 + len;
            }
            if o != rdata.end {
                return Err(bad("EDNS option runs past its record"));
            }
            edns = Some(Edns {
                udp_size: class,
                version,
                dnssec_ok: cfg!(feature = "dnssec") && ttl & 0x8000 != 0,
                cookie,
            });
        }
    }
    if pos != msg.len() {
        return Err(bad("trailing bytes after the message"));
    }
    Ok(Query {
        id,
        opcode,
        rd: flags & flags::RD != 0,
        cd: flags & flags::CD != 0,
        qname,
        qname_raw,
        qtype,
        qclass,
        edns,
        ixfr_serial,
    })
}

/// The uncompressed bytes of the (already validated) name at `pos` as they
/// appear in the message, with original case.
fn raw_name(msg: &[u8], mut pos: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    for _ in 0..128 {
        let len = *msg.get(pos)? as usize;
        if len & 0xc0 == 0xc0 {
            pos = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
            continue;
        }
        out.extend_from_slice(msg.get(pos..pos + 1 + len)?);
        if len == 0 {
            return Some(out);
        }
        pos += 1 + len;
    }
    None
}

/// Builds a message, compressing names.
pub struct Writer {
    buf: Vec<u8>,
    /// Names written so far: (hash of the lowercase suffix, offset in
    /// `buf`, suffix length).
    names: Vec<(u32, usize, usize)>,
    counts: [u16; 4],
}

/// FNV-1a over lowercase bytes: a cheap filter before comparing names.
fn suffix_hash(suffix: &[u8]) -> u32 {
    suffix.iter().fold(0x811c_9dc5u32, |h, b| (h ^ b.to_ascii_lowercase() as u32).wrapping_mul(0x0100_0193))
}

/// The sections of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Answer.
    Answer = 1,
    /// Authority.
    Authority = 2,
    /// Additional.
    Additional = 3,
}

impl Writer {
    /// A message with the given header fields and no records; `question`
    /// (name bytes as received, type, class) is written if given.
    pub fn new(id: u16, flags: u16, question: Option<(&[u8], u16, u16)>) -> Writer {
        let mut w = Writer { buf: Vec::with_capacity(512), names: Vec::with_capacity(16), counts: [0; 4] };
        w.buf.extend_from_slice(&id.to_be_bytes());
        w.buf.extend_from_slice(&flags.to_be_bytes());
        w.buf.extend_from_slice(&[0; 8]);
        if let Some((name, qtype, qclass)) = question {
            w.write_name(name, true);
            w.buf.extend_from_slice(&qtype.to_be_bytes());
            w.buf.extend_from_slice(&qclass.to_be_bytes());
            w.counts[0] = 1;
        }
        w
    }

    /// Current length.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= HEADER
    }

    /// A mark to roll back to with [`Writer::truncate`].
    pub fn mark(&self) -> (usize, usize, [u16; 4]) {
        (self.buf.len(), self.names.len(), self.counts)
    }

    /// Drops everything written after `mark`.
    pub fn truncate(&mut self, mark: (usize, usize, [u16; 4])) {
        self.buf.truncate(mark.0);
        self.names.truncate(mark.1);
        self.counts = mark.2;
    }

    /// Sets header flag bits.
    pub fn set_flags(&mut self, bits: u16) {
        let f = u16::from_be_bytes([self.buf[2], self.buf[3]]) | bits;
        self.buf[2..4].copy_from_slice(&f.to_be_bytes());
    }

    /// Sets the 4-bit RCODE.
    pub fn set_rcode(&mut self, rcode: u16) {
        let f = (u16::from_be_bytes([self.buf[2], self.buf[3]]) & !0xf) | (rcode & 0xf);
        self.buf[2..4].copy_from_slice(&f.to_be_bytes());
    }

    /// Writes a wire-form name, compressing against names already written
    /// (case-insensitively) when `compress` is set, and recording its
    /// suffixes for later names. Only offsets below 0x4000 can be pointed to.
    pub fn write_name(&mut self, wire: &[u8], compress: bool) {
        for off in name::label_offsets(wire) {
            let suffix = &wire[off..];
            if suffix == [0] {
                self.buf.push(0);
                return;
            }
            let hash = suffix_hash(suffix);
            if compress {
                if let Some(target) = self.find(suffix, hash) {
                    self.buf.extend_from_slice(&(0xc000 | target as u16).to_be_bytes());
                    return;
                }
            }
            let here = self.buf.len();
            if here < 0x4000 {
                self.names.push((hash, here, wire.len() - off));
            }
            let len = wire[off] as usize;
            self.buf.extend_from_slice(&wire[off..off + 1 + len]);
        }
    }

    fn find(&self, suffix: &[u8], hash: u32) -> Option<usize> {
        'outer: for &(h, offset, len) in &self.names {
            if h != hash || len != suffix.len() {
                continue;
            }
            // Compare the name written at `offset` (following pointers) to
            // `suffix`, ignoring case.
            let mut p = offset;
            let mut s = 0;
            loop {
                let l = self.buf[p] as usize;
                if l & 0xc0 == 0xc0 {
                    p = ((l & 0x3f) << 8) | self.buf[p + 1] as usize;
                    continue;
                }
                if l != suffix[s] as usize {
                    continue 'outer;
                }
                if l == 0 {
                    return Some(offset);
                }
                if !self.buf[p + 1..p + 1 + l].eq_ignore_ascii_case(&suffix[s + 1..s + 1 + l]) {
                    continue 'outer;
                }
                p += 1 + l;
                s += 1 + l;
            }
        }
        None
    }

    /// Starts a record in `section`: owner, type, class, TTL and a
    /// placeholder length; returns the position of the length.
    pub fn begin_record(&mut self, section: Section, owner: &[u8], rtype: u16, class: u16, ttl: u32) -> usize {
        self.counts[section as usize] += 1;
        self.write_name(owner, true);
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&class.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        at
    }

    /// Appends raw bytes (record data).
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Ends the record begun at `at`, filling in its data length.
    pub fn end_record(&mut self, at: usize) {
        let len = (self.buf.len() - at - 2) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_be_bytes());
    }

    /// Appends an OPT record (EDNS version 0) advertising `udp_size`, with
    /// `ext_rcode` (the upper 8 bits of a 12-bit RCODE).
    pub fn opt(&mut self, udp_size: u16, ext_rcode: u8, dnssec_ok: bool) {
        self.opt_with(udp_size, ext_rcode, dnssec_ok, &[]);
    }

    /// [`Writer::opt`] carrying `options` (already encoded: code, length,
    /// data each).
    pub fn opt_with(&mut self, udp_size: u16, ext_rcode: u8, dnssec_ok: bool, options: &[u8]) {
        let ttl = (ext_rcode as u32) << 24 | if dnssec_ok { 0x8000 } else { 0 };
        let at = self.begin_record(Section::Additional, &[0], rtype::OPT, udp_size, ttl);
        self.bytes(options);
        self.end_record(at);
    }

    /// Finishes the message.
    pub fn finish(mut self) -> Vec<u8> {
        for (i, c) in self.counts.iter().enumerate() {
            self.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        self.buf
    }
}

#[cfg(test)]
mod tests;
