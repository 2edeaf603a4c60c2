//! Answering queries from a set of zones (RFC 1034 §4.3.2), with RFC 2308
//! negative answers, RFC 4592 wildcards, RFC 8482 minimal ANY, EDNS(0) and
//! UDP truncation.
//!
//! Response shapes follow NSD's (the differential test holds us to it):
//! positive answers carry the apex NS RRset in the authority section and
//! the addresses of in-zone NS, MX and SRV targets in the additional
//! section; a response whose required sections do not fit the UDP limit is
//! sent with TC set and no records.

use alloc::rc::Rc;
use alloc::vec::Vec;

use crate::dnssec;
use crate::name::{self, Name};
use crate::rdata::Rdata;
use crate::response::{self, push_rrset, Response, Rr};
use crate::wire::{self, flags, parse_query, rcode, rtype, Query, QueryError, Writer, CLASS_ANY, CLASS_IN};
use crate::zone::{Node, Zone};

/// The largest UDP response, whatever the client offers (the DNS flag day
/// 2020 value, also NSD's default).
pub const MAX_UDP: usize = 1232;
/// CNAMEs followed before giving up.
const MAX_CHAIN: usize = 16;

/// How the query arrived: UDP responses are limited in size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Over UDP.
    Udp,
    /// Over TCP.
    Tcp,
}

/// The zones served.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Zones, the most specific origin first (longest match wins).
    zones: Vec<Rc<Zone>>,
    /// Origins we are authoritative for without data to serve (a secondary
    /// zone not yet transferred, or expired): SERVFAIL.
    unavailable: Vec<Name>,
}

