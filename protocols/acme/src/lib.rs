//! An ACME (RFC 8555) client: obtains certificates from a CA such as
//! Let's Encrypt, proving control of each name with HTTP-01 or TLS-ALPN-01
//! (RFC 8737; [`x509`] writes its certificate).
//!
//! The protocol ([`client::issue`]) runs over an [`Io`]: HTTPS requests,
//! sleeping, and publishing challenge answers. [`Https`] is the HTTPS part
//! over the framework's TCP and TLS. Keys are ECDSA P-256: the account key
//! signs requests (ES256 JWS, [`jose`]); each certificate gets a fresh key
//! and a DER request written here ([`csr`]).
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod client;
pub mod csr;
pub mod der;
pub mod http;
pub mod jose;
pub mod msg;
pub mod transport;
pub mod x509;

#[cfg(test)]
mod tests;

pub use client::{chain_validity, issue, Answer, ChallengeKind, Io, Issued};
pub use csr::CertKey;
pub use jose::AccountKey;
pub use transport::Https;

use alloc::string::String;

/// Why an ACME step failed: a message for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for Error {}
