//! Known answers for the AES-GCM that TLS records use, runnable in a VM
//! image: NIST vectors through the same AES-GCM the provider picked (the
//! CPU's engine, or RustCrypto's software), and TLS 1.3 and 1.2 records
//! sealed by the provider's AES-256-GCM suites and opened by RustCrypto's
//! software suites (and the other way round). rustls lets only 32-byte
//! record keys be made outside it, hence AES-256 there; AES-128 records
//! are checked by the end-to-end tests against OpenSSL and curl.

use alloc::vec::Vec;
use core::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use morgana_devices::aes_gcm as engine;
use rustls::crypto::cipher::{AeadKey, InboundOpaqueMessage, Iv, OutboundChunks, OutboundPlainMessage};
use rustls::{ContentType, ProtocolVersion, SupportedCipherSuite};

/// Test cases 1 to 4 (AES-128) and 13 to 16 (AES-256) of McGrew and Viega,
/// "The Galois/Counter Mode of Operation (GCM)", the vectors NIST's GCM
/// validation started from: key, nonce, associated data, plaintext,
/// ciphertext, tag.
const VECTORS: [[&str; 6]; 8] = {
    const Z16: &str = "00000000000000000000000000000000";
    const Z32: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    const N0: &str = "000000000000000000000000";
    const K: &str = "feffe9928665731c6d6a8f9467308308";
    const KK: &str = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    const N: &str = "cafebabefacedbaddecaf888";
    const A: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    const P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    const P60: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
    [
        [Z16, N0, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"],
        [Z16, N0, "", Z16, "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"],
        [K, N, "", P64,
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
         "4d5c2af327cd64a62cf35abd2ba6fab4"],
        [K, N, A, P60,
         "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
         "5bc94fbc3221a5db94fae95ae7121a47"],
        [Z32, N0, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"],
        [Z32, N0, "", Z16, "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"],
        [KK, N, "", P64,
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
         "b094dac5d93471bdec1a502270e3cc6c"],
        [KK, N, A, P60,
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
         "76fc6ece0f4e1768cddf8853bb2d551b"],
    ]
};

/// What [`run`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfTest {
    /// Which AES-GCM the provider uses ([`super::aes_gcm_path`]).
    pub path: &'static str,
    /// Vectors whose ciphertext and tag matched and that opened again.
    pub vectors_passed: usize,
    /// Vectors run.
    pub vectors: usize,
    /// AES-256-GCM suites whose records the software suite opened (and
    /// whose software records the provider's suite opened).
    pub suites_passed: usize,
    /// AES-256-GCM suites checked.
    pub suites: usize,
}

impl SelfTest {
    /// Everything passed.
    pub fn ok(&self) -> bool {
        self.vectors_passed == self.vectors && self.suites_passed == self.suites && self.suites > 0
    }
}

impl fmt::Display for SelfTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AES-GCM by {}: {} of {} NIST vectors, {} of {} TLS suites agree with software",
            self.path, self.vectors_passed, self.vectors, self.suites_passed, self.suites
        )
    }
}

/// Runs the vectors and the record checks.
pub fn run() -> SelfTest {
    let vectors_passed = VECTORS.iter().filter(|v| vector(v)).count();
    let provider = super::provider().cipher_suites;
    let software = rustls_rustcrypto::provider().cipher_suites;
    let mut suites = 0;
    let mut suites_passed = 0;
    for s in provider.iter().filter(|s| super::key_len(s.suite()) == Some(32)) {
        let Some(soft) = software.iter().find(|t| t.suite() == s.suite()) else { continue };
        suites += 1;
        if records_agree(s, soft) && records_agree(soft, s) {
            suites_passed += 1;
        }
    }
    SelfTest { path: super::aes_gcm_path(), vectors_passed, vectors: VECTORS.len(), suites_passed, suites }
}

/// Seals `buf` in place as 16 KiB TLS-sized records with AES-128-GCM: by
/// the registered engine, or by RustCrypto's software when there is none
/// or `software` is set (for timing the two in the same VM). False if a
/// seal failed.
pub fn seal_records(buf: &mut [u8], software: bool) -> bool {
    let key = [0x42u8; 16];
    let nonce = [7u8; 12];
    let aad = [0u8; 13];
    match engine().filter(|_| !software) {
        Some(e) => {
            let Some(key) = e.key(&key) else { return false };
            buf.chunks_mut(16384).all(|r| e.seal(&key, &nonce, &aad, r).is_ok())
        }
        None => {
            let Ok(g) = aes_gcm::Aes128Gcm::new_from_slice(&key) else { return false };
            buf.chunks_mut(16384).all(|r| g.encrypt_in_place_detached((&nonce).into(), &aad, r).is_ok())
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            d(p[0]) << 4 | d(p[1])
        })
        .collect()
}

