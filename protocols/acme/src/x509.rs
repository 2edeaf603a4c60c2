//! Self-signed certificates: the TLS-ALPN-01 challenge certificate (RFC
//! 8737 §3), and a stand-in served until the CA's certificate arrives.

use alloc::string::String;
use alloc::vec::Vec;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::Signature;
use sha2::{Digest, Sha256};

use crate::csr::{pem, CertKey, OID_COMMON_NAME, OID_ECDSA_SHA256, OID_SUBJECT_ALT_NAME};
use crate::der::{bit_string, seq, set, tlv};
use crate::Error;

/// id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31.
const OID_ACME_IDENTIFIER: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];

/// A self-signed certificate for `domains`, valid from `not_before` to
/// `not_after` (Unix seconds), with `extra` extensions (encoded).
fn self_signed(key: &CertKey, domains: &[String], not_before: i64, not_after: i64, extra: &[&[u8]]) -> Vec<u8> {
    let spki = key.spki();
    // A positive serial number, unique per key.
    let mut serial = Sha256::digest(&spki)[..16].to_vec();
    serial[0] &= 0x7f;
    serial[0] |= 0x40;
    let name = match domains.first() {
        Some(d) if d.len() <= 64 => seq(&[&set(&[&seq(&[OID_COMMON_NAME, &tlv(0x0c, d.as_bytes())])])]),
        _ => seq(&[]),
    };
    let validity = seq(&[&time(not_before), &time(not_after)]);
    let names: Vec<Vec<u8>> = domains.iter().map(|d| tlv(0x82, d.as_bytes())).collect();
    let names: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
    let san = seq(&[OID_SUBJECT_ALT_NAME, &tlv(0x04, &seq(&names))]);
    let mut exts: Vec<&[u8]> = alloc::vec![&san];
    exts.extend_from_slice(extra);
    let tbs = seq(&[
        &tlv(0xa0, &tlv(0x02, &[2])),
        &tlv(0x02, &serial),
        &seq(&[OID_ECDSA_SHA256]),
        &name,
        &validity,
        &name,
        &spki,
        &tlv(0xa3, &seq(&exts)),
    ]);
    let sig: Signature = key.signing_key().sign(&tbs);
    seq(&[&tbs, &seq(&[OID_ECDSA_SHA256]), &bit_string(sig.to_der().as_bytes())])
}

/// A stand-in certificate for `domains` (PEM), from `now` for `days` days.
pub fn temporary(key: &CertKey, domains: &[String], now: i64, days: i64) -> String {
    pem("CERTIFICATE", &self_signed(key, domains, now - 3600, now + days * 86_400, &[]))
}

/// The TLS-ALPN-01 certificate for `domain` (PEM): its only name, and the
/// critical acmeIdentifier extension holding SHA-256 of the key
/// authorization.
pub fn tls_alpn01(key: &CertKey, domain: &str, key_authorization: &str, now: i64) -> Result<String, Error> {
    let digest = Sha256::digest(key_authorization.as_bytes());
    let ext = seq(&[OID_ACME_IDENTIFIER, &tlv(0x01, &[0xff]), &tlv(0x04, &tlv(0x04, &digest))]);
    let der = self_signed(key, &[String::from(domain)], now - 3600, now + 7 * 86_400, &[&ext]);
    Ok(pem("CERTIFICATE", &der))
}

/// UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5).
fn time(unix: i64) -> Vec<u8> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if (1950..2050).contains(&y) {
        tlv(0x17, alloc::format!("{:02}{m:02}{d:02}{h:02}{min:02}{s:02}Z", y % 100).as_bytes())
    } else {
        tlv(0x18, alloc::format!("{y:04}{m:02}{d:02}{h:02}{min:02}{s:02}Z").as_bytes())
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::der::{read, validity};

    #[test]
    fn times_round_trip_through_the_reader() {
        let key = CertKey::from_secret(&[5; 32]).unwrap();
        for (nb, na) in [(0, 86_400), (1_735_689_600, 2_524_608_000), (951_868_800, 4_102_444_800)] {
            let der = self_signed(&key, &[String::from("a.test")], nb, na, &[]);
            assert_eq!(validity(&der), Some((nb, na)));
        }
    }

    #[test]
    fn challenge_certificate_carries_the_digest_critically() {
        let key = CertKey::from_secret(&[6; 32]).unwrap();
        let pem = tls_alpn01(&key, "a.test", "tok.thumb", 1_800_000_000).unwrap();
        let der = crate::csr::pem_certificates(&pem).unwrap().remove(0);
        let digest = Sha256::digest(b"tok.thumb");
        let want = [OID_ACME_IDENTIFIER, &[0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20], &digest[..]].concat();
        assert!(der.windows(want.len()).any(|w| w == want.as_slice()));
        let (0x30, body, []) = read(&der).unwrap() else { panic!("one SEQUENCE") };
        let (0x30, _tbs, rest) = read(body).unwrap() else { panic!("tbs") };
        assert_eq!(read(rest).unwrap().1, OID_ECDSA_SHA256);
    }
}
