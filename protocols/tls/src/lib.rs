//! TLS streams for Morgana, server and client side.
//!
//! rustls's unbuffered API (the one available without `std`) driven over
//! the framework's TCP streams: [`TlsAcceptor::accept`] and
//! [`TlsConnector::connect`] run the handshake and return a [`TlsStream`]
//! that implements `embedded_io_async::Read` and `Write`, so protocols
//! (HTTP) run over it unchanged. A server's certificate lives in a
//! [`CertCell`], so it can be replaced (renewed) without a restart.
//!
//! Crypto ([`CRYPTO`]): rustls's `ring` provider on hosted builds; in the
//! VM image (or with the `rustcrypto` feature) the `rustls-rustcrypto`
//! provider (pure Rust, builds for `x86_64-unknown-none`), pinned, with the
//! RustCrypto SIMD back ends forced to software; its AES-GCM suites run on
//! the CPU's AES-NI and PCLMULQDQ when the backend registered an engine
//! ([`aes_gcm_path`]). TLS 1.3 and 1.2,
//! X25519/P-256/P-384 key exchange, AES-GCM and ChaCha20-Poly1305, ECDSA,
//! Ed25519 and RSA certificates. Servers resume sessions: stateless
//! tickets where there is a ticketer (ring), and a bounded session cache.
//! Randomness comes from the platform's entropy source (the OS when
//! hosted; the VM backend registers its device through `getrandom`).
//! Certificate validity needs the wall clock, given as a [`Clock`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod client;
mod cpu_aead;
mod provider;
mod server;
mod sessions;
mod stream;

pub use client::{TlsClientStream, TlsConnector};
pub use cpu_aead::{aes_gcm_path, selftest};
pub use provider::CRYPTO;
pub use server::{certified_key, CertCell, TlsAcceptor, ACME_TLS_ALPN};
pub use stream::{Conn, TlsStream};

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use morgana_devices::Clock;
use rustls::pki_types::UnixTime;

/// Why a TLS operation failed.
#[derive(Debug)]
pub enum TlsError {
    /// The certificate chain or key could not be used.
    Config(String),
    /// The peer violated the protocol, or a check (certificate, version,
    /// cipher) failed.
    Tls(rustls::Error),
    /// The TCP connection failed.
    Net(morgana_net::Error),
    /// The handshake did not finish in time.
    TimedOut,
    /// The connection is closed.
    Closed,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Config(m) => write!(f, "TLS configuration: {m}"),
            TlsError::Tls(e) => write!(f, "TLS: {e}"),
            TlsError::Net(e) => write!(f, "{e}"),
            TlsError::TimedOut => f.write_str("TLS handshake timed out"),
            TlsError::Closed => f.write_str("TLS connection closed"),
        }
    }
}

impl core::error::Error for TlsError {}

impl embedded_io::Error for TlsError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            TlsError::Net(e) => embedded_io::Error::kind(e),
            TlsError::TimedOut => embedded_io::ErrorKind::TimedOut,
            TlsError::Closed => embedded_io::ErrorKind::BrokenPipe,
            TlsError::Config(_) | TlsError::Tls(_) => embedded_io::ErrorKind::InvalidData,
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Tls(e)
    }
}

impl From<morgana_net::Error> for TlsError {
    fn from(e: morgana_net::Error) -> Self {
        TlsError::Net(e)
    }
}

/// rustls's view of the wall clock.
pub(crate) struct WallClock<C>(pub(crate) C);

impl<C> fmt::Debug for WallClock<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WallClock")
    }
}

impl<C: Clock + Send + Sync> rustls::time_provider::TimeProvider for WallClock<C> {
    fn current_time(&self) -> Option<UnixTime> {
        self.0.wall().map(|w| UnixTime::since_unix_epoch(Duration::from_secs(w.unix_seconds())))
    }
}
