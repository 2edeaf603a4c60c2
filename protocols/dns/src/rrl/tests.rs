use super::*;
use alloc::vec;

use crate::answer::Transport;
use crate::wire::{parse_query, rtype, Writer, CLASS_IN};
use crate::zone::Zone;

const SEED: [u8; 16] = *b"0123456789abcdef";
const WWW: &[u8] = b"\x03www\x07example\x03com\x00";

fn limiter(rate: u32, slip: u32) -> Limiter {
    Limiter::new(&Config { rate, slip, size: 64 }, SEED).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (sent, slipped, dropped) for `n` responses to `client` at `now_ms`.
fn run(l: &mut Limiter, now_ms: u64, client: &str, kind: Kind, name: &[u8], n: usize) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for _ in 0..n {
        match l.check(now_ms, ip(client), kind, name) {
            Verdict::Send => c.0 += 1,
            Verdict::Slip => c.1 += 1,
            Verdict::Drop => c.2 += 1,
        }
    }
    c
}

#[test]
fn a_burst_of_rate_responses_then_the_rest_is_limited() {
    let mut l = limiter(10, 0);
    assert_eq!(run(&mut l, 0, "192.0.2.1", Kind::Positive, WWW, 25), (10, 0, 15));
}

#[test]
fn tokens_refill_at_the_rate_and_the_burst_is_capped() {
    let mut l = limiter(100, 0);
    assert_eq!(run(&mut l, 1000, "192.0.2.1", Kind::Positive, WWW, 100).0, 100);
    assert_eq!(run(&mut l, 1000, "192.0.2.1", Kind::Positive, WWW, 1).0, 0);
    // Half a second later: half the rate.
    assert_eq!(run(&mut l, 1500, "192.0.2.1", Kind::Positive, WWW, 100).0, 50);
    // Idle for a long time: one second's worth, no more.
    assert_eq!(run(&mut l, 60_000, "192.0.2.1", Kind::Positive, WWW, 500).0, 100);
    // The clock going nowhere adds nothing.
    assert_eq!(run(&mut l, 60_000, "192.0.2.1", Kind::Positive, WWW, 5).0, 0);
}

#[test]
fn every_slip_th_limited_response_is_slipped() {
    for (slip, pattern) in [(0, "------"), (1, "ssssss"), (2, "-s-s-s"), (3, "--s--s")] {
        let mut l = limiter(1, slip);
        assert_eq!(l.check(0, ip("192.0.2.1"), Kind::Positive, WWW), Verdict::Send);
        let got: alloc::string::String = (0..6)
            .map(|_| match l.check(0, ip("192.0.2.1"), Kind::Positive, WWW) {
                Verdict::Send => '+',
                Verdict::Slip => 's',
                Verdict::Drop => '-',
            })
            .collect();
        assert_eq!(got, pattern, "slip {slip}");
    }
}

#[test]
fn a_slash24_or_slash56_shares_a_bucket_other_networks_do_not() {
    let mut l = limiter(5, 0);
    assert_eq!(run(&mut l, 0, "192.0.2.1", Kind::Positive, WWW, 5).0, 5);
    assert_eq!(run(&mut l, 0, "192.0.2.200", Kind::Positive, WWW, 1), (0, 0, 1));
    assert_eq!(run(&mut l, 0, "::ffff:192.0.2.7", Kind::Positive, WWW, 1), (0, 0, 1));
    assert_eq!(run(&mut l, 0, "192.0.3.1", Kind::Positive, WWW, 5).0, 5);
    assert_eq!(run(&mut l, 0, "2001:db8:0:100::1", Kind::Positive, WWW, 5).0, 5);
    assert_eq!(run(&mut l, 0, "2001:db8:0:1ff:ffff::9", Kind::Positive, WWW, 1), (0, 0, 1));
    assert_eq!(run(&mut l, 0, "2001:db8:0:200::1", Kind::Positive, WWW, 5).0, 5);
}

