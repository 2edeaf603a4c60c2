//! The machine's entropy source, shared by the `Entropy` device and the
//! `getrandom` crate (which RustCrypto, and so TLS, draws from).
//!
//! With an entropy device (virtio-rng), requests never wait for it: the
//! device seeds a ChaCha20 generator at boot, and a background task of the
//! VM backend mixes fresh device bytes into it after every
//! [`RESEED_BYTES`] of output ([`reseed_due`]) and at least every so
//! often. The generator erases its key as it goes (each request rekeys it
//! first), so earlier output cannot be recovered from its state. Without a
//! device, RDRAND is used if the CPU has it; otherwise every request fails.

use core::task::{Context, Poll, Waker};

use chacha20::cipher::{KeyIvInit, StreamCipher};
use morgana_devices::EntropyError;

/// Output after which the generator asks for fresh device bytes.
pub const RESEED_BYTES: u64 = 64 * 1024;

/// Largest output under one key (far below ChaCha20's 256 GiB limit).
const CHUNK: usize = 64 * 1024;

struct Generator {
    key: [u8; 32],
    /// Bytes produced since the last reseed.
    since_reseed: u64,
}

impl Generator {
    /// Fast key erasure: each chunk's keystream starts with the next key.
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(CHUNK) {
            let mut cipher = chacha20::ChaCha20::new(&self.key.into(), &[0u8; 12].into());
            let mut next = [0u8; 32];
            cipher.apply_keystream(&mut next);
            chunk.fill(0);
            cipher.apply_keystream(chunk);
            self.key = next;
        }
        self.since_reseed = self.since_reseed.saturating_add(buf.len() as u64);
    }
}

static GENERATOR: spin::Mutex<Option<Generator>> = spin::Mutex::new(None);
static RESEED_WAKER: spin::Mutex<Option<Waker>> = spin::Mutex::new(None);

/// Seeds the generator from an entropy device (at boot); from now on
/// [`fill`] serves from it.
pub fn seed(seed: [u8; 32]) {
    let mut g = Generator { key: seed, since_reseed: 0 };
    g.fill(&mut [0u8; 32]); // the device's bytes are not the first key
    *GENERATOR.lock() = Some(g);
}

/// Mixes fresh device bytes into the generator's key, then rekeys.
pub fn reseed(fresh: &[u8]) {
    if let Some(g) = GENERATOR.lock().as_mut() {
        for (i, b) in fresh.iter().enumerate() {
            g.key[i % 32] ^= b;
        }
        g.fill(&mut [0u8; 32]);
        g.since_reseed = 0;
    }
}

/// Ready once the generator has produced [`RESEED_BYTES`] since its last
/// reseed; else wakes `cx` when it has.
pub fn reseed_due(cx: &mut Context<'_>) -> Poll<()> {
    *RESEED_WAKER.lock() = Some(cx.waker().clone());
    match GENERATOR.lock().as_ref() {
        Some(g) if g.since_reseed >= RESEED_BYTES => Poll::Ready(()),
        _ => Poll::Pending,
    }
}

/// Fills `buf` with unpredictable bytes. Never waits for a device.
pub fn fill(buf: &mut [u8]) -> Result<(), EntropyError> {
    let due = {
        let mut g = GENERATOR.lock();
        match g.as_mut() {
            Some(g) => {
                let before = g.since_reseed;
                g.fill(buf);
                Some(before < RESEED_BYTES && g.since_reseed >= RESEED_BYTES)
            }
            None => None,
        }
    };
    match due {
        Some(due) => {
            if due {
                if let Some(w) = RESEED_WAKER.lock().take() {
                    w.wake();
                }
            }
            Ok(())
        }
        None => {
            for chunk in buf.chunks_mut(8) {
                let v = crate::cpu::rdrand64().ok_or(EntropyError::Unavailable)?;
                chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
            }
            Ok(())
        }
    }
}

/// Whether any source is available.
pub fn available() -> bool {
    GENERATOR.lock().is_some() || crate::cpu::rdrand64().is_some()
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    fill(buf).map_err(|_| getrandom::Error::UNSUPPORTED)
}

getrandom::register_custom_getrandom!(getrandom_fill);
