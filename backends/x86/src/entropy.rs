//! The machine's entropy source, shared by the `Entropy` device and the
//! `getrandom` crate (which RustCrypto, and so TLS, draws from).

use alloc::boxed::Box;

use morgana_devices::EntropyError;

/// A source: fills the buffer or fails.
pub type Source = Box<dyn FnMut(&mut [u8]) -> Result<(), EntropyError> + Send>;

static SOURCE: spin::Mutex<Option<Source>> = spin::Mutex::new(None);

/// Installs the source (a virtio-rng device, say). Without one, RDRAND is
/// used if the CPU has it; otherwise every request fails.
pub fn set_source(source: Source) {
    *SOURCE.lock() = Some(source);
}

/// Fills `buf` with unpredictable bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), EntropyError> {
    if let Some(source) = SOURCE.lock().as_mut() {
        return source(buf);
    }
    for chunk in buf.chunks_mut(8) {
        let v = crate::cpu::rdrand64().ok_or(EntropyError::Unavailable)?;
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}

/// Whether any source is available.
pub fn available() -> bool {
    SOURCE.lock().is_some() || crate::cpu::rdrand64().is_some()
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    fill(buf).map_err(|_| getrandom::Error::UNSUPPORTED)
}

getrandom::register_custom_getrandom!(getrandom_fill);
