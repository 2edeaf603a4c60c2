//! Grant table v1 entries: giving another domain access to one of our
//! frames (`xen/include/public/grant_table.h`).

use core::sync::atomic::{AtomicU16, Ordering};

/// Grant reference.
pub type GrantRef = u32;

/// `GTF_permit_access`.
const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`.
const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading` and `GTF_writing`: the other domain has the frame mapped.
const GTF_IN_USE: u16 = (1 << 3) | (1 << 4);
/// Entries Xen reserves at the start of the table.
pub const RESERVED: u32 = 8;

/// Why a grant could not be ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// The other domain still has the frame mapped.
    InUse,
    /// No free reference.
    Exhausted,
}

/// A grant table: an array of 8-byte v1 entries in memory Xen shares with
/// us, and a free list.
pub struct GrantTable {
    entries: *mut u8,
    count: u32,
    free: alloc::vec::Vec<GrantRef>,
}

impl GrantTable {
    /// A table over `count` entries at `entries` (the grant frames Xen
    /// mapped for us), all free except the reserved ones.
    ///
    /// # Safety
    /// `entries` must point to `count * 8` bytes that stay mapped and are
    /// used by nothing else.
    pub unsafe fn new(entries: *mut u8, count: u32) -> GrantTable {
        GrantTable { entries, count, free: (RESERVED..count).rev().collect() }
    }

    fn flags(&self, r: GrantRef) -> &AtomicU16 {
        assert!(r < self.count, "grant reference out of range");
        // SAFETY: `r` is in range, so the entry lies in the table `new` was
        // given; its flags field is the first, 2-byte aligned halfword, which
        // Xen and we update atomically.
        unsafe { &*self.entries.add(8 * r as usize).cast::<AtomicU16>() }
    }

    /// Lets domain `domid` access frame `gfn`, read-only or read-write.
    pub fn grant(&mut self, domid: u16, gfn: u64, readonly: bool) -> Result<GrantRef, GrantError> {
        let r = self.free.pop().ok_or(GrantError::Exhausted)?;
        let entry = self.entries.wrapping_add(8 * r as usize);
        // SAFETY: `r` < count (it came from the free list), so the entry is
        // in the table; domid and frame are written before the flags make
        // the entry valid (release ordering below).
        unsafe {
            entry.add(2).cast::<u16>().write_volatile(domid);
            entry.add(4).cast::<u32>().write_volatile(gfn as u32);
        }
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.flags(r).store(flags, Ordering::Release);
        Ok(r)
    }

    /// Withdraws a grant; fails while the other domain still maps it.
    pub fn end(&mut self, r: GrantRef) -> Result<(), GrantError> {
        let f = self.flags(r);
        let mut cur = f.load(Ordering::Acquire);
        loop {
            if cur & GTF_IN_USE != 0 {
                return Err(GrantError::InUse);
            }
            match f.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        self.free.push(r);
        Ok(())
    }

    /// Free references.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_and_end() {
        let mut mem = alloc::vec![0u64; 64];
        let base = mem.as_mut_ptr();
        // The simulated other domain reads and writes entries through `base`.
        // SAFETY: `base` points at 64 live entries of the Vec above.
        let entry = |r: GrantRef| unsafe { base.add(r as usize) };
        // SAFETY: 64 entries of 8 bytes in a live Vec, used only via `base`.
        let mut t = unsafe { GrantTable::new(base.cast(), 64) };
        let r = t.grant(7, 0x1234, true).unwrap();
        assert!(r >= RESERVED);
        // SAFETY: in-range entry of the live Vec.
        let e = unsafe { entry(r).read_volatile() };
        assert_eq!(e & 0xffff, (GTF_PERMIT_ACCESS | GTF_READONLY) as u64);
        assert_eq!((e >> 16) & 0xffff, 7);
        assert_eq!(e >> 32, 0x1234);
        // The backend maps it: ending must fail, not free it.
        // SAFETY: in-range entry of the live Vec.
        unsafe { entry(r).write_volatile(e | 1 << 3) };
        assert_eq!(t.end(r), Err(GrantError::InUse));
        // SAFETY: in-range entry of the live Vec.
        unsafe { entry(r).write_volatile(e) };
        assert_eq!(t.end(r), Ok(()));
        // SAFETY: in-range entry of the live Vec.
        assert_eq!(unsafe { entry(r).read_volatile() } & 0xffff, 0);
        for _ in 0..56 {
            t.grant(1, 1, false).unwrap();
        }
        assert_eq!(t.grant(1, 1, false), Err(GrantError::Exhausted));
    }
}
