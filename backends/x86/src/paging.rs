//! The final page tables: identity mapping of the first 4 GiB with W^X.
//!
//! * the first 16 MiB in 4 KiB pages: page 0 unmapped (null pointer guard),
//!   image text read+execute, rodata read-only, everything else read+write
//!   and no-execute, the stack's guard page unmapped;
//! * the rest of the first 4 GiB in 2 MiB pages, read+write, no-execute;
//!   uncached where the memory map says it is not RAM (device registers);
//! * device memory above 4 GiB in 2 MiB pages, uncached, on demand
//!   ([`map_device`]).

use crate::boot::MORGANA_STACK;
use crate::boot_info::BootInfo;
use crate::BootCell;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const NO_CACHE: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;

const SMALL_PAGES_END: u64 = 16 << 20;
const PT_COUNT: usize = (SMALL_PAGES_END >> 21) as usize;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static PML4: BootCell<Table> = BootCell::new(Table([0; 512]));
static PDPT: BootCell<Table> = BootCell::new(Table([0; 512]));
static PD: BootCell<[Table; 4]> = BootCell::new([const { Table([0; 512]) }; 4]);
static PT: BootCell<[Table; PT_COUNT]> = BootCell::new([const { Table([0; 512]) }; PT_COUNT]);

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

fn addr_of(sym: &u8) -> u64 {
    sym as *const u8 as u64
}

/// End of the loaded image (.bss included), page aligned.
pub(crate) fn image_end() -> u64 {
    // SAFETY: linker-script symbols; only their addresses are used.
    addr_of(unsafe { &__image_end })
}

/// Start and end of the loaded image.
pub(crate) fn image_bounds() -> (u64, u64) {
    // SAFETY: linker-script symbols; only their addresses are used.
    (addr_of(unsafe { &__image_start }), image_end())
}

/// Address of the stack guard page.
pub(crate) fn guard_page() -> u64 {
    (&raw const MORGANA_STACK) as u64
}

/// Builds the tables and switches to them.
pub(crate) fn init(info: &BootInfo) {
    // SAFETY: linker-script symbols; only their addresses are used.
    let (image_start, text_end, rodata_end) =
        unsafe { (addr_of(&__image_start), addr_of(&__text_end), addr_of(&__rodata_end)) };
    if image_end() > SMALL_PAGES_END {
        crate::serial::write_raw(b"morgana: image larger than 16 MiB cannot be mapped\r\n");
        crate::exit::halt_forever();
    }
    let guard = guard_page();
    let cache = |addr: u64, len: u64| if info.is_ram(addr, len) { 0 } else { NO_CACHE | WRITE_THROUGH };

    // SAFETY: boot is single-threaded and these tables are not yet in use;
    // the CPU still runs on BOOT_PML4.
    let (pml4, pdpt, pd, pt) = unsafe { (PML4.boot_mut(), PDPT.boot_mut(), PD.boot_mut(), PT.boot_mut()) };
    for (i, table) in pt.iter_mut().enumerate() {
        for (j, entry) in table.0.iter_mut().enumerate() {
            let addr = ((i * 512 + j) as u64) << 12;
            *entry = if addr == 0 || addr == guard {
                0
            } else if (image_start..text_end).contains(&addr) {
                addr | PRESENT
            } else if (text_end..rodata_end).contains(&addr) {
                addr | PRESENT | NO_EXECUTE
            } else {
                addr | PRESENT | WRITABLE | NO_EXECUTE | cache(addr, 4096)
            };
        }
    }
    for (i, table) in pd.iter_mut().enumerate() {
        for (j, entry) in table.0.iter_mut().enumerate() {
            let addr = ((i * 512 + j) as u64) << 21;
            *entry = if addr < SMALL_PAGES_END {
                (&raw const pt[(addr >> 21) as usize]) as u64 | PRESENT | WRITABLE
            } else {
                addr | PRESENT | WRITABLE | HUGE | NO_EXECUTE | cache(addr, 1 << 21)
            };
        }
        pdpt.0[i] = (&raw const *table) as u64 | PRESENT | WRITABLE;
    }
    pml4.0[0] = (&raw const *pdpt) as u64 | PRESENT | WRITABLE;
    // SAFETY: the new tables map the running code (text, executable), the
    // stack in use (above its guard page) and all data identically to the
    // boot tables, so execution continues at the same addresses.
    unsafe {
        core::arch::asm!("mov cr3, {}", in(reg) &raw const *pml4 as u64, options(nostack, preserves_flags));
    }
}

