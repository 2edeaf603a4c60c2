//! The PVH `hvm_start_info` structure: command line and memory map, copied
//! out of loader-owned memory at entry.

use core::ptr::read_unaligned;

const MAGIC: u32 = 0x336e_c578;
const MAX_CMDLINE: usize = 4096;
const MAX_REGIONS: usize = 64;

/// E820-style memory type of usable RAM.
pub const RAM: u32 = 1;

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

/// What the loader told us, copied into the image's own memory.
pub struct StartInfo {
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// The command line was longer than the buffer and was cut.
    pub cmdline_truncated: bool,
    regions: [Region; MAX_REGIONS],
    region_count: usize,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp: u64,
}

impl StartInfo {
    /// The kernel command line (empty if none, or not UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.region_count]
    }

    /// Whether `[addr, addr + len)` overlaps usable RAM.
    pub fn is_ram(&self, addr: u64, len: u64) -> bool {
        self.regions().iter().any(|r| r.kind == RAM && addr < r.addr + r.size && r.addr < addr + len)
    }
}

static INFO: crate::BootCell<StartInfo> = crate::BootCell::new(StartInfo {
    cmdline: [0; MAX_CMDLINE],
    cmdline_len: 0,
    cmdline_truncated: false,
    regions: [Region { addr: 0, size: 0, kind: 0 }; MAX_REGIONS],
    region_count: 0,
    rsdp: 0,
});

/// The start info read at boot.
pub fn get() -> &'static StartInfo {
    // SAFETY: INFO is written once by `read`, during single-threaded boot
    // before anything calls `get`, and never again.
    unsafe { INFO.get() }
}

fn u32_at(addr: u64) -> u32 {
    // SAFETY: callers pass addresses inside the start-info structures the
    // loader placed in RAM, which is identity mapped and readable.
    unsafe { read_unaligned(addr as usize as *const u32) }
}

fn u64_at(addr: u64) -> u64 {
    // SAFETY: as for `u32_at`.
    unsafe { read_unaligned(addr as usize as *const u64) }
}

/// Copies the start info at `paddr` (from EBX at entry). Halts with a
/// message if the magic number is wrong: the image was not booted via PVH.
pub(crate) fn read(paddr: u32) -> &'static StartInfo {
    let base = paddr as u64;
    if paddr == 0 || u32_at(base) != MAGIC {
        crate::serial::write_raw(b"morgana: not started through the PVH entry (bad hvm_start_info magic)\r\n");
        crate::exit::halt_forever();
    }
    // SAFETY: boot is single-threaded and nothing has borrowed INFO yet.
    let info = unsafe { INFO.boot_mut() };
    let version = u32_at(base + 4);
    let cmdline = u64_at(base + 24);
    info.rsdp = u64_at(base + 32);
    if cmdline != 0 {
        let mut n = 0;
        loop {
            // SAFETY: the command line is a NUL-terminated string in RAM.
            let b = unsafe { core::ptr::read_volatile((cmdline as usize + n) as *const u8) };
            if b == 0 {
                break;
            }
            if n == MAX_CMDLINE {
                info.cmdline_truncated = true;
                break;
            }
            info.cmdline[n] = b;
            n += 1;
        }
        info.cmdline_len = n;
    }
    if version >= 1 {
        let map = u64_at(base + 40);
        let count = (u32_at(base + 48) as usize).min(MAX_REGIONS);
        for i in 0..count {
            let e = map + 24 * i as u64;
            info.regions[i] = Region { addr: u64_at(e), size: u64_at(e + 8), kind: u32_at(e + 16) };
        }
        info.region_count = count;
    }
    info
}
