//! The response under construction, and how its sections are written
//! within the size limit (NSD's truncation rules).

use alloc::vec::Vec;

use crate::name::Name;
use crate::rdata::Rdata;
use crate::wire::{flags, rtype, Section, Writer, CLASS_IN};
use crate::zone::{Node, RRset, Zone};

/// One record of a response, borrowed from the zone and the query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rr<'a> {
    pub(crate) owner: &'a [u8],
    pub(crate) rtype: u16,
    pub(crate) ttl: u32,
    pub(crate) rdata: &'a Rdata,
    /// The first record of an RRset (with its signatures, one unit).
    pub(crate) first: bool,
}

#[derive(Default)]
pub(crate) struct Response<'a> {
    pub(crate) rcode: u16,
    pub(crate) aa: bool,
    pub(crate) answer: Vec<Rr<'a>>,
    pub(crate) authority: Vec<Rr<'a>>,
    pub(crate) additional: Vec<Rr<'a>>,
    /// The authority section is required (negative answers, referrals).
    pub(crate) authority_required: bool,
    /// Where the apex NS RRset of a positive answer starts in the
    /// authority section: it may be left out, the proofs before it not.
    pub(crate) optional_at: Option<usize>,
    /// The query has the DO bit: signed zones add RRSIGs and proofs.
    pub(crate) dnssec_ok: bool,
    /// Signatures go with every RRset (DO set and the zone is signed).
    pub(crate) sign: bool,
}

/// Appends `set` and, if given, its RRSIGs (each with its own TTL).
pub(crate) fn push_rrset<'a>(out: &mut Vec<Rr<'a>>, owner: &'a [u8], set: &'a RRset, sigs: Option<&'a RRset>) {
    for s in core::iter::once(set).chain(sigs) {
        let first = core::ptr::eq(s, set);
        out.extend(s.rdatas.iter().enumerate().map(|(i, rdata)| Rr {
            owner,
            rtype: s.rtype,
            ttl: s.ttl,
            rdata,
            first: first && i == 0,
        }));
    }
}

impl<'a> Response<'a> {
    /// The signatures to send with `node`'s RRset of type `t`.
    pub(crate) fn sigs(&self, node: &'a Node, t: u16) -> Option<&'a RRset> {
        (self.sign && t != rtype::RRSIG).then(|| node.sigs(t)).flatten()
    }

    /// Adds the NSEC or NSEC3 RRsets at `owners` to the authority section,
    /// each once, with their signatures.
    pub(crate) fn proofs(&mut self, zone: &'a Zone, owners: Vec<&'a Name>) {
        for owner in owners {
            let Some(node) = zone.nodes.get(owner) else { continue };
            let Some(set) = node.get(rtype::NSEC).or(node.get(rtype::NSEC3)) else { continue };
            if self.authority.iter().any(|rr| rr.rtype == set.rtype && rr.owner == owner.wire()) {
                continue;
            }
            let sigs = self.sigs(node, set.rtype);
            push_rrset(&mut self.authority, owner.wire(), set, sigs);
        }
    }
}

/// The RRsets of a section, each with its signatures.
fn units<'r, 'a>(rrs: &'r [Rr<'a>]) -> impl Iterator<Item = &'r [Rr<'a>]> {
    let mut rest = rrs;
    core::iter::from_fn(move || {
        let (_, tail) = rest.split_first()?;
        let end = 1 + tail.iter().position(|x| x.first).unwrap_or(tail.len());
        let (unit, more) = rest.split_at(end);
        rest = more;
        Some(unit)
    })
}

/// Writes the RRsets of `rrs` while they fit under `limit`; false (with the
/// one that did not fit rolled back) when one did not.
fn write_units(
    w: &mut Writer,
    section: Section,
    rrs: &[Rr<'_>],
    limit: usize,
    write: &dyn Fn(&mut Writer, Section, &[Rr<'_>]),
) -> bool {
    for unit in units(rrs) {
        let mark = w.mark();
        write(w, section, unit);
        if w.len() > limit {
            w.truncate(mark);
            return false;
        }
    }
    true
}

/// Writes the sections of `r` into `w` within `limit` octets, setting TC
/// as NSD does.
pub(crate) fn encode(w: &mut Writer, r: &Response<'_>, limit: usize) {
    let write = |w: &mut Writer, section: Section, rrs: &[Rr<'_>]| {
        for rr in rrs {
            let at = w.begin_record(section, rr.owner, rr.rtype, CLASS_IN, rr.ttl);
            rr.rdata.write(w);
            w.end_record(at);
        }
    };
    // As NSD: RRsets (each with its signatures) go in whole, in order;
    // the first that does not fit is left out with the rest, and TC set.
    let split = r.optional_at.unwrap_or(r.authority.len());
    for (section, rrs) in [(Section::Answer, &r.answer[..]), (Section::Authority, &r.authority[..split])] {
        if !write_units(w, section, rrs, limit, &write) {
            w.set_flags(flags::TC);
            return;
        }
    }
    let mark = w.mark();
    write(w, Section::Authority, &r.authority[split..]);
    if w.len() > limit {
        // The apex NS of a positive answer: left out without TC.
        w.truncate(mark);
        if r.authority_required {
            w.set_flags(flags::TC);
        }
        return;
    }
    // Extra data may be left out without TC (RFC 2181 §9): as NSD, each
    // RRset with its signatures goes in whole or not at all.
    for unit in units(&r.additional) {
        let mark = w.mark();
        write(w, Section::Additional, unit);
        if w.len() > limit {
            w.truncate(mark);
        }
    }
}
