//! Authoritative DNS for Morgana.
//!
//! * [`name`]: domain names (wire and presentation form, compression-safe
//!   parsing);
//! * [`wire`]: message headers, parsing of queries, a response writer with
//!   name compression, EDNS(0);
//! * [`rdata`]: record data of the supported types, and RFC 3597 generic
//!   data for any other type;
//! * [`zone`]: RFC 1035 master files and the checks a zone must pass;
//! * [`answer`]: the RFC 1034 §4.3.2 algorithm over a set of zones;
//! * [`dnssec`]: serving zones signed offline (by `dnssec-signzone` or
//!   `ldns-signzone`): RRSIGs with every RRset and NSEC or NSEC3 (also
//!   opt-out) denial of existence when the query has the DO bit;
//! * [`rrl`]: response rate limiting for UDP, in fixed memory;
//! * [`cookie`]: DNS cookies (RFC 7873) with RFC 9018 server cookies;
//!   queries with a valid one are not rate limited;
//! * [`tsig`]: TSIG transaction signatures (RFC 8945), HMAC-SHA256/512;
//! * [`server`]: DNS over UDP and TCP (RFC 7766) on the framework's sockets;
//! * [`xfr`]: AXFR (RFC 5936) and IXFR (RFC 1995) out, to addresses or
//!   TSIG keys allowed;
//! * [`message`]: whole responses read back, names in data decompressed;
//! * [`secondary`]: following a primary: AXFR and IXFR (RFC 1995) in,
//!   SOA timers, NOTIFY (RFC 1996) in and out;
//! * [`served`]: the catalog being served, replaced whole on a change;
//! * [`journal`]: recent versions' differences, for IXFR out.
//!
//! Features (all on by default): `dnssec` (signed zones served with their
//! proofs; without it signed zones are refused and the DO bit ignored),
//! `transfers` (`xfr`, `secondary`, `tsig`,
//! `journal`, `message`; without it transfer requests are refused) and
//! `cookies` (server cookies; without it COOKIE options are ignored).
//!
//! Not implemented: online DNSSEC signing (zones must be signed before they
//! are loaded; signatures are served as they are, never made or refreshed
//! here), IXFR over UDP, NOTIFY for zones loaded from files (only
//! secondary zones change at run time), dynamic updates, NSID and other
//! EDNS options but COOKIE (ignored in queries), classes other than IN.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod answer;
pub mod clock;
pub mod cookie;
#[cfg(feature = "dnssec")]
pub mod dnssec;
#[cfg(not(feature = "dnssec"))]
#[path = "dnssec_off.rs"]
pub mod dnssec;
#[cfg(feature = "transfers")]
pub mod journal;
#[cfg(feature = "transfers")]
pub mod message;
mod metrics;
pub mod name;
pub mod rdata;
mod response;
pub mod rrl;
#[cfg(feature = "transfers")]
pub mod secondary;
pub mod served;
pub mod server;
#[cfg(feature = "transfers")]
pub mod tsig;
pub mod wire;
#[cfg(feature = "transfers")]
pub mod xfr;
pub mod zone;

pub use answer::{Catalog, Transport};
pub use name::Name;
pub use zone::{Zone, ZoneError, ZoneFile};
