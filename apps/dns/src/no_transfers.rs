//! The DNS app built without the `transfers` feature: its flags are
//! refused, naming the feature, and nothing is transferred or announced.

use alloc::format;
use alloc::rc::Rc;
use alloc::vec::Vec;

use morgana::{ArgError, Args, Env};
use morgana_dns::clock::WallClock;
use morgana_dns::rdata::Soa;
use morgana_dns::served::Served;
use morgana_dns::{Catalog, Name};

/// The flags this build does not have.
const FLAGS: [&str; 4] = ["axfr-allow", "tsig-key", "secondary", "notify"];

/// No transfers.
#[derive(Clone)]
pub struct Transfers;

impl Transfers {
    /// Refuses any transfer flag.
    pub fn from_args(args: &mut Args) -> Result<Transfers, ArgError> {
        match FLAGS.iter().find(|f| args.has(f)) {
            Some(f) => Err(ArgError::Conflict(format!(
                "--{f}: this image was built without the `transfers` feature (zone transfers, secondary zones, NOTIFY, TSIG)"
            ))),
            None => Ok(Transfers),
        }
    }

    pub fn connects(&self) -> bool {
        false
    }

    pub fn secondary_origins(&self) -> Vec<Name> {
        Vec::new()
    }

    pub fn served(&self, catalog: Catalog) -> Served {
        Served::new(catalog)
    }

    pub fn start(&self, _: &Env, _: &Rc<Served>, _: WallClock) -> Announcer {
        Announcer
    }
}

/// Announces nothing: there are no `--notify` servers.
pub struct Announcer;

impl Announcer {
    pub fn announce(&self, _: &Env, _: &Name, _: &Soa) {}
}
