//! JOSE for ACME (RFC 8555 §6.2): the ES256 account key, its JWK and
//! thumbprint (RFC 7638), and flattened JWS requests.

use alloc::string::String;
use alloc::vec::Vec;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use sha2::{Digest, Sha256};

use crate::Error;

/// base64url without padding (RFC 7515 §2).
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// A JSON string literal, escaped.
fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// The ACME account key: ECDSA P-256 with SHA-256 (ES256).
pub struct AccountKey {
    key: SigningKey,
}

impl core::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AccountKey({})", self.thumbprint())
    }
}

impl AccountKey {
    /// The key with this secret scalar (32 random bytes); `None` for the
    /// rare value that is not a valid scalar (draw again).
    pub fn from_secret(secret: &[u8; 32]) -> Option<AccountKey> {
        SigningKey::from_slice(secret).ok().map(|key| AccountKey { key })
    }

    /// Reads a PKCS#8 PEM private key (as [`AccountKey::to_pem`] writes).
    pub fn from_pem(pem: &str) -> Result<AccountKey, Error> {
        SigningKey::from_pkcs8_pem(pem)
            .map(|key| AccountKey { key })
            .map_err(|e| Error::new(alloc::format!("account key: {e}")))
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pem(&self) -> Result<String, Error> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|s| String::from(s.as_str()))
            .map_err(|e| Error::new(alloc::format!("account key: {e}")))
    }

    /// The public key as a JWK, members in the order RFC 7638 hashes.
    pub fn jwk(&self) -> String {
        let point = self.key.verifying_key().to_encoded_point(false);
        let x = point.x().map(|x| b64(x)).unwrap_or_default();
        let y = point.y().map(|y| b64(y)).unwrap_or_default();
        alloc::format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
    }

    /// The JWK thumbprint (RFC 7638), base64url.
    pub fn thumbprint(&self) -> String {
        b64(&Sha256::digest(self.jwk().as_bytes()))
    }

    /// The key authorization for a challenge token (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        alloc::format!("{token}.{}", self.thumbprint())
    }

    /// A flattened JWS (RFC 7515 §7.2.2) over `payload` for `url`: with the
    /// account URL as `kid` once the account exists, else with the `jwk`.
    /// An empty payload is a POST-as-GET.
    pub fn sign(&self, url: &str, nonce: &str, kid: Option<&str>, payload: &[u8]) -> Vec<u8> {
        let who = match kid {
            Some(kid) => alloc::format!(r#""kid":{}"#, json_str(kid)),
            None => alloc::format!(r#""jwk":{}"#, self.jwk()),
        };
        let protected =
            alloc::format!(r#"{{"alg":"ES256",{who},"nonce":{},"url":{}}}"#, json_str(nonce), json_str(url));
        let protected = b64(protected.as_bytes());
        let payload = b64(payload);
        let signing_input = alloc::format!("{protected}.{payload}");
        // ES256 signatures are r || s, 32 bytes each (RFC 7518 §3.4).
        let sig: Signature = self.key.sign(signing_input.as_bytes());
        let sig = b64(&sig.to_bytes());
        alloc::format!(r#"{{"protected":"{protected}","payload":"{payload}","signature":"{sig}"}}"#).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;

    fn key() -> AccountKey {
        AccountKey::from_secret(&[7u8; 32]).unwrap()
    }

    #[test]
    fn jws_verifies_and_carries_the_header() {
        let k = key();
        let jws = k.sign("https://ca/acct", "n\"once", Some("https://ca/acct/1"), b"{}");
        let v: serde_json::Value = serde_json::from_slice(&jws).unwrap();
        let protected = v["protected"].as_str().unwrap();
        let payload = v["payload"].as_str().unwrap();
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(protected).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["nonce"], "n\"once");
        assert_eq!(header["url"], "https://ca/acct");
        assert_eq!(header["kid"], "https://ca/acct/1");
        assert!(header.get("jwk").is_none());
        assert_eq!(URL_SAFE_NO_PAD.decode(payload).unwrap(), b"{}");
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(v["signature"].as_str().unwrap()).unwrap()).unwrap();
        let vk = VerifyingKey::from(&k.key);
        vk.verify(alloc::format!("{protected}.{payload}").as_bytes(), &sig).unwrap();
    }

    #[test]
    fn new_account_carries_the_jwk_and_post_as_get_an_empty_payload() {
        let k = key();
        let jws = k.sign("u", "n", None, b"");
        let v: serde_json::Value = serde_json::from_slice(&jws).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(v["protected"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(header["jwk"]["kty"], "EC");
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert_eq!(v["payload"], "");
    }

    #[test]
    fn thumbprint_matches_rfc7638_for_a_known_key() {
        // The thumbprint is SHA-256 over the JWK with members in
        // lexicographic order and no whitespace; recompute independently.
        let k = key();
        let jwk: serde_json::Value = serde_json::from_str(&k.jwk()).unwrap();
        let canonical = alloc::format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["kty"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(k.thumbprint(), b64(&Sha256::digest(canonical.as_bytes())));
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        assert_eq!(k.key_authorization("tok"), alloc::format!("tok.{}", k.thumbprint()));
    }

    #[test]
    fn pem_round_trip() {
        let k = key();
        let pem = k.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(AccountKey::from_pem(&pem).unwrap().thumbprint(), k.thumbprint());
        assert!(AccountKey::from_pem("garbage").is_err());
    }
}
