//! What the drivers accept from a device's used rings. The device is not
//! trusted: a used-ring entry names a descriptor token and a length, and
//! either may be wrong. Plain logic, built and fuzzed on the host too.

use core::ops::Range;
use core::task::Poll;

/// Buffers lent to a device, by descriptor token. A used-ring entry gets a
/// buffer back only for a token that is lent, so a device that returns a
/// token twice or invents one is caught before any buffer is touched.
pub struct Lent<T, const N: usize> {
    slots: [Option<T>; N],
}

impl<T, const N: usize> Default for Lent<T, N> {
    fn default() -> Self {
        Lent { slots: [const { None }; N] }
    }
}

impl<T, const N: usize> Lent<T, N> {
    /// Records `item` as lent under `token`. A token out of range or
    /// already lent is refused and the item given back: the device would
    /// then write into a buffer that could not be tracked.
    pub fn lend(&mut self, token: u16, item: T) -> Result<(), T> {
        match self.slots.get_mut(token as usize) {
            Some(slot @ None) => {
                *slot = Some(item);
                Ok(())
            }
            _ => Err(item),
        }
    }

    /// Takes back what was lent under `token` (the device returned it).
    pub fn reclaim(&mut self, token: u16) -> Option<T> {
        self.slots.get_mut(token as usize)?.take()
    }

    /// Whether something is lent under `token`.
    pub fn is_lent(&self, token: u16) -> bool {
        self.slots.get(token as usize).is_some_and(Option::is_some)
    }

    /// How many items are lent.
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

/// The frame in a receive buffer of `buf_len` bytes, which the device says
/// starts at `start` (after the virtio-net header) and is `len` long; `None`
/// when it does not fit the buffer or is empty or longer than `max_frame`.
pub fn rx_frame(start: usize, len: usize, buf_len: usize, max_frame: usize) -> Option<Range<usize>> {
    let end = start.checked_add(len)?;
    (len > 0 && len <= max_frame && end <= buf_len).then_some(start..end)
}

/// A used-ring entry names a request that is not in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongToken {
    /// The token the device returned.
    pub got: u16,
    /// The one in flight.
    pub expected: u16,
}

/// Whether the head of the used ring (`peeked`) completes the one request
/// in flight (`token`): `Pending` while the ring is empty, an error for any
/// other token (the device broke the protocol; waiting would never end).
pub fn single_completion(peeked: Option<u16>, token: u16) -> Poll<Result<(), WrongToken>> {
    match peeked {
        None => Poll::Pending,
        Some(t) if t == token => Poll::Ready(Ok(())),
        Some(got) => Poll::Ready(Err(WrongToken { got, expected: token })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_back_once_and_only_when_lent() {
        let mut lent: Lent<u32, 4> = Lent::default();
        assert_eq!(lent.lend(1, 10), Ok(()));
        assert_eq!(lent.lend(1, 11), Err(11), "already lent");
        assert_eq!(lent.lend(4, 12), Err(12), "out of range");
        assert!(lent.is_lent(1) && !lent.is_lent(2) && !lent.is_lent(99));
        assert_eq!(lent.reclaim(1), Some(10));
        assert_eq!(lent.reclaim(1), None, "returned twice");
        assert_eq!(lent.reclaim(3), None, "never lent");
        assert_eq!(lent.reclaim(u16::MAX), None);
        assert_eq!(lent.count(), 0);
    }

    #[test]
    fn frames_must_fit_their_buffer() {
        assert_eq!(rx_frame(12, 60, 1600, 1514), Some(12..72));
        assert_eq!(rx_frame(12, 1514, 1600, 1514), Some(12..1526));
        assert_eq!(rx_frame(12, 1515, 1600, 1514), None, "over the MTU");
        assert_eq!(rx_frame(12, 0, 1600, 1514), None, "empty");
        assert_eq!(rx_frame(1590, 60, 1600, 1514), None, "past the buffer");
        assert_eq!(rx_frame(usize::MAX, 60, 1600, 1514), None, "overflow");
    }

    #[test]
    fn only_the_request_in_flight_completes() {
        assert_eq!(single_completion(None, 3), Poll::Pending);
        assert_eq!(single_completion(Some(3), 3), Poll::Ready(Ok(())));
        assert_eq!(single_completion(Some(4), 3), Poll::Ready(Err(WrongToken { got: 4, expected: 3 })));
    }
}
