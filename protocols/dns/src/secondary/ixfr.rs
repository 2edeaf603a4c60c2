//! Reading a zone transfer's records (RFC 1995 §4 for IXFR, RFC 5936 for
//! AXFR) one at a time, as they arrive, into a new version of the zone.
//!
//! An IXFR answer comes in one of three shapes, told apart by its first
//! records: a single SOA (nothing to send, or "ask by AXFR"), the whole
//! zone between two copies of the new SOA (as AXFR), or difference
//! sequences: the new SOA, then for each version step the old SOA and the
//! records deleted, the next SOA and the records added, and finally the
//! new SOA again.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::journal::Step;
use crate::message::Record;
use crate::name::Name;
use crate::rdata::{Rdata, Soa};
use crate::wire::{rtype, CLASS_IN};
use crate::zone::{Node, RRset, Zone};

/// What a transfer turned out to be.
#[derive(Debug)]
pub enum Outcome {
    /// A single SOA: the primary's current SOA.
    OnlySoa(Soa),
    /// A whole zone (AXFR, or an IXFR answered with the whole zone).
    Whole(Zone),
    /// The zone with the differences applied, and the differences (for
    /// our own journal).
    Incremental(Zone, Vec<Step>),
}

enum State {
    /// Nothing read yet.
    Start,
    /// The first SOA read, the shape not yet known.
    FirstSoa,
    /// Whole-zone records.
    Whole(Vec<(Name, u16, u32, Rdata)>),
    /// Deleting records (after an old SOA).
    Deleting,
    /// Adding records (after the step's new SOA).
    Adding,
    /// The final SOA of a whole zone was read.
    WholeDone(Vec<(Name, u16, u32, Rdata)>),
    /// The final SOA of the differences was read.
    Done,
}

/// Reads one transfer of `origin`.
pub struct Reader {
    origin: Name,
    source: String,
    /// The new SOA (the first record).
    first: Option<(u32, Soa)>,
    state: State,
    /// For IXFR: the zone being changed, and its serial now.
    working: Option<(BTreeMap<Name, Node>, (u32, Soa))>,
    /// The differences read, step by step.
    steps: Vec<Step>,
    records: usize,
}

fn soa_of(r: &Record) -> Option<&Soa> {
    match &r.rdata {
        Rdata::Soa(s) if r.rtype == rtype::SOA => Some(s),
        _ => None,
    }
}

impl Reader {
    /// A reader for an AXFR of `origin`, or for an IXFR from `current`
    /// (whose nodes it copies). `source` names the primary in errors.
    pub fn new(origin: &Name, current: Option<&Zone>, source: String) -> Reader {
        Reader {
            origin: origin.clone(),
            source,
            first: None,
            state: State::Start,
            working: current.map(|z| (z.nodes.clone(), z.soa.clone())),
            steps: Vec::new(),
            records: 0,
        }
    }

