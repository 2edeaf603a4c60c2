//! The heap: every piece of RAM above the image that no boot module covers,
//! given to the talc allocator, with every allocation counted in
//! `morgana_runtime::memory`.

use morgana_alloc::Counted;
use morgana_runtime::memory;
use talc::source::Manual;
use talc::TalcLock;

use crate::boot_info::BootInfo;

#[global_allocator]
static ALLOCATOR: Counted<TalcLock<spinning_top::RawSpinlock, Manual>> = Counted(TalcLock::new(Manual));

static HEAP_BYTES: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Bytes given to the allocator at boot.
pub fn heap_size() -> usize {
    HEAP_BYTES.load(core::sync::atomic::Ordering::Relaxed)
}

/// Pieces smaller than this are left out (an EFI memory map has many).
const MIN_PIECE: u64 = 64 * 1024;

pub(crate) fn init(info: &BootInfo) {
    // Only the first 4 GiB are mapped; the boot information was copied out
    // of loader memory already, so only the modules must be kept clear.
    let mut total = 0usize;
    info.free_ram(crate::paging::image_end(), |base, end| {
        if end - base < MIN_PIECE {
            return;
        }
        let size = (end - base) as usize;
        // SAFETY: [base, end) is RAM according to the loader's memory map,
        // lies above the image (so no code, data or stack is there) and
        // outside every boot module (so no slice of `boot_info::modules`
        // sees it), does not overlap another piece (`boot_info::check`
        // refused overlapping RAM regions), is identity mapped
        // read/write by the page tables, and is given to the allocator
        // exactly once.
        if unsafe { ALLOCATOR.0.lock().claim(base as usize as *mut u8, size) }.is_some() {
            total += size;
        }
    });
    if total == 0 {
        crate::serial::write_raw(b"morgana: no RAM above the image for the heap\r\n");
        crate::exit::halt_forever();
    }
    HEAP_BYTES.store(total, core::sync::atomic::Ordering::Relaxed);
    memory::set_limit(total);
}
