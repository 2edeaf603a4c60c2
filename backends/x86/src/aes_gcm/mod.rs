//! AES-GCM with the CPU's AES-NI and PCLMULQDQ instructions, registered at
//! boot as the [`morgana_devices::AesGcm`] engine when the CPU has them
//! (TLS then uses it instead of RustCrypto's software AES-GCM).
//!
//! The instructions run in inline assembly ([`asm`]); the key schedule,
//! counters, padding and lengths are plain Rust here.

mod asm;
mod key;

use morgana_devices::{AesGcm, AesGcmError, AesGcmKey};
use zeroize::Zeroize;

use crate::cpu::cpuid;

/// Round keys in FIPS 197 byte order, as AES-NI loads them.
pub(crate) type RoundKeys = [[u8; 16]; 15];

/// Whether the CPU has AES-NI, PCLMULQDQ and SSSE3 (CPUID 1, ECX bits 25,
/// 1 and 9). Every CPU with AES-NI has SSSE3; the GHASH loop uses PSHUFB.
pub fn supported() -> bool {
    let ecx = cpuid(1, 0).ecx;
    ecx & (1 << 25) != 0 && ecx & (1 << 1) != 0 && ecx & (1 << 9) != 0
}

/// The engine; only [`engine`] hands it out, after checking the CPU.
#[derive(Debug)]
pub struct AesNi(());

static ENGINE: AesNi = AesNi(());

/// The engine if this CPU can run it.
pub fn engine() -> Option<&'static AesNi> {
    supported().then_some(&ENGINE)
}

/// GCM's limit on the plaintext of one message: 2^32 - 2 blocks.
const MAX_LEN: u64 = (1 << 36) - 32;

impl AesNi {
    fn encrypt(&self, key: &AesGcmKey, block: &mut [u8; 16]) {
        // SAFETY: an `AesNi` exists only where `supported()` held, and the
        // boot code enabled SSE; `AesGcmKey::new` guarantees 10, 12 or 14
        // rounds.
        unsafe { asm::encrypt_block(key.round_keys(), key.rounds(), block) }
    }

    /// XORs `buf` with the keystream from counter 2 on (counter 1 is the
    /// tag's).
    fn ctr(&self, key: &AesGcmKey, nonce: &[u8; 12], buf: &mut [u8]) {
        let mut counter = [0u8; 16];
        counter[..12].copy_from_slice(nonce);
        let blocks = buf.len() / 16;
        if blocks > 0 {
            // SAFETY: as in `encrypt`; `buf` holds `blocks` whole blocks.
            unsafe { asm::ctr_blocks(key.round_keys(), key.rounds(), &mut counter, 2, buf, blocks) }
        }
        let tail = &mut buf[blocks * 16..];
        if !tail.is_empty() {
            counter[12..].copy_from_slice(&(2u32.wrapping_add(blocks as u32)).to_be_bytes());
            self.encrypt(key, &mut counter);
            for (b, k) in tail.iter_mut().zip(counter) {
                *b ^= k;
            }
        }
    }

    fn ghash_padded(&self, key: &AesGcmKey, acc: &mut [u8; 16], data: &[u8]) {
        let blocks = data.len() / 16;
        if blocks > 0 {
            // SAFETY: an `AesNi` exists only where `supported()` held (it
            // includes PCLMULQDQ and SSSE3); `data` holds `blocks` blocks.
            unsafe { asm::ghash_blocks(key.h(), acc, data, blocks) }
        }
        let tail = &data[blocks * 16..];
        if !tail.is_empty() {
            let mut last = [0u8; 16];
            last[..tail.len()].copy_from_slice(tail);
            // SAFETY: as above; `last` is one block.
            unsafe { asm::ghash_blocks(key.h(), acc, &last, 1) }
        }
    }

    fn tag(&self, key: &AesGcmKey, nonce: &[u8; 12], aad: &[u8], ciphertext: &[u8]) -> [u8; 16] {
        let mut acc = [0u8; 16];
        self.ghash_padded(key, &mut acc, aad);
        self.ghash_padded(key, &mut acc, ciphertext);
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lengths[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        self.ghash_padded(key, &mut acc, &lengths);
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(nonce);
        j0[15] = 1;
        self.encrypt(key, &mut j0);
        for (a, m) in acc.iter_mut().zip(j0) {
            *a ^= m;
        }
        acc
    }
}

fn check_lengths(aad: &[u8], buf: &[u8]) -> Result<(), AesGcmError> {
    if buf.len() as u64 > MAX_LEN || aad.len() as u64 > u64::MAX / 8 {
        return Err(AesGcmError::TooLong);
    }
    Ok(())
}

impl AesGcm for AesNi {
    fn name(&self) -> &'static str {
        "AES-NI and PCLMULQDQ"
    }

    fn key(&self, key: &[u8]) -> Option<AesGcmKey> {
        // SAFETY: an `AesNi` exists only where `supported()` found AES-NI,
        // and the boot code has enabled SSE.
        let (mut round_keys, rounds) = key::expand(key, |w| unsafe { asm::sub_word(w) })?;
        let mut h = [0u8; 16];
        self.encrypt(&AesGcmKey::new(round_keys, rounds, [0; 16])?, &mut h);
        let key = AesGcmKey::new(round_keys, rounds, h);
        round_keys.zeroize();
        h.zeroize();
        key
    }

    fn seal(&self, key: &AesGcmKey, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], AesGcmError> {
        check_lengths(aad, buf)?;
        self.ctr(key, nonce, buf);
        Ok(self.tag(key, nonce, aad, buf))
    }

    fn open(
        &self,
        key: &AesGcmKey,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), AesGcmError> {
        check_lengths(aad, buf)?;
        let expected = self.tag(key, nonce, aad, buf);
        // Compare without an early exit.
        let diff = expected.iter().zip(tag).fold(0u8, |d, (a, b)| d | (a ^ b));
        if diff != 0 {
            return Err(AesGcmError::BadTag);
        }
        self.ctr(key, nonce, buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
