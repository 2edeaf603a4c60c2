//! RFC 1035 master files (with RFC 2308 `$TTL` and RFC 3597 generic data)
//! and the checks a zone must pass before it is served.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use smallvec::{smallvec, SmallVec};

mod master;

use crate::name::Name;
use crate::rdata::{Rdata, Soa};
use crate::wire::rtype;

/// Serial number order (RFC 1982 §3.2): whether `a` is newer than `b`.
pub fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// A zone file error: the file, the line (1-based; 0 when it concerns the
/// whole zone) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneError {
    /// The file name as given.
    pub file: String,
    /// The line.
    pub line: usize,
    /// The problem.
    pub message: String,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl core::error::Error for ZoneError {}

/// All records of one name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RRset {
    /// The type.
    pub rtype: u16,
    /// The TTL (of the first record; RFC 2181 §5.2 wants them equal).
    pub ttl: u32,
    /// The data, duplicates removed (most RRsets hold one record: kept
    /// inline, without an allocation of its own).
    pub rdatas: SmallVec<[Rdata; 1]>,
}

impl RRset {
    /// Whether a record of type `rtype` with data `rdata` belongs in this
    /// RRset (an RRSIG: in the set of the type it covers).
    pub fn holds(&self, rtype: u16, rdata: &Rdata) -> bool {
        self.rtype == rtype && (rtype != rtype::RRSIG || self.rdatas.first().and_then(covered) == covered(rdata))
    }
}

/// The RRsets at one name; empty for an empty non-terminal. RRSIG records
/// form one RRset per type covered (each with its own TTL), in file order
/// with the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// The RRsets (inline when there is one).
    pub rrsets: SmallVec<[RRset; 1]>,
}

impl Node {
    /// The RRset of `rtype`, if any.
    pub fn get(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }

    /// The RRSIGs covering `rtype`.
    pub fn sigs(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|s| s.rtype == rtype::RRSIG && covered(&s.rdatas[0]) == Some(rtype))
    }
}

/// The type an RRSIG covers (RFC 4034 §3.1.1).
pub fn covered(sig: &Rdata) -> Option<u16> {
    match sig {
        Rdata::Opaque(b) if b.len() >= 2 => Some(u16::from_be_bytes([b[0], b[1]])),
        _ => None,
    }
}

/// `ORIGIN=PATH`: a zone and the master file that holds it, as apps take
/// it from `--zone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneFile {
    /// The zone's origin.
    pub origin: Name,
    /// The file.
    pub path: String,
}

impl core::str::FromStr for ZoneFile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (origin, path) = s.split_once('=').ok_or("expected ORIGIN=PATH")?;
        let origin = Name::parse(origin, Some(&Name::root())).map_err(|e| format!("bad origin '{origin}': {e}"))?;
        if path.is_empty() {
            return Err(String::from("empty path"));
        }
        Ok(ZoneFile { origin, path: path.into() })
    }
}

/// A parsed, checked zone.
#[derive(Debug, Clone)]
pub struct Zone {
    /// The apex.
    pub origin: Name,
    /// Every name in the zone, including empty non-terminals.
    pub nodes: BTreeMap<Name, Node>,
    /// The apex SOA and its TTL.
    pub soa: (u32, Soa),
    /// Number of records.
    pub records: usize,
    /// Signatures and denial-of-existence chains, for DNSSEC answers.
    pub dnssec: crate::dnssec::Index,
}

/// Reads the file named by `$INCLUDE` (hosted builds pass one; VM images
/// have no files, so `$INCLUDE` is an error there).
pub type Includer<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// One record as read, with where it came from (for errors).
struct Parsed {
    owner: Name,
    rtype: u16,
    ttl: u32,
    rdata: Rdata,
    file: Rc<str>,
    line: usize,
}

