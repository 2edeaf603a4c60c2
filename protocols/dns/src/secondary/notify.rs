//! NOTIFY (RFC 1996). In: a primary tells us a zone changed; accepted
//! only for a secondary zone, from its primary's address, and signed with
//! its key when it has one; the zone's serial is then checked at once.
//! Out: we tell our own secondaries when a zone changed here, over UDP,
//! retransmitted until answered.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use morgana_net::{ListenAddr, Stack};
use morgana_runtime::Handle;

use super::Downstream;
use crate::message;
use crate::name::Name;
use crate::rdata::{Rdata, Soa};
use crate::served::Served;
use crate::tsig;
use crate::wire::{flags, rcode, rtype, Section, Writer, CLASS_IN, HEADER};
use crate::xfr::Access;

/// NOTIFY out is sent this many times at most (RFC 1996 §3.6: until
/// answered), the wait doubling from [`FIRST_WAIT`].
const TRIES: u32 = 5;
/// The first wait for an answer.
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// The NOTIFY opcode.
pub const OPCODE: u8 = 4;

/// Whether `msg` is a NOTIFY request (not a response).
pub fn is_notify(msg: &[u8]) -> bool {
    msg.len() >= HEADER && msg[2] & 0x80 == 0 && (msg[2] >> 3) & 0xf == OPCODE
}

fn same_host(a: IpAddr, b: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    plain(a) == plain(b)
}

/// Answers the NOTIFY `msg` from `peer` (see [`is_notify`]), and wakes the
/// zone's follower when it is accepted. `None`: send nothing (too
/// malformed to answer).
pub fn answer(served: &Served, msg: &[u8], peer: SocketAddr, access: &Access) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let header = flags::QR | u16::from(OPCODE) << 11;
    let bare = |code: u16| {
        let mut w = Writer::new(id, header, None);
        w.set_rcode(code);
        w.finish()
    };
    let Ok(m) = message::parse(msg) else { return Some(bare(rcode::FORMERR)) };
    let [(qname, qtype, qclass)] = m.questions.as_slice() else { return Some(bare(rcode::FORMERR)) };
    let question = Some((qname.wire(), *qtype, *qclass));
    let reply = |code: u16| {
        let mut w = Writer::new(id, header | flags::AA, question);
        w.set_rcode(code);
        w.finish()
    };
    if *qtype != rtype::SOA || *qclass != CLASS_IN {
        return Some(reply(rcode::FORMERR));
    }
    let Some(f) = served.followers().iter().find(|f| f.config.origin == *qname) else {
        log::info!("{peer}: NOTIFY for {qname}, not a secondary zone here: NOTAUTH");
        return Some(reply(rcode::NOTAUTH));
    };
    if !same_host(peer.ip(), f.config.primary.ip()) {
        log::info!("{peer}: NOTIFY for {qname} not from its primary {}: REFUSED", f.config.primary.ip());
        return Some(reply(rcode::REFUSED));
    }
    let signed = match tsig::find(msg) {
        Ok(t) => t,
        Err(_) => return Some(reply(rcode::FORMERR)),
    };
    let now = access.clock.now();
    let checked = signed.as_ref().map(|t| match now {
        Some(now) => tsig::verify(msg, t, &access.keys, None, now),
        None => Err(tsig::Refused { error: tsig::error::BADTIME, key: None }),
    });
    let seal = |mut r: Vec<u8>, key: usize, t: &tsig::Tsig| {
        tsig::sign(&mut r, &access.keys[key], Some(&t.mac), now.unwrap_or(0), 0, &[]);
        r
    };
    let response = match (signed.as_ref(), checked) {
        (Some(t), Some(Err(refused))) => {
            log::info!("{peer}: NOTIFY for {qname}: key {}: {refused}", t.key);
            return Some(crate::xfr::tsig_error(reply(rcode::NOTAUTH), t, refused, access, now.unwrap_or(0)));
        }
        (Some(t), Some(Ok(i))) => {
            if f.config.key.as_ref().is_some_and(|k| *k != access.keys[i].name) {
                log::info!("{peer}: NOTIFY for {qname} signed with {}, not the zone's key: REFUSED", t.key);
                return Some(seal(reply(rcode::REFUSED), i, t));
            }
            seal(reply(rcode::NOERROR), i, t)
        }
        _ => {
            if let Some(key) = &f.config.key {
                log::info!("{peer}: NOTIFY for {qname} unsigned, but the zone's key is {key}: REFUSED");
                return Some(reply(rcode::REFUSED));
            }
            reply(rcode::NOERROR)
        }
    };
    log::debug!("{peer}: NOTIFY for {qname} accepted");
    f.notified.raise();
    Some(response)
}

