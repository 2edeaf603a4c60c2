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

/// I/O port of QEMU's ISA `pvpanic` device (libvirt `<panic model='isa'/>`).
const PVPANIC_PORT: u16 = 0x505;
const PVPANIC_PANICKED: u8 = 1;

/// Ends the VM with `code` (0 success, 1 failure, 2 bad boot arguments,
/// 64 panic or CPU exception), by the first of these the machine has:
/// the hypervisor's hook (Xen); QEMU's `isa-debug-exit`, which ends QEMU
/// with status `2 * code + 1`; for a failure, `pvpanic` (libvirt then
/// reports the domain crashed); ACPI soft off (S5, what libvirt reports as
/// a shutdown); else the CPU halts with interrupts off.
pub fn exit(code: i32) -> ! {
    if let Some(hook) = EXIT_HOOK.get() {
        hook(code);
    }
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: writing to an absent ISA port is ignored; with isa-debug-exit
    // present the write ends the VM.
    unsafe { port.write(code as u32 & 0x7f) };
    if code != 0 {
        let mut pvpanic: Port<u8> = Port::new(PVPANIC_PORT);
        // SAFETY: reading an absent ISA port gives 0xff and has no effect;
        // pvpanic answers with the events it supports.
        let events = unsafe { pvpanic.read() };
        if events != 0xff && events & PVPANIC_PANICKED != 0 {
            crate::serial::write_raw(b"morgana: failed; reported through pvpanic\r\n");
            // SAFETY: the device is there (it answered); this write reports
            // the guest as panicked and has no other effect on the guest.
            unsafe { pvpanic.write(PVPANIC_PANICKED) };
            halt_forever()
        }
    }
    if let Some(power) = crate::acpi::power() {
        if code != 0 {
            crate::serial::write_raw(b"morgana: failed; powering off (no exit device to report it)\r\n");
        }
        power.power_off();
    }
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