impl Zone {
    fn build(origin: &Name, records: Vec<Parsed>, file: &str) -> Result<Zone, ZoneError> {
        let at = |r: &Parsed, message: String| ZoneError { file: String::from(&*r.file), line: r.line, message };
        let mut nodes: BTreeMap<Name, Node> = BTreeMap::new();
        let mut soa = None;
        let mut count = 0;
        // The first line of each delegation's NS records, for glue errors.
        let mut ns_lines: BTreeMap<Name, usize> = BTreeMap::new();
        for r in records {
            #[cfg(not(feature = "dnssec"))]
            if matches!(r.rtype, rtype::RRSIG | rtype::NSEC | rtype::NSEC3 | rtype::NSEC3PARAM) {
                return Err(at(
                    &r,
                    "a signed zone (RRSIG, NSEC, NSEC3): this image was built without the `dnssec` feature".into(),
                ));
            }
            if !r.owner.is_within(origin) {
                return Err(at(&r, format!("'{}' is outside the zone {origin}", r.owner)));
            }
            if r.rtype == rtype::SOA {
                if r.owner != *origin {
                    return Err(at(&r, format!("SOA record at '{}', not at the apex {origin}", r.owner)));
                }
                if soa.is_some() {
                    return Err(at(&r, "more than one SOA record".into()));
                }
                if let Rdata::Soa(s) = &r.rdata {
                    soa = Some((r.ttl, (**s).clone()));
                }
            }
            if r.rtype == rtype::NS && r.owner != *origin && !ns_lines.contains_key(&r.owner) {
                ns_lines.insert(r.owner.clone(), r.line);
            }
            let node = match nodes.get_mut(&r.owner) {
                Some(n) => n,
                None => nodes.entry(r.owner.clone()).or_default(),
            };
            // RRSIG and NSEC may sit next to a CNAME (RFC 4035 §2.5).
            let dnssec = |t: u16| matches!(t, rtype::RRSIG | rtype::NSEC);
            let has_cname = node.get(rtype::CNAME).is_some();
            let other_data = node.rrsets.iter().any(|s| s.rtype != rtype::CNAME && !dnssec(s.rtype));
            if (has_cname && !dnssec(r.rtype)) || (r.rtype == rtype::CNAME && other_data) {
                return Err(at(&r, format!("'{}' has a CNAME and other data (RFC 1034 §3.6.2)", r.owner)));
            }
            let cov = covered(&r.rdata);
            let rt = r.rtype;
            let same = |s: &RRset| s.rtype == rt && (rt != rtype::RRSIG || covered(&s.rdatas[0]) == cov);
            if r.rtype == rtype::RRSIG && cov.is_none() {
                return Err(at(&r, "RRSIG data too short".into()));
            }
            match node.rrsets.iter_mut().find(|s| same(s)) {
                Some(set) => {
                    if !set.rdatas.contains(&r.rdata) {
                        set.rdatas.push(r.rdata);
                        count += 1;
                    }
                }
                None => {
                    node.rrsets.push(RRset { rtype: r.rtype, ttl: r.ttl, rdatas: smallvec![r.rdata] });
                    count += 1;
                }
            }
        }
        let whole = |message: String| ZoneError { file: file.into(), line: 0, message };
        let soa = soa.ok_or_else(|| whole(format!("no SOA record at the apex {origin}")))?;
        let ns_line = |name: &Name| ns_lines.get(name).copied().unwrap_or(0);
        Zone::complete(origin, nodes, soa, count, file, &ns_line)
    }

    /// The checks that need the whole zone (NS at the apex, glue), the
    /// empty non-terminals, and the DNSSEC index. `ns_line` finds the line
    /// of a delegation's NS records, for errors.
    fn complete(
        origin: &Name,
        mut nodes: BTreeMap<Name, Node>,
        soa: (u32, Soa),
        count: usize,
        file: &str,
        ns_line: &dyn Fn(&Name) -> usize,
    ) -> Result<Zone, ZoneError> {
        let whole = |message: String| ZoneError { file: file.into(), line: 0, message };
        if nodes.get(origin).and_then(|n| n.get(rtype::NS)).is_none() {
            return Err(whole(format!("no NS records at the apex {origin}")));
        }
        // Glue: an NS target at or below its own delegation needs an address.
        for (name, node) in &nodes {
            if name == origin {
                continue;
            }
            let Some(ns) = node.get(rtype::NS) else { continue };
            for target in ns.rdatas.iter().filter_map(Rdata::target) {
                if target.is_within(name) {
                    let has_addr =
                        nodes.get(target).is_some_and(|n| n.get(rtype::A).is_some() || n.get(rtype::AAAA).is_some());
                    if !has_addr {
                        return Err(ZoneError {
                            file: file.into(),
                            line: ns_line(name),
                            message: format!(
                                "delegation '{name}' to '{target}' needs glue (an A or AAAA record for '{target}')"
                            ),
                        });
                    }
                }
            }
        }
        // Empty non-terminals exist too (RFC 4592 §2.2.2).
        let mut missing: Vec<Name> = Vec::new();
        for name in nodes.keys() {
            // Most names are children of the apex: nothing to add.
            let w = name.wire();
            if w.len() <= origin.wire().len() || w.len() - 1 - w[0] as usize == origin.wire().len() {
                continue;
            }
            let mut cur = name.parent();
            while let Some(p) = cur {
                if !p.is_within(origin) || nodes.contains_key(&p) || missing.last() == Some(&p) {
                    break;
                }
                cur = p.parent();
                missing.push(p);
            }
        }
        for name in missing {
            nodes.entry(name).or_default();
        }
        let dnssec = crate::dnssec::Index::build(origin, &nodes);
        Ok(Zone { origin: origin.clone(), nodes, soa, records: count, dnssec })
    }

