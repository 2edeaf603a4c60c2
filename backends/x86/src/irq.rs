//! Interrupts: the local APIC (one-shot timer, EOI), the IOAPIC (device
//! lines), and the executor platform that halts until one of them fires
//! (on Xen, blocks in Xen until an event channel is pending or the next
//! deadline passes; see `xen::block`).
//!
//! Interrupt handlers do almost nothing: they record which line fired, mask
//! level-triggered lines at the IOAPIC (the device keeps the line asserted
//! until its driver acknowledges it) and send EOI. The executor, woken from
//! `hlt`, wakes the tasks registered for those lines; their drivers
//! acknowledge the device and unmask the line through [`IrqLine::ack`].

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::task::Waker;

use morgana_devices::Instant;
use morgana_runtime::Platform;
use x86_64::instructions::interrupts;
use x86_64::registers::model_specific::Msr;

use crate::clock;

/// First vector used for IOAPIC lines: GSI `g` arrives on `DEVICE_BASE + g`.
pub const DEVICE_BASE: u8 = 0x30;
/// How many GSIs can be routed.
pub const MAX_GSI: u32 = 48;
/// The LAPIC timer's vector.
pub const TIMER_VECTOR: u8 = 0xef;
/// The LAPIC spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IOAPIC_BASES: [(usize, u32); 2] = [(0xfec0_0000, 0), (0xfec1_0000, 24)];

static LAPIC_BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);
static PENDING: AtomicU64 = AtomicU64::new(0);
static MASKED: AtomicU64 = AtomicU64::new(0);
static LEVEL: AtomicU64 = AtomicU64::new(0);
static TIMER_FIRED: AtomicBool = AtomicBool::new(false);
/// Devices that may share one line (PCI INTx lines are shared).
const SHARERS: usize = 4;
static WAKERS: [[spin::Mutex<Option<Waker>>; SHARERS]; MAX_GSI as usize] =
    [const { [const { spin::Mutex::new(None) }; SHARERS] }; MAX_GSI as usize];
static SHARER_COUNT: [core::sync::atomic::AtomicU8; MAX_GSI as usize] =
    [const { core::sync::atomic::AtomicU8::new(0) }; MAX_GSI as usize];

fn lapic_reg(offset: usize) -> *mut u32 {
    (LAPIC_BASE.load(Ordering::Relaxed) as usize + offset) as *mut u32
}

fn lapic_read(offset: usize) -> u32 {
    // SAFETY: the LAPIC register page is identity mapped uncached, and
    // `offset` is one of the architectural register offsets below 0x400.
    unsafe { lapic_reg(offset).read_volatile() }
}

fn lapic_write(offset: usize, value: u32) {
    // SAFETY: as for `lapic_read`; writes to these registers only affect
    // this CPU's interrupt delivery.
    unsafe { lapic_reg(offset).write_volatile(value) }
}

const LAPIC_ID: usize = 0x20;
const LAPIC_TPR: usize = 0x80;
const LAPIC_EOI: usize = 0xb0;
const LAPIC_SVR: usize = 0xf0;
const LAPIC_LVT_TIMER: usize = 0x320;
const LAPIC_LVT_LINT0: usize = 0x350;
const LAPIC_LVT_LINT1: usize = 0x360;
const LAPIC_TIMER_INIT: usize = 0x380;
const LAPIC_TIMER_CURRENT: usize = 0x390;
const LAPIC_TIMER_DIVIDE: usize = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;

fn ioapic_for(gsi: u32) -> Option<(usize, u32)> {
    IOAPIC_BASES.iter().rev().find(|(_, first)| gsi >= *first).map(|&(base, first)| (base, gsi - first))
}

fn ioapic_write(base: usize, reg: u32, value: u32) {
    // SAFETY: `base` is an IOAPIC register window (identity mapped
    // uncached): IOREGSEL at +0, IOWIN at +0x10. Interrupts are off, so the
    // handler's own select/access pair cannot come in between.
    interrupts::without_interrupts(|| unsafe {
        (base as *mut u32).write_volatile(reg);
        ((base + 0x10) as *mut u32).write_volatile(value);
    })
}

fn ioapic_read(base: usize, reg: u32) -> u32 {
    // SAFETY: as for `ioapic_write`.
    interrupts::without_interrupts(|| unsafe {
        (base as *mut u32).write_volatile(reg);
        ((base + 0x10) as *const u32).read_volatile()
    })
}

/// Number of redirection entries of the IOAPIC at `base` (0 if absent).
fn ioapic_entries(base: usize) -> u32 {
    let v = ioapic_read(base, 1);
    if v == 0 || v == u32::MAX {
        return 0;
    }
    ((v >> 16) & 0xff) + 1
}

