//! Zone transfers out (AXFR, RFC 5936) and who may have them: addresses
//! (`--axfr-allow 192.0.2.0/24`) or TSIG keys (`--axfr-allow key=NAME`,
//! RFC 8945). A signed request must verify, whatever its address: a bad one
//! gets NOTAUTH with the TSIG error, never a transfer. Answers to a signed
//! request are signed, every message of the stream.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::str::FromStr;

use morgana_net::{Error, TcpStream};

use crate::journal::Step;
use crate::name::Name;
use crate::rdata::Rdata;
use crate::served::Served;
use crate::server::{send, Network};
use crate::tsig::{self, Key, Tsig};
use crate::wire::{self, flags, rcode, rtype, Section, Writer, CLASS_IN};

/// One `--axfr-allow` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    /// Clients in this network, signed or not.
    Network(Network),
    /// Requests signed with this key, from anywhere.
    Key(Name),
}

impl FromStr for Allow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix("key=") {
            Some(k) => {
                Name::parse(k, Some(&Name::root())).map(Allow::Key).map_err(|e| alloc::format!("key '{k}': {e}"))
            }
            None => s.parse().map(Allow::Network),
        }
    }
}

pub use crate::clock::WallClock;

/// Who may transfer zones, and the keys they may sign with.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The rules; none: no transfers.
    pub allow: Vec<Allow>,
    /// Known TSIG keys.
    pub keys: Vec<Key>,
    /// Time for checking signatures.
    pub clock: WallClock,
}

impl Access {
    /// Checks that every `key=NAME` rule names a known key.
    pub fn check(&self) -> Result<(), String> {
        for rule in &self.allow {
            if let Allow::Key(name) = rule {
                if !self.keys.iter().any(|k| k.name == *name) {
                    return Err(alloc::format!("--axfr-allow key={name}: no --tsig-key of that name"));
                }
            }
        }
        Ok(())
    }
}

/// How an answer is signed: the key and the MAC of what came before.
struct Signer<'a> {
    key: &'a Key,
    prior: Vec<u8>,
    first: bool,
    now: u64,
}

impl Signer<'_> {
    fn seal(&mut self, mut msg: Vec<u8>) -> Vec<u8> {
        self.prior = if self.first {
            tsig::sign(&mut msg, self.key, Some(&self.prior), self.now, 0, &[])
        } else {
            tsig::sign_continuation(&mut msg, self.key, &self.prior, self.now)
        };
        self.first = false;
        msg
    }
}

/// An error answer to `q` (no records).
fn refusal(q: &wire::Query, code: u16) -> Vec<u8> {
    let mut w = Writer::new(q.id, flags::QR, Some((q.qname_raw.as_slice(), q.qtype, q.qclass)));
    w.set_rcode(code);
    if q.edns.is_some() {
        w.opt(crate::answer::MAX_UDP as u16, 0, false);
    }
    w.finish()
}

/// NOTAUTH with the TSIG error `refused`: signed for BADTIME and BADTRUNC
/// (RFC 8945 §5.2.3, §5.2.2.1), unsigned with an empty MAC otherwise.
fn tsig_refusal(q: &wire::Query, t: &Tsig, refused: tsig::Refused, access: &Access, now: u64) -> Vec<u8> {
    tsig_error(refusal(q, rcode::NOTAUTH), t, refused, access, now)
}

/// Adds the TSIG record of an answer refused for `refused` (§5.2) to
/// `answer`, which should be a NOTAUTH answer to the request signed with
/// `t`.
pub(crate) fn tsig_error(mut answer: Vec<u8>, t: &Tsig, refused: tsig::Refused, access: &Access, now: u64) -> Vec<u8> {
    match refused.key {
        Some(i) if refused.error != tsig::error::BADSIG => {
            let other = if refused.error == tsig::error::BADTIME { &tsig::time_other(now)[..] } else { &[] };
            tsig::sign(&mut answer, &access.keys[i], Some(&t.mac), now, refused.error, other);
        }
        _ => tsig::append_unsigned(&mut answer, t, now, refused.error),
    }
    answer
}

