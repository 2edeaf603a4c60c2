//! CPU identification and the hardware random number generator.

use core::arch::x86_64::{__cpuid_count, _rdrand64_step, CpuidResult};

/// Executes CPUID.
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    __cpuid_count(leaf, subleaf)
}

/// The CPUID leaf base of Xen's leaves, if Xen is the hypervisor (it may
/// sit above another hypervisor's leaves). Runs before the heap exists.
pub fn xen_leaves() -> Option<u32> {
    (0x4000_0000u32..0x4001_0000).step_by(0x100).find(|&base| {
        let r = cpuid(base, 0);
        r.ebx.to_le_bytes() == *b"XenV"
            && r.ecx.to_le_bytes() == *b"MMXe"
            && r.edx.to_le_bytes() == *b"nVMM"
            && r.eax >= base + 2
    })
}

/// The hypervisor's signature (CPUID 0x4000_0000), e.g. "KVMKVMKVM",
/// "TCGTCGTCGTCG", "XenVMMXenVMM"; all zero on bare metal.
pub fn hypervisor_signature() -> [u8; 12] {
    let r = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    sig
}

/// Whether the CPU advertises RDRAND.
pub fn has_rdrand() -> bool {
    cpuid(1, 0).ecx & (1 << 30) != 0
}

/// One 64-bit value from RDRAND, retrying as Intel recommends; `None` when
/// the CPU has no RDRAND or it keeps failing.
pub fn rdrand64() -> Option<u64> {
    if !has_rdrand() {
        return None;
    }
    for _ in 0..10 {
        let mut v = 0u64;
        // SAFETY: the CPU advertises RDRAND (checked above); the intrinsic
        // writes only `v`.
        if unsafe { _rdrand64_step(&mut v) } == 1 {
            return Some(v);
        }
    }
    None
}
