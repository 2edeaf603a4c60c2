//! Any text as a zone file: nothing may panic; a zone that parses must
//! survive the binary round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use morgana_dns::{Name, Zone};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let origin = Name::parse("example.com.", None).unwrap();
    let include = |_: &str| Ok::<String, String>(String::from("x A 192.0.2.1\n"));
    if let Ok(zone) = Zone::parse(text, &origin, "fuzz.zone", Some(&include)) {
        let back = Zone::from_binary(&zone.to_binary(), &origin, "bin").expect("binary form of a valid zone");
        assert_eq!(back.nodes, zone.nodes);
    }
});
