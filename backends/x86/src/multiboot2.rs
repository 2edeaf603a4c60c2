//! The multiboot2 boot information (GRUB): command line (tag 1), modules
//! (tag 3), basic memory information (tag 4, used only without a memory
//! map), memory map (tag 6) and the ACPI RSDP copies (tags 14, 15), copied
//! into [`BootInfo`]. The tags are walked by [`crate::mb2_tags`], which
//! checks each against the structure's total size; a malformed one ends the
//! boot with a message.

use crate::boot_info::{self, loader_bytes, refuse, BootInfo, Loader, Module, Region, RAM};
use crate::mb2_tags::{self, skip_image_name, Tag};
use crate::BootCell;

/// EAX at the multiboot2 entry.
pub(crate) const MAGIC: u32 = 0x36d7_6289;

/// The RSDP copied out of the information structure (multiboot2 gives a
/// copy of the table, not its address); `BootInfo::rsdp` points here.
#[repr(C, align(16))]
struct Rsdp([u8; 36]);
static RSDP: BootCell<Rsdp> = BootCell::new(Rsdp([0; 36]));

/// Copies the information at `paddr` (EBX at entry); `magic` is EAX.
pub(crate) fn read(paddr: u32, magic: u32) -> &'static BootInfo {
    if magic != MAGIC {
        refuse(format_args!("entered through the multiboot2 entry with EAX {magic:#x}, not {MAGIC:#x}"));
    }
    if paddr % 8 != 0 {
        refuse(format_args!("multiboot2 information at {paddr:#x} is not 8-byte aligned"));
    }
    let header = loader_bytes(paddr as u64, 8, "the multiboot2 information");
    let total = mb2_tags::total_size(header).unwrap_or_else(|e| refuse(format_args!("{e}")));
    let mbi = loader_bytes(paddr as u64, total as u64, "the multiboot2 information");
    // SAFETY: single-threaded boot; this is the only writer and runs once,
    // before anything reads the boot information.
    let info = unsafe { boot_info::boot_mut(Loader::Multiboot2) };
    let mut have_mmap = false;
    let mut meminfo = None;
    let mut acpi: Option<&[u8]> = None;
    let walked = mb2_tags::walk(mbi, |tag| match tag {
        Tag::Cmdline(s) => info.set_cmdline(skip_image_name(s).iter().copied()),
        Tag::Module { start, end } => info.push_module(Module { addr: start as u64, size: (end - start) as u64 }),
        Tag::BasicMeminfo { lower, upper } => meminfo = Some((lower, upper)),
        Tag::Mmap(entries) => {
            for (addr, size, kind) in entries {
                info.push_region(Region { addr, size, kind });
            }
            have_mmap = true;
        }
        Tag::Acpi { new, rsdp } => {
            if new || acpi.is_none() {
                acpi = Some(rsdp);
            }
        }
    });
    if let Err(e) = walked {
        refuse(format_args!("{e}"));
    }
    if !have_mmap {
        // Without a map, the basic information: KiB of RAM below 640 KiB
        // and above 1 MiB.
        let Some((lower, upper)) = meminfo else {
            refuse(format_args!("multiboot2 information has neither a memory map nor basic memory information"))
        };
        info.push_region(Region { addr: 0, size: lower as u64 * 1024, kind: RAM });
        info.push_region(Region { addr: 1 << 20, size: upper as u64 * 1024, kind: RAM });
    }
    if let Some(table) = acpi {
        // SAFETY: single-threaded boot, the only writer, before any reader.
        let copy = unsafe { RSDP.boot_mut() };
        let n = table.len().min(copy.0.len());
        copy.0[..n].copy_from_slice(&table[..n]);
        info.rsdp = (&raw const copy.0) as u64;
    }
    boot_info::check(info);
    info
}
