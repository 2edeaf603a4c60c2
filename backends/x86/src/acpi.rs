//! ACPI, the little a unikernel needs: the FADT's power-management
//! registers, to power off (S5) and to hear the power button, which is what
//! `virsh shutdown` and QEMU's `system_powerdown` press.
//!
//! Tables are read once at boot, before the heap exists (a loader may list
//! the memory they sit in as RAM). Nothing here runs without tables (QEMU
//! microvm, Xen PVH): [`power`] is then `None`.

use x86_64::instructions::port::Port;

use crate::acpi_tables::{checksum, s5, sci_route, u16_at, u32_at, u64_at};
use crate::boot_info::BootInfo;

/// Where the power-management registers are (I/O ports), from the FADT.
#[derive(Debug, Clone, Copy)]
pub struct Power {
    /// The SCI's interrupt line, after any MADT override.
    pub sci_gsi: u32,
    /// SCI trigger: level (the ACPI default) or edge.
    pub sci_level: bool,
    /// SCI polarity: active low (the ACPI default) or high.
    pub sci_active_low: bool,
    smi_cmd: u16,
    acpi_enable: u8,
    pm1a_evt: u16,
    pm1b_evt: u16,
    pm1_evt_len: u8,
    pm1a_cnt: u16,
    pm1b_cnt: u16,
    /// SLP_TYPa and SLP_TYPb of \_S5 (soft off), from the DSDT.
    s5: Option<(u8, u8)>,
}

static POWER: crate::BootCell<Option<Power>> = crate::BootCell::new(None);

/// The power-management registers, if the firmware described them.
pub fn power() -> Option<&'static Power> {
    // SAFETY: POWER is written once by `init`, during single-threaded boot
    // before anything calls `power`, and never again.
    unsafe { POWER.get().as_ref() }
}

/// Tables are looked for only where firmware puts them: in the memory
/// map's regions (any type) or in the first MiB, never in page 0, the
/// stack's guard page or an MMIO window, and below 4 GiB (mapped).
struct Memory<'a>(&'a BootInfo);

impl Memory<'_> {
    fn readable(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        let guard = crate::paging::guard_page();
        let listed = (0x1000..=0x10_0000).contains(&addr) && end <= 0x10_0000
            || self.0.regions().iter().any(|r| r.addr <= addr && end <= r.addr.saturating_add(r.size));
        addr >= 0x1000 && end <= 1 << 32 && !(addr < guard + 4096 && guard < end) && listed
    }

    fn bytes(&self, addr: u64, len: u64) -> Option<&'static [u8]> {
        if !self.readable(addr, len) {
            return None;
        }
        // SAFETY: the range is identity mapped (below 4 GiB, not page 0 or
        // the guard page), lies in memory the firmware listed or in the
        // BIOS area, and is only read, at boot, before the heap can hand
        // it out.
        Some(unsafe { core::slice::from_raw_parts(addr as usize as *const u8, len as usize) })
    }

    /// A table with a valid header, length and checksum at `addr`.
    fn table(&self, addr: u64) -> Option<&'static [u8]> {
        let header = self.bytes(addr, 36)?;
        let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as u64;
        if !(36..=1 << 20).contains(&len) {
            return None;
        }
        let table = self.bytes(addr, len)?;
        (checksum(table) == 0).then_some(table)
    }
}

/// The RSDP's address: where the loader said, else in the EBDA's first
/// KiB or the BIOS area (ACPI 6.5, 5.2.5.1).
fn rsdp(mem: &Memory, hint: u64) -> Option<u64> {
    let valid = |addr: u64| {
        let r = mem.bytes(addr, 20)?;
        (&r[..8] == b"RSD PTR " && checksum(r) == 0).then_some(addr)
    };
    if hint != 0 {
        return valid(hint);
    }
    let ebda = mem.bytes(0x40e, 2).map(|b| (u16::from_le_bytes([b[0], b[1]]) as u64) << 4).unwrap_or(0);
    let areas = [(ebda, 1024), (0xe_0000, 0x2_0000)];
    areas.iter().filter(|(a, _)| *a != 0).flat_map(|&(a, n)| (a..a + n).step_by(16)).find_map(valid)
}

/// The XSDT (entries of 8 bytes) if the RSDP has a valid one, else the
/// RSDT (entries of 4).
fn root(mem: &Memory, rsdp: u64) -> Option<(&'static [u8], usize)> {
    let r = mem.bytes(rsdp, 20)?;
    if r[15] >= 2 {
        let xsdt = mem.bytes(rsdp, 36).filter(|x| checksum(x) == 0).and_then(|x| u64_at(x, 24));
        if let Some(t) = xsdt.and_then(|a| mem.table(a)) {
            return Some((t, 8));
        }
    }
    Some((mem.table(u32_at(r, 16)? as u64)?, 4))
}

