//! The loops that use AES-NI, PCLMULQDQ and SSSE3, and the key schedule's
//! SubWord, in inline assembly.
//!
//! Why assembly: the VM target is soft-float, so LLVM has no XMM register
//! class even inside `#[target_feature(enable = "aes")]` functions, and
//! `core::arch` SIMD values cannot be lowered ("Do not know how to split
//! the result of this operator!"). Assembly with only memory operands
//! passes no SIMD value through Rust at all.
//!
//! XMM state: every block declares the XMM registers it writes as
//! clobbered. Nothing else in the image keeps values in XMM registers (all
//! Rust code, `core` included, is compiled soft-float; interrupt and
//! exception handlers are Rust code too), and nothing switches stacks or
//! contexts (one CPU, one stack, tasks are state machines), so an
//! interrupt between or inside these blocks cannot see or change their
//! registers. Under Xen and KVM the hypervisor saves the guest's XMM state
//! with the vCPU.
//!
//! Callers must have checked that the CPU has AES-NI, PCLMULQDQ and SSSE3
//! ([`super::supported`]) and that CR4.OSFXSR is set (the boot code sets it).

use core::arch::asm;

use super::RoundKeys;

/// PSHUFB mask that reverses the 16 bytes of a block (GHASH works on
/// byte-reflected values).
static REVERSE: [u8; 16] = [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0];

/// SubWord (FIPS 197, section 5.2) of a key-schedule word, by AESENCLAST
/// in constant time (a table lookup indexed by key bytes would leak them
/// through the cache): the word fills all four columns, so ShiftRows
/// leaves it in place, and the round key is zero.
///
/// # Safety
/// The CPU has AES-NI and SSE is enabled.
pub(super) unsafe fn sub_word(word: [u8; 4]) -> [u8; 4] {
    let mut w = u32::from_le_bytes(word);
    // SAFETY: registers only; clobbers only the declared ones.
    unsafe {
        asm!(
            "movd xmm0, {w:e}",
            "pshufd xmm0, xmm0, 0",
            "pxor xmm1, xmm1",
            "aesenclast xmm0, xmm1",
            "movd {w:e}, xmm0",
            w = inout(reg) w,
            out("xmm0") _, out("xmm1") _,
            options(nostack, nomem, pure),
        );
    }
    w.to_le_bytes()
}

/// Encrypts one block in place.
///
/// # Safety
/// The CPU has AES-NI and SSE is enabled; `rounds` is 10, 12 or 14.
pub(super) unsafe fn encrypt_block(keys: &RoundKeys, rounds: usize, block: &mut [u8; 16]) {
    debug_assert!(matches!(rounds, 10 | 12 | 14));
    // SAFETY: reads keys[0..=rounds] (rounds ≤ 14 < 15 keys) and the block,
    // writes the block; clobbers only the declared registers.
    unsafe {
        asm!(
            "movdqu xmm0, [{b}]",
            "movdqu xmm1, [{k}]",
            "pxor xmm0, xmm1",
            "2:",
            "add {k}, 16",
            "movdqu xmm1, [{k}]",
            "aesenc xmm0, xmm1",
            "dec {n}",
            "jnz 2b",
            "movdqu xmm1, [{k} + 16]",
            "aesenclast xmm0, xmm1",
            "movdqu [{b}], xmm0",
            b = in(reg) block.as_mut_ptr(),
            k = inout(reg) keys.as_ptr() => _,
            n = inout(reg) rounds - 1 => _,
            out("xmm0") _, out("xmm1") _,
            options(nostack),
        );
    }
}

/// XORs `blocks` whole blocks of `buf` with the AES-CTR keystream for
/// `counter` (nonce in bytes 0..12; bytes 12..16 are overwritten with the
/// big-endian block counter, starting at `first` and wrapping mod 2^32).
///
/// # Safety
/// As [`encrypt_block`]; `buf.len() >= 16 * blocks` and `blocks > 0`.
pub(super) unsafe fn ctr_blocks(
    keys: &RoundKeys,
    rounds: usize,
    counter: &mut [u8; 16],
    first: u32,
    buf: &mut [u8],
    blocks: usize,
) {
    debug_assert!(blocks > 0 && buf.len() >= 16 * blocks && matches!(rounds, 10 | 12 | 14));
    // SAFETY: reads keys[0..=rounds], reads and writes `counter` and the
    // first 16 * blocks bytes of `buf` (checked by the caller); clobbers
    // only the declared registers.
    unsafe {
        asm!(
            "3:",
            "mov {t:e}, {c:e}",
            "bswap {t:e}",
            "mov [{ctr} + 12], {t:e}",
            "movdqu xmm0, [{ctr}]",
            "mov {k}, {keys}",
            "mov {n}, {r}",
            "movdqu xmm1, [{k}]",
            "pxor xmm0, xmm1",
            "2:",
            "add {k}, 16",
            "movdqu xmm1, [{k}]",
            "aesenc xmm0, xmm1",
            "dec {n}",
            "jnz 2b",
            "movdqu xmm1, [{k} + 16]",
            "aesenclast xmm0, xmm1",
            "movdqu xmm2, [{buf}]",
            "pxor xmm2, xmm0",
            "movdqu [{buf}], xmm2",
            "add {buf}, 16",
            "inc {c:e}",
            "dec {blocks}",
            "jnz 3b",
            keys = in(reg) keys.as_ptr(),
            r = in(reg) rounds - 1,
            ctr = in(reg) counter.as_mut_ptr(),
            c = inout(reg) first => _,
            buf = inout(reg) buf.as_mut_ptr() => _,
            blocks = inout(reg) blocks => _,
            k = out(reg) _,
            n = out(reg) _,
            t = out(reg) _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _,
            options(nostack),
        );
    }
}

