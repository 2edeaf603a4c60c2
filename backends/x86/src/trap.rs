//! CPU exceptions and interrupts: the GDT with a TSS (separate stacks for
//! double faults, page faults and NMIs, so a stack overflow can still be
//! reported), the IDT, the entry stubs, and the reports of fatal faults.

use core::fmt::Write;

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::control::Cr2;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use crate::boot::Stack;
use crate::irq;

const IST_STACK: usize = 16 * 1024;
const IST_DOUBLE_FAULT: u16 = 0;
const IST_PAGE_FAULT: u16 = 1;
const IST_NMI: u16 = 2;

#[unsafe(link_section = ".stacks.ist")]
static mut IST_STACKS: [Stack<IST_STACK>; 3] = [const { Stack([0; IST_STACK]) }; 3];
static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<GlobalDescriptorTable> = spin::Once::new();
static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// Registers saved by the entry stubs, then the CPU's interrupt frame.
#[repr(C)]
#[derive(Debug)]
struct TrapFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

// SAFETY (for the assembly below): each stub fits its 16-byte slot (at most
// 12 bytes), the CPU pushes an error code exactly for vectors 8, 10-14, 17,
// 21, 29 and 30, the common path saves every general register in
// `TrapFrame` order, keeps RSP 16-byte aligned at the call (176 bytes
// pushed on an aligned frame), and restores them before `iretq`.
//
// 256 entry stubs, 16 bytes apart: each pushes a zero error code (unless the
// CPU pushes one for that vector) and its vector number, then jumps to the
// common path, which saves the registers, calls `morgana_x86_trap` and
// returns with `iretq`.
core::arch::global_asm!(
    r#"
    .section .text.morgana_traps, "ax"
    .p2align 4
    .global morgana_trap_stubs
morgana_trap_stubs:
    .set vec, 0
    .rept 256
    .p2align 4
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp morgana_trap_common
    .set vec, vec + 1
    .endr

morgana_trap_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call morgana_x86_trap
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    static morgana_trap_stubs: u8;
}

pub(crate) fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        for (i, ist) in [IST_DOUBLE_FAULT, IST_PAGE_FAULT, IST_NMI].into_iter().enumerate() {
            // SAFETY: only the address of the stack is taken; the CPU alone
            // uses these stacks, each for one kind of fault.
            let base = unsafe { (&raw const IST_STACKS[i]) as u64 };
            tss.interrupt_stack_table[ist as usize] = VirtAddr::new(base + IST_STACK as u64);
        }
        tss
    });
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        gdt.append(Descriptor::kernel_code_segment());
        gdt.append(Descriptor::kernel_data_segment());
        gdt.append(Descriptor::tss_segment(tss));
        gdt
    });
    gdt.load();
    // SAFETY: selectors 0x08 (code), 0x10 (data) and 0x18 (TSS) index the
    // GDT just loaded, which lives in a static for the rest of the run.
    unsafe {
        CS::set_reg(x86_64::structures::gdt::SegmentSelector(0x08));
        for set in [DS::set_reg, ES::set_reg, SS::set_reg] {
            set(x86_64::structures::gdt::SegmentSelector(0x10));
        }
        load_tss(x86_64::structures::gdt::SegmentSelector(0x18));
    }
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: only the address of the stub table is taken.
        let stubs = unsafe { &morgana_trap_stubs as *const u8 as u64 };
        let addr = |v: u64| VirtAddr::new(stubs + 16 * v);
        // SAFETY: each stub is a valid interrupt entry point for its vector
        // (it saves all registers and returns with iretq), and the IST
        // indexes name stacks installed in the TSS above.
        unsafe {
            idt.divide_error.set_handler_addr(addr(0));
            idt.debug.set_handler_addr(addr(1));
            idt.non_maskable_interrupt.set_handler_addr(addr(2)).set_stack_index(IST_NMI);
            idt.breakpoint.set_handler_addr(addr(3));
            idt.overflow.set_handler_addr(addr(4));
            idt.bound_range_exceeded.set_handler_addr(addr(5));
            idt.invalid_opcode.set_handler_addr(addr(6));
            idt.device_not_available.set_handler_addr(addr(7));
            idt.double_fault.set_handler_addr(addr(8)).set_stack_index(IST_DOUBLE_FAULT);
            idt.invalid_tss.set_handler_addr(addr(10));
            idt.segment_not_present.set_handler_addr(addr(11));
            idt.stack_segment_fault.set_handler_addr(addr(12));
            idt.general_protection_fault.set_handler_addr(addr(13));
            idt.page_fault.set_handler_addr(addr(14)).set_stack_index(IST_PAGE_FAULT);
            idt.x87_floating_point.set_handler_addr(addr(16));
            idt.alignment_check.set_handler_addr(addr(17));
            idt.machine_check.set_handler_addr(addr(18));
            idt.simd_floating_point.set_handler_addr(addr(19));
            idt.virtualization.set_handler_addr(addr(20));
            idt.cp_protection_exception.set_handler_addr(addr(21));
            idt.vmm_communication_exception.set_handler_addr(addr(29));
            idt.security_exception.set_handler_addr(addr(30));
            for v in 32..=255u8 {
                idt[v].set_handler_addr(addr(v as u64));
            }
        }
        idt
    });
    idt.load();
}

fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "non-maskable interrupt",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point exception",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point exception",
        20 => "virtualization exception",
        21 => "control protection exception",
        _ => "reserved exception",
    }
}

/// Writes through the serial port without its lock (we may have
/// interrupted a writer).
struct RawWriter;

impl Write for RawWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for (i, part) in s.split('\n').enumerate() {
            if i > 0 {
                crate::serial::write_raw(b"\r\n");
            }
            crate::serial::write_raw(part.as_bytes());
        }
        Ok(())
    }
}

fn explain(frame: &TrapFrame, cr2: u64) -> &'static str {
    let guard = crate::paging::guard_page();
    let in_guard = (guard..guard + 4096).contains(&cr2);
    match frame.vector {
        14 | 8 if in_guard => " (stack overflow into the guard page)",
        14 if cr2 < 4096 => " (null pointer dereference)",
        14 if frame.error_code & 0b11 == 0b11 => " (write to read-only memory: W^X)",
        14 if frame.error_code & 0x10 != 0 => " (execution of non-executable memory: W^X)",
        _ => "",
    }
}

/// Called by the entry stubs with interrupts disabled.
#[unsafe(no_mangle)]
extern "C" fn morgana_x86_trap(frame: &mut TrapFrame) {
    match frame.vector as u8 {
        0..=31 => {
            let cr2 = Cr2::read_raw();
            let _ = writeln!(
                RawWriter,
                "\nmorgana: CPU exception: {} (vector {}) at RIP={:#x}, error code {:#x}, CR2={:#x}{}\nRSP={:#x} RBP={:#x} RAX={:#x} RDI={:#x} RSI={:#x}",
                exception_name(frame.vector),
                frame.vector,
                frame.rip,
                frame.error_code,
                cr2,
                explain(frame, cr2),
                frame.rsp,
                frame.rbp,
                frame.rax,
                frame.rdi,
                frame.rsi,
            );
            print_backtrace(Some(frame.rip), frame.rbp);
            crate::exit::exit(crate::FATAL_EXIT);
        }
        irq::TIMER_VECTOR => irq::timer_interrupt(),
        crate::xen::UPCALL_VECTOR => irq::upcall_interrupt(),
        irq::SPURIOUS_VECTOR => {}
        v => irq::device_interrupt(v),
    }
}

/// Prints the faulting RIP (if any) and the return addresses of the frame
/// chain from `rbp`, one per line, for `cargo xtask symbolize`.
fn print_backtrace(rip: Option<u64>, rbp: u64) {
    let main = crate::paging::guard_page() + 4096;
    let ist = (&raw const IST_STACKS) as u64;
    let stacks = [main..main + crate::boot::STACK_SIZE as u64, ist..ist + 3 * IST_STACK as u64];
    let _ = writeln!(RawWriter, "morgana: backtrace (cargo xtask symbolize names the frames):");
    let mut n = 0;
    if let Some(pc) = rip {
        let _ = writeln!(RawWriter, "  #0 {pc:#018x} (pc)");
        n = 1;
    }
    // SAFETY: `walk` reads only 8-byte aligned words inside `stacks`, which
    // are mapped, writable statics (the main stack without its guard page).
    let read = |addr: u64| unsafe { core::ptr::read_volatile(addr as *const u64) };
    let end = crate::backtrace::walk(rbp, &stacks, read, |ret| {
        let _ = writeln!(RawWriter, "  #{n} {ret:#018x}");
        n += 1;
    });
    let _ = writeln!(RawWriter, "morgana: backtrace ends: {end}");
}

static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, core::sync::atomic::Ordering::SeqCst) {
        crate::serial::write_raw(b"\r\nmorgana: panic while panicking\r\n");
        crate::exit::exit(crate::FATAL_EXIT);
    }
    let _ = writeln!(RawWriter, "\nmorgana: panic: {info}");
    let rbp: u64;
    // SAFETY: reads RBP, this function's frame pointer (images are built
    // with frame pointers); no memory is touched.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    print_backtrace(None, rbp);
    crate::exit::exit(crate::FATAL_EXIT)
}