/// The tables the root table lists.
fn tables<'a>(mem: &'a Memory, rsdp: u64) -> impl Iterator<Item = &'static [u8]> + 'a {
    let (root, width) = root(mem, rsdp).unwrap_or((&[0; 36], 4));
    root[36..].chunks_exact(width).filter_map(move |e| {
        let addr = if width == 8 { u64_at(e, 0)? } else { u32_at(e, 0)? as u64 };
        mem.table(addr)
    })
}

/// Reads the FADT, DSDT and MADT (boot only, before the heap).
pub(crate) fn init(info: &BootInfo) {
    let mem = Memory(info);
    let Some(rsdp) = rsdp(&mem, info.rsdp) else { return };
    let (mut fadt, mut madt) = (None, None);
    for t in tables(&mem, rsdp) {
        match &t[..4] {
            b"FACP" => fadt = Some(t),
            b"APIC" => madt = Some(t),
            _ => {}
        }
    }
    let Some(f) = fadt else { return };
    let port = |at: usize| u32_at(f, at).and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    let dsdt = match u64_at(f, 140).filter(|&a| a != 0 && f.len() >= 148) {
        Some(x) => mem.table(x),
        None => u32_at(f, 40).and_then(|a| mem.table(a as u64)),
    };
    let sci = u16_at(f, 46).unwrap_or(0);
    let (sci_gsi, sci_level, sci_active_low) = sci_route(madt, sci);
    let power = Power {
        sci_gsi,
        sci_level,
        sci_active_low,
        smi_cmd: port(48),
        acpi_enable: f.get(52).copied().unwrap_or(0),
        pm1a_evt: port(56),
        pm1b_evt: port(60),
        pm1_evt_len: f.get(88).copied().unwrap_or(0),
        pm1a_cnt: port(64),
        pm1b_cnt: port(68),
        s5: dsdt.and_then(|d| s5(&d[36..])),
    };
    if power.pm1a_evt == 0 || power.pm1a_cnt == 0 || power.pm1_evt_len < 4 {
        return;
    }
    // SAFETY: boot is single-threaded and nothing has read POWER yet.
    unsafe { *POWER.boot_mut() = Some(power) };
}

const PWRBTN: u16 = 1 << 8;
const SCI_EN: u16 = 1;
const SLP_EN: u16 = 1 << 13;

fn inw(port: u16) -> u16 {
    // SAFETY: `port` is a PM1 register block the FADT named; reading it
    // has no side effects.
    unsafe { Port::<u16>::new(port).read() }
}

fn outw(port: u16, v: u16) {
    // SAFETY: `port` is a PM1 register block the FADT named; the callers
    // write only the bits ACPI defines for it (status bits to clear,
    // enable bits, sleep type and enable).
    unsafe { Port::<u16>::new(port).write(v) }
}

impl Power {
    fn status_ports(&self) -> [u16; 2] {
        [self.pm1a_evt, self.pm1b_evt]
    }

    fn enable_ports(&self) -> [u16; 2] {
        let half = self.pm1_evt_len as u16 / 2;
        [self.pm1a_evt + half, if self.pm1b_evt != 0 { self.pm1b_evt + half } else { 0 }]
    }

    /// Switches the machine to ACPI mode (SCI_EN) if the firmware left it
    /// in legacy mode, and enables the power button's event. Returns
    /// whether ACPI mode is on.
    pub fn enable_power_button(&self) -> bool {
        if inw(self.pm1a_cnt) & SCI_EN == 0 && self.smi_cmd != 0 && self.acpi_enable != 0 {
            // SAFETY: SMI_CMD and ACPI_ENABLE come from the FADT; this write
            // is the documented way to hand the PM registers to the OS.
            unsafe { Port::<u8>::new(self.smi_cmd).write(self.acpi_enable) };
            let start = crate::clock::now();
            while inw(self.pm1a_cnt) & SCI_EN == 0 {
                if crate::clock::now().as_nanos() - start.as_nanos() > 100_000_000 {
                    return false;
                }
                core::hint::spin_loop();
            }
        }
        for p in self.status_ports().into_iter().filter(|&p| p != 0) {
            outw(p, PWRBTN); // write 1 to clear
        }
        for p in self.enable_ports().into_iter().filter(|&p| p != 0) {
            outw(p, inw(p) | PWRBTN);
        }
        true
    }

    /// Whether the power button was pressed since the last call (clears
    /// the event, which lets the SCI go).
    pub fn take_power_button(&self) -> bool {
        let mut pressed = false;
        for p in self.status_ports().into_iter().filter(|&p| p != 0) {
            if inw(p) & PWRBTN != 0 {
                outw(p, PWRBTN);
                pressed = true;
            }
        }
        pressed
    }

    /// Enters S5 (soft off). Returns only if the machine did not turn off.
    pub fn power_off(&self) {
        let Some((a, b)) = self.s5 else { return };
        outw(self.pm1a_cnt, ((a as u16 & 7) << 10) | SLP_EN);
        if self.pm1b_cnt != 0 {
            outw(self.pm1b_cnt, ((b as u16 & 7) << 10) | SLP_EN);
        }
    }
}