#[test]
fn network_masks_to_slash24_and_slash56() {
    assert_eq!(network(ip("192.0.2.77")), (ip("192.0.2.0"), 24));
    assert_eq!(network(ip("::ffff:198.51.100.9")), (ip("198.51.100.0"), 24));
    assert_eq!(network(ip("2001:db8:1:2345:6789::1")), (ip("2001:db8:1:2300::"), 56));
}

#[test]
fn kinds_and_names_have_buckets_of_their_own() {
    let mut l = limiter(3, 0);
    let mail = b"\x04mail\x07example\x03com\x00";
    assert_eq!(run(&mut l, 0, "192.0.2.1", Kind::Positive, WWW, 3).0, 3);
    assert_eq!(run(&mut l, 0, "192.0.2.1", Kind::Nxdomain, WWW, 3).0, 3);
    assert_eq!(run(&mut l, 0, "192.0.2.1", Kind::Positive, mail, 3).0, 3);
    assert_eq!(run(&mut l, 0, "192.0.2.1", Kind::Positive, WWW, 1).0, 0);
}

#[test]
fn rate_zero_turns_rrl_off() {
    assert!(Limiter::new(&Config { rate: 0, slip: 2, size: 64 }, SEED).is_none());
}

#[test]
fn the_table_size_is_fixed_at_creation() {
    let cap = |size| Limiter::new(&Config { rate: 1, slip: 0, size }, SEED).unwrap().capacity();
    assert_eq!(cap(64), 64);
    assert_eq!(cap(65), 128); // 9 sets, rounded up to 16
    assert_eq!(cap(0), WAYS);
    assert_eq!(cap(usize::MAX), MAX_SIZE);
    assert_eq!(Config::default().size, cap(Config::default().size));
}

#[test]
fn spoofed_sources_neither_grow_the_table_nor_evict_a_limited_flow() {
    let mut l = Limiter::new(&Config { rate: 10, slip: 0, size: 256 }, SEED).unwrap();
    assert_eq!(run(&mut l, 0, "198.51.100.1", Kind::Positive, WWW, 11), (10, 0, 1));
    // 200,000 networks, one query each, all in the same millisecond.
    for i in 0..200_000u32 {
        let client = IpAddr::V4((0x0a00_0000 + (i << 8)).into());
        assert_eq!(l.check(0, client, Kind::Positive, WWW), Verdict::Send);
    }
    assert_eq!(l.capacity(), 256);
    assert_eq!(l.len(), 256);
    // Had its bucket been evicted, a fresh one would send again.
    assert_eq!(run(&mut l, 0, "198.51.100.1", Kind::Positive, WWW, 5), (0, 0, 5));
}

#[test]
fn a_full_set_evicts_its_fullest_bucket() {
    // One set only: eight networks fill it, two of them limited.
    let mut l = Limiter::new(&Config { rate: 2, slip: 0, size: WAYS }, SEED).unwrap();
    let nets: Vec<alloc::string::String> = (0..WAYS).map(|i| alloc::format!("192.0.{i}.1")).collect();
    for (i, n) in nets.iter().enumerate() {
        run(&mut l, 0, n, Kind::Positive, WWW, if i < 2 { 3 } else { 1 });
    }
    for i in 0..40 {
        run(&mut l, 0, &alloc::format!("10.0.{i}.1"), Kind::Positive, WWW, 1);
    }
    assert_eq!(l.len(), WAYS);
    assert_eq!(run(&mut l, 0, &nets[0], Kind::Positive, WWW, 1), (0, 0, 1));
    assert_eq!(run(&mut l, 0, &nets[1], Kind::Positive, WWW, 1), (0, 0, 1));
    // The newest arrival is tracked: one of its two tokens is left.
    assert_eq!(run(&mut l, 0, "10.0.39.1", Kind::Positive, WWW, 2), (1, 0, 1));
}

