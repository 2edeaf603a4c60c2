//! The entry points (PVH and multiboot2) and the first Rust code.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{boot_info, clock, heap, irq, multiboot2, paging, pvh, serial, trap};

/// Size of the main stack, below which one unmapped guard page sits.
pub const STACK_SIZE: usize = 256 * 1024;

#[repr(C, align(4096))]
pub(crate) struct Stack<const N: usize>(pub(crate) [u8; N]);

/// The guard page and the main stack. The first page is unmapped once the
/// final page tables are loaded.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".stacks.main")]
pub(crate) static mut MORGANA_STACK: Stack<{ 4096 + STACK_SIZE }> = Stack([0; 4096 + STACK_SIZE]);

/// Page tables used only to reach long mode: 4 GiB identity mapped with
/// 2 MiB pages, all RWX. Replaced by [`paging`] right after.
#[unsafe(no_mangle)]
static mut BOOT_PML4: Stack<4096> = Stack([0; 4096]);
#[unsafe(no_mangle)]
static mut BOOT_PDPT: Stack<4096> = Stack([0; 4096]);
#[unsafe(no_mangle)]
static mut BOOT_PD: Stack<{ 4 * 4096 }> = Stack([0; 4 * 4096]);

/// The TSC at the entry point, for boot-time measurements. In .data, since
/// the entry writes it before .bss is zeroed.
#[unsafe(no_mangle)]
static BOOT_TSC: AtomicU64 = AtomicU64::new(1);

/// The TSC value read at the first instruction of the entry point.
pub fn entry_tsc() -> u64 {
    BOOT_TSC.load(Ordering::Relaxed)
}

/// The platform's boot phases, in order; each ends when its TSC is stamped.
const PHASES: [&str; 9] =
    ["long mode", "xen and serial", "boot info", "paging", "acpi", "traps", "heap", "irq", "clock"];
/// The TSC at the end of each of [`PHASES`].
static PHASE_TSC: [AtomicU64; PHASES.len()] = [const { AtomicU64::new(0) }; PHASES.len()];

fn phase_done(i: usize) {
    PHASE_TSC[i].store(clock::rdtsc(), Ordering::Relaxed);
}

/// How long each platform boot phase took in milliseconds (after the
/// clock is calibrated), e.g. "long mode 0.412, xen and serial 0.050, ...".
pub fn phase_report() -> alloc::string::String {
    use core::fmt::Write;
    let mut out = alloc::string::String::new();
    let mut prev = entry_tsc();
    for (i, (name, tsc)) in PHASES.iter().zip(&PHASE_TSC).enumerate() {
        let t = tsc.load(Ordering::Relaxed);
        let us = clock::ticks_to_ns(t.wrapping_sub(prev)) / 1000;
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{name} {}.{:03}", us / 1000, us % 1000);
        prev = t;
    }
    out
}

// The PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY = 18) names the 32-bit entry.
// The note section must be 4-byte aligned.
//
// The multiboot2 header (GRUB) must lie 8-byte aligned in the file's first
// 32 KiB: the linker script puts it first in .text. It asks for no
// framebuffer (the console is the serial port), page-aligned modules, and
// names its own entry, `mb2_start32`; the ELF's program headers say where to
// load. The checksum makes the four header words sum to 0 mod 2^32.
//
// Both entries start in 32-bit protected mode with paging off and the
// loader's information in EBX; multiboot2 also has its magic number in EAX.
// They differ only in the values handed to `morgana_x86_main`: ESI is the
// entry (0 PVH, 1 multiboot2), EBP multiboot2's EAX.
//
// SAFETY: this is the first code to run, in 32-bit protected mode with
// paging off (the PVH and multiboot2 contracts). It sets its own stack,
// zeroes .bss (page aligned, so whole dwords), identity-maps 4 GiB for the
// switch to long mode, and enters Rust with a 16-byte aligned stack. EBX,
// ESI and EBP are not touched between the entry and the call.
core::arch::global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long pvh_start32

    .section .multiboot2, "a"
    .p2align 3
mb2_header:
    .long 0xe85250d6
    .long 0
    .long mb2_header_end - mb2_header
    .long 0x100000000 - (0xe85250d6 + (mb2_header_end - mb2_header))
    # Entry address tag (type 3): the 32-bit entry below.
    .short 3
    .short 0
    .long 12
    .long mb2_start32
    .long 0
    # Module alignment tag (type 6): modules on page boundaries.
    .short 6
    .short 0
    .long 8
    # End tag.
    .short 0
    .short 0
    .long 8
