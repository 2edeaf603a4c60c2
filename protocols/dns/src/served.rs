//! What the server answers from right now: a [`Catalog`] that is replaced
//! whole (never edited in place) when a secondary zone is transferred or
//! expires, so a query in flight keeps the version it started with.

#[cfg(feature = "transfers")]
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::answer::Catalog;
#[cfg(feature = "transfers")]
use crate::journal::{Journal, Step};
use crate::name::Name;
#[cfg(feature = "transfers")]
use crate::secondary::Follower;
use crate::zone::Zone;

/// The catalog being served, the secondary zones that change it, and the
/// journal of their changes (for IXFR out).
pub struct Served {
    catalog: RefCell<Rc<Catalog>>,
    #[cfg(feature = "transfers")]
    followers: Vec<Rc<Follower>>,
    #[cfg(feature = "transfers")]
    journals: RefCell<BTreeMap<Name, Journal>>,
}

impl Served {
    /// Serves `catalog`.
    pub fn new(catalog: Catalog) -> Served {
        Served {
            catalog: RefCell::new(Rc::new(catalog)),
            #[cfg(feature = "transfers")]
            followers: Vec::new(),
            #[cfg(feature = "transfers")]
            journals: RefCell::default(),
        }
    }

    /// Serves `catalog`, plus the zones of `followers` (answered with
    /// SERVFAIL until their first transfer).
    #[cfg(feature = "transfers")]
    pub fn following(catalog: Catalog, followers: Vec<Rc<Follower>>) -> Served {
        let mut unavailable: Vec<Name> = catalog.unavailable().to_vec();
        unavailable.extend(followers.iter().map(|f| f.config.origin.clone()));
        let catalog = Catalog::with(catalog.zones().to_vec(), unavailable);
        Served { catalog: RefCell::new(Rc::new(catalog)), followers, journals: RefCell::default() }
    }

    /// The catalog now; a later change does not affect it.
    pub fn catalog(&self) -> Rc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// The secondary zones.
    #[cfg(feature = "transfers")]
    pub fn followers(&self) -> &[Rc<Follower>] {
        &self.followers
    }

    /// The zone with origin `origin`, if it has data.
    pub fn zone(&self, origin: &Name) -> Option<Rc<Zone>> {
        self.catalog.borrow().zones().iter().find(|z| z.origin == *origin).cloned()
    }

    /// Serves `zone` in place of the zone with its origin (if any).
    #[cfg(not(feature = "transfers"))]
    pub fn install(&self, zone: Zone) {
        let origin = zone.origin.clone();
        self.replace(&origin, Some(Rc::new(zone)));
    }

    /// Serves `zone` in place of the zone with its origin (if any), and
    /// journals the difference: `steps` when they are known (an IXFR's),
    /// else computed.
    #[cfg(feature = "transfers")]
    pub fn install(&self, zone: Zone, steps: Option<Vec<Step>>) {
        let origin = zone.origin.clone();
        if let Some(old) = self.zone(&origin) {
            let mut journals = self.journals.borrow_mut();
            let journal = journals.entry(origin.clone()).or_default();
            match steps {
                Some(steps) if steps.first().is_some_and(|s| s.from.1.serial == old.soa.1.serial) => {
                    steps.into_iter().for_each(|s| journal.push(s));
                }
                _ => journal.record(&old, &zone),
            }
        }
        self.replace(&origin, Some(Rc::new(zone)));
    }

    /// The journal's steps of `origin` from version `serial` to the one
    /// served, if it reaches back that far (a copy: the journal may change
    /// while they are sent).
    #[cfg(feature = "transfers")]
    pub fn steps_since(&self, origin: &Name, serial: u32) -> Option<Vec<Step>> {
        let journals = self.journals.borrow();
        let steps = journals.get(origin)?.since(serial)?.cloned().collect::<Vec<Step>>();
        let current = self.zone(origin)?.soa.1.serial;
        steps.last().filter(|s| s.to.1.serial == current)?;
        Some(steps)
    }

    /// Stops serving data for `origin`: SERVFAIL from now on.
    #[cfg(feature = "transfers")]
    pub fn expire(&self, origin: &Name) {
        self.journals.borrow_mut().remove(origin);
        self.replace(origin, None);
    }

    fn replace(&self, origin: &Name, zone: Option<Rc<Zone>>) {
        let old = self.catalog();
        let mut zones: Vec<Rc<Zone>> = old.zones().iter().filter(|z| z.origin != *origin).cloned().collect();
        let mut unavailable: Vec<Name> = old.unavailable().iter().filter(|o| *o != origin).cloned().collect();
        match zone {
            Some(z) => zones.push(z),
            None => unavailable.push(origin.clone()),
        }
        *self.catalog.borrow_mut() = Rc::new(Catalog::with(zones, unavailable));
    }
}
