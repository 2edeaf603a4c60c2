use super::*;
use crate::wire::Section;
use alloc::vec;

const ZONE: &str = "\
$TTL 3600
@ SOA ns1 hostmaster 1 7200 3600 1209600 300
  NS ns1
  NS ns2.example.net.
  MX 10 mail
ns1 A 192.0.2.53
mail A 192.0.2.25
www CNAME web
web A 192.0.2.80
dangling CNAME nothere
*.wild A 192.0.2.99
sub NS ns.sub
ns.sub A 192.0.2.54
a.b.c A 192.0.2.7
";

fn catalog() -> Catalog {
    let origin = Name::parse("example.com.", None).unwrap();
    Catalog::new(vec![Zone::parse(ZONE, &origin, "t", None).unwrap()])
}

fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut m = Writer::new(7, flags::RD, None).finish();
    m[5] = 1;
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(size) = edns {
        m[11] = 1;
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0; 6]);
    }
    m
}

struct Parsed {
    flags: u16,
    counts: [u16; 4],
    types: Vec<(Section, u16)>,
}

fn parse(msg: &[u8]) -> Parsed {
    let u16_at = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    let counts = [u16_at(4), u16_at(6), u16_at(8), u16_at(10)];
    let mut pos = 12;
    if counts[0] == 1 {
        pos = Name::read(msg, 12).unwrap().1 + 4;
    }
    let mut types = Vec::new();
    for (i, section) in [Section::Answer, Section::Authority, Section::Additional].into_iter().enumerate() {
        for _ in 0..counts[i + 1] {
            let p = Name::read(msg, pos).unwrap().1;
            types.push((section, u16_at(p)));
            pos = p + 10 + u16_at(p + 8) as usize;
        }
    }
    assert_eq!(pos, msg.len());
    Parsed { flags: u16_at(2), counts, types }
}

fn ask(name: &str, qtype: u16) -> Parsed {
    parse(&catalog().answer(&query(name, qtype, None), Transport::Udp).unwrap())
}

#[test]
fn rfc1034_4_3_2_exact_match_is_authoritative() {
    let p = ask("web.example.com.", rtype::A);
    assert_eq!(p.flags & 0xf, rcode::NOERROR);
    assert!(p.flags & flags::AA != 0 && p.flags & flags::RD != 0 && p.flags & flags::QR != 0);
    assert_eq!(p.counts, [1, 1, 2, 1]);
}

#[test]
fn rfc1034_4_3_2_cname_followed_in_zone() {
    let p = ask("www.example.com.", rtype::A);
    assert_eq!(p.types[..2], [(Section::Answer, rtype::CNAME), (Section::Answer, rtype::A)]);
}

#[test]
fn rfc2308_nxdomain_and_nodata_carry_soa() {
    let p = ask("nothere.example.com.", rtype::A);
    assert_eq!(p.flags & 0xf, rcode::NXDOMAIN);
    assert_eq!(p.types, vec![(Section::Authority, rtype::SOA)]);
    let p = ask("web.example.com.", rtype::MX);
    assert_eq!(p.flags & 0xf, rcode::NOERROR);
    assert_eq!(p.types, vec![(Section::Authority, rtype::SOA)]);
    // RFC 6604: the rcode is the chain's last name's.
    let p = ask("dangling.example.com.", rtype::A);
    assert_eq!(p.flags & 0xf, rcode::NXDOMAIN);
    assert_eq!(p.types[0], (Section::Answer, rtype::CNAME));
    // An empty non-terminal exists: NODATA, not NXDOMAIN (RFC 4592 §2.2.2).
    assert_eq!(ask("b.c.example.com.", rtype::A).flags & 0xf, rcode::NOERROR);
}

#[test]
fn rfc1034_4_3_2_referral_has_glue_and_no_aa() {
    let p = ask("x.sub.example.com.", rtype::A);
    assert_eq!(p.flags & flags::AA, 0);
    assert_eq!(p.types, vec![(Section::Authority, rtype::NS), (Section::Additional, rtype::A)]);
    // DS at the cut comes from the parent side, authoritatively.
    let p = ask("sub.example.com.", rtype::DS);
    assert!(p.flags & flags::AA != 0);
    assert_eq!(p.types, vec![(Section::Authority, rtype::SOA)]);
}

