use super::*;
use crate::answer::{Catalog, Transport};
use crate::name::Name;
use crate::wire::{parse_query, rcode, QueryError};
use crate::zone::Zone;
use alloc::vec;
use core::net::IpAddr;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn secret(s: &str) -> Secret {
    s.parse().unwrap()
}

fn received(s: &str) -> Received {
    Received::parse(&hex(s)).unwrap()
}

/// The option a response carries for `cookie` (client | server, hex).
fn reply(cookie: &str) -> Reply {
    let mut r = [0u8; 28];
    r[..4].copy_from_slice(&[0, 10, 0, 24]);
    r[4..].copy_from_slice(&hex(cookie));
    r
}

const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

#[test]
fn rfc9018_a1_learning_a_new_server_cookie() {
    let ip = "198.51.100.100".parse().unwrap();
    let got = secret(SECRET).check(&received("2464c4abcf10c957"), ip, 1559731985);
    assert_eq!(got, (Outcome::ClientOnly, reply("2464c4abcf10c957010000005cf79f111f8130c3eee29480")));
}

#[test]
fn rfc9018_a2_the_same_client_learning_a_renewed_cookie() {
    // 40 minutes after A.1: valid, but older than half an hour.
    let ip = "198.51.100.100".parse().unwrap();
    let got = secret(SECRET).check(&received("2464c4abcf10c957010000005cf79f111f8130c3eee29480"), ip, 1559734385);
    assert_eq!(got, (Outcome::Valid, reply("2464c4abcf10c957010000005cf7a871d4a564a1442aca77")));
}

#[test]
fn rfc9018_a3_another_client_with_reserved_bits_set() {
    // Received 1h52m after it was made: past the hour, so a new one.
    let ip = "203.0.113.203".parse().unwrap();
    let cookie = received("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5");
    let got = secret(SECRET).check(&cookie, ip, 1559734700);
    assert_eq!(got, (Outcome::Invalid, reply("fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e")));
    // Within the hour it holds: the reserved octets as the client sent
    // them are part of the hash, and a fresh cookie is echoed unchanged.
    let got = secret(SECRET).check(&cookie, ip, 0x5cf78f71 + 60);
    assert_eq!(got, (Outcome::Valid, reply("fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5")));
}

#[test]
fn rfc9018_a4_ipv6_client_after_a_secret_rollover() {
    let ip = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
    let cookie = received("22681ab97d52c298010000005cf7c57926556bd0934c72f8");
    let (outcome, _) = secret("dd3bdf9344b678b185a6f5cb60fca715").check(&cookie, ip, 1559741961);
    assert_eq!(outcome, Outcome::Valid, "the old secret made it");
    let got = secret("445536bcd2513298075a5d379663c962").check(&cookie, ip, 1559741961);
    assert_eq!(got, (Outcome::Invalid, reply("22681ab97d52c298010000005cf7c609a6bb79d16625507a")));
}

#[test]
fn rfc9018_4_3_lifetime_refresh_and_skew() {
    let s = secret(SECRET);
    let ip = "192.0.2.1".parse().unwrap();
    let client = [1, 2, 3, 4, 5, 6, 7, 8];
    let at = |stamp: u32, now: u32| {
        let mut data = client.to_vec();
        data.extend_from_slice(&s.server_cookie(&client, [0; 3], stamp, ip));
        let (outcome, r) = s.check(&Received::parse(&data).unwrap(), ip, now);
        (outcome, r[4..] == data[..])
    };
    let t = 1_000_000;
    assert_eq!(at(t, t), (Outcome::Valid, true), "fresh: echoed");
    assert_eq!(at(t - REFRESH, t), (Outcome::Valid, true), "half an hour old: still echoed");
    assert_eq!(at(t - REFRESH - 1, t), (Outcome::Valid, false), "older: valid, a new one issued");
    assert_eq!(at(t - LIFETIME, t), (Outcome::Valid, false));
    assert_eq!(at(t - LIFETIME - 1, t), (Outcome::Invalid, false), "expired");
    assert_eq!(at(t + SKEW, t), (Outcome::Valid, true), "five minutes ahead: allowed skew");
    assert_eq!(at(t + SKEW + 1, t), (Outcome::Invalid, false), "further ahead");
    assert_eq!(at(u32::MAX - 100, 500), (Outcome::Valid, true), "across the wrap of the timestamp");
}

