//! The server's session cache for resumption: TLS 1.2 session IDs, and
//! TLS 1.3 tickets when there is no ticketer (the VM image). Bounded
//! against clients that only ever start new sessions: at most `capacity`
//! entries of at most [`MAX_VALUE`] bytes each, the oldest evicted first.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

use rustls::server::StoresServerSessions;

/// The largest session rustls may store (an encoded session is a few
/// hundred bytes; anything far larger is refused, not stored).
pub(crate) const MAX_VALUE: usize = 4096;

/// The largest key: TLS 1.2 session IDs and rustls's TLS 1.3 ticket IDs
/// are 32 bytes.
const MAX_KEY: usize = 64;

#[derive(Default)]
struct Entries {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Keys in insertion order, oldest first; some may already be taken.
    order: VecDeque<Vec<u8>>,
}

/// A fixed-capacity, oldest-first-evicted map of sessions.
pub(crate) struct SessionCache {
    entries: spin::Mutex<Entries>,
    capacity: usize,
}

impl fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionCache({}/{})", self.len(), self.capacity)
    }
}

impl SessionCache {
    /// A cache of at most `capacity` sessions (at least one).
    pub(crate) fn new(capacity: usize) -> SessionCache {
        SessionCache { entries: spin::Mutex::new(Entries::default()), capacity: capacity.max(1) }
    }

    /// How many sessions are held.
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map.len()
    }
}

impl StoresServerSessions for SessionCache {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return false;
        }
        let mut e = self.entries.lock();
        if let Some(old) = e.map.get_mut(&key) {
            *old = value;
            return true;
        }
        e.order.push_back(key.clone());
        e.map.insert(key, value);
        while e.order.len() > self.capacity {
            if let Some(oldest) = e.order.pop_front() {
                e.map.remove(&oldest);
            }
        }
        true
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.lock().map.get(key).cloned()
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.lock().map.remove(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn key(i: u32) -> Vec<u8> {
        i.to_be_bytes().to_vec()
    }

    #[test]
    fn keeps_at_most_capacity_evicting_the_oldest() {
        let c = SessionCache::new(4);
        for i in 0..10 {
            assert!(c.put(key(i), vec![i as u8]));
        }
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(&key(5)), None);
        assert_eq!(c.get(&key(6)), Some(vec![6]));
        assert_eq!(c.get(&key(9)), Some(vec![9]));
        assert_eq!(c.entries.lock().order.len(), 4);
    }

    #[test]
    fn take_is_single_use_and_get_is_not() {
        let c = SessionCache::new(4);
        c.put(key(1), vec![1]);
        assert_eq!(c.get(&key(1)), Some(vec![1]));
        assert_eq!(c.take(&key(1)), Some(vec![1]));
        assert_eq!(c.take(&key(1)), None);
        // Taken keys still count until evicted: the bound holds.
        for i in 2..100 {
            c.put(key(i), vec![0]);
            c.take(&key(i));
        }
        assert!(c.entries.lock().order.len() <= 4);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn refuses_oversized_entries() {
        let c = SessionCache::new(4);
        assert!(!c.put(key(1), vec![0; MAX_VALUE + 1]));
        assert!(!c.put(vec![0; MAX_KEY + 1], vec![0]));
        assert!(c.put(key(2), vec![0; MAX_VALUE]));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn replacing_a_key_keeps_one_entry() {
        let c = SessionCache::new(2);
        c.put(key(1), vec![1]);
        c.put(key(1), vec![2]);
        assert_eq!(c.get(&key(1)), Some(vec![2]));
        assert_eq!(c.entries.lock().order.len(), 1);
    }
}
