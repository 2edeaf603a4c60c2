//! What the loader told us, whichever loader it was (PVH's `hvm_start_info`
//! in [`crate::pvh`], the multiboot2 information in [`crate::multiboot2`]):
//! the command line, the memory map, the ACPI RSDP and the boot modules.
//!
//! The structures are copied into the image's own memory at entry, before
//! the heap exists. The modules' contents stay where the loader put them;
//! they are checked to lie in RAM below 4 GiB (so identity mapped), outside
//! the image, and the heap is laid around them, so the slices handed out by
//! [`modules`] are never written.
//!
//! Anything malformed (a module past RAM, a structure running off its end)
//! is reported on the serial line and the VM ends with [`crate::FATAL_EXIT`].

use core::fmt;
#[cfg(target_os = "none")]
use core::fmt::Write;

#[cfg(target_os = "none")]
pub(crate) use crate::mb2_tags::{u32_at, u64_at};

pub(crate) const MAX_CMDLINE: usize = 4096;
pub(crate) const MAX_REGIONS: usize = 128;
pub(crate) const MAX_MODULES: usize = 16;

/// E820-style memory type of usable RAM.
pub const RAM: u32 = 1;

/// Everything below this is mapped (the page tables cover 4 GiB).
pub(crate) const MAPPED_LIMIT: u64 = 4 << 30;

/// One entry of the memory map.
#[derive(Debug, Clone, Copy, Default)]
pub struct Region {
    /// Physical start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (1 = RAM).
    pub kind: u32,
}

/// A boot module: a file the loader placed in memory (QEMU `-initrd`, Xen
/// `ramdisk=`, GRUB's `module2`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Module {
    /// Physical start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Module {
    /// The module's bytes.
    #[cfg(target_os = "none")]
    pub fn bytes(&self) -> &'static [u8] {
        if self.size == 0 {
            return &[];
        }
        // SAFETY: `check_modules` accepted this module at boot: it lies in
        // RAM according to the memory map, below 4 GiB (identity mapped
        // readable by the page tables), not on page 0 and outside the image;
        // the heap is laid around it and nothing in Morgana writes there, so
        // the bytes stay valid and unchanged for the life of the VM.
        unsafe { core::slice::from_raw_parts(crate::phys_to_virt(self.addr) as *const u8, self.size as usize) }
    }
}

/// Which boot protocol entered the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// The PVH entry (QEMU `-kernel`, Xen, Firecracker, cloud-hypervisor).
    Pvh,
    /// The multiboot2 entry (GRUB).
    Multiboot2,
}

impl fmt::Display for Loader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Loader::Pvh => "PVH",
            Loader::Multiboot2 => "multiboot2",
        })
    }
}

/// What the loader told us, copied into the image's own memory.
pub struct BootInfo {
    /// The protocol that entered the image.
    pub loader: Loader,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// The command line was longer than the buffer and was cut.
    pub cmdline_truncated: bool,
    regions: [Region; MAX_REGIONS],
    region_count: usize,
    /// Entries of the loader's memory map left out (beyond the first 128).
    pub regions_dropped: usize,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp: u64,
    modules: [Module; MAX_MODULES],
    module_count: usize,
    /// Modules left out (beyond the first 16).
    pub modules_dropped: usize,
}

impl BootInfo {
    /// Nothing known yet.
    pub(crate) const EMPTY: BootInfo = BootInfo {
        loader: Loader::Pvh,
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: 0,
        cmdline_truncated: false,
        regions: [Region { addr: 0, size: 0, kind: 0 }; MAX_REGIONS],
        region_count: 0,
        regions_dropped: 0,
        rsdp: 0,
        modules: [Module { addr: 0, size: 0 }; MAX_MODULES],
        module_count: 0,
        modules_dropped: 0,
    };

