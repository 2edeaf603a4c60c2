//! The PVH `hvm_start_info` structure (Xen's `arch-x86/hvm/start_info.h`):
//! command line, memory map, RSDP and modules, copied into [`BootInfo`].
//!
//! QEMU's `-initrd FILE` and Xen's `ramdisk=` arrive as modules.

use crate::boot_info::{self, c_string, loader_bytes, u32_at, u64_at, BootInfo, Loader, Module, Region};

const MAGIC: u32 = 0x336e_c578;
/// Size of `hvm_start_info` up to and including version 1's fields.
const HEADER_V0: u64 = 40;
const HEADER_V1: u64 = 56;
const MEMMAP_ENTRY: u64 = 24;
const MODLIST_ENTRY: u64 = 32;
/// More entries than this in either list is taken as a corrupt structure.
const MAX_ENTRIES: u32 = 4096;

/// Copies the start info at `paddr` (from EBX at entry). Ends the VM with a
/// message if the magic number is wrong or a list lies outside the first
/// 4 GiB.
pub(crate) fn read(paddr: u32) -> &'static BootInfo {
    let base = paddr as u64;
    if paddr == 0 || u32_at(loader_bytes(base, 4, "hvm_start_info"), 0) != MAGIC {
        crate::serial::write_raw(b"morgana: not started through the PVH entry (bad hvm_start_info magic)\r\n");
        crate::exit::halt_forever();
    }
    let version = u32_at(loader_bytes(base, 8, "hvm_start_info"), 4);
    let header = loader_bytes(base, if version >= 1 { HEADER_V1 } else { HEADER_V0 }, "hvm_start_info");
    // SAFETY: single-threaded boot; this is the only writer and runs once,
    // before anything reads the boot information.
    let info = unsafe { boot_info::boot_mut(Loader::Pvh) };
    let cmdline = u64_at(header, 24);
    info.rsdp = u64_at(header, 32);
    if cmdline != 0 {
        info.set_cmdline(c_string(cmdline, "the PVH command line").iter().copied());
    }
    if version >= 1 {
        let count = u32_at(header, 48);
        if count > MAX_ENTRIES {
            boot_info::refuse(format_args!("PVH memory map with {count} entries"));
        }
        let map = u64_at(header, 40);
        if count > 0 {
            let entries = loader_bytes(map, count as u64 * MEMMAP_ENTRY, "the PVH memory map");
            for e in entries.chunks_exact(MEMMAP_ENTRY as usize) {
                info.push_region(Region { addr: u64_at(e, 0), size: u64_at(e, 8), kind: u32_at(e, 16) });
            }
        }
    }
    let count = u32_at(header, 12);
    if count > MAX_ENTRIES {
        boot_info::refuse(format_args!("PVH module list with {count} entries"));
    }
    if count > 0 {
        let list = loader_bytes(u64_at(header, 16), count as u64 * MODLIST_ENTRY, "the PVH module list");
        for e in list.chunks_exact(MODLIST_ENTRY as usize) {
            info.push_module(Module { addr: u64_at(e, 0), size: u64_at(e, 8) });
        }
    }
    boot_info::check(info);
    info
}