/// GHASH: for each of `blocks` 16-byte blocks of `data`,
/// `acc = (acc ^ block) * h` in GF(2^128) (NIST SP 800-38D). `acc` and `h`
/// are in the standard byte order. The multiplication is the one of Intel's
/// "Carry-Less Multiplication and its Usage for Computing the GCM Mode"
/// (Gueron and Kounavis, 2010, figure 5): a 256-bit carry-less product,
/// shifted left by one for the reflected representation, then reduced.
///
/// # Safety
/// The CPU has PCLMULQDQ and SSSE3 and SSE is enabled;
/// `data.len() >= 16 * blocks` and `blocks > 0`.
pub(super) unsafe fn ghash_blocks(h: &[u8; 16], acc: &mut [u8; 16], data: &[u8], blocks: usize) {
    debug_assert!(blocks > 0 && data.len() >= 16 * blocks);
    // SAFETY: reads `h`, the mask and the first 16 * blocks bytes of `data`
    // (checked by the caller), reads and writes `acc`; clobbers only the
    // declared registers.
    unsafe {
        asm!(
            "movdqu xmm10, [{mask}]",
            "movdqu xmm0, [{acc}]",
            "pshufb xmm0, xmm10",
            "movdqu xmm1, [{h}]",
            "pshufb xmm1, xmm10",
            "2:",
            "movdqu xmm2, [{data}]",
            "pshufb xmm2, xmm10",
            "pxor xmm0, xmm2",
            // 256-bit carry-less product <xmm6:xmm3> = xmm0 * xmm1.
            "movdqa xmm3, xmm0",
            "pclmulqdq xmm3, xmm1, 0x00",
            "movdqa xmm4, xmm0",
            "pclmulqdq xmm4, xmm1, 0x10",
            "movdqa xmm5, xmm0",
            "pclmulqdq xmm5, xmm1, 0x01",
            "movdqa xmm6, xmm0",
            "pclmulqdq xmm6, xmm1, 0x11",
            "pxor xmm4, xmm5",
            "movdqa xmm5, xmm4",
            "pslldq xmm5, 8",
            "psrldq xmm4, 8",
            "pxor xmm3, xmm5",
            "pxor xmm6, xmm4",
            // Shift <xmm6:xmm3> left by one bit.
            "movdqa xmm7, xmm3",
            "psrld xmm7, 31",
            "movdqa xmm8, xmm6",
            "psrld xmm8, 31",
            "pslld xmm3, 1",
            "pslld xmm6, 1",
            "movdqa xmm9, xmm7",
            "psrldq xmm9, 12",
            "pslldq xmm8, 4",
            "pslldq xmm7, 4",
            "por xmm3, xmm7",
            "por xmm6, xmm8",
            "por xmm6, xmm9",
            // Reduce modulo x^128 + x^7 + x^2 + x + 1: first phase.
            "movdqa xmm7, xmm3",
            "pslld xmm7, 31",
            "movdqa xmm8, xmm3",
            "pslld xmm8, 30",
            "movdqa xmm9, xmm3",
            "pslld xmm9, 25",
            "pxor xmm7, xmm8",
            "pxor xmm7, xmm9",
            "movdqa xmm8, xmm7",
            "psrldq xmm8, 4",
            "pslldq xmm7, 12",
            "pxor xmm3, xmm7",
            // Second phase.
            "movdqa xmm2, xmm3",
            "psrld xmm2, 1",
            "movdqa xmm4, xmm3",
            "psrld xmm4, 2",
            "movdqa xmm5, xmm3",
            "psrld xmm5, 7",
            "pxor xmm2, xmm4",
            "pxor xmm2, xmm5",
            "pxor xmm2, xmm8",
            "pxor xmm3, xmm2",
            "pxor xmm6, xmm3",
            "movdqa xmm0, xmm6",
            "add {data}, 16",
            "dec {blocks}",
            "jnz 2b",
            "pshufb xmm0, xmm10",
            "movdqu [{acc}], xmm0",
            mask = in(reg) REVERSE.as_ptr(),
            h = in(reg) h.as_ptr(),
            acc = in(reg) acc.as_mut_ptr(),
            data = inout(reg) data.as_ptr() => _,
            blocks = inout(reg) blocks => _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _, out("xmm5") _,
            out("xmm6") _, out("xmm7") _, out("xmm8") _, out("xmm9") _, out("xmm10") _,
            options(nostack),
        );
    }
}
