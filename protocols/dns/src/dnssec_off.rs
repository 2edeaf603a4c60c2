//! Built without the `dnssec` feature: no zone is signed (signed zones are
//! refused when loaded, see `Zone::build`) and the DO bit of queries is
//! ignored, as by a server that does not know DNSSEC (RFC 3225 §3), so
//! none of these proofs is ever asked for.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::name::Name;
use crate::zone::Node;

/// What a zone offers for DNSSEC: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// Always false.
    pub signed: bool,
}

/// Always false: zones with NSEC3 records are refused.
pub fn is_nsec3_only(_: &Node) -> bool {
    false
}

impl Index {
    /// An unsigned zone's index.
    pub fn build(_: &Name, _: &BTreeMap<Name, Node>) -> Index {
        Index::default()
    }

    /// Always false.
    pub fn active(&self) -> bool {
        false
    }

    /// No proof.
    pub fn nxdomain(&self, _: &[u8], _: &[u8]) -> Vec<&Name> {
        Vec::new()
    }

    /// No proof.
    pub fn wildcard(&self, _: &[u8], _: &[u8]) -> Vec<&Name> {
        Vec::new()
    }

    /// No proof.
    pub fn nodata(&self, _: &[u8], _: &[u8], _: u16, _: bool) -> (Vec<&Name>, bool) {
        (Vec::new(), false)
    }

    /// No proof.
    pub fn unsigned_referral<'a>(&'a self, _: &'a Name) -> Vec<&'a Name> {
        Vec::new()
    }
}