/// Signs `response` to `query` if the query was signed (RFC 8945 §5.3):
/// with the query's key when it verifies, or replaced by NOTAUTH with the
/// TSIG error when it does not. Over UDP (`udp_limit` set) a signed answer
/// too large becomes a signed empty answer with TC, so the client retries
/// over TCP. Costs nothing without keys.
pub fn sign_response(query: &[u8], response: Vec<u8>, access: &Access, udp_limit: Option<usize>) -> Vec<u8> {
    if access.keys.is_empty() {
        return response;
    }
    let (Ok(Some(t)), Ok(q)) = (tsig::find(query), wire::parse_query(query)) else { return response };
    let now = access.clock.now();
    let checked = match now {
        Some(now) => tsig::verify(query, &t, &access.keys, None, now),
        None => Err(tsig::Refused { error: tsig::error::BADTIME, key: None }),
    };
    let now_or_0 = now.unwrap_or(0);
    let key = match checked {
        Ok(i) => &access.keys[i],
        Err(refused) => {
            log::info!("{} {}: key {}: {refused}", q.qname, crate::rdata::type_name(q.qtype), t.key);
            return tsig_refusal(&q, &t, refused, access, now_or_0);
        }
    };
    let mut signed = response.clone();
    tsig::sign(&mut signed, key, Some(&t.mac), now_or_0, 0, &[]);
    if udp_limit.is_some_and(|limit| signed.len() > limit) {
        let mut w =
            Writer::new(q.id, flags::QR | flags::AA | flags::TC, Some((q.qname_raw.as_slice(), q.qtype, q.qclass)));
        w.set_rcode(u16::from(response.get(3).map_or(0, |b| b & 0xf)));
        if q.edns.is_some() {
            w.opt(crate::answer::MAX_UDP as u16, 0, false);
        }
        signed = w.finish();
        tsig::sign(&mut signed, key, Some(&t.mac), now_or_0, 0, &[]);
    }
    signed
}

/// Answers the AXFR or IXFR request `query` (parsed as `q`) from `peer`
/// with what `served` holds: IXFR from the journal when it reaches back to
/// the client's version, else the whole zone.
pub(crate) async fn serve(
    stream: &mut TcpStream,
    peer: SocketAddr,
    query: &[u8],
    q: &wire::Query,
    served: &Served,
    access: &Access,
) -> Result<(), Error> {
    let signed: Option<Tsig> = match tsig::find(query) {
        Ok(t) => t,
        Err(why) => {
            log::info!("{peer}: AXFR {}: refused, bad TSIG record: {why}", q.qname);
            crate::metrics::axfr(false);
            return send(stream, &refusal(q, rcode::FORMERR)).await;
        }
    };
    let mut signer = None;
    if let Some(t) = &signed {
        let now = access.clock.now();
        let checked = match now {
            Some(now) => tsig::verify(query, t, &access.keys, None, now),
            None => Err(tsig::Refused { error: tsig::error::BADTIME, key: None }),
        };
        match checked {
            Ok(i) => {
                signer = Some(Signer { key: &access.keys[i], prior: t.mac.clone(), first: true, now: now.unwrap_or(0) })
            }
            Err(refused) => {
                log::info!("{peer}: AXFR {}: refused, key {}: {refused}", q.qname, t.key);
                crate::metrics::axfr(false);
                return send(stream, &tsig_refusal(q, t, refused, access, now.unwrap_or(0))).await;
            }
        }
    }
    let allowed = access.allow.iter().any(|rule| match rule {
        Allow::Network(n) => n.contains(peer.ip()),
        Allow::Key(name) => signer.as_ref().is_some_and(|s| s.key.name == *name),
    });
    let how = signer.as_ref().map_or(String::new(), |s| alloc::format!(" (key {})", s.key.name));
    let what = crate::rdata::type_name(q.qtype);
    log::info!("{peer}: {what} {}{how} {}", q.qname, if allowed { "allowed" } else { "refused" });
    crate::metrics::axfr(allowed);
    let catalog = served.catalog();
    let zone = catalog.find_zone(&q.qname).filter(|z| z.origin == q.qname);
    let mut out = Out {
        stream,
        signer,
        w: Writer::new(q.id, flags::QR | flags::AA, Some((&q.qname_raw, q.qtype, q.qclass))),
        id: q.id,
    };
    let Some(zone) = zone else { return out.alone(refusal(q, rcode::NOTAUTH)).await };
    if !allowed {
        return out.alone(refusal(q, rcode::REFUSED)).await;
    }
    let origin = zone.origin.wire();
    let (soa_ttl, soa) = (zone.soa.0, Rdata::Soa(zone.soa.1.clone().into()));
    if let (rtype::IXFR, Some(serial)) = (q.qtype, q.ixfr_serial) {
        if !crate::secondary::serial_newer(zone.soa.1.serial, serial) {
            // Up to date (or ahead): the SOA alone (RFC 1995 §4).
            out.record(origin, rtype::SOA, soa_ttl, &soa).await?;
            return out.finish().await;
        }
        if let Some(steps) = served.steps_since(&zone.origin, serial) {
            log::info!("{peer}: IXFR {} from serial {serial}: {} steps", q.qname, steps.len());
            out.record(origin, rtype::SOA, soa_ttl, &soa).await?;
            for Step { from, to, deleted, added } in &steps {
                out.record(origin, rtype::SOA, from.0, &Rdata::Soa(from.1.clone().into())).await?;
                for (owner, t, ttl, d) in deleted {
                    out.record(owner.wire(), *t, *ttl, d).await?;
                }
                out.record(origin, rtype::SOA, to.0, &Rdata::Soa(to.1.clone().into())).await?;
                for (owner, t, ttl, d) in added {
                    out.record(owner.wire(), *t, *ttl, d).await?;
                }
            }
            out.record(origin, rtype::SOA, soa_ttl, &soa).await?;
            return out.finish().await;
        }
    }
    // The whole zone, between two copies of its SOA.
    for (owner, set) in zone.records() {
        for rdata in &set.rdatas {
            out.record(owner.wire(), set.rtype, set.ttl, rdata).await?;
        }
    }
    out.record(origin, rtype::SOA, soa_ttl, &soa).await?;
    out.finish().await
}