#[test]
fn report_at_the_first_limited_response_then_at_most_every_ten_seconds() {
    let mut l = limiter(1, 2);
    run(&mut l, 20_000, "192.0.2.1", Kind::Positive, WWW, 1);
    assert_eq!(l.report(20_000), None); // nothing limited yet
    run(&mut l, 20_000, "192.0.2.1", Kind::Positive, WWW, 1);
    assert_eq!(l.report(20_000), Some((1, 0)));
    run(&mut l, 20_000, "192.0.2.1", Kind::Positive, WWW, 4);
    assert_eq!(l.report(29_999), None);
    assert_eq!(l.report(30_000), Some((2, 2)));
}

const ZONE: &str = "\
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
  NS ns1
ns1 A 192.0.2.53
www A 192.0.2.80
sub NS ns.sub
ns.sub A 192.0.2.54
";

fn catalog() -> Catalog {
    let origin = Name::parse("example.com.", None).unwrap();
    Catalog::new(vec![Zone::parse(ZONE, &origin, "t", None).unwrap()])
}

fn query(name: &str, qtype: u16, edns_version: Option<u8>) -> Vec<u8> {
    let mut m = Writer::new(7, flags::RD, None).finish();
    m[5] = 1;
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0]);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(v) = edns_version {
        m[11] = 1;
        m.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, v, 0, 0, 0, 0]);
    }
    m
}

fn classified(msg: &[u8]) -> (Kind, Vec<u8>) {
    let c = catalog();
    let parsed = parse_query(msg);
    let response = c.respond(&parsed, Transport::Udp).unwrap();
    let (kind, name) = classify(parsed.as_ref().ok(), &response, &c);
    (kind, name.into_owned())
}

#[test]
fn classify_keys_answers_by_qname_and_the_rest_by_zone_or_cut() {
    let apex = b"\x07example\x03com\x00".to_vec();
    assert_eq!(classified(&query("www.example.com", rtype::A, None)), (Kind::Positive, WWW.to_vec()));
    assert_eq!(classified(&query("WwW.ExAmPlE.cOm", rtype::A, Some(0))), (Kind::Positive, WWW.to_vec()));
    assert_eq!(classified(&query("www.example.com", rtype::MX, None)), (Kind::Nodata, apex.clone()));
    assert_eq!(classified(&query("made-up.example.com", rtype::A, None)), (Kind::Nxdomain, apex.clone()));
    assert_eq!(
        classified(&query("deep.x.sub.example.com", rtype::A, None)),
        (Kind::Referral, b"\x03sub\x07example\x03com\x00".to_vec())
    );
    assert_eq!(classified(&query("www.example.org", rtype::A, None)), (Kind::Error, vec![0]));
    assert_eq!(classified(&query("www.example.com", rtype::A, Some(1))), (Kind::Error, apex));
    // Malformed: FORMERR, no question to key on.
    assert_eq!(classified(&[0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), (Kind::Error, vec![0]));
}

#[test]
fn slip_keeps_header_and_question_sets_tc_and_drops_records() {
    let c = catalog();
    let q = query("www.example.com", rtype::A, Some(0));
    let full = c.answer(&q, Transport::Udp).unwrap();
    let mut r = full.clone();
    slip(&mut r);
    let question = HEADER + WWW.len() + 4;
    assert_eq!(r.len(), question);
    assert_eq!(r[..2], full[..2]); // ID
    assert_eq!(u16_at(&r, 2), u16_at(&full, 2) | flags::TC);
    assert_eq!(r[4..12], [0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(r[HEADER..], full[HEADER..question]);
    // FORMERR has no question: the header alone.
    let mut r = c.answer(&[0xab, 0xcd, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0], Transport::Udp).unwrap();
    slip(&mut r);
    assert_eq!(r, [0xab, 0xcd, 0x82, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    // Less than a header is left alone.
    let mut r = vec![1, 2, 3];
    slip(&mut r);
    assert_eq!(r, [1, 2, 3]);
}
