//! The frame-pointer walk behind the backtraces of panics and CPU
//! exceptions (images are built with `-C force-frame-pointers=yes`).
//!
//! Each frame is two words at RBP: the caller's RBP, then the return
//! address. The walk trusts nothing it reads: it stops at a null or
//! misaligned frame pointer, one outside the known stacks, one that does not
//! move up the stack, a null return address, or after [`MAX_FRAMES`]. It is
//! pure (memory is read through a closure) so the bounds have unit tests;
//! the trap code passes a reader that dereferences only addresses the walk
//! has checked.

use core::ops::Range;

/// Frames walked at most (a corrupt chain that stays in bounds, or a deep
/// recursion, ends here).
pub const MAX_FRAMES: usize = 64;

/// Why a walk stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A null frame pointer or return address: the outermost frame.
    Outermost,
    /// [`MAX_FRAMES`] frames were walked.
    Depth,
    /// A frame pointer that is not 8-byte aligned.
    Misaligned(u64),
    /// A frame pointer whose two words lie outside every known stack.
    OutsideStack(u64),
    /// A frame pointer at or below the previous one (a loop or garbage).
    NotAscending(u64),
}

impl core::fmt::Display for End {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            End::Outermost => write!(f, "outermost frame"),
            End::Depth => write!(f, "stopped after {MAX_FRAMES} frames"),
            End::Misaligned(p) => write!(f, "misaligned frame pointer {p:#x}"),
            End::OutsideStack(p) => write!(f, "frame pointer {p:#x} outside the stack"),
            End::NotAscending(p) => write!(f, "frame pointer {p:#x} does not move up the stack"),
        }
    }
}

/// Walks the chain from `rbp`, calling `frame` with each return address.
/// `read(addr)` is called only for 8-byte aligned `addr` with
/// `addr..addr + 8` inside one of `stacks`.
pub fn walk(mut rbp: u64, stacks: &[Range<u64>], read: impl Fn(u64) -> u64, mut frame: impl FnMut(u64)) -> End {
    let inside = |p: u64| stacks.iter().position(|s| p >= s.start && p.checked_add(16).is_some_and(|e| e <= s.end));
    let mut prev: Option<(usize, u64)> = None;
    for _ in 0..MAX_FRAMES {
        if rbp == 0 {
            return End::Outermost;
        }
        if rbp % 8 != 0 {
            return End::Misaligned(rbp);
        }
        let Some(stack) = inside(rbp) else {
            return End::OutsideStack(rbp);
        };
        // Within one stack, callers' frames lie at higher addresses.
        if prev.is_some_and(|(s, p)| s == stack && rbp <= p) {
            return End::NotAscending(rbp);
        }
        let ret = read(rbp + 8);
        if ret == 0 {
            return End::Outermost;
        }
        frame(ret);
        prev = Some((stack, rbp));
        rbp = read(rbp);
    }
    End::Depth
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stack of 64 words at `BASE`; `read` panics outside it, so a
    /// walk that reads anything unchecked fails the test.
    const BASE: u64 = 0x20_0000;

    fn run(words: &[u64], rbp: u64) -> (Vec<u64>, End) {
        let stack = BASE..BASE + 8 * words.len() as u64;
        let mut frames = Vec::new();
        let read = |a: u64| {
            assert!(a % 8 == 0 && a >= stack.start && a + 8 <= stack.end, "unchecked read at {a:#x}");
            words[((a - BASE) / 8) as usize]
        };
        let end = walk(rbp, std::slice::from_ref(&stack), read, |r| frames.push(r));
        (frames, end)
    }

    fn at(word: usize) -> u64 {
        BASE + 8 * word as u64
    }

    #[test]
    fn follows_a_chain_to_its_null_end() {
        let mut w = vec![0u64; 64];
        // Frames at words 4, 10, 20; the last one's saved RBP is 0.
        (w[4], w[5]) = (at(10), 0x10_1000);
        (w[10], w[11]) = (at(20), 0x10_2000);
        (w[20], w[21]) = (0, 0x10_3000);
        assert_eq!(run(&w, at(4)), (vec![0x10_1000, 0x10_2000, 0x10_3000], End::Outermost));
        // A null return address ends the walk too.
        w[21] = 0;
        assert_eq!(run(&w, at(4)), (vec![0x10_1000, 0x10_2000], End::Outermost));
    }

    #[test]
    fn stops_at_misaligned_or_outside_pointers() {
        let mut w = vec![0u64; 64];
        (w[4], w[5]) = (at(10) + 3, 0x10_1000);
        assert_eq!(run(&w, at(4)), (vec![0x10_1000], End::Misaligned(at(10) + 3)));
        w[4] = 0x1234_5678_0000;
        assert_eq!(run(&w, at(4)), (vec![0x10_1000], End::OutsideStack(0x1234_5678_0000)));
        // The last word of the stack cannot hold a frame (two words).
        w[4] = at(63);
        assert_eq!(run(&w, at(4)), (vec![0x10_1000], End::OutsideStack(at(63))));
        // Addresses near the top of the address space do not overflow.
        assert_eq!(run(&w, u64::MAX - 7), (vec![], End::OutsideStack(u64::MAX - 7)));
        assert_eq!(run(&w, 0x100), (vec![], End::OutsideStack(0x100)));
    }

    #[test]
    fn stops_at_loops_and_downward_links() {
        let mut w = vec![0u64; 64];
        (w[4], w[5]) = (at(4), 0x10_1000); // points at itself
        assert_eq!(run(&w, at(4)), (vec![0x10_1000], End::NotAscending(at(4))));
        (w[4], w[5]) = (at(10), 0x10_1000);
        (w[10], w[11]) = (at(2), 0x10_2000); // back down the stack
        assert_eq!(run(&w, at(4)), (vec![0x10_1000, 0x10_2000], End::NotAscending(at(2))));
    }

    #[test]
    fn depth_is_bounded() {
        // A chain of 31 frames two words apart, each pointing at the next,
        // the last at the first word of a second stack that points back.
        let mut words = vec![0u64; 64];
        for i in 0..31 {
            (words[2 * i], words[2 * i + 1]) = (at(2 * i + 2), 0x10_0000 + i as u64);
        }
        let second = 0x40_0000..0x40_0000 + 16;
        words[62] = second.start;
        words[63] = 0x10_0000 + 31;
        let stacks = [BASE..BASE + 8 * 64, second.clone()];
        let read = |a: u64| {
            if a >= second.start {
                [BASE, 0x11_0000][((a - second.start) / 8) as usize]
            } else {
                words[((a - BASE) / 8) as usize]
            }
        };
        let mut n = 0;
        assert_eq!(walk(BASE, &stacks, read, |_| n += 1), End::Depth);
        assert_eq!(n, MAX_FRAMES);
    }
}
