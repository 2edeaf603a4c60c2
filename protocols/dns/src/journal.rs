//! The differences between a zone's recent versions, kept so IXFR
//! (RFC 1995) can send a secondary only what changed. Bounded: at most
//! [`MAX_STEPS`] versions and [`MAX_RECORDS`] changed records per zone;
//! the oldest steps go first, and a secondary further behind gets the
//! whole zone.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::name::Name;
use crate::rdata::{Rdata, Soa};
use crate::wire::rtype;
use crate::zone::{Node, Zone};

/// Versions kept per zone.
pub const MAX_STEPS: usize = 32;
/// Changed records kept per zone, all steps together.
pub const MAX_RECORDS: usize = 100_000;

/// One record: owner, type, TTL, data.
pub type Record = (Name, u16, u32, Rdata);

/// One version step.
#[derive(Debug, Clone)]
pub struct Step {
    /// The SOA (and its TTL) before.
    pub from: (u32, Soa),
    /// The SOA after.
    pub to: (u32, Soa),
    /// Records deleted (SOA aside).
    pub deleted: Vec<Record>,
    /// Records added (SOA aside).
    pub added: Vec<Record>,
}

/// The steps that led to a zone's current version, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    steps: VecDeque<Step>,
    records: usize,
}

/// The records of `node` at `name` that `other` lacks (a changed TTL
/// counts as a change).
fn missing_from(name: &Name, node: &Node, other: Option<&Node>, out: &mut Vec<Record>) {
    for set in node.rrsets.iter().filter(|s| s.rtype != rtype::SOA) {
        for d in &set.rdatas {
            let theirs = other.and_then(|n| n.rrsets.iter().find(|t| t.holds(set.rtype, d)));
            let kept = theirs.is_some_and(|t| t.ttl == set.ttl && t.rdatas.contains(d));
            if !kept {
                out.push((name.clone(), set.rtype, set.ttl, d.clone()));
            }
        }
    }
}

impl Journal {
    /// Records the step from `old` to `new` (same origin).
    pub fn record(&mut self, old: &Zone, new: &Zone) {
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        for (name, node) in &old.nodes {
            missing_from(name, node, new.nodes.get(name), &mut deleted);
        }
        for (name, node) in &new.nodes {
            missing_from(name, node, old.nodes.get(name), &mut added);
        }
        self.push(Step { from: old.soa.clone(), to: new.soa.clone(), deleted, added });
    }

    /// Adds `step`, the oldest steps making way when the bounds are hit.
    pub fn push(&mut self, step: Step) {
        self.records += step.deleted.len() + step.added.len();
        self.steps.push_back(step);
        while self.steps.len() > MAX_STEPS || (self.records > MAX_RECORDS && !self.steps.is_empty()) {
            if let Some(s) = self.steps.pop_front() {
                self.records -= s.deleted.len() + s.added.len();
            }
        }
    }

    /// The steps from version `serial` to the newest, if all are kept.
    pub fn since(&self, serial: u32) -> Option<impl Iterator<Item = &Step>> {
        let start = self.steps.iter().position(|s| s.from.1.serial == serial)?;
        Some(self.steps.iter().skip(start))
    }

    /// Versions kept.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no steps are kept.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(serial: u32, body: &str) -> Zone {
        let origin = Name::parse("example.", None).unwrap();
        let text = alloc::format!(
            "@ 300 IN SOA ns1 host {serial} 60 10 600 30\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n{body}"
        );
        Zone::parse(&text, &origin, "t", None).unwrap()
    }

    #[test]
    fn steps_hold_the_differences() {
        let (z1, z2, z3) = (
            zone(1, "www 300 IN A 192.0.2.10\n"),
            zone(2, "www 300 IN A 192.0.2.11\n"),
            zone(3, "www 60 IN A 192.0.2.11\n"),
        );
        let mut j = Journal::default();
        j.record(&z1, &z2);
        j.record(&z2, &z3);
        let steps: Vec<&Step> = j.since(1).unwrap().collect();
        assert_eq!(steps.len(), 2);
        assert_eq!((steps[0].deleted.len(), steps[0].added.len()), (1, 1));
        assert_eq!(steps[1].added[0].2, 60, "a TTL change is a change");
        assert_eq!(j.since(2).unwrap().count(), 1);
        assert!(j.since(7).is_none());
    }

    #[test]
    fn bounded() {
        let mut j = Journal::default();
        let mut old = zone(0, "");
        for serial in 1..=(MAX_STEPS as u32 + 5) {
            let new = zone(serial, &alloc::format!("h{serial} 300 IN A 192.0.2.2\n"));
            j.record(&old, &new);
            old = new;
        }
        assert_eq!(j.len(), MAX_STEPS);
        assert!(j.since(1).is_none(), "the oldest steps are gone");
        assert!(j.since(6).is_some());
    }
}