    /// A zone from `nodes` changed in place (by a zone transfer's
    /// differences), with `soa` at the apex: checked as a zone file would
    /// be, its empty non-terminals recomputed. `source` names it in errors.
    pub fn from_nodes(
        origin: &Name,
        mut nodes: BTreeMap<Name, Node>,
        soa: (u32, Soa),
        source: &str,
    ) -> Result<Zone, ZoneError> {
        let at = |message: String| ZoneError { file: source.into(), line: 0, message };
        nodes.retain(|_, n| !n.rrsets.is_empty());
        let apex = nodes.entry(origin.clone()).or_default();
        apex.rrsets.retain(|s| s.rtype != rtype::SOA);
        apex.rrsets
            .insert(0, RRset { rtype: rtype::SOA, ttl: soa.0, rdatas: smallvec![Rdata::Soa(soa.1.clone().into())] });
        let dnssec = |t: u16| matches!(t, rtype::RRSIG | rtype::NSEC);
        let mut count = 0;
        for (name, node) in &nodes {
            if !name.is_within(origin) {
                return Err(at(format!("'{name}' is outside the zone {origin}")));
            }
            if node.get(rtype::CNAME).is_some()
                && node.rrsets.iter().any(|s| s.rtype != rtype::CNAME && !dnssec(s.rtype))
            {
                return Err(at(format!("'{name}' has a CNAME and other data (RFC 1034 §3.6.2)")));
            }
            if name != origin && node.get(rtype::SOA).is_some() {
                return Err(at(format!("SOA record at '{name}', not at the apex {origin}")));
            }
            count += node.rrsets.iter().map(|s| s.rdatas.len()).sum::<usize>();
        }
        Zone::complete(origin, nodes, soa, count, source, &|_| 0)
    }