#[test]
fn rfc7873_5_2_4_invalid_server_cookies() {
    let s = secret(SECRET);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let client = [9; 8];
    let good = s.server_cookie(&client, [0; 3], 1000, ip);
    let with = |server: &[u8], ip: IpAddr| {
        let data = [&client[..], server].concat();
        s.check(&Received::parse(&data).unwrap(), ip, 1000).0
    };
    assert_eq!(with(&good, ip), Outcome::Valid);
    assert_eq!(with(&good, "192.0.2.2".parse().unwrap()), Outcome::Invalid, "another address");
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
    assert_eq!(with(&good, mapped), Outcome::Valid, "IPv4-mapped is the same client");
    let mut other = good;
    other[15] ^= 1;
    assert_eq!(with(&other, ip), Outcome::Invalid, "a wrong hash");
    let mut v2 = good;
    v2[0] = 2;
    assert_eq!(with(&v2, ip), Outcome::Invalid, "another version");
    assert_eq!(with(&good[..8], ip), Outcome::Invalid, "8 octets: not ours");
    assert_eq!(with(&[good, good].concat(), ip), Outcome::Invalid, "32 octets: not ours");
    let foreign = secret("00112233445566778899aabbccddeeff");
    assert_eq!(foreign.check(&Received::parse(&[&client[..], &good].concat()).unwrap(), ip, 1000).0, Outcome::Invalid);
}

#[test]
fn rfc7873_5_2_2_option_lengths() {
    for len in [0, 1, 7, 9, 15, 41, 100] {
        assert_eq!(Received::parse(&vec![0; len]), None, "{len} octets are malformed");
    }
    for len in [8, 16, 24, 40] {
        let r = Received::parse(&vec![7; len]).unwrap();
        assert_eq!((r.client(), r.server().len()), (&[7; 8], len - 8));
    }
}

#[test]
fn secrets_are_32_hex_digits() {
    assert!("e5e973e5a6b2a43f48e7dc849e37bfcf".parse::<Secret>().is_ok());
    assert!("E5E973E5A6B2A43F48E7DC849E37BFCF".parse::<Secret>().is_ok());
    for bad in [
        "",
        "e5e973e5",
        "e5e973e5a6b2a43f48e7dc849e37bfcf00",
        "g5e973e5a6b2a43f48e7dc849e37bfcf",
        "é5e973e5a6b2a43f48e7dc849e37bfc",
    ] {
        assert!(bad.parse::<Secret>().is_err(), "{bad}");
    }
    assert_eq!(alloc::format!("{:?}", secret(SECRET)), "Secret(..)");
}

/// A query for `name` A with an OPT record carrying `options`.
fn query(name: &[u8], version: u8, options: &[u8]) -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    m.extend_from_slice(name);
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 41, 0x04, 0xd0, 0, version, 0, 0]);
    m.extend_from_slice(&(options.len() as u16).to_be_bytes());
    m.extend_from_slice(options);
    m
}

fn option(code: u16, data: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], &(data.len() as u16).to_be_bytes(), data].concat()
}

#[test]
fn rfc7873_5_2_cookie_parsed_from_queries() {
    let q = parse_query(&query(b"\x00", 0, &option(10, &[1; 8]))).unwrap();
    assert_eq!(q.edns.unwrap().cookie.unwrap().client(), &[1; 8]);
    // Among other options, and only the first COOKIE counts.
    let opts = [option(3, &[]), option(10, &[2; 24]), option(10, &[3; 3])].concat();
    let cookie = parse_query(&query(b"\x00", 0, &opts)).unwrap().edns.unwrap().cookie.unwrap();
    assert_eq!((cookie.client(), cookie.server()), (&[2; 8], &[2; 16][..]));
    // Malformed lengths: FORMERR.
    for len in [0, 7, 9, 15, 41] {
        let got = parse_query(&query(b"\x00", 0, &option(10, &vec![0; len])));
        assert!(
            matches!(got, Err(QueryError::Malformed { id: 0xabcd, why: "malformed COOKIE option", .. })),
            "{len}: {got:?}"
        );
    }
    // EDNS version 1's options are not ours to read: BADVERS decides.
    let q = parse_query(&query(b"\x00", 1, &option(10, &[0; 3]))).unwrap();
    assert_eq!(q.edns.unwrap().cookie, None);
}

