//! Xen PVH in the platform: detection, the hypercall page, the shared-info
//! page, event channels delivered as one interrupt vector, Xen time and
//! wall clock, and shutdown. The paravirtual devices (xenstore, console,
//! netfront, blkfront) are in `morgana-xen`; they build on this.
//!
//! Detection is by CPUID (`XenVMMXenVMM`); on other hypervisors nothing here
//! runs and no hypercall is made.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::Waker;

use x86_64::registers::model_specific::Msr;
use xen_sys::{evtchn_alloc_unbound, evtchn_send, evtchn_unmask, sched_poll, sched_shutdown, shared_info};

use crate::cpu::cpuid;
use crate::BootCell;

/// The vector event-channel upcalls arrive on.
pub const UPCALL_VECTOR: u8 = 0xf3;
/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;

const HVMOP_SET_PARAM: u64 = 0;
const HVMOP_GET_PARAM: u64 = 1;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// HVM parameter: the xenstore ring's frame.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// HVM parameter: the xenstore event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// HVM parameter: the console ring's frame.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// HVM parameter: the console event channel.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const EVTCHNOP_UNMASK: u64 = 9;
const SCHEDOP_SHUTDOWN: u64 = 2;
const SCHEDOP_POLL: u64 = 3;
const SHUTDOWN_POWEROFF: u32 = 0;
const SHUTDOWN_REBOOT: u32 = 1;
const SHUTDOWN_CRASH: u32 = 3;

static PRESENT: AtomicBool = AtomicBool::new(false);
static UPCALL: AtomicBool = AtomicBool::new(false);

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The page Xen's shared info is mapped over (its RAM is given up).
static SHARED_INFO: BootCell<Page> = BootCell::new(Page([0; 4096]));

// Xen writes the hypercall stubs into this page when we name it in the
// MSR; it lies in .text, so it is mapped executable.
core::arch::global_asm!(
    r#"
    .section .text.hypercall_page, "ax"
    .p2align 12
    .global HYPERCALL_PAGE
HYPERCALL_PAGE:
    .fill 4096, 1, 0xcc
"#
);

unsafe extern "C" {
    static HYPERCALL_PAGE: u8;
}

/// Whether this machine is a Xen guest (after [`init`]).
pub fn present() -> bool {
    PRESENT.load(Ordering::Relaxed)
}

fn hypercall2(op: u32, a1: u64, a2: u64) -> i64 {
    // SAFETY: the hypercall page was installed by `init` before any
    // hypercall; every caller passes arguments that are valid for `op`
    // (pointers to live, correctly laid out structures).
    unsafe { xen_sys::hypercall_2(op, a1, a2) as i64 }
}

fn shared() -> *mut shared_info {
    SHARED_INFO.0.get().cast()
}

#[repr(C)]
struct AddToPhysmap {
    domid: u16,
    size: u16,
    space: u32,
    idx: u64,
    gpfn: u64,
}

#[repr(C)]
struct HvmParam {
    domid: u16,
    pad: u16,
    index: u32,
    value: u64,
}

/// Maps frame `idx` of `space` at guest frame `gpfn` (XENMEM_add_to_physmap).
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> Result<(), i64> {
    let mut arg = AddToPhysmap { domid: DOMID_SELF, size: 0, space, idx, gpfn };
    match hypercall2(xen_sys::__HYPERVISOR_memory_op, XENMEM_ADD_TO_PHYSMAP, &raw mut arg as u64) {
        0 => Ok(()),
        e => Err(e),
    }
}

/// Reads an HVM parameter.
pub fn hvm_param(index: u32) -> Option<u64> {
    let mut p = HvmParam { domid: DOMID_SELF, pad: 0, index, value: 0 };
    (hypercall2(xen_sys::__HYPERVISOR_hvm_op, HVMOP_GET_PARAM, &raw mut p as u64) == 0).then_some(p.value)
}

fn set_hvm_param(index: u32, value: u64) -> Result<(), i64> {
    let mut p = HvmParam { domid: DOMID_SELF, pad: 0, index, value };
    match hypercall2(xen_sys::__HYPERVISOR_hvm_op, HVMOP_SET_PARAM, &raw mut p as u64) {
        0 => Ok(()),
        e => Err(e),
    }
}

