//! Time: the TSC for monotonic time, the CMOS RTC for the wall clock.
//!
//! TSC frequency, in order of preference: Xen's vCPU time info, the
//! hypervisor timing leaf (CPUID 0x4000_0010, KVM/VMware), CPUID 0x15, or a
//! measurement against the LAPIC timer, which QEMU (TCG) and KVM both run
//! at 1 GHz: the median of [`SAMPLES`] windows of [`WINDOW_NS`], each
//! between two readings bracketed by the TSC (see
//! [`crate::irq::lapic_tsc_sample`]). A single short window was badly off
//! on a loaded host, whenever the vCPU thread lost the CPU between reading
//! the timer and the TSC.

use core::sync::atomic::{AtomicU64, Ordering};

use morgana_devices::{Clock, Instant, WallTime};
use x86_64::instructions::port::Port;

use crate::cpu;

/// LAPIC timer frequency assumed when the TSC's is unknown: QEMU and KVM
/// run it at 1 GHz.
const LAPIC_HZ_QEMU: u64 = 1_000_000_000;
static LAPIC_HZ: AtomicU64 = AtomicU64::new(LAPIC_HZ_QEMU);

static TSC_HZ: AtomicU64 = AtomicU64::new(1_000_000_000);
/// Nanoseconds per TSC tick, as a 32.32 fixed-point number.
static NS_PER_TICK: AtomicU64 = AtomicU64::new(1 << 32);
static WALL_AT_ENTRY: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and only reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn tsc_hz_from_cpuid() -> Option<u64> {
    let max_hv = cpu::cpuid(0x4000_0000, 0).eax;
    if (0x4000_0010..0x5000_0000).contains(&max_hv) {
        let khz = cpu::cpuid(0x4000_0010, 0).eax as u64;
        if khz > 0 {
            return Some(khz * 1000);
        }
    }
    if cpu::cpuid(0, 0).eax >= 0x15 {
        let l = cpu::cpuid(0x15, 0);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some(l.ecx as u64 * l.ebx as u64 / l.eax as u64);
        }
    }
    None
}

/// Calibration windows; the median is used.
const SAMPLES: usize = 5;
/// Length of each window.
const WINDOW_NS: u64 = 200_000;

/// The median by rate of [`SAMPLES`] (TSC cycles, LAPIC ticks) windows,
/// each ending once `long_enough(ticks, cycles)`; `None` if the LAPIC timer
/// does not count.
fn calibrate(long_enough: impl Fn(u64, u64) -> bool) -> Option<(u64, u64)> {
    let mut samples = [(0u64, 0u64); SAMPLES];
    let mut n = 0;
    for _ in 0..SAMPLES {
        if let Some(s) = crate::irq::lapic_tsc_sample(&long_enough) {
            samples[n] = s;
            n += 1;
        }
    }
    let samples = &mut samples[..n];
    // By cycles per tick, compared without division.
    samples.sort_unstable_by(|a, b| (a.0 as u128 * b.1 as u128).cmp(&(b.0 as u128 * a.1 as u128)));
    let median = *samples.get(n / 2)?;
    if let (Some(lo), Some(hi)) = (samples.first(), samples.last()) {
        // (hi / lo - 1) in parts per million.
        let (a, b) = (hi.0 as u128 * lo.1 as u128, lo.0 as u128 * hi.1 as u128);
        SPREAD_PPM.store(((a - b) * 1_000_000 / b.max(1)) as u64, Ordering::Relaxed);
    }
    Some(median)
}

/// The last calibration: its spread between windows (ppm) and duration (ns).
static SPREAD_PPM: AtomicU64 = AtomicU64::new(0);
static CALIBRATION_NS: AtomicU64 = AtomicU64::new(0);

/// How the TSC frequency was found, for the boot log.
pub fn calibration_report() -> impl core::fmt::Display {
    let (took, spread) = (CALIBRATION_NS.load(Ordering::Relaxed), SPREAD_PPM.load(Ordering::Relaxed));
    let hz = tsc_hz();
    alloc::format!(
        "TSC {}.{:03} MHz; LAPIC timer {} MHz; calibration took {}.{:03} ms, windows spread {}.{:02}%; wall clock {}",
        hz / 1_000_000,
        hz / 1000 % 1000,
        LAPIC_HZ.load(Ordering::Relaxed) / 1_000_000,
        took / 1_000_000,
        took / 1000 % 1000,
        spread / 10_000,
        spread / 100 % 100,
        if wall_time().is_some() { "set" } else { "none" }
    )
}

