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
    /// The zone with the differences applied.
    Incremental(Zone),
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
                    self.begin_step(&s)?;
                    State::Deleting
                }
                Some(_) => return Err("a SOA record where the zone's data should be".into()),
                None => State::Whole(alloc::vec![(r.owner, r.rtype, r.ttl, r.rdata)]),
            },
            State::Whole(mut records) => {
                if soa.is_some() {
                    let first = self.first.clone().expect("read first");
                    records.push((self.origin.clone(), rtype::SOA, first.0, Rdata::Soa(first.1)));
                    State::WholeDone(records)
                } else {
                    records.push((r.owner, r.rtype, r.ttl, r.rdata));
                    State::Whole(records)
                }
            }
            State::Deleting => match soa {
                Some(s) => {
                    let w = self.working.as_mut().expect("diffs need a zone");
                    w.1 = (r.ttl, s);
                    State::Adding
                }
                None => {
                    self.delete(&r)?;
                    State::Deleting
                }
            },
            State::Adding => match soa {
                Some(s) => {
                    let w = self.working.as_ref().expect("diffs need a zone");
                    if Some(s.serial) == new_serial && w.1 .1.serial == s.serial {
                        State::Done
                    } else {
                        self.begin_step(&s)?;
                        State::Deleting
                    }
                }
                None => {
                    self.add(r);
                    State::Adding
                }
            },
            State::Done | State::WholeDone(_) => return Err("records after the transfer's final SOA".into()),
        };
        Ok(())
    }

    /// A step deleting from version `old`: it must be the version we have.
    fn begin_step(&mut self, old: &Soa) -> Result<(), String> {
        let w = self.working.as_ref().expect("diffs need a zone");
        if w.1 .1.serial != old.serial {
            return Err(format!("a difference from serial {}, but the zone is at {}", old.serial, w.1 .1.serial));
        }
        Ok(())
    }

    fn delete(&mut self, r: &Record) -> Result<(), String> {
        let nodes = &mut self.working.as_mut().expect("diffs need a zone").0;
        let gone = nodes.get_mut(&r.owner).and_then(|node| {
            let set = node.rrsets.iter_mut().find(|s| s.rtype == r.rtype)?;
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
        match node.rrsets.iter_mut().find(|s| s.rtype == r.rtype) {
            Some(set) => {
                set.ttl = r.ttl;
                if !set.rdatas.contains(&r.rdata) {
                    set.rdatas.push(r.rdata);
                }
            }
            None => node.rrsets.push(RRset { rtype: r.rtype, ttl: r.ttl, rdatas: alloc::vec![r.rdata] }),
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
                let records = nodes.into_iter().flat_map(|(name, node)| {
                    node.rrsets.into_iter().filter(|s| s.rtype != rtype::SOA).flat_map(move |set| {
                        let name = name.clone();
                        set.rdatas.into_iter().map(move |d| (name.clone(), set.rtype, set.ttl, d))
                    })
                });
                let apex = (self.origin.clone(), rtype::SOA, soa.0, Rdata::Soa(soa.1));
                let records = core::iter::once(apex).chain(records);
                Zone::from_records(&self.origin, records, &source).map(Outcome::Incremental).map_err(zone_error)
            }
            _ => Err(format!("the transfer from {source} ended before its final SOA")),
        }
    }
}