    /// The kernel command line (empty if none, or not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.region_count]
    }

    /// The boot modules, in the loader's order.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.module_count]
    }

    /// Whether `[addr, addr + len)` overlaps usable RAM.
    pub fn is_ram(&self, addr: u64, len: u64) -> bool {
        let end = addr.saturating_add(len);
        self.regions().iter().any(|r| r.kind == RAM && addr < r.addr.saturating_add(r.size) && r.addr < end)
    }

    /// Whether `[addr, addr + len)` lies wholly inside one RAM region.
    fn within_ram(&self, addr: u64, len: u64) -> bool {
        let Some(end) = addr.checked_add(len) else { return false };
        self.regions().iter().any(|r| r.kind == RAM && r.addr <= addr && end <= r.addr.saturating_add(r.size))
    }

    pub(crate) fn set_cmdline(&mut self, bytes: impl Iterator<Item = u8>) {
        for b in bytes {
            if self.cmdline_len == MAX_CMDLINE {
                self.cmdline_truncated = true;
                break;
            }
            self.cmdline[self.cmdline_len] = b;
            self.cmdline_len += 1;
        }
    }

    pub(crate) fn push_region(&mut self, region: Region) {
        if self.region_count == MAX_REGIONS {
            self.regions_dropped += 1;
        } else {
            self.regions[self.region_count] = region;
            self.region_count += 1;
        }
    }

    pub(crate) fn push_module(&mut self, module: Module) {
        if self.module_count == MAX_MODULES {
            self.modules_dropped += 1;
        } else {
            self.modules[self.module_count] = module;
            self.module_count += 1;
        }
    }

    /// Calls `f(start, end)` for every piece of RAM at or above `from` and
    /// below the mapped limit that no module covers (page aligned).
    pub(crate) fn free_ram(&self, from: u64, mut f: impl FnMut(u64, u64)) {
        for r in self.regions().iter().filter(|r| r.kind == RAM) {
            let mut lo = page_up(r.addr.max(from));
            let hi = r.addr.saturating_add(r.size).min(MAPPED_LIMIT) & !4095;
            while lo < hi {
                // The lowest module overlapping [lo, hi) cuts the piece.
                let cut = self
                    .modules()
                    .iter()
                    .filter(|m| m.size > 0)
                    .map(|m| (m.addr & !4095, page_up(m.addr + m.size)))
                    .filter(|&(s, e)| s < hi && e > lo)
                    .min_by_key(|&(s, _)| s);
                let (piece_end, next) = match cut {
                    Some((s, e)) => (s.max(lo), e),
                    None => (hi, hi),
                };
                if piece_end > lo {
                    f(lo, piece_end);
                }
                lo = next;
            }
        }
    }
}

fn page_up(addr: u64) -> u64 {
    addr.saturating_add(4095) & !4095
}

#[cfg(target_os = "none")]
static INFO: crate::BootCell<BootInfo> = crate::BootCell::new(BootInfo::EMPTY);

#[cfg(target_os = "none")]
/// The boot information read at entry.
pub fn get() -> &'static BootInfo {
    // SAFETY: INFO is written only by `boot_mut`'s callers during
    // single-threaded boot, before anything calls `get`, and never again.
    unsafe { INFO.get() }
}

#[cfg(target_os = "none")]
/// The boot modules' bytes, in the loader's order.
pub fn modules() -> impl Iterator<Item = &'static [u8]> {
    get().modules().iter().map(Module::bytes)
}

#[cfg(target_os = "none")]
/// The record the loader-specific parsers fill, once, at entry.
///
/// # Safety
/// Only during single-threaded boot, before any call to [`get`], and once.
pub(crate) unsafe fn boot_mut(loader: Loader) -> &'static mut BootInfo {
    // SAFETY: the caller guarantees exclusive access during boot.
    let info = unsafe { INFO.boot_mut() };
    info.loader = loader;
    info
}

#[cfg(target_os = "none")]
/// Reports malformed boot information on the serial line and ends the VM.
pub(crate) fn refuse(args: fmt::Arguments<'_>) -> ! {
    let mut w = crate::serial::Writer;
    let _ = w.write_str("morgana: bad boot information: ");
    let _ = w.write_fmt(args);
    let _ = w.write_str("\r\n");
    crate::exit::exit(crate::FATAL_EXIT)
}

/// Refuses the boot if [`BootInfo::validate`] finds a problem.
#[cfg(target_os = "none")]
pub(crate) fn check(info: &BootInfo) {
    if let Err(e) = info.validate(crate::paging::image_bounds()) {
        refuse(format_args!("{e}"))
    }
}

