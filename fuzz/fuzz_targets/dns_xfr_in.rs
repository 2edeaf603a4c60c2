//! Any bytes as a hostile primary's answer to our zone transfer: a stream
//! of length-prefixed messages (as over TCP), each checked against the TSIG
//! chain of a signed request, parsed, and fed to the transfer reader, as
//! AXFR or as IXFR from a zone we hold. Nothing may panic; a zone that
//! comes out has passed the zone checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use morgana_dns::message;
use morgana_dns::secondary::ixfr::Reader;
use morgana_dns::tsig::{self, Algorithm, Key};
use morgana_dns::{Name, Zone};

static ZONE: &str = include_str!("../../tests/dns/zones/example.com.zone");

thread_local! {
    static CURRENT: Zone = {
        let origin = Name::parse("example.com.", None).unwrap();
        Zone::parse(ZONE, &origin, "example.com.zone", None).unwrap()
    };
    static KEY: Key = Key::new(Name::parse("xfr-key.", None).unwrap(), Algorithm::HmacSha256, vec![7; 32]).unwrap();
}

fuzz_target!(|data: &[u8]| CURRENT.with(|current| KEY.with(|key| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let origin = current.origin.clone();
    let mut reader = Reader::new(&origin, (mode & 1 == 1).then_some(current), "fuzz".into());
    let mut prior = vec![0u8; 32];
    let mut unsigned = Vec::new();
    let mut first = true;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(msg) = rest.get(2..2 + len) else { return };
        rest = &rest[2 + len..];
        // The TSIG chain: as the transfer client checks it.
        match tsig::find(msg) {
            Ok(Some(t)) => {
                let now = t.time_signed;
                let ok = if first {
                    tsig::verify(msg, &t, std::slice::from_ref(key), Some(&prior), now).is_ok()
                } else {
                    tsig::verify_continuation(msg, &t, key, &prior, &unsigned, now).is_ok()
                };
                if ok {
                    prior = t.mac;
                    unsigned.clear();
                }
            }
            Ok(None) => unsigned.extend_from_slice(msg),
            Err(_) => {}
        }
        first = false;
        let Ok(m) = message::parse(msg) else { return };
        for r in m.answer {
            if reader.push(r).is_err() {
                return;
            }
        }
        if reader.is_done() {
            break;
        }
    }
    if reader.is_done() || reader.is_single_soa() {
        let _ = reader.finish();
    }
})));
