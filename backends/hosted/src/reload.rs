//! SIGHUP: the operator asks the app to reload its files. The handler only
//! sets a flag (`signal-hook`), installed at start, before any sandbox.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static ASKED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the SIGHUP handler (once).
pub(crate) fn install() -> std::io::Result<()> {
    if ASKED.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, flag.clone())?;
    let _ = ASKED.set(flag);
    Ok(())
}

/// Whether a SIGHUP arrived since the last call.
pub fn reload_requested() -> bool {
    ASKED.get().is_some_and(|f| f.swap(false, Ordering::AcqRel))
}