/// What is wrong with the boot information.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// Two RAM regions of the map overlap.
    RegionsOverlap(usize, usize),
    /// A module's end does not fit in 64 bits.
    ModuleWraps(usize, u64, u64),
    /// A module ends above the mapped 4 GiB.
    ModuleAbove4G(usize, u64, u64),
    /// A module is not wholly inside one RAM region.
    ModuleNotInRam(usize, u64, u64),
    /// A module covers page 0 or the image.
    ModuleOverImage(usize, u64, u64),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalid::RegionsOverlap(i, j) => write!(f, "RAM regions {i} and {j} of the memory map overlap"),
            Invalid::ModuleWraps(i, a, n) => write!(f, "module {i} at {a:#x} with size {n:#x} wraps around"),
            Invalid::ModuleAbove4G(i, a, e) => write!(f, "module {i} at {a:#x}..{e:#x} ends above 4 GiB"),
            Invalid::ModuleNotInRam(i, a, e) => {
                write!(f, "module {i} at {a:#x}..{e:#x} is not in RAM according to the memory map")
            }
            Invalid::ModuleOverImage(i, a, e) => write!(f, "module {i} at {a:#x}..{e:#x} overlaps page 0 or the image"),
        }
    }
}

impl BootInfo {
    /// Checks no two RAM regions overlap (the heap claims each piece once)
    /// and every module lies in RAM below 4 GiB, off page 0 and outside the
    /// image `[start, end)`.
    pub(crate) fn validate(&self, (image_start, image_end): (u64, u64)) -> Result<(), Invalid> {
        let ram = || self.regions().iter().enumerate().filter(|(_, r)| r.kind == RAM && r.size > 0);
        for (i, a) in ram() {
            let a_end = a.addr.saturating_add(a.size);
            let overlap = ram().find(|&(j, b)| j > i && b.addr < a_end && a.addr < b.addr.saturating_add(b.size));
            if let Some((j, _)) = overlap {
                return Err(Invalid::RegionsOverlap(i, j));
            }
        }
        for (i, m) in self.modules().iter().enumerate().filter(|(_, m)| m.size > 0) {
            let end = m.addr.checked_add(m.size).ok_or(Invalid::ModuleWraps(i, m.addr, m.size))?;
            if end > MAPPED_LIMIT {
                return Err(Invalid::ModuleAbove4G(i, m.addr, end));
            }
            if !self.within_ram(m.addr, m.size) {
                return Err(Invalid::ModuleNotInRam(i, m.addr, end));
            }
            if m.addr < 4096 || (m.addr < image_end && image_start < end) {
                return Err(Invalid::ModuleOverImage(i, m.addr, end));
            }
        }
        Ok(())
    }
}

#[cfg(target_os = "none")]
/// Loader memory at `[addr, addr + len)`, for the parsers; refuses the boot
/// (naming `what`) if the range is at 0, wraps, or ends above 4 GiB.
///
/// The parsers use these bytes only while they run, at entry, on the boot
/// page tables and before the heap exists.
pub(crate) fn loader_bytes(addr: u64, len: u64, what: &str) -> &'static [u8] {
    let end = addr.checked_add(len);
    if addr == 0 || end.is_none_or(|e| e > MAPPED_LIMIT) {
        refuse(format_args!("{what} at {addr:#x} (length {len:#x}) is not in the first 4 GiB"))
    }
    // SAFETY: [addr, addr + len) is a non-null range below 4 GiB, which the
    // boot page tables identity map readable (boot.rs) while the parsers run;
    // the loader owns that memory and nothing in Morgana writes it before the
    // parsers return (the heap does not exist yet).
    unsafe { core::slice::from_raw_parts(crate::phys_to_virt(addr) as *const u8, len as usize) }
}

