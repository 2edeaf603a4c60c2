//! Reading whole messages: the records of every section of a response (a
//! zone transfer, a SOA answer) or of a NOTIFY, with names in record data
//! decompressed (RFC 3597 §4) so the data can be stored as-is.

use alloc::vec::Vec;

use crate::name::Name;
use crate::rdata::Rdata;
use crate::wire::{rtype, HEADER};

/// One record as read from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub owner: Name,
    /// Type.
    pub rtype: u16,
    /// Class.
    pub class: u16,
    /// Time to live.
    pub ttl: u32,
    /// The data, names decompressed.
    pub rdata: Rdata,
}

/// A message's header fields and records. The TSIG record, if any, is
/// left out of `additional` (see [`crate::tsig::find`]).
#[derive(Debug, Clone)]
pub struct Message {
    /// ID.
    pub id: u16,
    /// The flags word (QR, opcode, AA, TC, RD, RA, …, RCODE).
    pub flags: u16,
    /// The questions: name, type, class.
    pub questions: Vec<(Name, u16, u16)>,
    /// Answer section.
    pub answer: Vec<Record>,
    /// Authority section.
    pub authority: Vec<Record>,
    /// Additional section, without OPT and TSIG.
    pub additional: Vec<Record>,
}

impl Message {
    /// The response code (the header's four bits; no EDNS extension).
    pub fn rcode(&self) -> u16 {
        self.flags & 0xf
    }

    /// The opcode.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }
}

/// The name of a response code, for logs.
pub fn rcode_name(code: u16) -> &'static str {
    match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        9 => "NOTAUTH",
        _ => "(other)",
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Types whose data holds names that senders may compress (RFC 3597 §4:
/// the RFC 1035 types; and those receivers must decompress): the offsets
/// of fixed fields before each name, and the names' count.
fn name_layout(t: u16) -> Option<(usize, usize)> {
    Some(match t {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR: one name.
        rtype::NS | 3 | 4 | rtype::CNAME | 7 | 8 | 9 | rtype::PTR => (0, 1),
        // MINFO, RP: two names.
        14 | 17 => (0, 2),
        // MX, AFSDB, RT, KX: a 16-bit field, then a name.
        rtype::MX | 18 | 21 | 36 => (2, 1),
        // SRV: three 16-bit fields, then a name (decompressed if a sender
        // compressed it anyway).
        rtype::SRV => (6, 1),
        _ => return None,
    })
}

/// The data of the record at `range` in `msg`, names expanded.
fn rdata(msg: &[u8], t: u16, range: core::ops::Range<usize>) -> Result<Rdata, &'static str> {
    let raw = &msg[range.clone()];
    let expanded = if t == rtype::SOA {
        let (mname, p) = Name::read(msg, range.start).map_err(|_| "bad SOA MNAME")?;
        let (rname, p) = Name::read(msg, p).map_err(|_| "bad SOA RNAME")?;
        let rest = msg.get(p..range.end).ok_or("bad SOA data")?;
        [mname.wire(), rname.wire(), rest].concat()
    } else if let Some((fixed, names)) = name_layout(t) {
        let mut out = raw.get(..fixed).ok_or("record data too short")?.to_vec();
        let mut p = range.start + fixed;
        for _ in 0..names {
            let (n, next) = Name::read(msg, p).map_err(|_| "bad name in record data")?;
            out.extend_from_slice(n.wire());
            p = next;
        }
        if p != range.end {
            return Err("record data of the wrong length");
        }
        out
    } else {
        raw.to_vec()
    };
    Rdata::from_wire(t, &expanded).map_err(|_| "bad record data")
}

/// Parses `msg`: header, questions and every record. OPT and TSIG records
/// are skipped (EDNS and signatures are read elsewhere); anything else
/// malformed is an error.
pub fn parse(msg: &[u8]) -> Result<Message, &'static str> {
    if msg.len() < HEADER {
        return Err("shorter than a header");
    }
    let count = |i| u16_at(msg, i).unwrap_or(0) as usize;
    let mut m = Message {
        id: count(0) as u16,
        flags: count(2) as u16,
        questions: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
    };
    let mut pos = HEADER;
    for _ in 0..count(4) {
        let (name, p) = Name::read(msg, pos).map_err(|_| "bad question name")?;
        let qtype = u16_at(msg, p).ok_or("truncated question")?;
        let qclass = u16_at(msg, p + 2).ok_or("truncated question")?;
        m.questions.push((name, qtype, qclass));
        pos = p + 4;
    }
    for (section, n) in [(0, count(6)), (1, count(8)), (2, count(10))] {
        for _ in 0..n {
            let (owner, p) = Name::read(msg, pos).map_err(|_| "bad owner name")?;
            let (Some(t), Some(class), Some(ttl_hi), Some(ttl_lo), Some(len)) =
                (u16_at(msg, p), u16_at(msg, p + 2), u16_at(msg, p + 4), u16_at(msg, p + 6), u16_at(msg, p + 8))
            else {
                return Err("truncated record");
            };
            let start = p + 10;
            let end = start + len as usize;
            if end > msg.len() {
                return Err("record data runs past the end");
            }
            pos = end;
            if t == rtype::OPT || t == crate::tsig::TSIG {
                continue;
            }
            let record = Record {
                owner,
                rtype: t,
                class,
                ttl: (ttl_hi as u32) << 16 | ttl_lo as u32,
                rdata: rdata(msg, t, start..end)?,
            };
            [&mut m.answer, &mut m.authority, &mut m.additional][section].push(record);
        }
    }
    if pos != msg.len() {
        return Err("trailing bytes after the message");
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{flags, Section, Writer, CLASS_IN};

    #[test]
    fn compressed_names_in_data_come_out_whole() {
        let origin = Name::parse("example.", None).unwrap();
        let ns = Name::parse("ns1.example.", None).unwrap();
        let soa = crate::rdata::Soa {
            mname: ns.clone(),
            rname: Name::parse("hostmaster.example.", None).unwrap(),
            serial: 7,
            refresh: 1,
            retry: 2,
            expire: 3,
            minimum: 4,
        };
        let mut w = Writer::new(9, flags::QR | flags::AA, Some((origin.wire(), rtype::AXFR, CLASS_IN)));
        for (t, data) in [(rtype::SOA, Rdata::Soa(soa.clone().into())), (rtype::NS, Rdata::Name(ns.clone()))] {
            let at = w.begin_record(Section::Answer, origin.wire(), t, CLASS_IN, 300);
            data.write(&mut w);
            w.end_record(at);
        }
        let at = w.begin_record(Section::Answer, ns.wire(), rtype::MX, CLASS_IN, 60);
        Rdata::Mx(10, origin.clone()).write(&mut w);
        w.end_record(at);
        let bytes = w.finish();
        assert!(bytes.len() < 120, "names were compressed");
        let m = parse(&bytes).unwrap();
        assert_eq!(m.id, 9);
        assert_eq!(m.questions, [(origin.clone(), rtype::AXFR, CLASS_IN)]);
        assert_eq!(m.answer[0].rdata, Rdata::Soa(soa.into()));
        assert_eq!(m.answer[1].rdata, Rdata::Name(ns));
        assert_eq!(m.answer[2].rdata, Rdata::Mx(10, origin));
        assert_eq!(m.answer[2].ttl, 60);
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(parse(&[0; 5]).is_err());
        let mut m = alloc::vec![0u8; 12];
        m[7] = 1; // one answer record that is not there
        assert!(parse(&m).is_err());
        m[7] = 0;
        m.push(0);
        assert_eq!(parse(&m).unwrap_err(), "trailing bytes after the message");
    }
}