/// A transfer answer being written: messages of up to [`MESSAGE`] bytes,
/// each signed when the request was.
struct Out<'s, 'k> {
    stream: &'s mut TcpStream,
    signer: Option<Signer<'k>>,
    w: Writer,
    id: u16,
}

impl Out<'_, '_> {
    fn seal(&mut self, msg: Vec<u8>) -> Vec<u8> {
        match self.signer.as_mut() {
            Some(s) => s.seal(msg),
            None => msg,
        }
    }

    /// Sends `msg` as the whole answer.
    async fn alone(mut self, msg: Vec<u8>) -> Result<(), Error> {
        let msg = self.seal(msg);
        send(self.stream, &msg).await
    }

    /// Adds a record, sending the message first when it is full.
    async fn record(&mut self, owner: &[u8], rtype: u16, ttl: u32, rdata: &Rdata) -> Result<(), Error> {
        let mark = self.w.mark();
        let at = self.w.begin_record(Section::Answer, owner, rtype, CLASS_IN, ttl);
        rdata.write(&mut self.w);
        self.w.end_record(at);
        let had_records = mark.2[Section::Answer as usize] > 0;
        if self.w.len() > MESSAGE && had_records {
            // Full: send what came before and start the next message.
            self.w.truncate(mark);
            let full = core::mem::replace(&mut self.w, Writer::new(self.id, flags::QR | flags::AA, None));
            let msg = self.seal(full.finish());
            send(self.stream, &msg).await?;
            let at = self.w.begin_record(Section::Answer, owner, rtype, CLASS_IN, ttl);
            rdata.write(&mut self.w);
            self.w.end_record(at);
        }
        Ok(())
    }

    /// Sends the last message.
    async fn finish(mut self) -> Result<(), Error> {
        let w = core::mem::replace(&mut self.w, Writer::new(0, 0, None));
        let msg = self.seal(w.finish());
        send(self.stream, &msg).await
    }
}

/// Largest AXFR message we build (well under the 64 KiB limit).
const MESSAGE: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        assert_eq!("key=transfer".parse::<Allow>(), Ok(Allow::Key(Name::parse("transfer.", None).unwrap())));
        assert!(matches!("192.0.2.0/24".parse::<Allow>(), Ok(Allow::Network(_))));
        assert!("key=".parse::<Allow>().is_err());
        assert!("banana".parse::<Allow>().is_err());
        let access = Access { allow: alloc::vec!["key=nope".parse().unwrap()], ..Access::default() };
        assert!(access.check().unwrap_err().contains("no --tsig-key"));
    }
}
