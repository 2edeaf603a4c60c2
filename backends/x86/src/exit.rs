//! Ending the VM.

use x86_64::instructions::{hlt, interrupts, port::Port};

/// I/O port of QEMU's `isa-debug-exit` device: writing `v` ends QEMU with
/// status `2 * v + 1`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Hooks a hypervisor backend can install (Xen uses SCHEDOP_shutdown).
static EXIT_HOOK: spin::Once<fn(i32)> = spin::Once::new();

/// Installs the hypervisor's shutdown call, tried before the QEMU port.
pub fn set_exit_hook(hook: fn(i32)) {
    EXIT_HOOK.call_once(|| hook);
}

/// Ends the VM with `code` (0 success, 1 failure, 2 bad boot arguments,
/// 64 panic or CPU exception). Under QEMU with `isa-debug-exit` QEMU exits
/// with `2 * code + 1`; elsewhere the CPU halts with interrupts off.
pub fn exit(code: i32) -> ! {
    if let Some(hook) = EXIT_HOOK.get() {
        hook(code);
    }
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: writing to an absent ISA port is ignored; with isa-debug-exit
    // present the write ends the VM.
    unsafe { port.write(code as u32 & 0x7f) };
    crate::serial::write_raw(b"morgana: halted (no isa-debug-exit device)\r\n");
    halt_forever()
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    interrupts::disable();
    loop {
        hlt();
    }
}