/// Seals and opens one vector with the AES-GCM the provider uses.
fn vector([k, n, a, p, c, t]: &[&str; 6]) -> bool {
    let (key, aad, plain) = (hex(k), hex(a), hex(p));
    let Ok(nonce) = <[u8; 12]>::try_from(hex(n)) else { return false };
    let mut buf = plain.clone();
    let tag: Vec<u8> = match engine() {
        Some(e) => {
            let Some(key) = e.key(&key) else { return false };
            let Ok(tag) = e.seal(&key, &nonce, &aad, &mut buf) else { return false };
            if buf != hex(c) || tag[..] != hex(t)[..] {
                return false;
            }
            let mut back = buf.clone();
            return e.open(&key, &nonce, &aad, &mut back, &tag).is_ok() && back == plain;
        }
        None if key.len() == 16 => aes_gcm::Aes128Gcm::new_from_slice(&key)
            .ok()
            .and_then(|g| g.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf).ok())
            .map(|t| t.to_vec())
            .unwrap_or_default(),
        None => aes_gcm::Aes256Gcm::new_from_slice(&key)
            .ok()
            .and_then(|g| g.encrypt_in_place_detached((&nonce).into(), &aad, &mut buf).ok())
            .map(|t| t.to_vec())
            .unwrap_or_default(),
    };
    buf == hex(c) && tag == hex(t)
}

/// A record of every length class sealed by `a` opens with `b`, for TLS 1.3
/// or 1.2 as the suite is.
fn records_agree(a: &SupportedCipherSuite, b: &SupportedCipherSuite) -> bool {
    let message: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
    [0, 1, 15, 16, 17, 999].iter().enumerate().all(|(seq, &len)| {
        let seq = seq as u64 + 5;
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(&message[..len]),
        };
        match (a, b) {
            (SupportedCipherSuite::Tls13(a), SupportedCipherSuite::Tls13(b)) => {
                let iv = Iv::new([9; 12]);
                let Ok(sealed) = a.aead_alg.encrypter(key(), iv).encrypt(plain, seq) else { return false };
                let mut bytes = sealed.encode();
                let Some(inbound) = inbound(&mut bytes) else { return false };
                let opened = b.aead_alg.decrypter(key(), Iv::new([9; 12])).decrypt(inbound, seq);
                opened.is_ok_and(|m| m.payload == &message[..len])
            }
            (SupportedCipherSuite::Tls12(a), SupportedCipherSuite::Tls12(b)) => {
                let Ok(sealed) = a.aead_alg.encrypter(key(), &[1, 2, 3, 4], &[5; 8]).encrypt(plain, seq) else {
                    return false;
                };
                let mut bytes = sealed.encode();
                let Some(inbound) = inbound(&mut bytes) else { return false };
                let opened = b.aead_alg.decrypter(key(), &[1, 2, 3, 4]).decrypt(inbound, seq);
                opened.is_ok_and(|m| m.payload == &message[..len])
            }
            _ => false,
        }
    })
}

fn key() -> AeadKey {
    AeadKey::from([0x42; 32])
}

/// An encoded record as rustls receives it.
fn inbound(bytes: &mut [u8]) -> Option<InboundOpaqueMessage<'_>> {
    let (header, payload) = bytes.split_at_mut_checked(5)?;
    let typ = ContentType::from(header[0]);
    let version = ProtocolVersion::from(u16::from_be_bytes([header[1], header[2]]));
    Some(InboundOpaqueMessage::new(typ, version, payload))
}

#[cfg(test)]
mod tests {
    /// Hosted, no engine is registered: the software path must pass too.
    #[test]
    fn software_path_passes() {
        let r = super::run();
        assert!(r.ok() && r.vectors == 8 && r.suites == 3, "{r}");
        assert_eq!(r.path, "software (RustCrypto)");
    }
}
