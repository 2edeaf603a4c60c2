//! The client side of a refresh: the primary's SOA over TCP, then IXFR or
//! AXFR on a connection of their own, every message checked (ID, opcode,
//! rcode, question, TSIG chain) and the size held to what the heap can
//! spare.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use morgana_net::{Stack, TcpStream};
use morgana_runtime::{memory, Handle};

use super::ixfr::{Outcome, Reader};
use super::{serial_newer, Secondary};
use crate::journal::Step;
use crate::message;
use crate::rdata::{Rdata, Soa};
use crate::tsig::{self, Key};
use crate::wire::{flags, rcode, rtype, Section, Writer, CLASS_IN};
use crate::xfr::Access;
use crate::zone::Zone;

/// The result of a successful refresh.
#[derive(Debug)]
pub enum Refreshed {
    /// The zone we have is current: the primary's SOA.
    Current(Soa),
    /// A new version, how it came ("IXFR" or "AXFR"), and the IXFR's
    /// differences.
    New(Zone, &'static str, Option<Vec<Step>>),
}

/// Connecting may take this long.
const CONNECT: Duration = Duration::from_secs(10);
/// Each read or write may take this long.
const IO: Duration = Duration::from_secs(30);
/// A whole transfer may take this long.
const TRANSFER: Duration = Duration::from_secs(600);
/// Unsigned messages allowed between signed ones (RFC 8945 §5.3.1).
const MAX_UNSIGNED: usize = 99;

/// One exchange with the primary: a connection and the signing state.
struct Exchange<'a> {
    stream: TcpStream,
    key: Option<&'a Key>,
    access: &'a Access,
    id: u16,
    /// The MAC of the last signed message (the request's, at first).
    prior: Vec<u8>,
    first: bool,
    /// Unsigned messages since the last signed one, whole.
    unsigned: Vec<u8>,
    unsigned_count: usize,
}