mb2_header_end:

    .section .text.boot32, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    xorl %esi, %esi
    xorl %ebp, %ebp
    jmp boot32

    .global mb2_start32
mb2_start32:
    cli
    cld
    movl $1, %esi
    movl %eax, %ebp

boot32:
    # Neither protocol defines ESP: take our own stack before anything
    # pushes.
    movl $MORGANA_STACK + {stack_bytes}, %esp
    rdtsc
    movl %eax, BOOT_TSC
    movl %edx, BOOT_TSC+4

    # Zero .bss (page aligned, so a whole number of dwords).
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    # Identity map 0..4 GiB with 2 MiB pages (present, writable, large).
    movl $BOOT_PD, %edi
    movl $0x83, %eax
    movl $2048, %ecx
1:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    loop 1b
    movl $BOOT_PD + 3, %eax
    movl %eax, BOOT_PDPT
    addl $0x1000, %eax
    movl %eax, BOOT_PDPT + 8
    addl $0x1000, %eax
    movl %eax, BOOT_PDPT + 16
    addl $0x1000, %eax
    movl %eax, BOOT_PDPT + 24
    movl $BOOT_PDPT + 3, %eax
    movl %eax, BOOT_PML4

    # CR4: PAE, OSFXSR, OSXMMEXCPT (SSE instructions allowed: the AES-GCM
    # engine's assembly; PVH and multiboot2 leave CR4 to us, Xen included).
    movl %cr4, %eax
    orl $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    movl %eax, %cr4
    movl $BOOT_PML4, %eax
    movl %eax, %cr3
    # EFER: long mode and no-execute.
    movl $0xC0000080, %ecx
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax
    wrmsr
    # CR0: paging, protection, write protect (W^X holds in ring 0), FPU
    # monitor; no FPU emulation and no task-switched flag (multiboot2
    # leaves CR0's other bits undefined; either would fault SSE with #UD or
    # #NM).
    movl %cr0, %eax
    andl $~((1 << 2) | (1 << 3)), %eax
    orl $((1 << 31) | (1 << 16) | (1 << 1) | 1), %eax
    movl %eax, %cr0

    lgdt boot_gdt_ptr
    pushl $0x08
    pushl $long_start
    lret

    .code64
long_start:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq $MORGANA_STACK + {stack_bytes}, %rsp
    movl %ebx, %edi
    movl %esi, %esi
    movl %ebp, %edx
    xorq %rbp, %rbp
    # MXCSR at its reset value (SIMD exceptions masked): loaders need not
    # leave it so. Only the AES-GCM engine's assembly uses SSE.
    ldmxcsr boot_mxcsr
    call morgana_x86_main
    ud2

    .section .data.boot_gdt, "aw"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt
    .p2align 2
boot_mxcsr:
    .long 0x1f80
"#,
    stack_bytes = const 4096 + STACK_SIZE,
    options(att_syntax)
);

unsafe extern "Rust" {
    /// Defined by the app through `morgana::main!`.
    fn morgana_app_main() -> !;
}

/// The first Rust code, on the main stack with the boot page tables.
#[unsafe(no_mangle)]
extern "C" fn morgana_x86_main(info_paddr: u32, entry: u32, mb2_magic: u32) -> ! {
    phase_done(0);
    crate::xen::init();
    serial::init();
    phase_done(1);
    let info: &boot_info::BootInfo = match entry {
        0 => pvh::read(info_paddr),
        _ => multiboot2::read(info_paddr, mb2_magic),
    };
    phase_done(2);
    paging::init(info);
    phase_done(3);
    crate::acpi::init(info); // before the heap: tables may sit in "RAM"
    phase_done(4);
    trap::init();
    phase_done(5);
    heap::init(info);
    phase_done(6);
    irq::init();
    phase_done(7);
    clock::init();
    phase_done(8);
    log::trace!("platform ready");
    // SAFETY: `morgana::main!` defines this symbol with exactly this
    // signature in the app crate; it is the only definition (the link fails
    // otherwise) and it never returns.
    unsafe { morgana_app_main() }
}