    /// Whether the final SOA has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done | State::WholeDone(_))
    }

    /// Whether only the first SOA has been read: at the end of the first
    /// message, this is a single-SOA answer.
    pub fn is_single_soa(&self) -> bool {
        matches!(self.state, State::FirstSoa)
    }

    /// Records read so far.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Takes the next record of the answer section.
    pub fn push(&mut self, r: Record) -> Result<(), String> {
        if r.class != CLASS_IN {
            return Err(format!("a record of class {} in the transfer", r.class));
        }
        if !r.owner.is_within(&self.origin) {
            return Err(format!("'{}' is outside the zone", r.owner));
        }
        self.records += 1;
        let soa = soa_of(&r).cloned();
        if soa.is_some() && r.owner != self.origin {
            return Err(format!("a SOA record at '{}', not at the apex", r.owner));
        }
        let new_serial = self.first.as_ref().map(|f| f.1.serial);
        self.state = match core::mem::replace(&mut self.state, State::Done) {
            State::Start => {
                let soa = soa.ok_or("the transfer does not start with the zone's SOA")?;
                self.first = Some((r.ttl, soa));
                State::FirstSoa
            }
            State::FirstSoa => match soa {
                // An old SOA with our serial: differences follow.
                Some(s) if self.working.as_ref().is_some_and(|w| w.1 .1.serial == s.serial) => {
                    self.begin_step(r.ttl, s)?;
                    State::Deleting
                }
                Some(_) => return Err("a SOA record where the zone's data should be".into()),
                None => State::Whole(alloc::vec![(r.owner, r.rtype, r.ttl, r.rdata)]),
            },
            State::Whole(mut records) => {
                if soa.is_some() {
                    let first = self.first.clone().expect("read first");
                    records.push((self.origin.clone(), rtype::SOA, first.0, Rdata::Soa(first.1.into())));
                    State::WholeDone(records)
                } else {
                    records.push((r.owner, r.rtype, r.ttl, r.rdata));
                    State::Whole(records)
                }
            }
            State::Deleting => match soa {
                Some(s) => {
                    if let Some(step) = self.steps.last_mut() {
                        step.to = (r.ttl, s.clone());
                    }
                    let w = self.working.as_mut().expect("diffs need a zone");
                    w.1 = (r.ttl, s);
                    State::Adding
                }
                None => {
                    self.delete(&r)?;
                    if let Some(step) = self.steps.last_mut() {
                        step.deleted.push((r.owner, r.rtype, r.ttl, r.rdata));
                    }
                    State::Deleting
                }
            },
            State::Adding => match soa {
                Some(s) => {
                    let w = self.working.as_ref().expect("diffs need a zone");
                    if Some(s.serial) == new_serial && w.1 .1.serial == s.serial {
                        State::Done
                    } else {
                        self.begin_step(r.ttl, s)?;
                        State::Deleting
                    }
                }
                None => {
                    if let Some(step) = self.steps.last_mut() {
                        step.added.push((r.owner.clone(), r.rtype, r.ttl, r.rdata.clone()));
                    }
                    self.add(r);
                    State::Adding
                }
            },
            State::Done | State::WholeDone(_) => return Err("records after the transfer's final SOA".into()),
        };
        Ok(())
    }

    /// A step deleting from version `old`: it must be the version we have.
    fn begin_step(&mut self, ttl: u32, old: Soa) -> Result<(), String> {
        let w = self.working.as_ref().expect("diffs need a zone");
        if w.1 .1.serial != old.serial {
            return Err(format!("a difference from serial {}, but the zone is at {}", old.serial, w.1 .1.serial));
        }
        let from = (ttl, old);
        self.steps.push(Step { to: from.clone(), from, deleted: Vec::new(), added: Vec::new() });
        Ok(())
    }

    fn delete(&mut self, r: &Record) -> Result<(), String> {
        let nodes = &mut self.working.as_mut().expect("diffs need a zone").0;
        let gone = nodes.get_mut(&r.owner).and_then(|node| {
            let set = node.rrsets.iter_mut().find(|s| s.holds(r.rtype, &r.rdata))?;
            let at = set.rdatas.iter().position(|d| *d == r.rdata)?;
            set.rdatas.remove(at);
            node.rrsets.retain(|s| !s.rdatas.is_empty());
            Some(())
        });
        gone.ok_or_else(|| format!("the difference deletes a record the zone does not have at '{}'", r.owner))
    }

    fn add(&mut self, r: Record) {
        let nodes = &mut self.working.as_mut().expect("diffs need a zone").0;
        let node = nodes.entry(r.owner).or_default();
        match node.rrsets.iter_mut().find(|s| s.holds(r.rtype, &r.rdata)) {
            Some(set) => {
                set.ttl = r.ttl;
                if !set.rdatas.contains(&r.rdata) {
                    set.rdatas.push(r.rdata);
                }
            }
            None => node.rrsets.push(RRset { rtype: r.rtype, ttl: r.ttl, rdatas: smallvec::smallvec![r.rdata] }),
        }
    }

    /// The new version, once [`Reader::is_done`] (or the single SOA).
    pub fn finish(self) -> Result<Outcome, String> {
        let source = self.source;
        let zone_error = |e: crate::zone::ZoneError| format!("the zone from {source} fails its checks: {}", e.message);
        match self.state {
            State::FirstSoa => Ok(Outcome::OnlySoa(self.first.expect("read first").1)),
            State::WholeDone(records) => {
                Zone::from_records(&self.origin, records, &source).map(Outcome::Whole).map_err(zone_error)
            }
            State::Done => {
                let (nodes, soa) = self.working.expect("diffs need a zone");
                let steps = self.steps;
                Zone::from_nodes(&self.origin, nodes, soa, &source)
                    .map(|z| Outcome::Incremental(z, steps))
                    .map_err(zone_error)
            }
            _ => Err(format!("the transfer from {source} ended before its final SOA")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn name(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    fn soa(serial: u32) -> Record {
        let soa = Soa {
            mname: name("ns1.example."),
            rname: name("hostmaster.example."),
            serial,
            refresh: 60,
            retry: 10,
            expire: 600,
            minimum: 30,
        };
        Record { owner: name("example."), rtype: rtype::SOA, class: CLASS_IN, ttl: 300, rdata: Rdata::Soa(soa.into()) }
    }

    fn a(owner: &str, last: u8) -> Record {
        Record {
            owner: name(owner),
            rtype: rtype::A,
            class: CLASS_IN,
            ttl: 300,
            rdata: Rdata::A([192, 0, 2, last].into()),
        }
    }

    fn ns() -> Record {
        Record {
            owner: name("example."),
            rtype: rtype::NS,
            class: CLASS_IN,
            ttl: 300,
            rdata: Rdata::Name(name("ns1.example.")),
        }
    }

    fn read(current: Option<&Zone>, records: Vec<Record>) -> Result<Outcome, String> {
        let mut r = Reader::new(&name("example."), current, "test".to_string());
        for rec in records {
            r.push(rec)?;
        }
        r.finish()
    }

    fn whole(serial: u32, www: u8) -> Zone {
        match read(None, alloc::vec![soa(serial), ns(), a("ns1.example.", 1), a("www.example.", www), soa(serial)]) {
            Ok(Outcome::Whole(z)) => z,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn whole_zone() {
        let z = whole(1, 10);
        assert_eq!((z.soa.1.serial, z.records), (1, 4));
    }

    #[test]
    fn differences_apply_in_order() {
        let z1 = whole(1, 10);
        // 1 -> 2: www changes; 2 -> 3: mail added.
        let diffs = alloc::vec![
            soa(3),
            soa(1),
            a("www.example.", 10),
            soa(2),
            a("www.example.", 11),
            soa(2),
            soa(3),
            a("mail.example.", 25),
            soa(3),
        ];
        let Ok(Outcome::Incremental(z3, steps)) = read(Some(&z1), diffs) else { panic!("not incremental") };
        assert_eq!(steps.len(), 2);
        assert_eq!((steps[0].deleted.len(), steps[0].added.len(), steps[1].added.len()), (1, 1, 1));
        assert_eq!((steps[0].from.1.serial, steps[0].to.1.serial, steps[1].to.1.serial), (1, 2, 3));
        assert_eq!(z3.soa.1.serial, 3);
        let www = z3.nodes.get(&name("www.example.")).and_then(|n| n.get(rtype::A)).unwrap();
        assert_eq!(www.rdatas[..], [Rdata::A([192, 0, 2, 11].into())]);
        assert!(z3.nodes.contains_key(&name("mail.example.")));
        assert_eq!(z3.records, 5);
    }

    #[test]
    fn bad_transfers_are_refused() {
        let z1 = whole(1, 10);
        // A difference from a version we do not have.
        let from_7 = alloc::vec![soa(3), soa(7)];
        assert!(matches!(read(Some(&z1), from_7.clone()), Err(e) if e.contains("where the zone's data should be")));
        // Deleting a record that is not there.
        let r = read(Some(&z1), alloc::vec![soa(2), soa(1), a("nope.example.", 1), soa(2), soa(2)]);
        assert!(r.unwrap_err().contains("does not have"));
        // Not starting with the SOA; records outside the zone; stopping short.
        assert!(read(None, alloc::vec![ns()]).is_err());
        assert!(read(None, alloc::vec![soa(1), a("www.elsewhere.", 1)]).unwrap_err().contains("outside"));
        assert!(read(None, alloc::vec![soa(1), ns(), a("ns1.example.", 1)]).unwrap_err().contains("ended before"));
        // A whole zone that fails the checks (no NS at the apex).
        assert!(read(None, alloc::vec![soa(1), a("www.example.", 1), soa(1)])
            .unwrap_err()
            .contains("fails its checks"));
        // Records after the end.
        let mut r = Reader::new(&name("example."), None, "t".to_string());
        for rec in [soa(1), ns(), a("ns1.example.", 1), soa(1)] {
            r.push(rec).unwrap();
        }
        assert!(r.push(a("x.example.", 1)).is_err());
    }

    #[test]
    fn single_soa() {
        let z1 = whole(1, 10);
        let mut r = Reader::new(&name("example."), Some(&z1), "t".to_string());
        r.push(soa(1)).unwrap();
        assert!(r.is_single_soa() && !r.is_done());
        assert!(matches!(r.finish(), Ok(Outcome::OnlySoa(s)) if s.serial == 1));
    }
}