/// Sets up Xen if the machine is a Xen guest: hypercall page, shared info,
/// the upcall vector. Returns whether it is.
pub(crate) fn init() -> bool {
    let Some(base) = crate::cpu::xen_leaves() else { return false };
    let msr = cpuid(base + 2, 0).ebx;
    // SAFETY: address-of only.
    let page = unsafe { &HYPERCALL_PAGE as *const u8 as u64 };
    // SAFETY: CPUID named `msr` as Xen's hypercall-page MSR; writing a
    // page-aligned guest address to it makes Xen fill that page, which is
    // reserved for it in .text and used by nothing else.
    unsafe { Msr::new(msr).write(page) };
    PRESENT.store(true, Ordering::Relaxed);
    let gpfn = SHARED_INFO.0.get() as u64 >> 12;
    if add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, gpfn).is_err() {
        crate::serial::write_raw(b"morgana: Xen refused to map the shared info page\r\n");
        crate::exit::halt_forever();
    }
    crate::exit::set_exit_hook(shutdown);
    true
}

/// Routes event-channel upcalls to [`UPCALL_VECTOR`] (after the IDT and
/// LAPIC are ready).
pub(crate) fn enable_upcall() {
    // Callback type 2: a vector delivered through the local APIC.
    if set_hvm_param(HVM_PARAM_CALLBACK_IRQ, (2 << 56) | UPCALL_VECTOR as u64).is_err() {
        crate::serial::write_raw(b"morgana: Xen refused the event-channel upcall vector\r\n");
    }
}

fn shutdown(code: i32) {
    shutdown_for(if code == 0 { SHUTDOWN_POWEROFF } else { SHUTDOWN_CRASH });
}

fn shutdown_for(reason: u32) {
    let mut s = sched_shutdown { reason };
    hypercall2(xen_sys::__HYPERVISOR_sched_op, SCHEDOP_SHUTDOWN, &raw mut s as u64);
}

/// Ends the domain asking the toolstack to start it again (`xl reboot`):
/// Xen's `SHUTDOWN_reboot`. Halts if Xen does not stop the domain.
pub fn reboot() -> ! {
    shutdown_for(SHUTDOWN_REBOOT);
    crate::exit::halt_forever()
}

/// TSC frequency from vCPU 0's time info.
pub(crate) fn tsc_hz() -> Option<u64> {
    // SAFETY: `shared()` points at the mapped shared-info page; the fields
    // are read volatile since Xen updates them.
    let (mul, shift) = unsafe {
        let t = &raw const (*shared()).vcpu_info[0].time;
        ((&raw const (*t).tsc_to_system_mul).read_volatile(), (&raw const (*t).tsc_shift).read_volatile())
    };
    if mul == 0 {
        return None;
    }
    // ns = ((ticks << shift) * mul) >> 32, so hz = 1e9 * 2^32 / (mul * 2^shift).
    let mut hz = (1_000_000_000u128 << 32) / mul as u128;
    if shift >= 0 {
        hz >>= shift as u32;
    } else {
        hz <<= (-shift) as u32;
    }
    Some(hz as u64)
}

/// Wall-clock time now (Unix nanoseconds) from the shared info and
/// vCPU 0's system time.
pub(crate) fn wall_ns() -> Option<u64> {
    let s = shared();
    for _ in 0..100 {
        // SAFETY: reading the mapped shared-info page, volatile; the
        // version protocol below discards torn reads.
        let (v1, sec, sec_hi, nsec, v2) = unsafe {
            let v1 = (&raw const (*s).wc_version).read_volatile();
            let sec = (&raw const (*s).wc_sec).read_volatile() as u64;
            let hi = (&raw const (*s).wc_sec_hi).read_volatile() as u64;
            let nsec = (&raw const (*s).wc_nsec).read_volatile() as u64;
            let v2 = (&raw const (*s).wc_version).read_volatile();
            (v1, sec, hi, nsec, v2)
        };
        if v1 == v2 && v1 & 1 == 0 {
            let boot = ((sec_hi << 32) | sec) * 1_000_000_000 + nsec;
            return (boot > 0).then(|| boot + system_time_ns());
        }
    }
    None
}