/// Tables for device memory above 4 GiB (UEFI firmware such as OVMF puts
/// 64-bit PCI BARs there), mapped on demand by [`map_device`].
struct HighTables {
    pdpt: [Table; HIGH_PDPTS],
    pdpt_used: usize,
    pd: [Table; HIGH_PDS],
    pd_used: usize,
}

const HIGH_PDPTS: usize = 2;
const HIGH_PDS: usize = 8;
/// Identity-mapped addresses stay canonical below 2^47; stop well short.
const DEVICE_LIMIT: u64 = 1 << 46;

static HIGH: spin::Mutex<HighTables> = spin::Mutex::new(HighTables {
    pdpt: [const { Table([0; 512]) }; HIGH_PDPTS],
    pdpt_used: 0,
    pd: [const { Table([0; 512]) }; HIGH_PDS],
    pd_used: 0,
});

/// Identity maps the device memory `[phys, phys + len)` (uncached,
/// read/write, no-execute) if it lies above 4 GiB; below, it is mapped
/// already. Errors if the range is beyond 2^46 or the tables for it are
/// used up (two 512 GiB areas, eight 1 GiB areas).
pub fn map_device(phys: u64, len: u64) -> Result<(), &'static str> {
    let end = phys.checked_add(len).filter(|&e| e <= DEVICE_LIMIT).ok_or("device memory beyond 2^46")?;
    if end <= 4 << 30 {
        return Ok(());
    }
    let mut high = HIGH.lock();
    let high = &mut *high;
    let pml4 = PML4.0.get() as *mut u64;
    let mut addr = phys.max(4 << 30) & !((1 << 21) - 1);
    while addr < end {
        let (i4, i3, i2) = ((addr >> 39) as usize & 511, (addr >> 30) as usize & 511, (addr >> 21) as usize & 511);
        // SAFETY: PML4 is the live top-level table (paging::init loaded it);
        // after boot only this function writes it, under the HIGH lock, and
        // only entries init left empty (1..512). Aligned 8-byte writes are
        // atomic for the page walker.
        let e4 = unsafe { pml4.add(i4).read_volatile() };
        let pdpt = if e4 & PRESENT != 0 {
            (e4 & 0x000f_ffff_ffff_f000) as *mut u64
        } else {
            let n = high.pdpt_used;
            let table = high.pdpt.get_mut(n).ok_or("no page tables left for device memory")?;
            high.pdpt_used += 1;
            let t = table.0.as_mut_ptr();
            // SAFETY: as above; the new table is zeroed (never used) and
            // static, so its address is its physical address.
            unsafe { pml4.add(i4).write_volatile(t as u64 | PRESENT | WRITABLE) };
            t
        };
        // SAFETY: `pdpt` is init's PDPT (PML4 entry 0, whose entries 0..4
        // map the first 4 GiB and are never reached here, as addr >= 4 GiB)
        // or one of HIGH's; after boot only this function writes either,
        // under the HIGH lock.
        let e3 = unsafe { pdpt.add(i3).read_volatile() };
        let pd = if e3 & PRESENT != 0 {
            (e3 & 0x000f_ffff_ffff_f000) as *mut u64
        } else {
            let n = high.pd_used;
            let table = high.pd.get_mut(n).ok_or("no page tables left for device memory")?;
            high.pd_used += 1;
            let t = table.0.as_mut_ptr();
            // SAFETY: as above.
            unsafe { pdpt.add(i3).write_volatile(t as u64 | PRESENT | WRITABLE) };
            t
        };
        // SAFETY: as above; a newly present entry needs no TLB flush (the
        // CPU does not cache not-present entries), and an entry already
        // present maps the same address the same way.
        unsafe { pd.add(i2).write_volatile(addr | PRESENT | WRITABLE | HUGE | NO_EXECUTE | NO_CACHE | WRITE_THROUGH) };
        addr += 1 << 21;
    }
    Ok(())
}