#[cfg(target_os = "none")]
/// The NUL-terminated string at `addr` (at most `MAX_CMDLINE + 1` bytes
/// are looked at), without its NUL.
pub(crate) fn c_string(addr: u64, what: &str) -> &'static [u8] {
    let len = (MAX_CMDLINE as u64 + 1).min(MAPPED_LIMIT.saturating_sub(addr));
    let bytes = loader_bytes(addr, len, what);
    let n = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..n]
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;

    const IMAGE: (u64, u64) = (0x10_0000, 0x20_0000);

    fn info(regions: &[(u64, u64, u32)], modules: &[(u64, u64)]) -> BootInfo {
        let mut i = BootInfo::EMPTY;
        for &(addr, size, kind) in regions {
            i.push_region(Region { addr, size, kind });
        }
        for &(addr, size) in modules {
            i.push_module(Module { addr, size });
        }
        i
    }

    /// A QEMU-like map: low RAM, a hole, 128 MiB from 1 MiB.
    const MAP: [(u64, u64, u32); 3] = [(0, 0x9fc00, RAM), (0xf0000, 0x10000, 2), (0x10_0000, 0x7f0_0000, RAM)];

    fn pieces(i: &BootInfo) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        i.free_ram(IMAGE.1, |s, e| v.push((s, e)));
        v
    }

    #[test]
    fn heap_pieces_go_around_modules() {
        let none = info(&MAP, &[]);
        assert_eq!(none.validate(IMAGE), Ok(()));
        assert_eq!(pieces(&none), [(0x20_0000, 0x800_0000)]);
        // Two modules, unaligned, given out of order; the first touches the
        // image's end.
        let two = info(&MAP, &[(0x700_0000, 0x1234), (0x20_0000, 0x3_0001)]);
        assert_eq!(two.validate(IMAGE), Ok(()));
        assert_eq!(pieces(&two), [(0x23_1000, 0x700_0000), (0x700_2000, 0x800_0000)]);
        // A module at the very top leaves only the piece below it.
        let top = info(&MAP, &[(0x7ff_f000, 0x1000)]);
        assert_eq!(pieces(&top), [(0x20_0000, 0x7ff_f000)]);
        // Empty modules cut nothing.
        let empty = info(&MAP, &[(0x300_0000, 0)]);
        assert_eq!(pieces(&empty), [(0x20_0000, 0x800_0000)]);
        // RAM above 4 GiB is left out; RAM across 4 GiB is cut there.
        let high = info(&[(0x10_0000, 0x1_0000_0000, RAM), (0x2_0000_0000, 0x1000_0000, RAM)], &[]);
        assert_eq!(pieces(&high), [(0x20_0000, 0x1_0000_0000)]);
    }

    #[test]
    fn bad_modules_and_maps_are_refused() {
        let cases: [(&[(u64, u64)], Invalid); 6] = [
            (&[(0x900_0000, 0x1000)], Invalid::ModuleNotInRam(0, 0x900_0000, 0x900_1000)),
            (&[(0x7ff_f000, 0x2000)], Invalid::ModuleNotInRam(0, 0x7ff_f000, 0x800_1000)),
            (&[(0x9f000, 0x2000)], Invalid::ModuleNotInRam(0, 0x9f000, 0xa1000)),
            (&[(0x30_0000, 0x10), (0x1_0000_0000, 0x10)], Invalid::ModuleAbove4G(1, 0x1_0000_0000, 0x1_0000_0010)),
            (&[(u64::MAX - 4, 0x10)], Invalid::ModuleWraps(0, u64::MAX - 4, 0x10)),
            (&[(0x1f_f000, 0x2000)], Invalid::ModuleOverImage(0, 0x1f_f000, 0x20_1000)),
        ];
        for (modules, want) in cases {
            assert_eq!(info(&MAP, modules).validate(IMAGE), Err(want), "{modules:x?}");
        }
        assert_eq!(info(&MAP, &[(0, 0x1000)]).validate(IMAGE), Err(Invalid::ModuleOverImage(0, 0, 0x1000)));
        let overlap = [(0x10_0000, 0x100_0000, RAM), (0x80_0000, 0x100_0000, RAM)];
        assert_eq!(info(&overlap, &[]).validate(IMAGE), Err(Invalid::RegionsOverlap(0, 1)));
        // Overlapping reserved regions are harmless.
        let reserved = [(0x10_0000, 0x100_0000, RAM), (0x80_0000, 0x100_0000, 2)];
        assert_eq!(info(&reserved, &[]).validate(IMAGE), Ok(()));
        // A region whose end overflows does not wrap into low memory.
        let huge = [(0x10_0000, u64::MAX, RAM), (0x1000, 0x1000, RAM)];
        assert_eq!(info(&huge, &[]).validate(IMAGE), Ok(()));
    }

    #[test]
    fn lists_are_bounded() {
        let mut i = BootInfo::EMPTY;
        for n in 0..MAX_MODULES as u64 + 3 {
            i.push_module(Module { addr: 0x100_0000 + n * 0x1000, size: 1 });
        }
        assert_eq!((i.modules().len(), i.modules_dropped), (MAX_MODULES, 3));
        i.set_cmdline(core::iter::repeat_n(b'a', MAX_CMDLINE + 5));
        assert!(i.cmdline_truncated && i.cmdline().len() == MAX_CMDLINE);
    }
}
