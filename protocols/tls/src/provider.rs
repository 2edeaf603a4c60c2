//! The crypto behind TLS, chosen by target: `ring` (assembly AES-GCM,
//! ChaCha20-Poly1305, P-256 and X25519) on hosted builds, the pure-Rust
//! `rustls-rustcrypto` in the VM image (`ring` does not build for
//! `x86_64-unknown-none`) or with the `rustcrypto` feature, its AES-GCM on
//! the CPU's AES-NI when the backend offers it (`cpu_aead`). Both offer the
//! same suites in the same order, so the server's preference is the same.

use alloc::sync::Arc;
use alloc::vec::Vec;

use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use rustls::CipherSuite;

#[cfg(all(not(target_os = "none"), not(feature = "rustcrypto")))]
mod chosen {
    use super::*;

    pub(super) const NAME: &str = "ring";

    pub(super) fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    /// Stateless tickets: rustls's ring ticketer (ChaCha20-Poly1305,
    /// random keys rotated every 6 hours).
    pub(super) fn ticketer() -> Result<Option<Arc<dyn ProducesTickets>>, rustls::Error> {
        rustls::crypto::ring::Ticketer::new().map(Some)
    }
}

#[cfg(any(target_os = "none", feature = "rustcrypto"))]
mod chosen {
    use super::*;

    pub(super) const NAME: &str = "rustcrypto";

    /// RustCrypto, with its AES-GCM suites on the CPU's engine when the
    /// backend registered one.
    pub(super) fn provider() -> CryptoProvider {
        crate::cpu_aead::provider()
    }

    /// rustls has no ticketer without `std` and the provider none: TLS 1.3
    /// resumption uses the server's session cache instead.
    pub(super) fn ticketer() -> Result<Option<Arc<dyn ProducesTickets>>, rustls::Error> {
        Ok(None)
    }
}

/// The crypto provider of this build: `"ring"` or `"rustcrypto"`.
pub const CRYPTO: &str = chosen::NAME;

/// The server's cipher-suite preference, best first: AES-GCM (128, then
/// 256) before ChaCha20-Poly1305, ECDSA before RSA in TLS 1.2.
const SUITE_ORDER: &[CipherSuite] = &[
    CipherSuite::TLS13_AES_128_GCM_SHA256,
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// This build's provider, its suites in [`SUITE_ORDER`] (suites not listed
/// there are dropped).
pub(crate) fn provider() -> CryptoProvider {
    let mut p = chosen::provider();
    p.cipher_suites = ordered(&p.cipher_suites);
    p
}

/// The ticketer for stateless resumption, if this build has one.
pub(crate) fn ticketer() -> Result<Option<Arc<dyn ProducesTickets>>, rustls::Error> {
    chosen::ticketer()
}

fn ordered(suites: &[rustls::SupportedCipherSuite]) -> Vec<rustls::SupportedCipherSuite> {
    SUITE_ORDER.iter().filter_map(|want| suites.iter().find(|s| s.suite() == *want).copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &CryptoProvider) -> Vec<CipherSuite> {
        p.cipher_suites.iter().map(|s| s.suite()).collect()
    }

    #[test]
    fn every_suite_in_the_preferred_order() {
        assert_eq!(names(&provider()), SUITE_ORDER);
    }

    /// ring and RustCrypto give the server the same preference.
    #[cfg(not(target_os = "none"))]
    #[test]
    fn both_providers_agree() {
        let ring = ordered(&rustls::crypto::ring::default_provider().cipher_suites);
        let rc = ordered(&rustls_rustcrypto::provider().cipher_suites);
        assert_eq!(
            ring.iter().map(|s| s.suite()).collect::<Vec<_>>(),
            rc.iter().map(|s| s.suite()).collect::<Vec<_>>()
        );
        assert_eq!(
            rustls::crypto::ring::default_provider().kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>(),
            rustls_rustcrypto::provider().kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>()
        );
    }
}
