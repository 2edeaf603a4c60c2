//! The AES key schedule (FIPS 197, section 5.2): plain Rust around the
//! caller's SubWord (AES-NI's, so no table is indexed by key bytes).

use zeroize::Zeroize;

use super::RoundKeys;

const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];

/// The round keys and round count for a 16-, 24- or 32-byte key; `None`
/// for any other length. `sub_word` applies the S-box to each byte.
pub(super) fn expand(key: &[u8], sub_word: impl Fn([u8; 4]) -> [u8; 4]) -> Option<(RoundKeys, usize)> {
    let nk = match key.len() {
        16 | 24 | 32 => key.len() / 4,
        _ => return None,
    };
    let rounds = nk + 6;
    let mut w = [[0u8; 4]; 60];
    for (i, word) in key.chunks_exact(4).enumerate() {
        w[i].copy_from_slice(word);
    }
    for i in nk..4 * (rounds + 1) {
        let mut t = w[i - 1];
        if i % nk == 0 {
            t = sub_word([t[1], t[2], t[3], t[0]]);
            t[0] ^= RCON[i / nk - 1];
        } else if nk > 6 && i % nk == 4 {
            t = sub_word(t);
        }
        for j in 0..4 {
            w[i][j] = w[i - nk][j] ^ t[j];
        }
    }
    let mut keys = [[0u8; 16]; 15];
    for (r, k) in keys.iter_mut().enumerate().take(rounds + 1) {
        for j in 0..4 {
            k[4 * j..4 * j + 4].copy_from_slice(&w[4 * r + j]);
        }
    }
    w.zeroize();
    Some((keys, rounds))
}