#[test]
fn rfc4592_wildcards() {
    let p = ask("anything.wild.example.com.", rtype::A);
    assert_eq!(p.types[0], (Section::Answer, rtype::A));
    let p = ask("a.b.wild.example.com.", rtype::A);
    assert_eq!(p.types[0], (Section::Answer, rtype::A));
    // The wildcard does not apply to the existing parent.
    assert_eq!(ask("wild.example.com.", rtype::A).types, vec![(Section::Authority, rtype::SOA)]);
}

#[test]
fn rfc8482_any_is_minimal() {
    let p = ask("example.com.", rtype::ANY);
    assert_eq!(p.types, vec![(Section::Answer, rtype::SOA)]);
}

#[test]
fn refused_outside_zones_and_notimp_for_axfr_over_udp() {
    assert_eq!(ask("example.org.", rtype::A).flags & 0xf, rcode::REFUSED);
    assert_eq!(ask("example.com.", rtype::AXFR).flags & 0xf, rcode::NOTIMP);
}

#[test]
fn rfc6891_badvers_and_buffer_size() {
    let mut m = query("example.com.", rtype::A, Some(1232));
    let n = m.len();
    m[n - 5] = 1; // version 1
    let r = catalog().answer(&m, Transport::Udp).unwrap();
    let p = parse(&r);
    assert_eq!(p.types, vec![(Section::Additional, rtype::OPT)]);
    assert_eq!(r[r.len() - 6], 1, "extended rcode 1 = BADVERS");
}

#[test]
fn rfc1035_4_2_1_truncation() {
    let origin = Name::parse("example.com.", None).unwrap();
    let mut text = alloc::string::String::from("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
    for i in 0..40 {
        text.push_str(&alloc::format!("big A 192.0.2.{i}\n"));
    }
    let c = Catalog::new(vec![Zone::parse(&text, &origin, "t", None).unwrap()]);
    let r = parse(&c.answer(&query("big.example.com.", rtype::A, None), Transport::Udp).unwrap());
    assert!(r.flags & flags::TC != 0);
    assert_eq!(r.counts, [1, 0, 0, 0]);
    let r = parse(&c.answer(&query("big.example.com.", rtype::A, Some(1232)), Transport::Udp).unwrap());
    assert_eq!(r.flags & flags::TC, 0);
    assert_eq!(r.counts[1], 40);
    let r = parse(&c.answer(&query("big.example.com.", rtype::A, None), Transport::Tcp).unwrap());
    assert_eq!(r.counts[1], 40);
}

#[test]
fn rfc1035_4_1_1_bad_queries() {
    let c = catalog();
    assert_eq!(c.answer(&[1, 2, 3], Transport::Udp), None);
    let r = c.answer(&[0, 9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0], Transport::Udp).unwrap();
    assert_eq!(r, [0, 9, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0], "FORMERR, no question");
    let mut m = query("example.com.", rtype::A, None);
    m[2] = 0x10; // opcode 2 (STATUS)
    let r = c.answer(&m, Transport::Udp).unwrap();
    assert_eq!(r[3] & 0xf, rcode::NOTIMP as u8);
}

#[test]
fn rfc4343_query_case_preserved() {
    let r = catalog().answer(&query("WeB.ExAmPlE.cOm.", rtype::A, None), Transport::Udp).unwrap();
    assert_eq!(&r[12..29], b"\x03WeB\x07ExAmPlE\x03cOm\x00");
    assert_eq!(&r[33..35], &[0xc0, 12], "answer owner points at the question");
}

#[test]
fn longest_zone_wins() {
    let a = Name::parse("example.com.", None).unwrap();
    let b = Name::parse("sub.example.com.", None).unwrap();
    let za = Zone::parse(ZONE, &a, "a", None).unwrap();
    let zb =
        Zone::parse("$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.9\nx A 192.0.2.10\n", &b, "b", None).unwrap();
    let c = Catalog::new(vec![za, zb]);
    let r = parse(&c.answer(&query("x.sub.example.com.", rtype::A, None), Transport::Udp).unwrap());
    assert!(r.flags & flags::AA != 0, "answered from the child zone, not referred");
    assert_eq!(r.types[0], (Section::Answer, rtype::A));
}
