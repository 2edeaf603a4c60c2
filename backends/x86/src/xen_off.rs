//! The platform built without the `xen` feature: no hypercall page, no
//! shared info, no event channels. Xen is still detected (CPUID), so an
//! image booted on Xen stops with a message naming the missing feature
//! instead of probing a UART and PCI that PVH does not have.

/// The vector event-channel upcalls would arrive on (never raised here).
pub const UPCALL_VECTOR: u8 = 0xf3;

/// Always false: this platform does not run as a Xen guest.
#[inline(always)]
pub fn present() -> bool {
    false
}

/// On Xen: reports the missing feature on Xen's debug port (`xl dmesg`)
/// and halts with interrupts off, since without the hypercall page the
/// domain cannot shut itself down; Xen takes such a vCPU down, and the
/// domain with it (on nested Xen 4.17 `xl` no longer lists it). Elsewhere:
/// nothing.
pub(crate) fn init() -> bool {
    if crate::cpu::xen_leaves().is_some() {
        debug_write(b"morgana: booted on Xen, but this image was built without the `xen` feature\r\n");
        crate::exit::halt_forever();
    }
    false
}

pub(crate) fn enable_upcall() {}

pub(crate) fn tsc_hz() -> Option<u64> {
    None
}

pub(crate) fn wall_ns() -> Option<u64> {
    None
}

pub(crate) fn upcall_interrupt() {}

pub(crate) fn events_pending() -> bool {
    false
}

pub(crate) fn block(_deadline: Option<morgana_devices::Instant>) {}

pub(crate) fn dispatch() {}

/// Writes bytes to Xen's debug port (0xe9).
pub fn debug_write(bytes: &[u8]) {
    let mut port: x86_64::instructions::port::Port<u8> = x86_64::instructions::port::Port::new(0xe9);
    for &b in bytes {
        // SAFETY: only called once Xen was detected; Xen intercepts port
        // 0xe9 for every HVM/PVH guest and only logs the byte.
        unsafe { port.write(b) };
    }
}