/// Where a name lands in a zone.
enum Lookup<'z> {
    /// The name exists (possibly as an empty non-terminal).
    Found(&'z Node),
    /// The name is at or below a delegation point (its name and node).
    Referral(&'z Name, &'z Node),
    /// No such name, but the wildcard at its closest encloser (given)
    /// exists.
    Wildcard(&'z Node, &'z [u8]),
    /// No such name; the closest encloser.
    NxDomain(&'z [u8]),
}

impl Catalog {
    /// A catalog of `zones`. Two zones with the same origin: the last wins.
    pub fn new(zones: Vec<Zone>) -> Catalog {
        Catalog::with(zones.into_iter().map(Rc::new).collect(), Vec::new())
    }

    /// A catalog of shared `zones` (the last of two with the same origin
    /// wins), and of `unavailable` origins, answered with SERVFAIL.
    pub fn with(mut zones: Vec<Rc<Zone>>, unavailable: Vec<Name>) -> Catalog {
        zones.reverse();
        let mut seen: Vec<Name> = Vec::new();
        zones.retain(|z| {
            let dup = seen.contains(&z.origin);
            seen.push(z.origin.clone());
            !dup
        });
        zones.sort_by_key(|z| core::cmp::Reverse(z.origin.wire().len()));
        Catalog { zones, unavailable }
    }

    /// The zones.
    pub fn zones(&self) -> &[Rc<Zone>] {
        &self.zones
    }

    /// The origins without data to serve.
    pub fn unavailable(&self) -> &[Name] {
        &self.unavailable
    }

    /// Whether `name` is in an unavailable zone more specific than any
    /// zone with data.
    fn is_unavailable(&self, name: &[u8]) -> bool {
        let best =
            self.zones.iter().find(|z| name::is_within(name, z.origin.wire())).map_or(0, |z| z.origin.wire().len());
        self.unavailable.iter().any(|o| name::is_within(name, o.wire()) && o.wire().len() > best)
    }

    /// The zone with the longest origin that contains `name`.
    pub fn find_zone(&self, name: &Name) -> Option<&Zone> {
        self.zones.iter().find(|z| name.is_within(&z.origin)).map(|z| &**z)
    }

    /// The zone that answers `qtype` at `name`: the longest match, except
    /// that DS at a zone's apex belongs to the parent zone when we serve it
    /// (RFC 4035 §3.1.4.1).
    fn zone_for(&self, name: &[u8], qtype: u16) -> Option<&Zone> {
        let mut matches = self.zones.iter().filter(|z| name::is_within(name, z.origin.wire()));
        let first = matches.next()?;
        if qtype == rtype::DS && first.origin.wire() == name && name != [0] {
            if let Some(parent) = matches.next() {
                return Some(parent);
            }
        }
        Some(first)
    }

    /// Answers the message `msg`. `None` means: send nothing (the message
    /// was a response, or too short to carry an ID).
    pub fn answer(&self, msg: &[u8], transport: Transport) -> Option<Vec<u8>> {
        self.respond(&parse_query(msg), transport)
    }

    /// Answers a message already parsed with [`parse_query`]; `None` as for
    /// [`Catalog::answer`].
    pub fn respond(&self, parsed: &Result<Query, QueryError>, transport: Transport) -> Option<Vec<u8>> {
        self.respond_with(parsed, transport, &[])
    }

    /// [`Catalog::respond`], with EDNS `options` (encoded) in the OPT
    /// record of a query that has one; the size limit makes room for them.
    pub fn respond_with(
        &self,
        parsed: &Result<Query, QueryError>,
        transport: Transport,
        options: &[u8],
    ) -> Option<Vec<u8>> {
        match *parsed {
            Ok(ref q) => Some(self.answer_query_with(q, transport, options)),
            Err(QueryError::NoHeader | QueryError::IsResponse) => None,
            Err(QueryError::NotImplemented { id, opcode }) => {
                // NOTIFY is refused (we are no secondary); others are not
                // implemented. Neither echoes the question.
                let code = if opcode == 4 { rcode::REFUSED } else { rcode::NOTIMP };
                let mut w = Writer::new(id, flags::QR | (opcode as u16) << 11, None);
                w.set_rcode(code);
                Some(w.finish())
            }
            Err(QueryError::Malformed { id, opcode, .. }) => {
                let mut w = Writer::new(id, flags::QR | (opcode as u16) << 11, None);
                w.set_rcode(rcode::FORMERR);
                Some(w.finish())
            }
        }
    }

    /// Answers a parsed query.
    pub fn answer_query(&self, q: &Query, transport: Transport) -> Vec<u8> {
        self.answer_query_with(q, transport, &[])
    }

    fn answer_query_with(&self, q: &Query, transport: Transport, options: &[u8]) -> Vec<u8> {
        let mut hdr = flags::QR;
        if q.rd {
            hdr |= flags::RD;
        }
        if q.cd {
            hdr |= flags::CD;
        }
        let mut w = Writer::new(q.id, hdr, Some((&q.qname_raw, q.qtype, q.qclass)));
        let edns = q.edns;
        let finish = |mut w: Writer, ext_rcode: u8| {
            if let Some(e) = edns {
                w.opt_with(MAX_UDP as u16, ext_rcode, e.dnssec_ok, options);
            }
            w.finish()
        };
        if edns.is_some_and(|e| e.version > 0) {
            return finish(w, (rcode::BADVERS >> 4) as u8);
        }
        if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
            w.set_rcode(rcode::REFUSED);
            return finish(w, 0);
        }
        if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
            // Zone transfers go over TCP through the server's AXFR path.
            w.set_rcode(rcode::NOTIMP);
            return finish(w, 0);
        }
        if self.is_unavailable(q.qname.wire()) {
            w.set_rcode(rcode::SERVFAIL);
            return finish(w, 0);
        }
        let Some(zone) = self.zone_for(q.qname.wire(), q.qtype) else {
            w.set_rcode(rcode::REFUSED);
            return finish(w, 0);
        };
        let mut r = self.resolve(zone, q);
        if q.qclass == CLASS_ANY {
            // As NSD: data from the IN zone, not authoritative, no extras.
            r.aa = false;
            r.authority.clear();
            r.optional_at = None;
            r.additional.clear();
        }
        let limit = match transport {
            Transport::Tcp => 65535,
            Transport::Udp => {
                let offered = edns.map_or(wire::CLASSIC_UDP, |e| (e.udp_size as usize).max(wire::CLASSIC_UDP));
                offered.min(MAX_UDP)
            }
        };
        let limit = limit - if edns.is_some() { 11 + options.len() } else { 0 };
        w.set_rcode(r.rcode);
        if r.aa {
            w.set_flags(flags::AA);
        }
        response::encode(&mut w, &r, limit);
        finish(w, 0)
    }
}

/// Walks `zone` from the apex towards `qname`.
fn lookup<'z>(zone: &'z Zone, qname: &[u8], qtype: u16) -> Lookup<'z> {
    let apex_len = zone.origin.wire().len();
    let mut offsets = [0u8; 128];
    let mut count = 0;
    for o in name::label_offsets(qname).filter(|&o| qname.len() - o >= apex_len) {
        offsets[count] = o as u8;
        count += 1;
    }
    // From the apex down: shortest suffix (largest offset) first.
    let mut encloser: &[u8] = zone.origin.wire();
    for &off in offsets[..count].iter().rev() {
        let off = off as usize;
        let candidate = &qname[off..];
        // Hashed NSEC3 owners are not names of the zone (RFC 5155 §7.2.8).
        let Some(node) = zone.nodes.get(candidate).filter(|n| !dnssec::is_nsec3_only(n)) else {
            // No such name: the wildcard at the closest encloser, if any.
            let mut wild = Vec::with_capacity(encloser.len() + 2);
            wild.extend_from_slice(&[1, b'*']);
            wild.extend_from_slice(encloser);
            return match zone.nodes.get(&wild[..]) {
                Some(w) => Lookup::Wildcard(w, encloser),
                None => Lookup::NxDomain(encloser),
            };
        };
        if candidate.len() != apex_len && node.get(rtype::NS).is_some() {
            // The parent side answers DS for a delegation (RFC 4035 §3.1.4.1).
            let is_ds_at_cut = off == 0 && qtype == rtype::DS;
            if !is_ds_at_cut {
                let (cut, _) = zone.nodes.get_key_value(candidate).expect("node exists");
                return Lookup::Referral(cut, node);
            }
        }
        let (key, _) = zone.nodes.get_key_value(candidate).expect("node exists");
        encloser = key.wire();
    }
    match zone.nodes.get(qname) {
        Some(node) => Lookup::Found(node),
        None => Lookup::NxDomain(encloser),
    }
}

