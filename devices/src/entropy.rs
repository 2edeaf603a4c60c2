//! Entropy sources.

use core::fmt;

/// A source of unpredictable bytes, suitable for seeding cryptography.
///
/// Implementations draw from a real source (the host OS, a virtio-rng device,
/// RDRAND/RDSEED) and never from a fixed or time-derived seed. A backend
/// without such a source does not offer an `Entropy` device at all.
pub trait Entropy {
    /// Fills all of `buf`. Synchronous (it feeds `getrandom`), so it must
    /// take short, bounded time on every backend: the host's `getrandom`,
    /// a generator that virtio-rng reseeds in the background (never a
    /// device request), a few RDRAND retries. On error `buf` must not be
    /// used.
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError>;
}

/// Why entropy could not be supplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyError {
    /// The source failed or returned too little (RDRAND exhausted its
    /// retries, the virtio-rng device stopped answering).
    Unavailable,
}

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("entropy source unavailable")
    }
}

impl core::error::Error for EntropyError {}
