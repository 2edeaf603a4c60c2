//! The certificate's key (P-256) and its PKCS#10 request (RFC 2986) naming
//! the domains in a subjectAltName extension.

use alloc::string::String;
use alloc::vec::Vec;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use crate::der::{bit_string, seq, set, tlv};
use crate::Error;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const OID_ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_EXTENSION_REQUEST: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
pub(crate) const OID_SUBJECT_ALT_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x11];
pub(crate) const OID_COMMON_NAME: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];

/// A certificate's private key.
pub struct CertKey {
    key: SigningKey,
}

impl core::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CertKey")
    }
}

impl CertKey {
    /// The key with this secret scalar (32 random bytes); `None` for the
    /// rare value that is not a valid scalar (draw again).
    pub fn from_secret(secret: &[u8; 32]) -> Option<CertKey> {
        SigningKey::from_slice(secret).ok().map(|key| CertKey { key })
    }

    /// The key as PKCS#8 PEM, as TLS servers load it.
    pub fn to_pem(&self) -> Result<String, Error> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|s| String::from(s.as_str()))
            .map_err(|e| Error::new(alloc::format!("certificate key: {e}")))
    }

    /// The SubjectPublicKeyInfo (DER).
    pub(crate) fn spki(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        seq(&[&seq(&[OID_EC_PUBLIC_KEY, OID_P256]), &bit_string(point.as_bytes())])
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// A DER certificate request for `domains` (at least one), signed with
    /// this key. The first domain is also the subject's common name when it
    /// fits (64 characters).
    pub fn csr(&self, domains: &[String]) -> Vec<u8> {
        let spki = self.spki();
        let subject = match domains.first() {
            Some(d) if d.len() <= 64 => seq(&[&set(&[&seq(&[OID_COMMON_NAME, &tlv(0x0c, d.as_bytes())])])]),
            _ => seq(&[]),
        };
        // GeneralName dNSName is [2] IMPLICIT IA5String.
        let names: Vec<Vec<u8>> = domains.iter().map(|d| tlv(0x82, d.as_bytes())).collect();
        let names: Vec<&[u8]> = names.iter().map(|n| n.as_slice()).collect();
        let san = seq(&[OID_SUBJECT_ALT_NAME, &tlv(0x04, &seq(&names))]);
        let extension_request = seq(&[OID_EXTENSION_REQUEST, &set(&[&seq(&[&san])])]);
        let info = seq(&[&tlv(0x02, &[0]), &subject, &spki, &tlv(0xa0, &extension_request)]);
        let sig: Signature = self.key.sign(&info);
        seq(&[&info, &seq(&[OID_ECDSA_SHA256]), &bit_string(sig.to_der().as_bytes())])
    }
}

/// DER as PEM with this label.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = alloc::format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(line).unwrap_or(""));
        out.push('\n');
    }
    out.push_str(&alloc::format!("-----END {label}-----\n"));
    out
}

/// The DER of every `CERTIFICATE` block in a PEM chain, in order.
pub fn pem_certificates(chain: &str) -> Result<Vec<Vec<u8>>, Error> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = chain;
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let end = body.find(END).ok_or_else(|| Error::new("certificate chain: unterminated PEM block"))?;
        let b64: String = body[..end].chars().filter(|c| !c.is_ascii_whitespace()).collect();
        out.push(STANDARD.decode(b64).map_err(|e| Error::new(alloc::format!("certificate chain: {e}")))?);
        rest = &body[end + END.len()..];
    }
    if out.is_empty() {
        return Err(Error::new("certificate chain: no certificate"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::der::read;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    #[test]
    fn csr_is_well_formed_and_self_signed() {
        let k = CertKey::from_secret(&[9u8; 32]).unwrap();
        let domains = [String::from("a.example"), String::from("b.example")];
        let csr = k.csr(&domains);
        let (0x30, body, []) = read(&csr).unwrap() else { panic!("not one SEQUENCE") };
        let (0x30, info, rest) = read(body).unwrap() else { panic!("no info") };
        let info_der = &body[..body.len() - rest.len()];
        let (0x30, alg, rest) = read(rest).unwrap() else { panic!("no algorithm") };
        assert_eq!(alg, OID_ECDSA_SHA256);
        let (0x03, sig, []) = read(rest).unwrap() else { panic!("no signature") };
        let sig = Signature::from_der(&sig[1..]).unwrap();
        VerifyingKey::from(&k.key).verify(info_der, &sig).unwrap();
        // Version 0, subject CN, key, then the requested names in order.
        let (0x02, [0], rest) = read(info).unwrap() else { panic!("version") };
        let (0x30, subject, rest) = read(rest).unwrap() else { panic!("subject") };
        assert!(subject.windows(9).any(|w| w == b"a.example"));
        let (0x30, _spki, rest) = read(rest).unwrap() else { panic!("spki") };
        let (0xa0, attrs, []) = read(rest).unwrap() else { panic!("attributes") };
        let a = attrs.windows(9).position(|w| w == b"a.example").unwrap();
        let b = attrs.windows(9).position(|w| w == b"b.example").unwrap();
        assert!(a < b && attrs[a - 2] == 0x82 && attrs[b - 2] == 0x82);
    }

    #[test]
    fn pem_round_trip_and_errors() {
        let der = [1u8, 2, 3, 200, 100];
        let text = alloc::format!("{}{}", pem("CERTIFICATE", &der), pem("CERTIFICATE", &[5u8; 100]));
        let back = pem_certificates(&text).unwrap();
        assert_eq!(back, [der.to_vec(), [5u8; 100].to_vec()]);
        assert!(pem_certificates("").is_err());
        assert!(pem_certificates("-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        assert!(pem_certificates("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err());
        assert!(CertKey::from_secret(&[0u8; 32]).is_none());
        assert!(CertKey::from_secret(&[1u8; 32]).unwrap().to_pem().unwrap().contains("PRIVATE KEY"));
    }
}