    /// The zone as compact binary records (owner, type, TTL, data length,
    /// uncompressed data), for embedding a checked zone into an image
    /// without its text parser.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Node by node, RRsets in file order (which ANY answers depend on).
        for (owner, set) in self.nodes.iter().flat_map(|(name, node)| node.rrsets.iter().map(move |s| (name, s))) {
            for rdata in &set.rdatas {
                let data = rdata.to_wire();
                out.extend_from_slice(owner.wire());
                out.extend_from_slice(&set.rtype.to_be_bytes());
                out.extend_from_slice(&set.ttl.to_be_bytes());
                out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                out.extend_from_slice(&data);
            }
        }
        out
    }

    /// Reads records written by [`Zone::to_binary`] and checks them like a
    /// zone file.
    pub fn from_binary(bytes: &[u8], origin: &Name, file: &str) -> Result<Zone, ZoneError> {
        let err = |message: String| ZoneError { file: file.into(), line: 0, message };
        let shared: Rc<str> = file.into();
        let mut records = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let (owner, p) = Name::read(bytes, pos).map_err(|e| err(format!("bad owner: {e}")))?;
            let field = |i: usize, n: usize| bytes.get(p + i..p + i + n).ok_or_else(|| err("truncated record".into()));
            let rtype = u16::from_be_bytes(field(0, 2)?.try_into().unwrap_or_default());
            let ttl = u32::from_be_bytes(field(2, 4)?.try_into().unwrap_or_default());
            let len = u16::from_be_bytes(field(6, 2)?.try_into().unwrap_or_default()) as usize;
            let rdata = Rdata::from_wire(rtype, field(8, len)?).map_err(err)?;
            records.push(Parsed { owner, rtype, ttl, rdata, file: shared.clone(), line: 0 });
            pos = p + 8 + len;
        }
        Zone::build(origin, records, file)
    }

    /// Checks records from a zone transfer (owner, type, TTL, data) like a
    /// zone file; `source` names them in errors.
    pub fn from_records(
        origin: &Name,
        records: impl IntoIterator<Item = (Name, u16, u32, Rdata)>,
        source: &str,
    ) -> Result<Zone, ZoneError> {
        let shared: Rc<str> = source.into();
        let records = records
            .into_iter()
            .map(|(owner, rtype, ttl, rdata)| Parsed { owner, rtype, ttl, rdata, file: shared.clone(), line: 0 })
            .collect();
        Zone::build(origin, records, source)
    }

    /// Every record, the apex SOA first, for zone transfers.
    pub fn records(&self) -> impl Iterator<Item = (&Name, &RRset)> {
        let apex =
            self.nodes.get(&self.origin).into_iter().flat_map(|n| n.rrsets.iter()).filter(|s| s.rtype == rtype::SOA);
        let rest = self
            .nodes
            .iter()
            .flat_map(|(name, node)| node.rrsets.iter().map(move |s| (name, s)))
            .filter(|(_, s)| s.rtype != rtype::SOA);
        apex.map(|s| (&self.origin, s)).chain(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn origin() -> Name {
        Name::parse("example.com.", None).unwrap()
    }

    fn parse(text: &str) -> Result<Zone, ZoneError> {
        Zone::parse(text, &origin(), "test.zone", None)
    }

    const GOOD: &str = "\
$TTL 1h
@   IN  SOA ns1 hostmaster ( 2024010101 ; serial
            7200 3600 1209600 300 )
    IN  NS  ns1
    NS  ns2.example.net.
ns1 A   192.0.2.1
www 300 IN A 192.0.2.10
    AAAA 2001:db8::10
txt TXT \"hello world\" \"semi;colon\" unquoted
a.b.c  A 192.0.2.20
*.wild CNAME www
sub NS ns.sub
ns.sub A 192.0.2.53
gen TYPE65534 \\# 3 abcdef
";

    #[test]
    fn rfc1035_5_1_master_file() {
        let z = parse(GOOD).unwrap();
        assert_eq!(z.soa.1.serial, 2024010101);
        assert_eq!(z.soa.0, 3600);
        let www = &z.nodes[&Name::parse("www.example.com.", None).unwrap()];
        assert_eq!(www.get(rtype::A).unwrap().ttl, 300);
        assert_eq!(www.get(rtype::AAAA).unwrap().ttl, 3600, "$TTL applies, not the previous explicit TTL");
        let txt = &z.nodes[&Name::parse("txt.example.com.", None).unwrap()];
        assert_eq!(txt.get(rtype::TXT).unwrap().rdatas[0].to_wire(), b"\x0bhello world\x0asemi;colon\x08unquoted");
        // Empty non-terminals exist.
        assert!(z.nodes[&Name::parse("b.c.example.com.", None).unwrap()].rrsets.is_empty());
        assert_eq!(z.records, 12);
    }

    #[test]
    fn rfc1035_5_1_origin_and_include() {
        let text = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n$ORIGIN sub.example.com.\nx A 192.0.2.2\n$INCLUDE inc.zone example.org.\ny A 192.0.2.3\n";
        let inc =
            |p: &str| if p == "inc.zone" { Ok("z A 192.0.2.4\n".to_string()) } else { Err("missing".to_string()) };
        let err = Zone::parse(text, &origin(), "t.zone", Some(&inc)).unwrap_err();
        assert_eq!(err.file, "inc.zone", "the included record is outside the zone");
        assert!(err.message.contains("'z.example.org.' is outside the zone"), "{err}");
        let text = text.replace("example.org.", "inc.example.com.");
        let z = Zone::parse(&text, &origin(), "t.zone", Some(&inc)).unwrap();
        assert!(z.nodes.contains_key(&Name::parse("z.inc.example.com.", None).unwrap()));
        assert!(
            z.nodes.contains_key(&Name::parse("y.sub.example.com.", None).unwrap()),
            "$ORIGIN is restored after $INCLUDE"
        );
        let err = Zone::parse(&text, &origin(), "t.zone", None).unwrap_err();
        assert_eq!(err.line, 7);
        assert!(err.message.contains("$INCLUDE is not available"));
    }

    fn expect_error(text: &str, line: usize, needle: &str) {
        let e = parse(text).unwrap_err();
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(needle), "{e}");
        assert!(e.to_string().starts_with(&format!("test.zone:{line}")) || line == 0, "{e}");
    }

    #[test]
    fn binary_form_round_trips() {
        // RRset order is kept (found by the dns_zone fuzzer: SOA moved first).
        let z = parse(&GOOD.replace("$TTL 1h\n", "$TTL 1h\n@ TXT \"before the SOA\"\n")).unwrap();
        assert_eq!(z.nodes[&origin()].rrsets[0].rtype, rtype::TXT);
        let b = Zone::from_binary(&z.to_binary(), &origin(), "bin").unwrap();
        assert_eq!(b.nodes, z.nodes);
        assert_eq!(b.records, z.records);
        assert!(Zone::from_binary(&z.to_binary()[..20], &origin(), "bin").is_err());
    }

    #[cfg(not(feature = "dnssec"))]
    #[test]
    fn signed_zone_is_refused_without_the_dnssec_feature() {
        let text = include_str!("../../../fuzz/seeds/dns_zone/signed-nsec3.zone");
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("without the `dnssec` feature"), "{e}");
        let unsigned = "@ 3600 IN SOA ns1 host 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 192.0.2.1\n";
        assert!(parse(unsigned).is_ok());
    }

    #[cfg(feature = "dnssec")]
    #[test]
    fn signed_zone_keeps_rrsigs_by_type_and_round_trips() {
        // Signed by dnssec-signzone with NSEC3 opt-out (the fuzz seed).
        let text = include_str!("../../../fuzz/seeds/dns_zone/signed-nsec3.zone");
        let z = parse(text).unwrap();
        assert!(z.dnssec.active());
        let apex = &z.nodes[&origin()];
        for t in [rtype::SOA, rtype::NS, rtype::DNSKEY, rtype::NSEC3PARAM] {
            let sigs = apex.sigs(t).unwrap_or_else(|| panic!("no RRSIG for {t}"));
            assert!(sigs.rdatas.iter().all(|r| covered(r) == Some(t)));
        }
        assert!(apex.sigs(rtype::DNSKEY).unwrap().rdatas.len() == 2, "KSK and ZSK signatures");
        let b = Zone::from_binary(&z.to_binary(), &origin(), "bin").unwrap();
        assert_eq!(b.nodes, z.nodes);
        assert_eq!(b.dnssec, z.dnssec);
    }

    #[test]
    fn bad_zone_files_name_the_line() {
        let head = "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n";
        expect_error(&format!("{head}www A 192.0.2.300\n"), 5, "not an IPv4 address");
        expect_error(&format!("{head}www BOGUS x\n"), 5, "unknown record type 'BOGUS'");
        expect_error(&format!("{head}www CH A 192.0.2.1\n"), 5, "class CH is not supported");
        expect_error(&format!("{head}www.other.org. A 192.0.2.1\n"), 5, "outside the zone");
        expect_error(&format!("{head}x CNAME www\nx A 192.0.2.1\n"), 6, "CNAME and other data");
        expect_error(&format!("{head}x A 192.0.2.1\nx CNAME www\n"), 6, "CNAME and other data");
        expect_error(&format!("{head}sub NS ns.sub\n"), 5, "needs glue");
        expect_error(&format!("{head}@ SOA ns h 2 2 3 4 5\n"), 5, "more than one SOA");
        expect_error(&format!("{head}x SOA ns h 2 2 3 4 5\n"), 5, "not at the apex");
        expect_error(&format!("{head}x TXT \"open\n"), 5, "unterminated quoted string");
        expect_error(&format!("{head}x ( A 192.0.2.1\n"), 5, "'(' is never closed");
        expect_error(&format!("{head}x A 192.0.2.1 )\n"), 5, "')' without '('");
        expect_error(&format!("{head}x MX ten mail\n"), 5, "not a valid MX preference");
        expect_error(&format!("{head}x 1q A 192.0.2.1\n"), 5, "not a TTL");
        expect_error(&format!("{head}$FOO bar\n"), 5, "unknown directive $FOO");
        expect_error(&format!("{head}x TXT \"{}\"\n", "a".repeat(256)), 5, "at most 255");
        expect_error(&format!("{head}{}.x A 192.0.2.1\n", "a".repeat(64)), 5, "label longer than 63");
        expect_error("@ 60 NS ns\nns 60 A 192.0.2.1\n", 0, "no SOA record");
        expect_error("@ 60 SOA ns h 1 2 3 4 5\n", 0, "no NS records");
        expect_error("@ SOA ns h 1 2 3 4 5\n", 1, "no TTL");
        expect_error("  A 192.0.2.1\n", 1, "no owner name");
    }
}
