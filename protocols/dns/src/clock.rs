//! The wall clock the server reads for TSIG and cookie times.

use alloc::rc::Rc;

/// Wall-clock seconds since the Unix epoch, for TSIG and cookie times; `None`
/// when the machine has no wall clock (signed requests then get BADTIME).
#[derive(Clone)]
pub struct WallClock(Rc<dyn Fn() -> Option<u64>>);

impl WallClock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> Option<u64> + 'static) -> WallClock {
        WallClock(Rc::new(now))
    }

    /// Seconds since the Unix epoch, if the clock knows.
    pub fn now(&self) -> Option<u64> {
        (self.0)()
    }
}

impl Default for WallClock {
    fn default() -> WallClock {
        WallClock::new(|| None)
    }
}

impl core::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("WallClock")
    }
}
