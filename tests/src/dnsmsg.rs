//! A small, independent DNS message codec for tests: builds queries and
//! parses responses into comparable form. Deliberately separate from
//! `morgana-dns`, so a bug there cannot hide in both sides of a comparison.

use std::fmt;

/// One record, with names decompressed and lowercased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// Owner.
    pub owner: String,
    /// Type.
    pub rtype: u16,
    /// Class.
    pub class: u16,
    /// TTL.
    pub ttl: u32,
    /// Data with embedded names expanded.
    pub rdata: Vec<u8>,
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// ID.
    pub id: u16,
    /// The flags word (QR, opcode, AA, TC, RD, RA, rcode).
    pub flags: u16,
    /// The question name exactly as sent back (case kept), type, class.
    pub question: Option<(String, u16, u16)>,
    /// Answer records.
    pub answer: Vec<Record>,
    /// Authority records.
    pub authority: Vec<Record>,
    /// Additional records other than OPT.
    pub additional: Vec<Record>,
    /// The OPT record's (UDP size, TTL field), if any.
    pub opt: Option<(u16, u32)>,
}

impl Message {
    /// The 4-bit rcode combined with the OPT extended rcode.
    pub fn rcode(&self) -> u16 {
        (self.flags & 0xf) | self.opt.map_or(0, |(_, ttl)| ((ttl >> 24) as u16) << 4)
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {}", self.owner, self.ttl, self.rtype, hex(&self.rdata))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Sends `query` over DNS-over-TCP framing on `s` and reads one framed
/// answer.
pub fn tcp_exchange(s: &mut std::net::TcpStream, query: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut m = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut m)?;
    Ok(m)
}

/// Builds a query.
pub fn query(id: u16, name: &str, qtype: u16, qclass: u16, flags: u16, edns: Option<(u16, u8)>) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    if let Some((size, version)) = edns {
        m.push(0);
        m.extend_from_slice(&41u16.to_be_bytes());
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, version, 0, 0, 0, 0]);
    }
    m
}

struct Reader<'a> {
    m: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, String> {
        let v = *self.m.get(self.pos).ok_or("truncated")?;
        self.pos += 1;
        Ok(v)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok((self.u8()? as u16) << 8 | self.u8()? as u16)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok((self.u16()? as u32) << 16 | self.u16()? as u32)
    }
    /// A name at the current position, decompressed, case kept.
    fn name(&mut self) -> Result<String, String> {
        let (n, end) = name_at(self.m, self.pos)?;
        self.pos = end;
        Ok(n)
    }
}

fn name_at(m: &[u8], mut pos: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut end = None;
    for _ in 0..256 {
        let len = *m.get(pos).ok_or("name truncated")? as usize;
        if len & 0xc0 == 0xc0 {
            let target = (len & 0x3f) << 8 | *m.get(pos + 1).ok_or("pointer truncated")? as usize;
            end.get_or_insert(pos + 2);
            pos = target;
            continue;
        }
        if len == 0 {
            if out.is_empty() {
                out.push('.');
            }
            return Ok((out, end.unwrap_or(pos + 1)));
        }
        let label = m.get(pos + 1..pos + 1 + len).ok_or("label truncated")?;
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                out.push(b as char);
            } else {
                out.push_str(&format!("\\{b:03}"));
            }
        }
        out.push('.');
        pos += 1 + len;
    }
    Err("name loop".into())
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut v = name.to_ascii_lowercase().into_bytes();
    v.push(0);
    v
}

/// Parses a response; names inside NS, CNAME, PTR, MX, SOA and SRV data are
/// expanded and lowercased so compression choices do not matter.
pub fn parse(m: &[u8]) -> Result<Message, String> {
    let mut r = Reader { m, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    let mut question = None;
    for _ in 0..counts[0] {
        let n = r.name()?;
        question = Some((n, r.u16()?, r.u16()?));
    }
    let mut sections: [Vec<Record>; 3] = Default::default();
    let mut opt = None;
    for (i, section) in sections.iter_mut().enumerate() {
        for _ in 0..counts[i + 1] {
            let owner = r.name()?.to_ascii_lowercase();
            let (rtype, class, ttl, len) = (r.u16()?, r.u16()?, r.u32()?, r.u16()? as usize);
            let start = r.pos;
            let end = start + len;
            if end > m.len() {
                return Err("record data truncated".into());
            }
            if rtype == 41 {
                opt = Some((class, ttl));
                r.pos = end;
                continue;
            }
            let mut rdata = Vec::new();
            let mut sub = Reader { m, pos: start };
            match rtype {
                2 | 5 | 12 => rdata.extend(name_bytes(&sub.name()?)),
                15 => {
                    rdata.extend(sub.u16()?.to_be_bytes());
                    rdata.extend(name_bytes(&sub.name()?));
                }
                6 => {
                    rdata.extend(name_bytes(&sub.name()?));
                    rdata.extend(name_bytes(&sub.name()?));
                    rdata.extend_from_slice(m.get(sub.pos..end).ok_or("SOA truncated")?);
                    sub.pos = end;
                }
                33 => {
                    for _ in 0..3 {
                        rdata.extend(sub.u16()?.to_be_bytes());
                    }
                    rdata.extend(name_bytes(&sub.name()?));
                }
                _ => {
                    rdata.extend_from_slice(&m[start..end]);
                    sub.pos = end;
                }
            }
            if sub.pos != end {
                return Err(format!("record data of type {rtype} has the wrong length"));
            }
            r.pos = end;
            section.push(Record { owner, rtype, class, ttl, rdata });
        }
    }
    if r.pos != m.len() {
        return Err("trailing bytes".into());
    }
    let [answer, authority, additional] = sections;
    Ok(Message { id, flags, question, answer, authority, additional, opt })
}

/// A query with EDNS (UDP size 1232, version 0) carrying the COOKIE option
/// `cookie` (client cookie, then any server cookie; any length, so tests
/// can send malformed ones).
pub fn cookie_query(id: u16, name: &str, qtype: u16, cookie: &[u8]) -> Vec<u8> {
    let mut m = query(id, name, qtype, 1, 0, Some((1232, 0)));
    let at = m.len() - 2; // the OPT record's data length, 0 so far
    m[at..].copy_from_slice(&((4 + cookie.len()) as u16).to_be_bytes());
    m.extend_from_slice(&10u16.to_be_bytes());
    m.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    m.extend_from_slice(cookie);
    m
}

/// The data of the EDNS option `code` in the OPT record of message `m`, if
/// it has one.
pub fn edns_option(m: &[u8], code: u16) -> Result<Option<Vec<u8>>, String> {
    let mut r = Reader { m, pos: 4 };
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    for _ in 0..counts[0] {
        r.name()?;
        r.pos += 4;
    }
    for _ in 0..counts[1] + counts[2] + counts[3] {
        r.name()?;
        let (rtype, _, _, len) = (r.u16()?, r.u16()?, r.u32()?, r.u16()? as usize);
        let end = r.pos + len;
        if end > m.len() {
            return Err("record data truncated".into());
        }
        if rtype == 41 {
            while r.pos + 4 <= end {
                let (c, l) = (r.u16()?, r.u16()? as usize);
                let data = m.get(r.pos..r.pos + l).filter(|_| r.pos + l <= end).ok_or("EDNS option truncated")?;
                if c == code {
                    return Ok(Some(data.to_vec()));
                }
                r.pos += l;
            }
        }
        r.pos = end;
    }
    Ok(None)
}
