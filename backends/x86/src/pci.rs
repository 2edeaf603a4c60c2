//! PCI configuration space through the legacy I/O ports (0xcf8/0xcfc), which
//! QEMU's pc and q35 machines and real PCs provide.

use x86_64::instructions::port::Port;

fn address(bus: u8, device: u8, function: u8, offset: u8) -> u32 {
    0x8000_0000
        | (bus as u32) << 16
        | ((device & 0x1f) as u32) << 11
        | ((function & 7) as u32) << 8
        | (offset & 0xfc) as u32
}

/// Reads a dword of configuration space.
pub fn read32(bus: u8, device: u8, function: u8, offset: u8) -> u32 {
    let mut addr: Port<u32> = Port::new(0xcf8);
    let mut data: Port<u32> = Port::new(0xcfc);
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: the address/data port pair is the PCI configuration
        // mechanism #1; interrupts are off so the pair is not interleaved.
        unsafe {
            addr.write(address(bus, device, function, offset));
            data.read()
        }
    })
}

/// Writes a dword of configuration space.
pub fn write32(bus: u8, device: u8, function: u8, offset: u8, value: u32) {
    let mut addr: Port<u32> = Port::new(0xcf8);
    let mut data: Port<u32> = Port::new(0xcfc);
    x86_64::instructions::interrupts::without_interrupts(|| {
        // SAFETY: as for `read32`.
        unsafe {
            addr.write(address(bus, device, function, offset));
            data.write(value);
        }
    })
}

/// Whether a PCI host bridge answers (false on microvm and Firecracker).
pub fn present() -> bool {
    if crate::xen::present() {
        return false; // no PCI configuration ports under PVH
    }
    read32(0, 0, 0, 0) & 0xffff != 0xffff
}