fn set_masked(gsi: u32, masked: bool) {
    let Some((base, pin)) = ioapic_for(gsi) else { return };
    let low = ioapic_read(base, 0x10 + 2 * pin);
    let low = if masked { low | LVT_MASKED } else { low & !LVT_MASKED };
    ioapic_write(base, 0x10 + 2 * pin, low);
}

/// Masks the legacy PICs, enables the local APIC and masks every IOAPIC
/// line. Interrupts stay disabled until the executor first waits.
pub(crate) fn init() {
    let xen = crate::xen::present();
    // SAFETY: ports 0x21 and 0xa1 are the 8259 PICs' mask registers on PC
    // machines (and ignored where there is no PIC); masking them keeps
    // legacy interrupts from arriving through LINT0.
    if !xen {
        unsafe {
            x86_64::instructions::port::Port::<u8>::new(0x21).write(0xff);
            x86_64::instructions::port::Port::<u8>::new(0xa1).write(0xff);
        }
    }
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no
    // side effects.
    let base = unsafe { Msr::new(0x1b).read() } & 0x000f_ffff_f000;
    LAPIC_BASE.store(base, Ordering::Relaxed);
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    lapic_write(LAPIC_TIMER_DIVIDE, 0b1011); // divide by 1
    lapic_write(LAPIC_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    if xen {
        // PVH has no IOAPIC: devices signal through event channels.
        crate::xen::enable_upcall();
        return;
    }
    for (base, first) in IOAPIC_BASES {
        for pin in 0..ioapic_entries(base) {
            if first + pin < MAX_GSI {
                ioapic_write(base, 0x10 + 2 * pin, LVT_MASKED);
            }
        }
    }
}

/// Reads the LAPIC timer's current count with the TSC: the narrowest of
/// three bracketed reads, so a read the host stalled after (a vCPU thread
/// descheduled while leaving the emulated register) is not used. Returns
/// the count and the TSC midway through its read.
fn lapic_count_at_tsc() -> (u32, u64) {
    let mut best = (0, 0, u64::MAX);
    for _ in 0..3 {
        let before = clock::rdtsc();
        let count = lapic_read(LAPIC_TIMER_CURRENT);
        let width = clock::rdtsc().wrapping_sub(before);
        if width < best.2 {
            best = (count, before.wrapping_add(width / 2), width);
        }
    }
    (best.0, best.1)
}

/// TSC cycles beyond which a calibration window ends anyway (a LAPIC timer
/// that does not count): seconds at any real TSC frequency.
const SAMPLE_LIMIT: u64 = 1 << 33;

/// One calibration sample: runs the LAPIC timer (masked) until
/// `long_enough(ticks, cycles)` and returns the (TSC cycles, LAPIC ticks)
/// that elapsed between two bracketed readings, or `None` if the timer did
/// not count. Boot only.
pub(crate) fn lapic_tsc_sample(long_enough: impl Fn(u64, u64) -> bool) -> Option<(u64, u64)> {
    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    lapic_write(LAPIC_TIMER_INIT, u32::MAX);
    let (c0, t0) = lapic_count_at_tsc();
    let sample = loop {
        let (c1, t1) = lapic_count_at_tsc();
        let ticks = u64::from(c0.saturating_sub(c1));
        let cycles = t1.wrapping_sub(t0);
        if long_enough(ticks, cycles) || c1 == 0 || cycles > SAMPLE_LIMIT {
            break (ticks > 0 && cycles > 0).then_some((cycles, ticks));
        }
        core::hint::spin_loop();
    };
    lapic_write(LAPIC_TIMER_INIT, 0);
    sample
}

fn eoi() {
    lapic_write(LAPIC_EOI, 0);
}

/// Called by the trap handler for vectors from [`DEVICE_BASE`].
pub(crate) fn device_interrupt(vector: u8) {
    let Some(gsi) = vector.checked_sub(DEVICE_BASE).map(u32::from) else {
        eoi();
        return;
    };
    if gsi < MAX_GSI {
        let bit = 1u64 << gsi;
        if LEVEL.load(Ordering::Relaxed) & bit != 0 {
            set_masked(gsi, true);
            MASKED.fetch_or(bit, Ordering::AcqRel);
        }
        PENDING.fetch_or(bit, Ordering::AcqRel);
    }
    eoi();
}

/// Called by the trap handler for Xen's event-channel upcall.
pub(crate) fn upcall_interrupt() {
    crate::xen::upcall_interrupt();
    eoi();
}

/// Called by the trap handler for [`TIMER_VECTOR`].
pub(crate) fn timer_interrupt() {
    TIMER_FIRED.store(true, Ordering::Release);
    eoi();
}

/// A device's interrupt line, routed through the IOAPIC to this CPU.
#[derive(Debug, Clone, Copy)]
pub struct IrqLine {
    gsi: u32,
    sharer: usize,
}

impl IrqLine {
    /// Routes GSI `gsi` to this CPU, level-triggered (PCI INTx, virtio-mmio)
    /// or edge-triggered (ISA devices), active high, and unmasks it. Each
    /// caller gets its own registration on a shared line. Returns `None` for
    /// a GSI no IOAPIC serves, or one with too many sharers.
    pub fn route(gsi: u32, level: bool) -> Option<IrqLine> {
        IrqLine::route_with_polarity(gsi, level, false)
    }

    /// As [`route`](Self::route), active low if `active_low` (the ACPI
    /// SCI's default, unless the MADT overrides it).
    pub fn route_with_polarity(gsi: u32, level: bool, active_low: bool) -> Option<IrqLine> {
        let (base, pin) = ioapic_for(gsi)?;
        if gsi >= MAX_GSI || pin >= ioapic_entries(base) {
            return None;
        }
        let sharer = SHARER_COUNT[gsi as usize].fetch_add(1, Ordering::AcqRel) as usize;
        if sharer >= SHARERS {
            return None;
        }
        let bit = 1u64 << gsi;
        if level {
            LEVEL.fetch_or(bit, Ordering::AcqRel);
        }
        let dest = lapic_read(LAPIC_ID) >> 24;
        let vector = (DEVICE_BASE as u32) + gsi;
        let low = vector | if level { 1 << 15 } else { 0 } | if active_low { 1 << 13 } else { 0 };
        interrupts::without_interrupts(|| {
            ioapic_write(base, 0x11 + 2 * pin, dest << 24);
            ioapic_write(base, 0x10 + 2 * pin, low);
        });
        Some(IrqLine { gsi, sharer })
    }

    /// The GSI.
    pub fn gsi(&self) -> u32 {
        self.gsi
    }

    /// Wakes `waker` the next time the line fires (replacing an earlier
    /// registration).
    pub fn register(&self, waker: &Waker) {
        let mut slot = WAKERS[self.gsi as usize][self.sharer].lock();
        match slot.as_ref() {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// If the line fired since the last call, runs `device_ack` (which must
    /// make the device deassert the line, e.g. read its ISR) and re-enables
    /// the line. Cheap when the line has not fired.
    pub fn acknowledge(&self, device_ack: impl FnOnce()) {
        let bit = 1u64 << self.gsi;
        if MASKED.load(Ordering::Acquire) & bit != 0 {
            device_ack();
            interrupts::without_interrupts(|| {
                MASKED.fetch_and(!bit, Ordering::AcqRel);
                set_masked(self.gsi, false);
            });
        }
    }
}

/// The executor's platform on bare metal: TSC time, and `hlt` until an
/// interrupt or the LAPIC one-shot timer (on Xen, `xen::block`).
#[derive(Debug, Default)]
pub struct Machine;

fn arm_timer(ns: u64) {
    let ticks = clock::ns_to_lapic_ticks(ns).clamp(1, u32::MAX as u64) as u32;
    lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR as u32);
    lapic_write(LAPIC_TIMER_INIT, ticks);
}

fn dispatch() {
    let pending = PENDING.swap(0, Ordering::AcqRel);
    let mut bits = pending;
    while bits != 0 {
        let gsi = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        for slot in &WAKERS[gsi] {
            if let Some(w) = slot.lock().take() {
                w.wake();
            }
        }
    }
}

impl Platform for Machine {
    fn now(&self) -> Instant {
        clock::now()
    }

    fn wait(&self, deadline: Option<Instant>) {
        let xen = crate::xen::present();
        loop {
            interrupts::disable();
            if PENDING.load(Ordering::Acquire) != 0 || (xen && crate::xen::events_pending()) {
                interrupts::enable();
                break;
            }
            let now = clock::now();
            match deadline {
                Some(d) if d <= now => {
                    interrupts::enable();
                    break;
                }
                _ if xen => {
                    // Events and the deadline end a poll in Xen, not an
                    // interrupt (see `xen::block`).
                    crate::xen::block(deadline);
                    interrupts::enable();
                    continue;
                }
                Some(d) => arm_timer(d.as_nanos() - now.as_nanos()),
                None => lapic_write(LAPIC_TIMER_INIT, 0),
            }
            TIMER_FIRED.store(false, Ordering::Relaxed);
            // `sti; hlt`: an interrupt arriving between the checks above and
            // the halt is taken after `hlt` begins, so it is never lost.
            interrupts::enable_and_hlt();
        }
        lapic_write(LAPIC_TIMER_INIT, 0);
        dispatch();
        crate::xen::dispatch();
    }
}
