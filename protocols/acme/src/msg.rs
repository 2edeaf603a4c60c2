//! ACME resources (RFC 8555 §7.1) as the server sends them, and the
//! payloads this client sends. Unknown members are ignored; missing
//! required ones are an error.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

/// The directory (§7.1.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// Where to get a fresh nonce.
    pub new_nonce: String,
    /// Where to create (or find) the account.
    pub new_account: String,
    /// Where to place an order.
    pub new_order: String,
}

/// A problem document (RFC 7807), as ACME errors come.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    /// e.g. `urn:ietf:params:acme:error:badNonce`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A human-readable explanation.
    #[serde(default)]
    pub detail: String,
}

impl Problem {
    /// Whether the server rejected the nonce (the request may be retried
    /// with the fresh one it sent).
    pub fn is_bad_nonce(&self) -> bool {
        self.kind == "urn:ietf:params:acme:error:badNonce"
    }
}

impl core::fmt::Display for Problem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// An identifier (§9.7.7): this client asks for `dns` names only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identifier {
    /// `dns`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name.
    pub value: String,
}

/// An order (§7.1.3).
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// pending, ready, processing, valid or invalid.
    pub status: String,
    /// Its authorizations' URLs.
    #[serde(default)]
    pub authorizations: Vec<String>,
    /// Where to send the CSR.
    pub finalize: String,
    /// Where the certificate is, once valid.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Why it is invalid.
    #[serde(default)]
    pub error: Option<Problem>,
}

/// An authorization (§7.1.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    /// pending, valid, invalid, deactivated, expired or revoked.
    pub status: String,
    /// The name it is for.
    pub identifier: Identifier,
    /// The ways to prove control.
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

/// A challenge (§7.1.5, §8).
#[derive(Debug, Clone, Deserialize)]
pub struct Challenge {
    /// e.g. `http-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to tell the server it may validate.
    pub url: String,
    /// pending, processing, valid or invalid.
    pub status: String,
    /// The token (for http-01 and tls-alpn-01).
    #[serde(default)]
    pub token: Option<String>,
    /// Why validation failed.
    #[serde(default)]
    pub error: Option<Problem>,
}

/// A newAccount request (§7.3).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAccount<'a> {
    /// Always true: the operator chose this CA.
    pub terms_of_service_agreed: bool,
    /// `mailto:` URLs.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub contact: &'a [String],
}

/// A newOrder request (§7.4).
#[derive(Debug, Serialize)]
pub struct NewOrder {
    /// The names wanted.
    pub identifiers: Vec<Identifier>,
}

/// A finalize request (§7.4).
#[derive(Debug, Serialize)]
pub struct Finalize {
    /// The CSR, DER in base64url.
    pub csr: String,
}

/// Whether a token may be used as is in a URL path: base64url characters
/// only (§8.3), and of a sane length.
pub fn token_is_valid(token: &str) -> bool {
    (16..=256).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_pebble_sends_and_ignores_extra_members() {
        let order: Order = serde_json::from_str(
            r#"{"status":"pending","expires":"x","identifiers":[{"type":"dns","value":"a.test"}],
            "finalize":"https://ca/f","authorizations":["https://ca/a/1"],"extra":{"n":1}}"#,
        )
        .unwrap();
        assert_eq!(order.authorizations, ["https://ca/a/1"]);
        assert!(order.certificate.is_none());
        let authz: Authorization = serde_json::from_str(
            r#"{"status":"pending","identifier":{"type":"dns","value":"a.test"},
            "challenges":[{"type":"http-01","url":"https://ca/c","token":"abc","status":"pending"}]}"#,
        )
        .unwrap();
        assert_eq!(authz.challenges[0].token.as_deref(), Some("abc"));
    }

    #[test]
    fn malformed_resources_are_errors() {
        assert!(serde_json::from_str::<Order>(r#"{"status":"pending"}"#).is_err());
        assert!(serde_json::from_str::<Order>(r#"{"status":1,"finalize":"f"}"#).is_err());
        assert!(serde_json::from_str::<Directory>("[").is_err());
        assert!(serde_json::from_str::<Directory>(r#"{"newNonce":"n","newAccount":"a"}"#).is_err());
    }

    #[test]
    fn payloads() {
        let c = [String::from("mailto:a@b")];
        let s = serde_json::to_string(&NewAccount { terms_of_service_agreed: true, contact: &c }).unwrap();
        assert_eq!(s, r#"{"termsOfServiceAgreed":true,"contact":["mailto:a@b"]}"#);
        let s = serde_json::to_string(&NewAccount { terms_of_service_agreed: true, contact: &[] }).unwrap();
        assert_eq!(s, r#"{"termsOfServiceAgreed":true}"#);
    }

    #[test]
    fn tokens() {
        assert!(token_is_valid("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
        assert!(!token_is_valid("../../etc/passwd/aaaaaaaaaaaaaaa"));
        assert!(!token_is_valid("short"));
    }
}
