use super::*;

/// Queries signed by BIND's `dig -y` (9.18), captured on loopback:
/// `dig -y hmac-sha256:transfer-key.:c2Vj… example.com SOA` and
/// `dig -y hmac-sha512:k512.example.:bW9y… www.example.com A +noedns`.
const DIG_SHA256: &[u8] = include_bytes!("dig-hmac-sha256.bin");
const DIG_SHA512: &[u8] = include_bytes!("dig-hmac-sha512.bin");

fn key256() -> Key {
    Key::parse("transfer-key=hmac-sha256:c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzIQ==").unwrap()
}

fn key512() -> Key {
    Key::parse("k512.example.=HMAC-SHA512.:bW9yZ2FuYS10c2lnLXNoYTUxMi10ZXN0LWtleQ==").unwrap()
}

#[test]
fn queries_signed_by_dig_verify() {
    for (msg, key) in [(DIG_SHA256, key256()), (DIG_SHA512, key512())] {
        let t = find(msg).unwrap().expect("signed");
        assert_eq!(t.key, key.name);
        assert_eq!(t.mac.len(), key.algorithm.mac_len());
        assert_eq!(verify(msg, &t, core::slice::from_ref(&key), None, t.time_signed), Ok(0));
        // Within the fudge either way, and not beyond it.
        assert_eq!(verify(msg, &t, core::slice::from_ref(&key), None, t.time_signed + t.fudge as u64), Ok(0));
        let late = verify(msg, &t, core::slice::from_ref(&key), None, t.time_signed + t.fudge as u64 + 1);
        assert_eq!(late, Err(Refused { error: error::BADTIME, key: Some(0) }));
    }
}

#[test]
fn a_changed_byte_a_wrong_secret_or_an_unknown_key_is_refused() {
    let t = find(DIG_SHA256).unwrap().unwrap();
    let now = t.time_signed;
    let mut changed = DIG_SHA256.to_vec();
    changed[13] ^= 0x20; // the question name's case
    let bad = Refused { error: error::BADSIG, key: Some(0) };
    assert_eq!(verify(&changed, &t, &[key256()], None, now), Err(bad));
    let wrong = Key::new(key256().name, Algorithm::HmacSha256, b"another secret".to_vec()).unwrap();
    assert_eq!(verify(DIG_SHA256, &t, &[wrong], None, now), Err(bad));
    let other_name = Key::parse("other=hmac-sha256:c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGVzIQ==").unwrap();
    assert_eq!(verify(DIG_SHA256, &t, &[other_name], None, now), Err(Refused { error: error::BADKEY, key: None }));
    // The same name with another algorithm is another key.
    let other_alg = Key::new(key256().name, Algorithm::HmacSha512, b"x".to_vec()).unwrap();
    assert_eq!(verify(DIG_SHA256, &t, &[other_alg], None, now).unwrap_err().error, error::BADKEY);
}

#[test]
fn a_truncated_mac_gets_badtrunc() {
    let mut t = find(DIG_SHA256).unwrap().unwrap();
    t.mac.truncate(16);
    assert_eq!(verify(DIG_SHA256, &t, &[key256()], None, t.time_signed).unwrap_err().error, error::BADTRUNC);
}

#[test]
fn signed_responses_and_streams_verify_on_the_other_side() {
    let key = key512();
    let request = find(DIG_SHA512).unwrap().unwrap();
    let now = request.time_signed + 3;
    // A first response covers the request's MAC.
    let mut first = b"\x12\x34\x84\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let mac1 = sign(&mut first, &key, Some(&request.mac), now, 0, &[]);
    let t1 = find(&first).unwrap().unwrap();
    assert_eq!((t1.original_id, t1.error, t1.fudge), (0x1234, 0, FUDGE));
    assert_eq!(verify(&first, &t1, core::slice::from_ref(&key), Some(&request.mac), now), Ok(0));
    assert!(verify(&first, &t1, core::slice::from_ref(&key), None, now).is_err(), "the request MAC is covered");
    // The next message of the stream covers the previous MAC.
    let mut second = b"\x12\x34\x84\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let mac2 = sign_continuation(&mut second, &key, &mac1, now + 1);
    let t2 = find(&second).unwrap().unwrap();
    assert_eq!(t2.mac, mac2);
    assert_eq!(verify_continuation(&second, &t2, &key, &mac1, &[], now + 1), Ok(()));
    assert!(verify_continuation(&second, &t2, &key, &mac2, &[], now + 1).is_err());
    // A changed ID is undone by the original ID (a forwarder may change it).
    second[0] = 0x99;
    assert_eq!(verify_continuation(&second, &t2, &key, &mac1, &[], now + 1), Ok(()));
}

#[test]
fn error_answers_carry_the_request_key_and_no_mac() {
    let request = find(DIG_SHA256).unwrap().unwrap();
    let mut answer = b"\xbf\x72\x81\x09\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    append_unsigned(&mut answer, &request, 42, error::BADKEY);
    let t = find(&answer).unwrap().unwrap();
    assert_eq!((t.key, t.algorithm, t.mac.len(), t.error), (request.key, request.algorithm, 0, error::BADKEY));
    assert_eq!(time_other(0x0102_0304_0506), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn keys_and_algorithms_are_checked() {
    assert!(Algorithm::parse("hmac-md5").unwrap_err().contains("refused"));
    assert!(Algorithm::parse("HMAC-MD5.SIG-ALG.REG.INT.").unwrap_err().contains("refused"));
    assert!(Algorithm::parse("hmac-sha1").unwrap_err().contains("unsupported"));
    for bad in
        ["", "name", "name=hmac-sha256", "name=hmac-sha256:not base64!", "name=hmac-sha256:", "=hmac-sha256:AAAA"]
    {
        assert!(Key::parse(bad).is_err(), "{bad:?}");
    }
    assert!(!format!("{:?}", key256()).contains("c2Vj"), "Debug hides the secret");
}

#[test]
fn malformed_or_misplaced_records_are_refused() {
    assert_eq!(find(b"\0\0\0\0\0\0\0\0\0\0\0\0"), Ok(None));
    // Cut anywhere inside the TSIG record.
    let t = find(DIG_SHA256).unwrap().unwrap();
    for cut in t.start + 1..DIG_SHA256.len() {
        assert!(find(&DIG_SHA256[..cut]).is_err(), "cut at {cut}");
    }
    // A TSIG record followed by another record is not the last.
    let mut twice = DIG_SHA256.to_vec();
    twice.extend_from_slice(&DIG_SHA256[t.start..]);
    twice[11] += 1;
    assert!(find(&twice).is_err());
}