fn negative<'a>(zone: &'a Zone, r: &mut Response<'a>, code: u16) {
    r.rcode = code;
    let (ttl, _) = zone.soa;
    if let Some((apex, set)) = zone.nodes.get(&zone.origin).and_then(|n| Some((n, n.get(rtype::SOA)?))) {
        let neg_ttl = match &set.rdatas[0] {
            Rdata::Soa(s) => ttl.min(s.minimum),
            _ => ttl,
        };
        let soa = Rr { owner: zone.origin.wire(), rtype: rtype::SOA, ttl: neg_ttl, rdata: &set.rdatas[0], first: true };
        r.authority.push(soa);
        // The signatures get the negative TTL too, as NSD sends them.
        if let Some(sigs) = r.sigs(apex, rtype::SOA) {
            let owner = zone.origin.wire();
            r.authority.extend(sigs.rdatas.iter().map(|rdata| Rr {
                owner,
                rtype: rtype::RRSIG,
                ttl: neg_ttl,
                rdata,
                first: false,
            }));
        }
    }
    r.authority_required = true;
}

/// The A and AAAA records of `target`, if it is in `zone`, skipping
/// records already in the response.
fn add_addresses<'a>(zone: &'a Zone, target: &'a Name, r: &mut Response<'a>) {
    if !target.is_within(&zone.origin) {
        return;
    }
    let Some((owner, node)) = zone.nodes.get_key_value(target) else { return };
    for t in [rtype::A, rtype::AAAA] {
        let Some(set) = node.get(t) else { continue };
        let present = |rrs: &[Rr<'_>]| rrs.iter().any(|rr| rr.rtype == t && rr.owner == owner.wire());
        if present(&r.answer) || present(&r.additional) {
            continue;
        }
        let sigs = r.sigs(node, t);
        push_rrset(&mut r.additional, owner.wire(), set, sigs);
    }
}

fn additional_for<'a>(zone: &'a Zone, rrs: &[Rr<'a>], r: &mut Response<'a>) {
    for rr in rrs {
        if matches!(rr.rtype, rtype::NS | rtype::MX | rtype::SRV) {
            if let Some(t) = rr.rdata.target() {
                add_addresses(zone, t, r);
            }
        }
    }
}

fn apex_ns<'a>(zone: &'a Zone, r: &mut Response<'a>) {
    if let Some(apex) = zone.nodes.get(&zone.origin) {
        if let Some(ns) = apex.get(rtype::NS) {
            r.optional_at = Some(r.authority.len());
            let sigs = r.sigs(apex, rtype::NS);
            push_rrset(&mut r.authority, zone.origin.wire(), ns, sigs);
        }
    }
}

