//! The crypto provider: `rustls-rustcrypto`'s, with its AES-GCM suites run
//! by the CPU when the backend registered an AES-GCM engine
//! ([`morgana_devices::aes_gcm`]): AES-NI and PCLMULQDQ in the VM image.
//! Without an engine (no AES-NI, or hosted) the suites stay RustCrypto's
//! software ones. Only the record protection changes: key exchange,
//! signatures, hashes and key derivation are the provider's.

mod records;
pub mod selftest;

use alloc::boxed::Box;
use alloc::vec::Vec;

use morgana_devices::{aes_gcm, AesGcm};
use rustls::crypto::{CipherSuiteCommon, CryptoProvider};
use rustls::{CipherSuite, SupportedCipherSuite, Tls12CipherSuite, Tls13CipherSuite};

use records::Gcm;

/// The provider every TLS config here uses.
pub fn provider() -> CryptoProvider {
    let mut provider = rustls_rustcrypto::provider();
    if let Some(engine) = aes_gcm() {
        provider.cipher_suites = with_engine(engine).clone();
    }
    provider
}

/// Which AES-GCM does the record protection: the engine's name, or
/// RustCrypto's software.
pub fn aes_gcm_path() -> &'static str {
    aes_gcm().map_or("software (RustCrypto)", |e| e.name())
}

/// The suites, built once (the suite tables must be `'static`).
static SUITES: spin::Once<Vec<SupportedCipherSuite>> = spin::Once::new();

fn with_engine(engine: &'static dyn AesGcm) -> &'static Vec<SupportedCipherSuite> {
    SUITES.call_once(|| rustls_rustcrypto::provider().cipher_suites.iter().map(|s| replace(*s, engine)).collect())
}

fn key_len(suite: CipherSuite) -> Option<usize> {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Some(16),
        CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Some(32),
        _ => None,
    }
}

fn common(c: &CipherSuiteCommon) -> CipherSuiteCommon {
    CipherSuiteCommon { suite: c.suite, hash_provider: c.hash_provider, confidentiality_limit: c.confidentiality_limit }
}

/// `suite` with the engine's AES-GCM, if it is an AES-GCM suite.
fn replace(suite: SupportedCipherSuite, engine: &'static dyn AesGcm) -> SupportedCipherSuite {
    let Some(len) = key_len(suite.suite()) else { return suite };
    let aead: &'static Gcm = Box::leak(Box::new(Gcm { engine, key_len: len }));
    match suite {
        SupportedCipherSuite::Tls13(s) => SupportedCipherSuite::Tls13(Box::leak(Box::new(Tls13CipherSuite {
            common: common(&s.common),
            hkdf_provider: s.hkdf_provider,
            aead_alg: aead,
            quic: s.quic,
        }))),
        SupportedCipherSuite::Tls12(s) => SupportedCipherSuite::Tls12(Box::leak(Box::new(Tls12CipherSuite {
            common: common(&s.common),
            prf_provider: s.prf_provider,
            kx: s.kx,
            sign: s.sign,
            aead_alg: aead,
        }))),
    }
}