fn catalog(extra: &str) -> Catalog {
    let origin = Name::parse("example.com.", None).unwrap();
    let text = alloc::format!("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n{extra}");
    Catalog::new(vec![Zone::parse(&text, &origin, "t", None).unwrap()])
}

/// The options of the OPT record ending `msg` (the last record).
fn opt_options(msg: &[u8], len: usize) -> &[u8] {
    &msg[msg.len() - len..]
}

#[test]
fn responses_carry_the_cookie_and_fit_the_limit() {
    let mut zone = alloc::string::String::new();
    for i in 0..200 {
        zone.push_str(&alloc::format!("big A 10.0.0.{i}\n"));
    }
    let c = catalog(&zone);
    let ip = "192.0.2.9".parse().unwrap();
    let (_, r) = secret(SECRET).check(&received("0102030405060708"), ip, 77);
    let ask = |name: &[u8], t| {
        let parsed = parse_query(&query(name, 0, &option(10, &[1, 2, 3, 4, 5, 6, 7, 8])));
        c.respond_with(&parsed, t, &r).unwrap()
    };
    for (name, code) in
        [(&b"\x02ns\x07example\x03com\x00"[..], rcode::NOERROR), (b"\x07example\x03org\x00", rcode::REFUSED)]
    {
        let m = ask(name, Transport::Udp);
        assert_eq!(u16::from(m[3] & 0xf), code);
        assert_eq!(opt_options(&m, 28), r, "the cookie in the OPT record");
        assert_eq!(&m[m.len() - 30..m.len() - 28], &[0, 28], "OPT data length");
    }
    // 200 A records: truncated over UDP within the client's 1232, with
    // the cookie; complete over TCP.
    let m = ask(b"\x03big\x07example\x03com\x00", Transport::Udp);
    assert!(m[2] & 0x02 != 0 && m.len() <= 1232, "{} {:?}", m.len(), &m[..12]);
    assert_eq!(opt_options(&m, 28), r);
    let m = ask(b"\x03big\x07example\x03com\x00", Transport::Tcp);
    assert_eq!(u16::from_be_bytes([m[6], m[7]]), 200);
    assert_eq!(opt_options(&m, 28), r);
}

#[test]
fn the_cookie_counts_against_the_udp_limit() {
    // Sizes at which the answer without the cookie fits but with its 28
    // octets would not: it must come smaller (truncated), never oversized.
    let c = catalog(&(0..30).map(|i| alloc::format!("x A 10.0.0.{i}\n")).collect::<alloc::string::String>());
    let ip = "192.0.2.9".parse().unwrap();
    let (_, r) = secret(SECRET).check(&received("0102030405060708"), ip, 77);
    let parsed = parse_query(&query(b"\x01x\x07example\x03com\x00", 0, &option(10, &[1, 2, 3, 4, 5, 6, 7, 8])));
    let mut q = parsed.unwrap();
    let mut edges = 0;
    for size in 512..=1232u16 {
        q.edns.as_mut().unwrap().udp_size = size;
        let plain = c.respond_with(&Ok(q.clone()), Transport::Udp, &[]).unwrap();
        let m = c.respond_with(&Ok(q.clone()), Transport::Udp, &r).unwrap();
        assert!(m.len() <= size as usize, "{size}: {} octets", m.len());
        assert_eq!(opt_options(&m, 28), r);
        edges += usize::from(plain.len() + r.len() > size as usize && plain.len() <= size as usize);
    }
    assert!(edges > 0, "no size where the cookie made the difference");
}

#[test]
fn badcookie_answer() {
    let q = parse_query(&query(b"\x03www\x07example\x03com\x00", 0, &option(10, &[5; 24]))).unwrap();
    let (outcome, r) = secret(SECRET).check(&q.edns.unwrap().cookie.unwrap(), "192.0.2.7".parse().unwrap(), 5);
    assert_eq!(outcome, Outcome::Invalid);
    let m = badcookie(&q, &r);
    assert_eq!(&m[..12], &[0xab, 0xcd, 0x81, 0x07, 0, 1, 0, 0, 0, 0, 0, 1], "rcode 7 | 16, one question");
    let opt = &m[12 + 17 + 4..];
    assert_eq!(&opt[..5], &[0, 0, 41, 0x04, 0xd0]);
    assert_eq!(opt[5], 1, "extended rcode: 23 >> 4");
    assert_eq!(&opt[9..11], &[0, 28]);
    assert_eq!(&opt[11..], &r);
}