impl<'a> Exchange<'a> {
    async fn open(config: &Secondary, net: &Stack, access: &'a Access, rt: &Handle) -> Result<Exchange<'a>, String> {
        let key = match &config.key {
            Some(name) => Some(
                access.keys.iter().find(|k| k.name == *name).ok_or_else(|| format!("no --tsig-key named {name}"))?,
            ),
            None => None,
        };
        let mut stream = net.tcp_connect(config.primary, CONNECT).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_timeout(Some(IO));
        let id = (rt.now().as_nanos() ^ (rt.now().as_nanos() >> 16)) as u16;
        Ok(Exchange {
            stream,
            key,
            access,
            id,
            prior: Vec::new(),
            first: true,
            unsigned: Vec::new(),
            unsigned_count: 0,
        })
    }

    /// Sends a query for `qtype` at `config.origin` (with `soa` in the
    /// authority section, for IXFR).
    async fn ask(&mut self, config: &Secondary, qtype: u16, soa: Option<&(u32, Soa)>) -> Result<(), String> {
        let origin = config.origin.wire();
        let mut w = Writer::new(self.id, 0, Some((origin, qtype, CLASS_IN)));
        if let Some((ttl, soa)) = soa {
            let at = w.begin_record(Section::Authority, origin, rtype::SOA, CLASS_IN, *ttl);
            Rdata::Soa(soa.clone().into()).write(&mut w);
            w.end_record(at);
        }
        let mut msg = w.finish();
        if let Some(key) = self.key {
            let now = self.access.clock.now().ok_or("no wall-clock time to sign with")?;
            self.prior = tsig::sign(&mut msg, key, None, now, 0, &[]);
        }
        crate::server::send(&mut self.stream, &msg).await.map_err(|e| format!("send: {e}"))
    }

    /// The next message of the answer, checked and parsed.
    async fn next(&mut self, config: &Secondary, qtype: u16) -> Result<message::Message, String> {
        let mut buf = Vec::new();
        let len = match crate::server::read_frame(&mut self.stream, &mut buf).await {
            Ok(Some(len)) => len,
            Ok(None) => return Err("the primary closed the connection".into()),
            Err(e) => return Err(format!("receive: {e}")),
        };
        if !memory::can_spare(len * 4) {
            return Err("the zone does not fit in the heap".into());
        }
        let raw = &buf[..len];
        self.verify(raw)?;
        let m = message::parse(raw).map_err(|e| format!("a malformed message: {e}"))?;
        if m.id != self.id || m.flags & flags::QR == 0 || m.opcode() != 0 {
            return Err("a message that is not an answer to our query".into());
        }
        if m.rcode() != rcode::NOERROR {
            return Err(format!("rcode {}", message::rcode_name(m.rcode())));
        }
        let matches = |q: &(crate::Name, u16, u16)| q.0 == config.origin && q.1 == qtype && q.2 == CLASS_IN;
        if !m.questions.iter().all(matches) || (self.first_message() && m.questions.len() > 1) {
            return Err("an answer to another question".into());
        }
        Ok(m)
    }

    fn first_message(&self) -> bool {
        self.first
    }

    /// Checks `raw`'s TSIG against the chain (§5.3.1), when we signed.
    fn verify(&mut self, raw: &[u8]) -> Result<(), String> {
        let Some(key) = self.key else {
            self.first = false;
            return Ok(());
        };
        let found = tsig::find(raw).map_err(|e| format!("a bad TSIG record: {e}"))?;
        let Some(t) = found else {
            if self.first {
                return Err(format!("an unsigned answer (the request was signed with {})", key.name));
            }
            self.unsigned_count += 1;
            if self.unsigned_count > MAX_UNSIGNED {
                return Err(format!("more than {MAX_UNSIGNED} unsigned messages in a row"));
            }
            self.unsigned.extend_from_slice(raw);
            return Ok(());
        };
        if t.error != 0 {
            return Err(format!("the primary answered {}", tsig::Refused { error: t.error, key: None }));
        }
        let now = self.access.clock.now().ok_or("no wall-clock time to check a signature")?;
        let checked = if self.first {
            tsig::verify(raw, &t, core::slice::from_ref(key), Some(&self.prior), now).map(|_| ())
        } else {
            tsig::verify_continuation(raw, &t, key, &self.prior, &self.unsigned, now)
        };
        checked.map_err(|r| format!("the answer's signature: {r}"))?;
        self.prior = t.mac;
        self.unsigned.clear();
        self.unsigned_count = 0;
        self.first = false;
        Ok(())
    }

    /// After the last message: it must have been signed.
    fn end(&self) -> Result<(), String> {
        if self.unsigned_count > 0 {
            return Err("the last message is not signed".into());
        }
        Ok(())
    }
}

/// The primary's SOA for the zone.
async fn primary_soa(config: &Secondary, net: &Stack, access: &Access, rt: &Handle) -> Result<Soa, String> {
    let mut x = Exchange::open(config, net, access, rt).await?;
    x.ask(config, rtype::SOA, None).await?;
    let m = x.next(config, rtype::SOA).await?;
    x.end()?;
    x.stream.abort();
    if m.flags & flags::AA == 0 {
        return Err("the primary is not authoritative for the zone".into());
    }
    m.answer
        .iter()
        .find_map(|r| match &r.rdata {
            Rdata::Soa(s) if r.owner == config.origin => Some((**s).clone()),
            _ => None,
        })
        .ok_or_else(|| "no SOA in the primary's answer".into())
}

/// One transfer: IXFR from `current`, or AXFR without it.
async fn transfer(
    config: &Secondary,
    current: Option<&Zone>,
    net: &Stack,
    access: &Access,
    rt: &Handle,
) -> Result<Outcome, String> {
    let qtype = if current.is_some() { rtype::IXFR } else { rtype::AXFR };
    let mut x = Exchange::open(config, net, access, rt).await?;
    x.ask(config, qtype, current.map(|z| &z.soa)).await?;
    let mut reader = Reader::new(&config.origin, current, config.primary.to_string());
    let mut messages = 0;
    loop {
        let m = x.next(config, qtype).await?;
        messages += 1;
        if m.answer.is_empty() {
            return Err("a message with no records in the transfer".into());
        }
        for r in m.answer {
            reader.push(r)?;
        }
        if reader.is_done() || (messages == 1 && reader.is_single_soa()) {
            break;
        }
    }
    x.end()?;
    let _ = x.stream.close().await;
    log::debug!("zone {}: {} records in {messages} messages", config.origin, reader.records());
    reader.finish()
}

/// Checks the primary's serial against `current` and, if it is newer
/// (or there is no `current`), fetches the new version.
pub async fn refresh(
    config: &Secondary,
    current: Option<&Zone>,
    net: &Stack,
    access: &Access,
    rt: &Handle,
) -> Result<Refreshed, String> {
    rt.timeout(TRANSFER, refresh_now(config, current, net, access, rt))
        .await
        .unwrap_or_else(|_| Err(format!("no complete transfer within {} s", TRANSFER.as_secs())))
}

async fn refresh_now(
    config: &Secondary,
    current: Option<&Zone>,
    net: &Stack,
    access: &Access,
    rt: &Handle,
) -> Result<Refreshed, String> {
    if let Some(zone) = current {
        let soa = primary_soa(config, net, access, rt).await?;
        if !serial_newer(soa.serial, zone.soa.1.serial) {
            if soa.serial != zone.soa.1.serial {
                log::warn!(
                    "zone {}: the primary's serial {} is older than ours ({}); keeping ours",
                    config.origin,
                    soa.serial,
                    zone.soa.1.serial
                );
            }
            return Ok(Refreshed::Current(soa));
        }
        match transfer(config, Some(zone), net, access, rt).await {
            Ok(Outcome::Incremental(z, steps)) => return checked(z, zone, "IXFR", Some(steps)),
            Ok(Outcome::Whole(z)) => return checked(z, zone, "AXFR", None),
            Ok(Outcome::OnlySoa(s)) if !serial_newer(s.serial, zone.soa.1.serial) => {
                return Ok(Refreshed::Current(s));
            }
            Ok(Outcome::OnlySoa(_)) => log::info!("zone {}: the primary sends no IXFR; asking by AXFR", config.origin),
            Err(e) => log::info!("zone {}: IXFR failed ({e}); asking by AXFR", config.origin),
        }
    }
    match transfer(config, None, net, access, rt).await? {
        Outcome::Whole(z) => match current {
            Some(old) => checked(z, old, "AXFR", None),
            None => Ok(Refreshed::New(z, "AXFR", None)),
        },
        _ => Err("the AXFR answer has no zone in it".into()),
    }
}

/// A new version must be newer than the one we have.
fn checked(new: Zone, old: &Zone, how: &'static str, steps: Option<Vec<Step>>) -> Result<Refreshed, String> {
    if !serial_newer(new.soa.1.serial, old.soa.1.serial) {
        return Err(format!(
            "the {how} brought serial {}, not newer than ours ({})",
            new.soa.1.serial, old.soa.1.serial
        ));
    }
    Ok(Refreshed::New(new, how, steps))
}