/// Xen system time (nanoseconds since the domain's boot) from vCPU 0's
/// time info and the TSC.
fn system_time_ns() -> u64 {
    // SAFETY: as for `tsc_hz`; the version protocol discards torn reads.
    unsafe {
        let t = &raw const (*shared()).vcpu_info[0].time;
        loop {
            let v1 = (&raw const (*t).version).read_volatile();
            let stamp = (&raw const (*t).tsc_timestamp).read_volatile();
            let sys = (&raw const (*t).system_time).read_volatile();
            let mul = (&raw const (*t).tsc_to_system_mul).read_volatile();
            let shift = (&raw const (*t).tsc_shift).read_volatile();
            let v2 = (&raw const (*t).version).read_volatile();
            if v1 != v2 || v1 & 1 != 0 {
                continue;
            }
            let mut delta = crate::clock::rdtsc().wrapping_sub(stamp);
            if shift >= 0 {
                delta <<= shift as u32;
            } else {
                delta >>= (-shift) as u32;
            }
            return sys + ((delta as u128 * mul as u128) >> 32) as u64;
        }
    }
}

// ---- event channels ----

const MAX_PORTS: usize = 256;
static WAKERS: [spin::Mutex<Option<Waker>>; MAX_PORTS] = [const { spin::Mutex::new(None) }; MAX_PORTS];
static FIRED: [AtomicU64; MAX_PORTS / 64] = [const { AtomicU64::new(0) }; MAX_PORTS / 64];

/// Called by the trap handler for [`UPCALL_VECTOR`].
pub(crate) fn upcall_interrupt() {
    // Xen re-injects the vector on every entry while `evtchn_upcall_pending`
    // is set, so it is cleared here; `dispatch` reads the pending words.
    // SAFETY: the shared-info page is mapped; a byte write to the ABI's
    // `evtchn_upcall_pending` field, volatile since Xen also writes it.
    unsafe { (&raw mut (*shared()).vcpu_info[0].evtchn_upcall_pending).write_volatile(0) };
    UPCALL.store(true, Ordering::Release);
}

/// Whether events wait to be dispatched: an upcall was taken, or the
/// shared info says one is due (an upcall not yet injected).
pub(crate) fn events_pending() -> bool {
    if UPCALL.load(Ordering::Acquire) {
        return true;
    }
    // SAFETY: the shared-info page is mapped; these fields are read
    // volatile since Xen writes them concurrently.
    unsafe {
        let v = &raw const (*shared()).vcpu_info[0];
        (&raw const (*v).evtchn_upcall_pending).read_volatile() != 0
            || (&raw const (*v).evtchn_pending_sel).read_volatile() != 0
    }
}

/// Ports whose events this guest takes (unmasked), for [`block`].
static BOUND: [AtomicU64; MAX_PORTS / 64] = [const { AtomicU64::new(0) }; MAX_PORTS / 64];

/// Blocks the vCPU in Xen until an event is pending on one of the bound
/// ports, any interrupt is due, or `deadline` (guest time) passes; with
/// interrupts disabled, since `SCHEDOP_poll` looks at the pending bits
/// itself. A `sti; hlt` here lost wakeups on nested Xen: an event or
/// timer interrupt that became pending just before the halt did not end
/// it, and the domain slept for good.
pub(crate) fn block(deadline: Option<morgana_devices::Instant>) {
    let mut ports = [0u32; 32];
    let mut n = 0;
    for (w, word) in BOUND.iter().enumerate() {
        let mut bits = word.load(Ordering::Relaxed);
        while bits != 0 && n < ports.len() {
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            ports[n] = w as u32 * 64 + b;
            n += 1;
        }
    }
    // Xen system time of the deadline (0: none).
    let timeout = match deadline {
        Some(d) => {
            let left = d.as_nanos().saturating_sub(crate::clock::now().as_nanos());
            system_time_ns().saturating_add(left).max(1)
        }
        None => 0,
    };
    let mut poll = sched_poll { ports: ports.as_mut_ptr(), nr_ports: n as u32, timeout };
    hypercall2(xen_sys::__HYPERVISOR_sched_op, SCHEDOP_POLL, &raw mut poll as u64);
}

