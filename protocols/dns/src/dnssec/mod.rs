//! Serving zones signed offline (RFC 4033-4035, RFC 5155): which NSEC or
//! NSEC3 RRsets prove a negative answer, chosen as NSD chooses them.
//!
//! Signatures are never made here: RRSIGs come from the zone file and are
//! kept with the RRset they cover ([`crate::zone::Node::sigs`]).

pub mod nsec3;
pub mod text;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::name::{self, Name};
use crate::wire::rtype;
use crate::zone::Node;

/// What a zone offers for DNSSEC, worked out once when it is loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// The apex has signatures: the zone is served as signed.
    pub signed: bool,
    /// Owners of NSEC records, in canonical order (RFC 4034 §6.1).
    nsec: Vec<Name>,
    /// The NSEC3 chain, if the zone is NSEC3-signed.
    nsec3: Option<nsec3::Chain>,
}

/// RFC 4034 §6.1 canonical order of two lowercase wire-form names: label by
/// label from the root, each label compared as octets.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let labels = |w: &[u8]| -> Vec<usize> { name::label_offsets(w).filter(|&o| w[o] != 0).collect() };
    let (la, lb) = (labels(a), labels(b));
    for (&x, &y) in la.iter().rev().zip(lb.iter().rev()) {
        let lx = &a[x + 1..x + 1 + a[x] as usize];
        let ly = &b[y + 1..y + 1 + b[y] as usize];
        match lx.cmp(ly) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    la.len().cmp(&lb.len())
}

/// Whether a node holds nothing but NSEC3 records and their signatures:
/// such a hashed owner name does not exist for ordinary lookups.
pub fn is_nsec3_only(node: &Node) -> bool {
    node.get(rtype::NSEC3).is_some() && node.rrsets.iter().all(|s| matches!(s.rtype, rtype::NSEC3 | rtype::RRSIG))
}

/// `*.` followed by `name`, when that is a name.
fn wildcard_of(name: &[u8]) -> Option<Vec<u8>> {
    (name.len() + 2 <= name::MAX_NAME).then(|| [&[1, b'*'][..], name].concat())
}

/// The name one label longer than `ce` on the way to `qname` (the "next
/// closer name" of RFC 5155 §7.2.1).
fn next_closer<'q>(qname: &'q [u8], ce: &[u8]) -> &'q [u8] {
    let mut prev = qname;
    for off in name::label_offsets(qname) {
        if qname.len() - off == ce.len() {
            return prev;
        }
        prev = &qname[off..];
    }
    qname
}

fn parent(name: &[u8]) -> Option<&[u8]> {
    (name[0] != 0).then(|| &name[1 + name[0] as usize..])
}

impl Index {
    /// Indexes the zone `origin` made of `nodes`.
    pub fn build(origin: &Name, nodes: &BTreeMap<Name, Node>) -> Index {
        let signed = nodes.get(origin).is_some_and(|n| n.get(rtype::RRSIG).is_some());
        let mut nsec: Vec<Name> =
            nodes.iter().filter(|(_, n)| n.get(rtype::NSEC).is_some()).map(|(name, _)| name.clone()).collect();
        nsec.sort_by(|a, b| canonical_cmp(a.wire(), b.wire()));
        Index { signed, nsec, nsec3: nsec3::Chain::build(origin, nodes) }
    }

    /// Whether DNSSEC records go into answers to a query with DO set.
    pub fn active(&self) -> bool {
        self.signed || self.nsec3.is_some()
    }

    /// The NSEC owner at or before `name` in canonical order.
    fn nsec_cover(&self, name: &[u8]) -> Option<&Name> {
        let i = self.nsec.partition_point(|n| canonical_cmp(n.wire(), name) != Ordering::Greater);
        i.checked_sub(1).map(|i| &self.nsec[i])
    }

    /// NXDOMAIN for `qname` whose closest encloser is `ce`: RFC 4035
    /// §3.1.3.2 (qname and wildcard covered) or RFC 5155 §7.2.2 (closest
    /// encloser proof and the wildcard covered).
    pub fn nxdomain(&self, qname: &[u8], ce: &[u8]) -> Vec<&Name> {
        let wild = wildcard_of(ce);
        let wild = wild.as_deref().unwrap_or(ce);
        match &self.nsec3 {
            Some(c) => {
                [c.covering(next_closer(qname, ce)), c.exact(ce), c.covering(wild)].into_iter().flatten().collect()
            }
            None if self.signed => [self.nsec_cover(qname), self.nsec_cover(wild)].into_iter().flatten().collect(),
            None => Vec::new(),
        }
    }

