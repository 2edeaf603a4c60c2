//! Finding virtio devices: virtio-mmio slots named on the kernel command line
//! and virtio functions on PCI bus 0.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::pci::bus::{
    ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType, PciRoot,
};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::{DeviceType, Transport as _};

use crate::hal::VirtioHal;
use crate::Transport;

/// Where a device was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A virtio-mmio register block.
    Mmio(u64),
    /// A PCI function (bus, device, function).
    Pci(u8, u8, u8),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Mmio(a) => write!(f, "mmio {a:#x}"),
            Location::Pci(b, d, func) => write!(f, "pci {b:02x}:{d:02x}.{func}"),
        }
    }
}

/// A virtio device ready for its driver.
pub struct Found {
    /// Device class.
    pub kind: DeviceType,
    /// The transport to hand to the driver.
    pub transport: Transport,
    /// Its interrupt line (a GSI), if it has one. Not routed yet: the
    /// driver that takes the device routes it, so no line is enabled that
    /// nobody acknowledges.
    pub gsi: Option<u32>,
    /// Where it is.
    pub location: Location,
}

/// A `virtio_mmio.device=SIZE@BASE:IRQ[:ID]` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MmioSlot {
    size: u64,
    base: u64,
    irq: u32,
}

fn parse_number(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    v.checked_mul(mult)
}

fn parse_mmio_slot(word: &str) -> Option<MmioSlot> {
    let spec = word.strip_prefix("virtio_mmio.device=")?;
    let (size, rest) = spec.split_once('@')?;
    let mut parts = rest.split(':');
    let base = parse_number(parts.next()?)?;
    let irq = parts.next()?.parse().ok()?;
    Some(MmioSlot { size: parse_number(size)?, base, irq })
}

/// PCI configuration access through the I/O ports.
struct PortCam;

impl ConfigurationAccess for PortCam {
    fn read_word(&self, f: DeviceFunction, offset: u8) -> u32 {
        morgana_x86::pci::read32(f.bus, f.device, f.function, offset)
    }

    fn write_word(&mut self, f: DeviceFunction, offset: u8, data: u32) {
        morgana_x86::pci::write32(f.bus, f.device, f.function, offset, data)
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// Every PCI function on bus 0 and on the buses behind its bridges (q35's
/// PCIe root ports, where libvirt puts each device), as the firmware
/// numbered them: each bridge's secondary bus, each bus once.
fn pci_functions(root: &PciRoot<PortCam>) -> Vec<(DeviceFunction, DeviceFunctionInfo)> {
    let mut buses = alloc::vec![0u8];
    let mut seen = [false; 256];
    seen[0] = true;
    let mut functions = Vec::new();
    while let Some(bus) = buses.pop() {
        for (function, info) in root.enumerate_bus(bus) {
            if info.header_type == HeaderType::PciPciBridge {
                let numbers = morgana_x86::pci::read32(function.bus, function.device, function.function, 0x18);
                let secondary = (numbers >> 8) as u8;
                if secondary != 0 && !seen[secondary as usize] {
                    seen[secondary as usize] = true;
                    buses.push(secondary);
                }
            }
            functions.push((function, info));
        }
    }
    functions
}

/// Finds every virtio device: the MMIO slots among `platform_words` (the
/// kernel command line's `key=value` words) and the PCI functions on bus 0
/// and behind its bridges.
/// Problems are logged and the device skipped.
pub fn discover(platform_words: &[String]) -> Vec<Found> {
    let mut found = Vec::new();
    let mut seen: Vec<u64> = Vec::new();
    for word in platform_words.iter().filter(|w| w.starts_with("virtio_mmio.device=")) {
        let Some(slot) = parse_mmio_slot(word) else {
            log::warn!("ignoring malformed kernel parameter '{word}'");
            continue;
        };
        let in_range = slot.base.checked_add(slot.size).is_some_and(|end| end <= 4 << 30);
        if !in_range || slot.size < 0x100 || morgana_x86::boot_info::get().is_ram(slot.base, slot.size) {
            log::warn!("ignoring virtio-mmio slot at {:#x}: not a device region below 4 GiB", slot.base);
            continue;
        }
        if seen.contains(&slot.base) {
            log::warn!("ignoring a second virtio-mmio slot at {:#x}", slot.base);
            continue;
        }
        seen.push(slot.base);
        let header = NonNull::new(morgana_x86::phys_to_virt(slot.base) as *mut VirtIOHeader);
        let Some(header) = header else { continue };
        // SAFETY: the hypervisor named [base, base + size) as a virtio-mmio
        // register block; it is below 4 GiB, not RAM (checked above), so
        // identity mapped uncached, and listed once, so only this transport
        // accesses it.
        match unsafe { MmioTransport::new(header, slot.size as usize) } {
            Ok(t) => {
                found.push(Found {
                    kind: t.device_type(),
                    transport: t.into(),
                    gsi: Some(slot.irq),
                    location: Location::Mmio(slot.base),
                });
            }
            Err(e) => log::debug!("virtio-mmio slot {:#x}: {e}", slot.base),
        }
    }
    if morgana_x86::pci::present() {
        let mut root = PciRoot::new(PortCam);
        for (function, info) in pci_functions(&root) {
            if virtio_device_type(&info).is_none() {
                continue;
            }
            let location = Location::Pci(function.bus, function.device, function.function);
            // Enable memory decoding and bus mastering (DMA).
            let cmd = morgana_x86::pci::read32(function.bus, function.device, function.function, 4);
            morgana_x86::pci::write32(function.bus, function.device, function.function, 4, cmd | 0b110);
            match PciTransport::new::<VirtioHal, _>(&mut root, function) {
                Ok(t) => {
                    let line = morgana_x86::pci::read32(function.bus, function.device, function.function, 0x3c) & 0xff;
                    let gsi = (line != 0 && line != 0xff).then_some(line);
                    found.push(Found { kind: t.device_type(), transport: t.into(), gsi, location });
                }
                Err(e) => log::warn!("virtio device at {location}: {e}"),
            }
        }
    }
    found
}
