//! The multiboot2 boot information (GRUB): command line (tag 1), modules
//! (tag 3), basic memory information (tag 4, used only without a memory
//! map), memory map (tag 6) and the ACPI RSDP copies (tags 14, 15), copied
//! into [`BootInfo`]. Every tag is bounds-checked against the structure's
//! total size; a malformed one ends the boot with a message.

use crate::boot_info::{self, loader_bytes, refuse, u32_at, u64_at, BootInfo, Loader, Module, Region, RAM};
use crate::BootCell;

/// EAX at the multiboot2 entry.
pub(crate) const MAGIC: u32 = 0x36d7_6289;
/// A larger information structure is taken as corrupt.
const MAX_TOTAL: u32 = 1 << 20;

const TAG_END: u32 = 0;
const TAG_CMDLINE: u32 = 1;
const TAG_MODULE: u32 = 3;
const TAG_BASIC_MEMINFO: u32 = 4;
const TAG_MMAP: u32 = 6;
const TAG_ACPI_OLD: u32 = 14;
const TAG_ACPI_NEW: u32 = 15;

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
    let total = u32_at(loader_bytes(paddr as u64, 8, "the multiboot2 information"), 0);
    if !(16..=MAX_TOTAL).contains(&total) {
        refuse(format_args!("multiboot2 information of {total} bytes"));
    }
    let mbi = loader_bytes(paddr as u64, total as u64, "the multiboot2 information");
    // SAFETY: single-threaded boot; this is the only writer and runs once,
    // before anything reads the boot information.
    let info = unsafe { boot_info::boot_mut(Loader::Multiboot2) };
    let mut have_mmap = false;
    let mut meminfo = None;
    let mut acpi: Option<&[u8]> = None;
    let mut off = 8usize;
    loop {
        if off + 8 > mbi.len() {
            refuse(format_args!("multiboot2 information ends without an end tag"));
        }
        let (kind, size) = (u32_at(mbi, off), u32_at(mbi, off + 4) as usize);
        if size < 8 || size > mbi.len() - off {
            refuse(format_args!("multiboot2 tag {kind} at offset {off} has size {size}"));
        }
        let tag = &mbi[off..off + size];
        match kind {
            TAG_END => break,
            TAG_CMDLINE => info.set_cmdline(skip_image_name(c_str(&tag[8..])).iter().copied()),
            TAG_MODULE => {
                if size < 16 {
                    refuse(format_args!("multiboot2 module tag of {size} bytes"));
                }
                let (start, end) = (u32_at(tag, 8), u32_at(tag, 12));
                if end < start {
                    refuse(format_args!("multiboot2 module {start:#x}..{end:#x} ends before it starts"));
                }
                info.push_module(Module { addr: start as u64, size: (end - start) as u64 });
            }
            TAG_BASIC_MEMINFO if size >= 16 => meminfo = Some((u32_at(tag, 8), u32_at(tag, 12))),
            TAG_MMAP => {
                let entry = if size >= 16 { u32_at(tag, 8) as usize } else { 0 };
                if entry < 24 || entry % 8 != 0 {
                    refuse(format_args!("multiboot2 memory map with entries of {entry} bytes (tag of {size})"));
                }
                for e in tag[16..].chunks_exact(entry) {
                    info.push_region(Region { addr: u64_at(e, 0), size: u64_at(e, 8), kind: u32_at(e, 16) });
                }
                have_mmap = true;
            }
            TAG_ACPI_NEW => acpi = Some(&tag[8..]),
            TAG_ACPI_OLD if acpi.is_none() => acpi = Some(&tag[8..]),
            _ => {}
        }
        // Tags start on 8-byte boundaries.
        off += size.div_ceil(8) * 8;
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

/// `b` up to its first NUL.
fn c_str(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

/// GRUB's command line starts with the image's own path
/// (`/boot/echo --flag`, or `(hd0,gpt2)/boot/echo`): drop that word.
fn skip_image_name(cmdline: &[u8]) -> &[u8] {
    let trimmed = cmdline.trim_ascii_start();
    if !matches!(trimmed.first(), Some(b'/' | b'(')) {
        return cmdline;
    }
    let end = trimmed.iter().position(|c| c.is_ascii_whitespace()).unwrap_or(trimmed.len());
    trimmed[end..].trim_ascii_start()
}
