//! The floor for boot-time benchmarks: a PVH kernel whose entry point writes
//! 0 to QEMU's isa-debug-exit port at once (QEMU status 1). Anything a real
//! image does costs time above this. Built for x86_64-unknown-none with the
//! platform's linker script; on other targets it is an empty program.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long pvh_start32

    .section .text.boot32, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    movw $0xf4, %dx
    xorl %eax, %eax
    outl %eax, %dx
1:  hlt
    jmp 1b
    .code64
"#,
    options(att_syntax)
);

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[cfg(not(target_os = "none"))]
fn main() {}
