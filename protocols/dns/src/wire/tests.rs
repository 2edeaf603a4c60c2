use super::*;
use alloc::vec;

fn query(name: &[u8], qtype: u16, opt: Option<(u16, u8)>) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, opt.is_some() as u8];
    m.extend_from_slice(name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    if let Some((size, version)) = opt {
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, version, 0, 0, 0, 0]);
    }
    m
}

#[test]
fn rfc1035_4_1_query_parses() {
    let q = parse_query(&query(b"\x03WWW\x07example\x03com\x00", 1, None)).unwrap();
    assert_eq!((q.id, q.qtype, q.qclass, q.rd), (0x1234, 1, 1, true));
    assert_eq!(q.qname.wire(), b"\x03www\x07example\x03com\x00");
    assert_eq!(q.qname_raw, b"\x03WWW\x07example\x03com\x00");
    assert_eq!(q.edns, None);
}

#[test]
fn rfc6891_6_1_opt_record() {
    let q = parse_query(&query(b"\x00", 6, Some((4096, 0)))).unwrap();
    assert_eq!(q.edns, Some(Edns { udp_size: 4096, version: 0, dnssec_ok: false, cookie: None }));
    let q = parse_query(&query(b"\x00", 6, Some((1232, 1)))).unwrap();
    assert_eq!(q.edns.unwrap().version, 1);
}

#[test]
fn rfc1035_4_1_1_malformed_queries() {
    assert_eq!(parse_query(&[0; 5]), Err(QueryError::NoHeader));
    let mut m = query(b"\x00", 1, None);
    m.truncate(m.len() - 1);
    assert!(matches!(parse_query(&m), Err(QueryError::Malformed { id: 0x1234, .. })));
    let mut m = query(b"\x00", 1, None);
    m[5] = 2; // two questions
    assert!(matches!(parse_query(&m), Err(QueryError::Malformed { .. })));
    let mut m = query(b"\x00", 1, None);
    m[2] |= 0x80; // a response
    assert_eq!(parse_query(&m), Err(QueryError::IsResponse));
    let mut m = query(b"\x00", 1, None);
    m[2] = 0x28; // opcode 5 (UPDATE)
    assert_eq!(parse_query(&m), Err(QueryError::NotImplemented { id: 0x1234, opcode: 5 }));
    let mut m = query(b"\x00", 1, None);
    m.push(0); // trailing garbage
    assert!(matches!(parse_query(&m), Err(QueryError::Malformed { .. })));
}

#[test]
fn rfc1035_4_1_4_writer_compresses() {
    let name = Name::parse("www.example.com.", None).unwrap();
    let mut w = Writer::new(1, flags::QR, Some((b"\x03WWW\x07example\x03com\x00", 1, 1)));
    let at = w.begin_record(Section::Answer, name.wire(), 1, 1, 60);
    w.bytes(&[1, 2, 3, 4]);
    w.end_record(at);
    let mx = Name::parse("mail.example.com.", None).unwrap();
    let at = w.begin_record(Section::Answer, mx.wire(), 1, 1, 60);
    w.end_record(at);
    let msg = w.finish();
    // Answer owner is a pointer to the question name (offset 12).
    assert_eq!(&msg[12 + 17 + 4..12 + 17 + 6], &[0xc0, 12]);
    // "mail" then a pointer to "example.com" at offset 16.
    let tail = &msg[msg.len() - 10 - 7..msg.len() - 10];
    assert_eq!(tail, b"\x04mail\xc0\x10");
    assert_eq!(u16::from_be_bytes([msg[6], msg[7]]), 2);
}