pub(crate) fn init() {
    let xen = crate::xen::present();
    let known = if xen { crate::xen::tsc_hz() } else { tsc_hz_from_cpuid() };
    let started = rdtsc();
    let hz = match known {
        Some(hz) => {
            // Measure the LAPIC timer against the known TSC (Xen runs it
            // at 100 MHz, not 1 GHz).
            let window = (hz as u128 * WINDOW_NS as u128 / 1_000_000_000) as u64;
            match calibrate(|_, cycles| cycles >= window) {
                Some((cycles, ticks)) => {
                    LAPIC_HZ.store((ticks as u128 * hz as u128 / cycles as u128) as u64, Ordering::Relaxed)
                }
                None => log::error!("the LAPIC timer does not count: timers cannot fire"),
            }
            hz
        }
        None => {
            let window = WINDOW_NS * LAPIC_HZ_QEMU / 1_000_000_000;
            match calibrate(|ticks, _| ticks >= window) {
                Some((cycles, ticks)) => (cycles as u128 * LAPIC_HZ_QEMU as u128 / ticks as u128) as u64,
                None => {
                    log::error!("the LAPIC timer does not count: TSC frequency unknown, 1 GHz assumed");
                    1_000_000_000
                }
            }
        }
    };
    set_tsc_hz(hz);
    CALIBRATION_NS.store(ticks_to_ns(rdtsc().wrapping_sub(started)), Ordering::Relaxed);
    if xen {
        if let Some(wall) = crate::xen::wall_ns() {
            set_wall_time(WallTime(wall));
        }
    } else if let Some(wall) = read_rtc() {
        WALL_AT_ENTRY.store(wall.saturating_sub(now().as_nanos()), Ordering::Relaxed);
    }
}

/// Sets the TSC frequency (the Xen backend takes it from the hypervisor).
pub fn set_tsc_hz(hz: u64) {
    let hz = hz.max(1_000_000);
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK.store(((1_000_000_000u128 << 32) / hz as u128) as u64, Ordering::Relaxed);
}

/// The TSC frequency in use.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts TSC ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((ticks as u128 * NS_PER_TICK.load(Ordering::Relaxed) as u128) >> 32) as u64
}

/// Monotonic time since the entry point.
pub fn now() -> Instant {
    Instant::from_nanos(ticks_to_ns(rdtsc().wrapping_sub(crate::boot::entry_tsc())))
}

pub(crate) fn ns_to_lapic_ticks(ns: u64) -> u64 {
    ((ns as u128 * LAPIC_HZ.load(Ordering::Relaxed) as u128) / 1_000_000_000) as u64
}

/// Wall-clock time, if the machine has an RTC.
pub fn wall_time() -> Option<WallTime> {
    match WALL_AT_ENTRY.load(Ordering::Relaxed) {
        0 => None,
        base => Some(WallTime(base + now().as_nanos())),
    }
}

/// Sets the wall clock (nanoseconds since the Unix epoch, now).
pub fn set_wall_time(wall: WallTime) {
    WALL_AT_ENTRY.store(wall.0.saturating_sub(now().as_nanos()), Ordering::Relaxed);
}

fn cmos(reg: u8) -> u8 {
    let mut index: Port<u8> = Port::new(0x70);
    let mut data: Port<u8> = Port::new(0x71);
    // SAFETY: ports 0x70/0x71 are the CMOS index and data registers; a clear
    // bit 7 in the index leaves NMIs enabled (Morgana never disables them).
    unsafe {
        index.write(reg & 0x7f);
        data.read()
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads the CMOS RTC (UTC assumed) as nanoseconds since the epoch.
fn read_rtc() -> Option<u64> {
    let status_b = cmos(0x0b);
    if status_b == 0xff {
        return None; // no RTC
    }
    let read = || {
        let mut spins = 0;
        while cmos(0x0a) & 0x80 != 0 && spins < 1_000_000 {
            spins += 1; // update in progress
        }
        [cmos(0x00), cmos(0x02), cmos(0x04), cmos(0x07), cmos(0x08), cmos(0x09), cmos(0x32)]
    };
    let mut t = read();
    loop {
        let again = read();
        if again == t {
            break;
        }
        t = again;
    }
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| if bcd { (v & 0x0f) + (v >> 4) * 10 } else { v };
    let hour_raw = t[2];
    let mut hour = conv(hour_raw & 0x7f) as u64;
    if status_b & 0x02 == 0 && hour_raw & 0x80 != 0 {
        hour = (hour % 12) + 12; // 12-hour clock, PM
    }
    let century = match conv(t[6]) {
        c @ 19..=30 => c as i64,
        _ => 20,
    };
    let (sec, min, day, mon, year) = (conv(t[0]), conv(t[1]), conv(t[3]), conv(t[4]), conv(t[5]));
    if !(1..=12).contains(&mon) || !(1..=31).contains(&day) || sec > 60 || min > 59 || hour > 23 {
        return None;
    }
    let days = days_from_civil(century * 100 + year as i64, mon as u32, day as u32);
    let secs = days * 86_400 + hour as i64 * 3600 + min as i64 * 60 + sec as i64;
    u64::try_from(secs).ok().map(|s| s * 1_000_000_000)
}

/// The platform's clocks as a [`Clock`] device.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        now()
    }

    fn wall(&self) -> Option<WallTime> {
        wall_time()
    }
}
