//! AES-GCM done by the CPU. A backend whose processor has AES instructions
//! registers an engine at boot ([`register_aes_gcm`]); TLS asks for it
//! ([`aes_gcm`]) and falls back to software AES-GCM when there is none.

/// An expanded key: the round keys and GHASH key, in the layout the engine
/// that made it uses. Overwritten with zeros when dropped.
#[derive(Clone)]
pub struct AesGcmKey {
    round_keys: [[u8; 16]; 15],
    rounds: usize,
    h: [u8; 16],
}

impl AesGcmKey {
    /// A key from its parts; `None` unless `rounds` is 10, 12 or 14 (AES-128,
    /// -192, -256), so an engine may rely on `round_keys[..=rounds]`.
    pub fn new(round_keys: [[u8; 16]; 15], rounds: usize, h: [u8; 16]) -> Option<AesGcmKey> {
        matches!(rounds, 10 | 12 | 14).then_some(AesGcmKey { round_keys, rounds, h })
    }

    /// The round keys (the first `rounds + 1` are used).
    pub fn round_keys(&self) -> &[[u8; 16]; 15] {
        &self.round_keys
    }

    /// The number of rounds: 10, 12 or 14.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// The GHASH key, `AES(key, 0^128)`.
    pub fn h(&self) -> &[u8; 16] {
        &self.h
    }
}

impl zeroize::Zeroize for AesGcmKey {
    fn zeroize(&mut self) {
        self.round_keys.zeroize();
        self.h.zeroize();
    }
}

impl Drop for AesGcmKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

impl core::fmt::Debug for AesGcmKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AesGcmKey(AES-{}, ..)", (self.rounds - 6) * 32)
    }
}

/// Why an AES-GCM operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesGcmError {
    /// The message or its associated data exceeds GCM's limits.
    TooLong,
    /// The tag does not match: the message is forged or damaged (nothing
    /// was decrypted).
    BadTag,
}

/// AES-GCM (NIST SP 800-38D) with a 12-byte nonce and a 16-byte tag.
pub trait AesGcm: Sync {
    /// What does the work, for logs (e.g. "AES-NI and PCLMULQDQ").
    fn name(&self) -> &'static str;

    /// Expands a 16-, 24- or 32-byte key; `None` for other lengths.
    fn key(&self, key: &[u8]) -> Option<AesGcmKey>;

    /// Encrypts `buf` in place and returns the tag.
    fn seal(&self, key: &AesGcmKey, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], AesGcmError>;

    /// Checks `tag`, then decrypts `buf` in place; on a bad tag `buf` is
    /// left as it was.
    fn open(
        &self,
        key: &AesGcmKey,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), AesGcmError>;
}

static ENGINE: spin::Once<&'static dyn AesGcm> = spin::Once::new();

/// Makes `engine` the one [`aes_gcm`] returns. Only the first registration
/// counts (backends call this once, at boot, before any TLS).
pub fn register_aes_gcm(engine: &'static dyn AesGcm) {
    ENGINE.call_once(|| engine);
}

/// The registered engine, if the backend found one.
pub fn aes_gcm() -> Option<&'static dyn AesGcm> {
    ENGINE.get().copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroize;

    #[test]
    fn zeroize_clears_round_keys_and_ghash_key() {
        let mut k = AesGcmKey::new([[0xa5; 16]; 15], 14, [0x5a; 16]).unwrap();
        k.zeroize();
        assert_eq!(k.round_keys(), &[[0; 16]; 15]);
        assert_eq!(k.h(), &[0; 16]);
        assert_eq!(k.rounds(), 14);
    }
}
