//! NOTIFY in (RFC 1996): a primary tells us a zone changed. Accepted only
//! for a secondary zone, from its primary's address, and signed with its
//! key when it has one; the zone's serial is then checked at once.

use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use crate::message;
use crate::served::Served;
use crate::tsig;
use crate::wire::{flags, rcode, rtype, Writer, CLASS_IN, HEADER};
use crate::xfr::Access;

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
