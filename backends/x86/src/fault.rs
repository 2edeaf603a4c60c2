//! Deliberate faults, for tests that prove the platform catches them: a
//! write to the text section (W^X) and a stack overflow into the guard page.
//! Each ends the VM through the exception report; none returns.

/// Writes to the first byte of this function's own code.
pub fn write_to_text() -> ! {
    let target = write_to_text as *const () as *mut u8;
    // SAFETY: deliberately unsound: text is mapped read+execute, so the
    // write faults before any byte changes, and the page-fault handler
    // reports it and ends the VM.
    unsafe { core::ptr::write_volatile(target, 0xcc) };
    unreachable!("the write to the text section did not fault")
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0; // never: the stack runs out long before
    }
    let frame = [depth; 64];
    let next = recurse(core::hint::black_box(depth + 1));
    core::hint::black_box(&frame)[0] + next
}

/// Recurses until the stack runs into its guard page.
pub fn overflow_stack() -> ! {
    let n = recurse(0);
    unreachable!("recursion ended at {n}")
}
