//! NSEC3 hashing (RFC 5155 §5) and the hashed-owner chain of a zone.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use sha1::{Digest, Sha1};

use super::text::{base32hex_decode, bitmap_has};
use crate::name::Name;
use crate::rdata::Rdata;
use crate::wire::rtype;
use crate::zone::Node;

/// RFC 5155 §5: IH(salt, x, 0) = H(x || salt), IH(salt, x, k) =
/// H(IH(salt, x, k-1) || salt), with `name` in canonical (lowercase) wire
/// form.
pub fn hash(name: &[u8], salt: &[u8], iterations: u16) -> [u8; 20] {
    let mut h: [u8; 20] = Sha1::new().chain_update(name).chain_update(salt).finalize().into();
    for _ in 0..iterations {
        h = Sha1::new().chain_update(h).chain_update(salt).finalize().into();
    }
    h
}

/// The NSEC3 parameters a zone is served with and its chain, sorted by
/// hash (which is the canonical order of the owner names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    salt: Vec<u8>,
    iterations: u16,
    links: Vec<(Vec<u8>, Name)>,
}

/// (algorithm, iterations, salt) of NSEC3 or NSEC3PARAM data.
fn params(b: &[u8]) -> Option<(u8, u16, &[u8])> {
    let len = *b.get(4)? as usize;
    Some((b[0], u16::from_be_bytes([b[2], b[3]]), b.get(5..5 + len)?))
}

impl Chain {
    /// The chain of the zone `origin` as NSD finds it: the first NSEC3PARAM
    /// with SHA-1 and flags 0 whose hash of the apex has an NSEC3 with the
    /// same parameters and the SOA bit. `None`: the zone is not NSEC3-signed.
    pub fn build(origin: &Name, nodes: &BTreeMap<Name, Node>) -> Option<Chain> {
        let apex = nodes.get(origin)?;
        for p in apex.get(rtype::NSEC3PARAM)?.rdatas.iter() {
            let Rdata::Opaque(b) = p else { continue };
            let Some((1, iterations, salt)) = params(b).filter(|_| b[1] == 0) else { continue };
            let mut links = Vec::new();
            for (name, node) in nodes {
                let Some(set) = node.get(rtype::NSEC3) else { continue };
                let same = set
                    .rdatas
                    .iter()
                    .any(|r| matches!(r, Rdata::Opaque(d) if params(d) == Some((1, iterations, salt))));
                let label = name.labels().next().and_then(|l| core::str::from_utf8(l).ok());
                let parent_is_apex = name.parent().as_ref() == Some(origin);
                if let (true, true, Some(Ok(h))) = (same, parent_is_apex, label.map(base32hex_decode)) {
                    links.push((h, name.clone()));
                }
            }
            links.sort();
            let chain = Chain { salt: salt.to_vec(), iterations, links };
            let apex_hash = hash(origin.wire(), salt, iterations);
            let (owner, exact) = chain.cover(&apex_hash);
            let soa_bit = |n: &Name| {
                nodes.get(n).and_then(|node| node.get(rtype::NSEC3)).is_some_and(|s| {
                    s.rdatas.iter().any(
                        |r| matches!(r, Rdata::Opaque(d) if nsec3_bitmap(d).is_some_and(|m| bitmap_has(m, rtype::SOA))),
                    )
                })
            };
            if exact && owner.is_some_and(soa_bit) {
                return Some(chain);
            }
        }
        None
    }

    /// The owner whose hash is the greatest at or before `h` (wrapping to
    /// the last), and whether it is an exact match.
    pub fn cover(&self, h: &[u8]) -> (Option<&Name>, bool) {
        let i = self.links.partition_point(|(x, _)| x.as_slice() <= h);
        match i.checked_sub(1) {
            Some(i) => (Some(&self.links[i].1), self.links[i].0 == h),
            None => (self.links.last().map(|(_, n)| n), false),
        }
    }

    /// Hashes `name` with the zone's parameters.
    pub fn hash(&self, name: &[u8]) -> [u8; 20] {
        hash(name, &self.salt, self.iterations)
    }

    /// The NSEC3 owner matching `name`.
    pub fn exact(&self, name: &[u8]) -> Option<&Name> {
        match self.cover(&self.hash(name)) {
            (Some(n), true) => Some(n),
            _ => None,
        }
    }

    /// The NSEC3 owner covering (or matching) `name`.
    pub fn covering(&self, name: &[u8]) -> Option<&Name> {
        self.cover(&self.hash(name)).0
    }
}

/// The type bitmap of NSEC3 data.
fn nsec3_bitmap(d: &[u8]) -> Option<&[u8]> {
    let salt = *d.get(4)? as usize;
    let hl = *d.get(5 + salt)? as usize;
    d.get(6 + salt + hl..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::text::base32hex_encode;

    #[test]
    fn rfc5155_appendix_a_hashes() {
        // Salt aabbccdd, 12 iterations.
        let salt = [0xaa, 0xbb, 0xcc, 0xdd];
        let cases = [
            ("example.", "0p9mhaveqvm6t7vbl5lop2u3t2rp3tom"),
            ("a.example.", "35mthgpgcu1qg68fab165klnsnk3dpvl"),
            ("ai.example.", "gjeqe526plbf1g8mklp59enfd789njgi"),
            ("ns1.example.", "2t7b4g4vsa5smi47k61mv5bv1a22bojr"),
            ("*.w.example.", "r53bq7cc2uvmubfu5ocmm6pers9tk9en"),
            ("xx.example.", "t644ebqk9bibcna874givr6joj62mlhv"),
        ];
        for (name, want) in cases {
            let n = Name::parse(name, None).unwrap();
            assert_eq!(base32hex_encode(&hash(n.wire(), &salt, 12)), want, "{name}");
        }
    }

    #[test]
    fn cover_wraps_around() {
        let n = |s: &str| Name::parse(s, None).unwrap();
        let chain = Chain {
            salt: Vec::new(),
            iterations: 0,
            links: alloc::vec![(alloc::vec![2], n("b.example.")), (alloc::vec![5], n("e.example."))],
        };
        assert_eq!(chain.cover(&[1]), (Some(&n("e.example.")), false), "before the first: the last covers");
        assert_eq!(chain.cover(&[2]), (Some(&n("b.example.")), true));
        assert_eq!(chain.cover(&[3]), (Some(&n("b.example.")), false));
        assert_eq!(chain.cover(&[9]), (Some(&n("e.example.")), false));
    }
}
