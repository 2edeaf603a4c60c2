//! Heap accounting: memory as a budget, not a hope.
//!
//! The backend's allocator reports every allocation and free, and how large
//! the heap is ([`set_limit`]). Code that allocates because a network peer
//! asked (socket buffers, per-connection state) first asks [`can_spare`],
//! and refuses or sheds work when the answer is no, so an allocation never
//! fails because of what a peer did. A reserve is kept back for the app's
//! own work (answers, logging, timers).
//!
//! Without a limit (a hosted process not given `--memory`), every request
//! can be spared.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The least kept back for the app's own work, when the heap is limited.
pub const MIN_RESERVE: usize = 256 * 1024;

/// Sets the heap size (bytes the allocator can hand out).
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Relaxed);
}

/// The heap size, if limited.
pub fn limit() -> Option<usize> {
    match LIMIT.load(Relaxed) {
        usize::MAX => None,
        n => Some(n),
    }
}

/// Called by the allocator after it handed out `bytes`.
pub fn allocated(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Relaxed).wrapping_add(bytes);
    PEAK.fetch_max(now, Relaxed);
}

/// Called by the allocator after it took back `bytes`.
pub fn freed(bytes: usize) {
    IN_USE.fetch_sub(bytes, Relaxed);
}

/// Bytes allocated now.
pub fn in_use() -> usize {
    IN_USE.load(Relaxed)
}

/// The most bytes allocated at once so far.
pub fn peak() -> usize {
    PEAK.load(Relaxed)
}

/// What is kept back from peers' requests: a quarter of the heap, at least
/// [`MIN_RESERVE`].
pub fn reserve() -> usize {
    limit().map_or(0, |l| (l / 4).max(MIN_RESERVE).min(l))
}

/// Whether `bytes` more can be allocated on a peer's behalf and still leave
/// the [`reserve`].
pub fn can_spare(bytes: usize) -> bool {
    match limit() {
        None => true,
        Some(l) => in_use().saturating_add(bytes).saturating_add(reserve()) <= l,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the counters are process-wide.
    #[test]
    fn budget_keeps_the_reserve() {
        assert!(can_spare(usize::MAX / 2), "no limit: everything can be spared");
        let base = in_use();
        set_limit(base + 4 * 1024 * 1024);
        assert_eq!(reserve(), 1024 * 1024 + base / 4);
        assert!(can_spare(1024 * 1024));
        allocated(2 * 1024 * 1024);
        assert!(peak() >= base + 2 * 1024 * 1024);
        assert!(can_spare(1024 * 1024), "2 MiB used + 1 MiB + the 1 MiB reserve fill 4 MiB");
        assert!(!can_spare(1024 * 1024 + 1), "one byte more is over");
        freed(2 * 1024 * 1024);
        assert!(can_spare(1024 * 1024));
        set_limit(usize::MAX);
    }
}
