//! Clocks.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the monotonic clock, in nanoseconds since an arbitrary origin
/// (usually boot). Never goes backwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);
    /// The largest representable instant ("never").
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::MAX`].
    fn add(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000_000, (self.0 % 1_000_000_000) / 1_000)
    }
}

/// Wall-clock time: nanoseconds since 1970-01-01T00:00:00Z, ignoring leap
/// seconds (Unix time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(pub u64);

impl WallTime {
    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(self) -> u64 {
        self.0 / 1_000_000_000
    }
}

/// A time source.
pub trait Clock {
    /// Monotonic time. Cheap (no exit to the hypervisor on the VM backends);
    /// never blocks; never goes backwards.
    fn now(&self) -> Instant;

    /// Wall-clock time, or `None` when the backend has no trustworthy source
    /// (no RTC, no hypervisor clock). May jump when the host's clock is set.
    fn wall(&self) -> Option<WallTime>;
}