impl Catalog {
    fn resolve<'a>(&'a self, first_zone: &'a Zone, q: &'a Query) -> Response<'a> {
        let dnssec_ok = q.edns.is_some_and(|e| e.dnssec_ok);
        let mut r = Response {
            aa: true,
            answer: Vec::with_capacity(8),
            authority: Vec::with_capacity(4),
            additional: Vec::with_capacity(4),
            dnssec_ok,
            ..Response::default()
        };
        let mut zone = first_zone;
        let mut name: &'a [u8] = q.qname.wire();
        let mut visited: Vec<&[u8]> = Vec::new();
        for _ in 0..MAX_CHAIN {
            visited.push(name);
            r.sign = dnssec_ok && zone.dnssec.signed;
            // The name that stands for the answer in NODATA proofs: the
            // matched wildcard, not its expansion (RFC 4035 §3.1.3.4).
            let mut original: &'a [u8] = name;
            let node = match lookup(zone, name, q.qtype) {
                Lookup::Referral(cut, node) => {
                    if r.answer.is_empty() {
                        r.aa = false;
                        referral(zone, cut, node, &mut r);
                    }
                    return r;
                }
                Lookup::NxDomain(ce) => {
                    // Proofs before the SOA, as NSD (it matters under TC).
                    if dnssec_ok {
                        r.proofs(zone, zone.dnssec.nxdomain(name, ce));
                    }
                    negative(zone, &mut r, rcode::NXDOMAIN);
                    return r;
                }
                Lookup::Wildcard(node, ce) => {
                    if dnssec_ok {
                        r.proofs(zone, zone.dnssec.wildcard(name, ce));
                    }
                    let (star, _) =
                        zone.nodes.get_key_value(&[&[1, b'*'][..], ce].concat()[..]).expect("wildcard exists");
                    original = star.wire();
                    node
                }
                Lookup::Found(node) => node,
            };
            let nodata = |r: &mut Response<'a>| {
                let (proofs, first) = match dnssec_ok {
                    true => zone.dnssec.nodata(zone.origin.wire(), original, q.qtype, node.get(rtype::NS).is_some()),
                    false => (Vec::new(), false),
                };
                if first {
                    r.proofs(zone, proofs.clone());
                }
                negative(zone, r, rcode::NOERROR);
                r.proofs(zone, proofs);
            };
            if q.qtype == rtype::ANY {
                // RFC 8482: one RRset is enough (not a hashed-chain record,
                // nor signatures when they come with their RRset anyway).
                let skip = |t: u16| t == rtype::NSEC3 || (r.sign && t == rtype::RRSIG);
                if let Some(set) = node.rrsets.iter().find(|s| !skip(s.rtype)) {
                    let sigs = r.sigs(node, set.rtype);
                    push_rrset(&mut r.answer, name, set, sigs);
                    let ans = r.answer.clone();
                    additional_for(zone, &ans, &mut r);
                } else {
                    nodata(&mut r);
                }
                return r;
            }
            if q.qtype == rtype::NSEC3 {
                // Hashed owners are no names: NSEC3 is never data (as NSD).
                nodata(&mut r);
                return r;
            }
            if let Some(set) = node.get(q.qtype) {
                let sigs = r.sigs(node, set.rtype);
                push_rrset(&mut r.answer, name, set, sigs);
                // RRSIG: the signatures of every type covered.
                for more in node
                    .rrsets
                    .iter()
                    .filter(|s| set.rtype == rtype::RRSIG && s.rtype == rtype::RRSIG && !core::ptr::eq(*s, set))
                {
                    let at = r.answer.len();
                    push_rrset(&mut r.answer, name, more, None);
                    r.answer[at].first = false; // one RRSIG RRset, as NSD has it
                }
                apex_ns_if_not_answer(zone, q.qtype, name, &mut r);
                let ans = r.answer.clone();
                additional_for(zone, &ans, &mut r);
                let auth = r.authority.clone();
                additional_for(zone, &auth, &mut r);
                return r;
            }
            if let Some(cname) = node.get(rtype::CNAME) {
                let sigs = r.sigs(node, rtype::CNAME);
                push_rrset(&mut r.answer, name, cname, sigs);
                let Some(target) = cname.rdatas[0].target() else { return r };
                if visited.contains(&target.wire()) {
                    return r; // a loop: what we have is the answer
                }
                // Follow into whichever of our zones holds the target.
                match self.zone_for(target.wire(), q.qtype) {
                    Some(z) => zone = z,
                    None => return r, // not ours: the resolver follows it
                }
                name = target.wire();
                continue;
            }
            nodata(&mut r);
            return r;
        }
        r
    }
}

/// A referral to `cut`: its NS RRset and glue, and with DO in a signed
/// zone its DS RRset or the proof that there is none (RFC 4035 §3.1.4).
fn referral<'a>(zone: &'a Zone, cut: &'a Name, node: &'a Node, r: &mut Response<'a>) {
    let Some(ns) = node.get(rtype::NS) else { return };
    let sigs = r.sigs(node, rtype::NS);
    push_rrset(&mut r.authority, cut.wire(), ns, sigs);
    r.authority_required = true;
    if r.dnssec_ok && zone.dnssec.active() {
        match node.get(rtype::DS) {
            Some(ds) => {
                let sigs = r.sigs(node, rtype::DS);
                push_rrset(&mut r.authority, cut.wire(), ds, sigs);
            }
            None => r.proofs(zone, zone.dnssec.unsigned_referral(cut)),
        }
    }
    let auth = r.authority.clone();
    additional_for(zone, &auth, r);
}

/// NSD leaves the apex NS RRset out of answers for NS at the apex, and for
/// DNSKEY and DS (large RRsets).
fn apex_ns_if_not_answer<'a>(zone: &'a Zone, qtype: u16, name: &[u8], r: &mut Response<'a>) {
    let ns_at_apex = qtype == rtype::NS && name == zone.origin.wire();
    if !ns_at_apex && qtype != rtype::DNSKEY && qtype != rtype::DS {
        apex_ns(zone, r);
    }
}

#[cfg(test)]
mod tests;