    /// A wildcard expansion for `qname` from the wildcard at `ce`: the
    /// qname (RFC 4035 §3.1.3.3) or the next closer name (RFC 5155 §7.2.6)
    /// is covered.
    pub fn wildcard(&self, qname: &[u8], ce: &[u8]) -> Vec<&Name> {
        match &self.nsec3 {
            Some(c) => c.covering(next_closer(qname, ce)).into_iter().collect(),
            None if self.signed => self.nsec_cover(qname).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// NODATA at `original` (the existing name, or the wildcard that
    /// matched) in the zone `apex` for `qtype`: RFC 4035 §3.1.3.1/§3.1.3.4,
    /// RFC 5155 §§7.2.3-7.2.5. True: NSD puts these before the SOA (an
    /// empty non-terminal without NSEC3 under opt-out). `cut`: `original`
    /// is a delegation (asked for DS).
    pub fn nodata(&self, apex: &[u8], original: &[u8], qtype: u16, cut: bool) -> (Vec<&Name>, bool) {
        let Some(c) = &self.nsec3 else {
            return (if self.signed { self.nsec_cover(original).into_iter().collect() } else { Vec::new() }, false);
        };
        // NSD looks at a wildcard before it looks at DS.
        if original.starts_with(&[1, b'*']) && original != apex {
            let up = parent(original).and_then(|p| c.exact(p));
            return ([up, c.covering(original)].into_iter().flatten().collect(), false);
        }
        if let Some(n) = c.exact(original) {
            return (alloc::vec![n], false);
        }
        // No NSEC3 here (opt-out): the closest provable encloser, and the
        // next closer name covered (NSD leaves that out for DS at a name
        // that is no delegation).
        let mut proof = self.no_ds(c, original);
        if qtype == rtype::DS && !cut {
            proof.truncate(1);
            return (proof, false);
        }
        (proof, true)
    }

    /// A referral to `cut` without DS: the NSEC at the cut (RFC 4035
    /// §3.1.4), or the NSEC3 matching it or, under opt-out, the closest
    /// provable encloser proof (RFC 5155 §7.2.7).
    pub fn unsigned_referral<'a>(&'a self, cut: &'a Name) -> Vec<&'a Name> {
        match &self.nsec3 {
            Some(c) => self.no_ds(c, cut.wire()),
            None if self.signed => self.nsec.iter().filter(|n| *n == cut).collect(),
            None => Vec::new(),
        }
    }

    fn no_ds<'a>(&'a self, c: &'a nsec3::Chain, name: &[u8]) -> Vec<&'a Name> {
        if let Some(n) = c.exact(name) {
            return alloc::vec![n];
        }
        // Opt-out: the closest provable encloser and the next closer name
        // covered (RFC 5155 §7.2.7).
        let mut out = Vec::with_capacity(2);
        let mut below: Option<&[u8]> = None;
        let mut up = parent(name);
        while let Some(p) = up {
            if let Some(n) = c.exact(p) {
                out.push(n);
                break;
            }
            below = Some(p);
            up = parent(p);
        }
        out.extend(c.covering(below.unwrap_or(name)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::Zone;

    fn n(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn rfc4034_6_1_canonical_order() {
        // The example list of RFC 4034 §6.1, in order.
        let names = [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "z.a.example.",
            "zabc.a.example.",
            "z.example.",
            "\\001.z.example.",
            "*.z.example.",
            "\\200.z.example.",
        ];
        for w in names.windows(2) {
            let (a, b) = (n(w[0]), n(w[1]));
            assert_eq!(canonical_cmp(a.wire(), b.wire()), Ordering::Less, "{} < {}", w[0], w[1]);
        }
    }

    const SIGNED: &str = "\
$TTL 300
@ SOA ns h 1 2 3 4 5
@ RRSIG SOA 8 1 300 20300101000000 20200101000000 1 example. AAAA
@ NS ns
@ NSEC a.example. NS SOA RRSIG NSEC
a NSEC ns.example. A RRSIG NSEC
a A 192.0.2.1
x.y NSEC example. A RRSIG NSEC
x.y A 192.0.2.2
ns A 192.0.2.3
ns NSEC x.y.example. A RRSIG NSEC
";

    #[test]
    fn rfc4035_3_1_3_nsec_selection() {
        let z = Zone::parse(SIGNED, &n("example."), "t", None).unwrap();
        let ix = &z.dnssec;
        assert!(ix.active());
        // b.example. lies between a. and ns.: a's NSEC covers it; the
        // wildcard *.example. sorts before a., so the apex NSEC covers it.
        let p = ix.nxdomain(n("b.example.").wire(), n("example.").wire());
        assert_eq!(p, [&n("a.example."), &n("example.")]);
        // The empty non-terminal y.example. is covered by ns.'s NSEC.
        assert_eq!(ix.nodata(z.origin.wire(), n("y.example.").wire(), rtype::A, false).0, [&n("ns.example.")]);
        assert_eq!(ix.nodata(z.origin.wire(), n("a.example.").wire(), rtype::MX, false).0, [&n("a.example.")]);
    }

    #[test]
    fn rfc5155_7_2_next_closer() {
        assert_eq!(next_closer(n("a.b.c.example.").wire(), n("c.example.").wire()), n("b.c.example.").wire());
        assert_eq!(next_closer(n("b.example.").wire(), n("example.").wire()), n("b.example.").wire());
    }
}