/// Collects pending event channels (task context), marks them fired and
/// wakes their wakers.
pub(crate) fn dispatch() {
    if !present() {
        return;
    }
    // Also without an upcall: a pending selector is enough (see `block`).
    UPCALL.store(false, Ordering::Release);
    let s = shared();
    // SAFETY: the shared-info page is mapped; Xen and this CPU update these
    // words atomically (the layout is the ABI's), so accessing them through
    // atomics of the same size is sound.
    unsafe {
        let v = &raw mut (*s).vcpu_info[0];
        // Cleared before the selector is read, as the upcall handler does:
        // an event after this sets both again.
        (&raw mut (*v).evtchn_upcall_pending).write_volatile(0);
        let sel = &*(&raw mut (*v).evtchn_pending_sel).cast::<AtomicU64>();
        let mut words = sel.swap(0, Ordering::AcqRel);
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            let pending = &*(&raw mut (*s).evtchn_pending[w]).cast::<AtomicU64>();
            let mask = (&raw const (*s).evtchn_mask[w]).read_volatile();
            let mut bits = pending.load(Ordering::Acquire) & !mask;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                pending.fetch_and(!(1u64 << b), Ordering::AcqRel);
                let port = w * 64 + b;
                if port < MAX_PORTS {
                    FIRED[port / 64].fetch_or(1 << (port % 64), Ordering::AcqRel);
                    let waker = WAKERS[port].lock().take();
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                }
            }
        }
    }
}

/// An event channel port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u32);

impl Port {
    /// A port number Xen gave (in an HVM parameter or xenstore), if this
    /// platform can deliver its events.
    pub fn checked(port: u64) -> Option<Port> {
        (port < MAX_PORTS as u64).then_some(Port(port as u32))
    }

    /// Allocates an unbound port that domain `remote` may bind to.
    pub fn alloc_unbound(remote: u16) -> Result<Port, i64> {
        let mut a = evtchn_alloc_unbound { dom: DOMID_SELF, remote_dom: remote, port: 0 };
        match hypercall2(xen_sys::__HYPERVISOR_event_channel_op, EVTCHNOP_ALLOC_UNBOUND, &raw mut a as u64) {
            0 if (a.port as usize) < MAX_PORTS => Ok(Port(a.port)),
            0 => Err(-1),
            e => Err(e),
        }
    }

    /// Notifies the other end.
    pub fn notify(self) {
        let mut s = evtchn_send { port: self.0 };
        hypercall2(xen_sys::__HYPERVISOR_event_channel_op, EVTCHNOP_SEND, &raw mut s as u64);
    }

    /// Unmasks the port so its events raise upcalls (and end [`block`]).
    pub fn unmask(self) {
        if let Some(word) = BOUND.get(self.0 as usize / 64) {
            word.fetch_or(1 << (self.0 % 64), Ordering::Relaxed);
        }
        let mut u = evtchn_unmask { port: self.0 };
        hypercall2(xen_sys::__HYPERVISOR_event_channel_op, EVTCHNOP_UNMASK, &raw mut u as u64);
    }

    /// Wakes `waker` when the next event arrives.
    pub fn register(self, waker: &Waker) {
        if let Some(slot) = WAKERS.get(self.0 as usize) {
            *slot.lock() = Some(waker.clone());
        }
    }

    /// Whether an event arrived since the last call (clears it).
    pub fn take_fired(self) -> bool {
        let p = self.0 as usize;
        p < MAX_PORTS && FIRED[p / 64].fetch_and(!(1 << (p % 64)), Ordering::AcqRel) & (1 << (p % 64)) != 0
    }
}

/// Writes bytes to Xen's debug port (0xe9), shown by `xl dmesg` when Xen
/// runs with `guest_loglvl=all`.
pub fn debug_write(bytes: &[u8]) {
    let mut port: x86_64::instructions::port::Port<u8> = x86_64::instructions::port::Port::new(0xe9);
    for &b in bytes {
        // SAFETY: Xen intercepts port 0xe9 for every HVM/PVH guest and only
        // logs the byte.
        unsafe { port.write(b) };
    }
}