/// Tells `to` that `origin` is now at `soa` (a NOTIFY with the SOA in the
/// answer section, signed when `to` has a key), until it answers.
pub async fn send(origin: Name, soa: Soa, to: Downstream, net: Stack, access: Rc<Access>, rt: Handle) {
    let key = match &to.key {
        Some(name) => match access.keys.iter().find(|k| k.name == *name) {
            Some(k) => Some(k),
            None => return log::warn!("NOTIFY {origin} to {}: no --tsig-key named {name}", to.addr),
        },
        None => None,
    };
    let mut socket = match net.udp_bind(ListenAddr { ip: None, port: 0 }) {
        Ok(s) => s,
        Err(e) => return log::warn!("NOTIFY {origin} to {}: no UDP socket: {e}", to.addr),
    };
    let id = (rt.now().as_nanos() >> 10) as u16;
    let mut w = Writer::new(id, u16::from(OPCODE) << 11 | flags::AA, Some((origin.wire(), rtype::SOA, CLASS_IN)));
    let at = w.begin_record(Section::Answer, origin.wire(), rtype::SOA, CLASS_IN, 0);
    Rdata::Soa(soa.clone().into()).write(&mut w);
    w.end_record(at);
    let msg = w.finish();
    let mut buf = alloc::vec![0u8; 1024];
    let mut wait = FIRST_WAIT;
    for _ in 0..TRIES {
        // Signed afresh each time: the signature's time must be current.
        let mut signed = msg.clone();
        let mac = match (key, access.clock.now()) {
            (Some(k), Some(now)) => Some(tsig::sign(&mut signed, k, None, now, 0, &[])),
            (Some(_), None) => return log::warn!("NOTIFY {origin} to {}: no wall-clock time to sign with", to.addr),
            (None, _) => None,
        };
        if let Err(e) = socket.send_to(&signed, to.addr).await {
            log::debug!("NOTIFY {origin} to {}: {e}", to.addr);
        }
        let deadline = rt.now() + wait;
        while rt.now() < deadline {
            let Ok(Ok((n, from))) = rt.timeout(deadline.saturating_since(rt.now()), socket.recv_from(&mut buf)).await
            else {
                break;
            };
            let answer = &buf[..n];
            if from != to.addr || answer.len() < HEADER || u16::from_be_bytes([answer[0], answer[1]]) != id {
                continue;
            }
            if let (Some(k), Some(mac)) = (key, &mac) {
                let checked = match tsig::find(answer) {
                    Ok(Some(t)) => {
                        tsig::verify(answer, &t, core::slice::from_ref(k), Some(mac), access.clock.now().unwrap_or(0))
                            .map_err(|r| alloc::format!("{r}"))
                    }
                    _ => Err("unsigned".into()),
                };
                if let Err(e) = checked {
                    log::info!("NOTIFY {origin} to {}: the answer's signature: {e}; ignored", to.addr);
                    continue;
                }
            }
            let code = answer[3] & 0xf;
            if code == 0 {
                log::info!("NOTIFY {origin} serial {} to {}: acknowledged", soa.serial, to.addr);
            } else {
                log::warn!("NOTIFY {origin} to {}: answered {}", to.addr, message::rcode_name(code.into()));
            }
            return;
        }
        wait *= 2;
    }
    log::warn!("NOTIFY {origin} serial {} to {}: no answer after {TRIES} tries", soa.serial, to.addr);
}
