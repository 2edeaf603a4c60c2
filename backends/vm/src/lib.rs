//! Morgana's VM backend: boots on the x86_64 platform and finds its devices
//! at boot (virtio now; the driver sets are Cargo features). It offers the
//! same interface as the hosted backend, so the framework runs apps the same
//! way on both.
// Bare metal only: on other targets this crate is empty.
#![cfg(target_os = "none")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(not(any(feature = "virtio", feature = "xen")))]
compile_error!("a VM image needs at least one driver set: enable the `virtio` or `xen` feature");

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::task::{Context, Poll};

use morgana_devices::{Block, BlockError, BlockInfo, Console, ConsoleError, Entropy, EntropyError, Instant};
use morgana_net::driver::NoNetwork;
use morgana_net::{direct, Stack};
use morgana_runtime::logger::LogSink;
use morgana_runtime::{ArgError, Args, Handle};
use morgana_x86::{Machine, Serial, SystemClock};

pub use morgana_x86::fault;

/// The clock type.
pub type ClockDevice = SystemClock;

static PLATFORM_WORDS: spin::Once<Vec<String>> = spin::Once::new();

/// The boot arguments from the kernel command line. `key=value` words that
/// are not flags (`virtio_mmio.device=...`, `console=...`) are kept for
/// device discovery.
pub fn args() -> Args {
    let info = morgana_x86::boot_info::get();
    if info.cmdline_truncated {
        log::warn!("kernel command line truncated");
    }
    let mut args = Args::from_command_line(info.cmdline());
    let words = args.take_platform_words();
    PLATFORM_WORDS.call_once(|| words);
    args
}

/// The first boot module's bytes (QEMU `-initrd FILE`, Xen `ramdisk=`,
/// GRUB `module2`), if the loader gave one. The bytes stay where the loader
/// put them, reserved from the heap, for the life of the VM.
pub fn boot_module() -> Option<&'static [u8]> {
    morgana_x86::boot_info::modules().next()
}

/// The name used in messages: the app's.
pub fn program_name(app: &str) -> String {
    app.to_string()
}

/// Writes to the serial console.
pub fn print(msg: &str) {
    let _ = fmt::Write::write_str(&mut morgana_x86::serial::Writer, msg);
}

/// Whether log lines go to Xen's PV console (set once it is up).
static PV_CONSOLE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Writes a line to the serial console (Xen's debug port under Xen) and,
/// once Xen's PV console is up, to it too: that is where `xl console` and
/// the domain's console log show the app's log, so a fatal error (a bad
/// zone, a bad content archive) must be there as well.
pub fn print_error(msg: &str) {
    print(msg);
    print("\n");
    if PV_CONSOLE.load(core::sync::atomic::Ordering::Relaxed) {
        morgana_runtime::logger::write_raw(msg);
        morgana_runtime::logger::write_raw("\n");
    }
}

/// VM images have no files.
pub fn read_file(_path: &str) -> Result<String, &'static str> {
    Err("files are not available in a VM image (embed data at build time)")
}

/// VM images have no files.
pub fn file_modified(_path: &str) -> Result<u64, &'static str> {
    Err("files are not available in a VM image (embed data at build time)")
}

/// A VM image has no process sandbox (the hypervisor is its sandbox).
pub fn sandboxed() -> bool {
    false
}

/// No operator signals reach a VM image.
pub fn reload_requested() -> bool {
    false
}

/// VM images have no files to write.
pub fn write_file(_path: &str, _contents: &[u8]) -> Result<(), &'static str> {
    Err("files are not available in a VM image")
}

/// VM images have no directories.
pub fn load_dir(_dir: &str) -> Result<Vec<morgana_runtime::FileEntry>, &'static str> {
    Err("files are not available in a VM image (embed data at build time)")
}

/// The app has set itself up. Nothing to do in a VM: the hypervisor is
/// the sandbox.
pub fn started() -> Result<(), core::convert::Infallible> {
    Ok(())
}

/// Ends the VM.
pub fn exit(code: i32) -> ! {
    morgana_x86::exit(code)
}

/// Where log lines go: the serial console (Xen's debug port under Xen,
/// until the PV console is up).
pub fn log_sink() -> Box<dyn LogSink> {
    Box::new(Serial)
}

/// Monotonic time since the entry point.
pub fn monotonic() -> Instant {
    morgana_x86::clock::now()
}

/// Time since the entry point (the TSC read by its first instruction).
pub fn since_entry() -> core::time::Duration {
    core::time::Duration::from_nanos(monotonic().as_nanos())
}

/// The executor platform.
pub fn platform() -> Result<Rc<Machine>, core::convert::Infallible> {
    Ok(Rc::new(Machine))
}

/// The VM backend's boot arguments.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// The direct stack's settings.
    pub direct: direct::Config,
}

impl BootConfig {
    /// Takes the VM backend's flags.
    pub fn from_args(args: &mut Args) -> Result<BootConfig, ArgError> {
        Ok(BootConfig { direct: direct::Config::from_args(args)? })
    }
}

/// Why the VM backend could not start.
#[derive(Debug)]
pub enum BootError {
    /// A device was found but could not be started.
    Device(String),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Device(msg) => f.write_str(msg),
        }
    }
}

impl core::error::Error for BootError {}

/// The entropy source: a generator seeded and reseeded from virtio-rng
/// (requests never wait for the device), else RDRAND, else none (every
/// `fill` fails; Morgana never substitutes a fixed or time-based seed). The
/// same source feeds `getrandom` (RustCrypto, TLS).
#[derive(Debug, Default, Clone, Copy)]
pub struct EntropyDevice;

impl Entropy for EntropyDevice {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        morgana_x86::entropy::fill(buf)
    }
}

/// The console: a virtio console if there is one, Xen's PV console under
/// Xen, else COM1.
pub enum ConsoleDevice {
    /// Xen's PV console.
    #[cfg(feature = "xen")]
    Xen(morgana_xen::PvConsole),
    /// A virtio-console port.
    #[cfg(feature = "virtio")]
    Virtio(Box<morgana_virtio::VirtioConsole>),
    /// The serial port.
    Serial(Serial),
}

impl Console for ConsoleDevice {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        match self {
            #[cfg(feature = "virtio")]
            ConsoleDevice::Virtio(c) => c.write(bytes),
            #[cfg(feature = "xen")]
            ConsoleDevice::Xen(c) => c.write(bytes),
            ConsoleDevice::Serial(s) => s.write(bytes),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ConsoleError>> {
        match self {
            #[cfg(feature = "virtio")]
            ConsoleDevice::Virtio(c) => c.poll_read(cx, buf),
            #[cfg(feature = "xen")]
            ConsoleDevice::Xen(c) => c.poll_read(cx, buf),
            ConsoleDevice::Serial(s) => s.poll_read(cx, buf),
        }
    }
}

/// The block device.
pub enum BlockDevice {
    /// A virtio-blk disk.
    #[cfg(feature = "virtio")]
    Virtio(Box<morgana_virtio::VirtioBlk>),
    /// A Xen vbd.
    #[cfg(feature = "xen")]
    Xen(morgana_xen::Blkfront),
}

impl Block for BlockDevice {
    fn info(&self) -> BlockInfo {
        match self {
            #[cfg(feature = "virtio")]
            BlockDevice::Virtio(b) => b.info(),
            #[cfg(feature = "xen")]
            BlockDevice::Xen(b) => b.info(),
        }
    }

    async fn read(&mut self, first: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        match self {
            #[cfg(feature = "virtio")]
            BlockDevice::Virtio(b) => b.read(first, buf).await,
            #[cfg(feature = "xen")]
            BlockDevice::Xen(b) => b.read(first, buf).await,
        }
    }

    async fn write(&mut self, first: u64, buf: &[u8]) -> Result<(), BlockError> {
        match self {
            #[cfg(feature = "virtio")]
            BlockDevice::Virtio(b) => b.write(first, buf).await,
            #[cfg(feature = "xen")]
            BlockDevice::Xen(b) => b.write(first, buf).await,
        }
    }

    async fn flush(&mut self) -> Result<(), BlockError> {
        match self {
            #[cfg(feature = "virtio")]
            BlockDevice::Virtio(b) => b.flush().await,
            #[cfg(feature = "xen")]
            BlockDevice::Xen(b) => b.flush().await,
        }
    }
}

/// The devices found at boot.
pub struct Devices {
    /// The network stack (one with no device if there is no NIC).
    pub stack: Stack,
    /// Clocks.
    pub clock: SystemClock,
    /// Entropy.
    pub entropy: EntropyDevice,
    /// The first disk, if any.
    pub block: Option<BlockDevice>,
    /// The console.
    pub console: ConsoleDevice,
}

fn seed(entropy: &mut EntropyDevice) -> [u8; 32] {
    let mut b = [0u8; 32];
    if entropy.fill(&mut b).is_err() {
        log::error!("NO ENTROPY SOURCE: TCP initial sequence numbers and ephemeral ports are PREDICTABLE");
        log::error!(
            "(RFC 6528 needs a secret); give the VM virtio-rng (QEMU: -device virtio-rng-pci) or a CPU with RDRAND"
        );
        let t = morgana_x86::clock::rdtsc().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % 8] ^ (i as u8);
        }
    }
    b
}

/// Finds the devices and starts the network stack on `rt`: Xen's PV
/// devices when booted on Xen, else virtio devices.
pub fn start(cfg: BootConfig, machine: &Rc<Machine>, rt: &Handle) -> Result<Devices, BootError> {
    log::debug!("{}", morgana_x86::clock::calibration_report());
    // Not "boot: ...": tests read the memory figures from that line.
    log::debug!("platform phases (ms): {}", morgana_x86::boot::phase_report());
    log_boot_info();
    register_cpu_crypto();
    #[cfg(feature = "xen")]
    if morgana_x86::xen::present() {
        return xen::start(cfg, rt);
    }
    // Without the feature the platform itself stops on Xen, naming it
    // (morgana-x86's `xen_off`): it cannot even shut a domain down.
    let _ = machine;
    watch_power_button(rt);
    #[cfg(feature = "virtio")]
    return start_virtio(cfg, rt);
    #[cfg(not(feature = "virtio"))]
    return Err(BootError::Device(
        "this image was built without virtio drivers (xen feature only): boot it on Xen".into(),
    ));
}

/// Ends the app when the ACPI power button is pressed (`virsh shutdown`,
/// QEMU's `system_powerdown`), as `xl shutdown` does on Xen. Machines
/// without ACPI (microvm) have no button.
fn watch_power_button(rt: &Handle) {
    let Some(power) = morgana_x86::acpi::power() else { return };
    let Some(line) = morgana_x86::IrqLine::route_with_polarity(power.sci_gsi, power.sci_level, power.sci_active_low)
    else {
        log::warn!("ACPI: SCI on GSI {} cannot be routed; the power button is ignored", power.sci_gsi);
        return;
    };
    if !power.enable_power_button() {
        log::warn!("ACPI: the firmware kept the power-management registers; the power button is ignored");
        return;
    }
    log::debug!("ACPI power button on GSI {}", power.sci_gsi);
    rt.spawn(async move {
        core::future::poll_fn(|cx| {
            line.register(cx.waker());
            // A level-triggered SCI is masked until the event is cleared.
            let mut pressed = false;
            line.acknowledge(|| pressed = power.take_power_button());
            if pressed || (!power.sci_level && power.take_power_button()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        log::info!("ACPI power button pressed: exiting");
        morgana_x86::exit(0);
    });
}

/// Says how the image was booted: the loader, the heap taken from its
/// memory map, and the boot modules.
/// Registers the CPU's AES-GCM engine when the CPU has AES-NI, PCLMULQDQ
/// and SSSE3 (TLS then uses it), and says which AES-GCM TLS will use.
fn register_cpu_crypto() {
    match morgana_x86::aes_gcm::engine() {
        Some(engine) => {
            morgana_devices::register_aes_gcm(engine);
            log::info!("AES-GCM: {} (hardware)", morgana_devices::AesGcm::name(engine));
        }
        None => log::info!("AES-GCM: software (the CPU lacks AES-NI, PCLMULQDQ or SSSE3)"),
    }
}

fn log_boot_info() {
    let info = morgana_x86::boot_info::get();
    let ram: u64 = info.regions().iter().filter(|r| r.kind == morgana_x86::boot_info::RAM).map(|r| r.size).sum();
    log::info!(
        "boot: {} entry; memory map: {} regions, {} KiB RAM; heap {} KiB; {} boot module(s)",
        info.loader,
        info.regions().len(),
        ram / 1024,
        morgana_x86::heap::heap_size() / 1024,
        info.modules().len()
    );
    if info.regions_dropped > 0 {
        log::warn!(
            "boot: {} memory map entries beyond the first {} ignored",
            info.regions_dropped,
            info.regions().len()
        );
    }
    if info.modules_dropped > 0 {
        log::warn!("boot: {} boot modules beyond the first {} ignored", info.modules_dropped, info.modules().len());
    }
}

/// The virtio devices found at boot.
#[cfg(feature = "virtio")]
fn start_virtio(cfg: BootConfig, rt: &Handle) -> Result<Devices, BootError> {
    let words = PLATFORM_WORDS.get().cloned().unwrap_or_default();
    let mut entropy = EntropyDevice;
    let mut have_rng = false;
    let mut console = ConsoleDevice::Serial(Serial);
    let mut block = None;
    let mut nic = None;
    {
        use morgana_virtio::DeviceType;
        let err = |what: &str, loc: morgana_virtio::Location, e: virtio_drivers_error::E| {
            BootError::Device(alloc::format!("{what} at {loc}: {e}"))
        };
        for dev in morgana_virtio::discover(&words) {
            let loc = dev.location;
            let irq = dev.gsi;
            match dev.kind {
                DeviceType::Network if nic.is_none() => {
                    let n = morgana_virtio::VirtioNet::new(dev.transport, dev.gsi)
                        .map_err(|e| err("virtio-net", loc, e))?;
                    log::info!("virtio-net at {loc}, irq {irq:?}, MAC {:02x?}", morgana_devices::Net::mac_address(&n));
                    nic = Some(n);
                }
                DeviceType::Block if block.is_none() => {
                    let b = morgana_virtio::VirtioBlk::new(dev.transport, dev.gsi)
                        .map_err(|e| err("virtio-blk", loc, e))?;
                    let i = b.info();
                    log::info!(
                        "virtio-blk at {loc}, irq {irq:?}, {} sectors{}",
                        i.sectors,
                        if i.read_only { ", read-only" } else { "" }
                    );
                    block = Some(BlockDevice::Virtio(Box::new(b)));
                }
                DeviceType::Console if matches!(console, ConsoleDevice::Serial(_)) => {
                    let c = morgana_virtio::VirtioConsole::new(dev.transport, dev.gsi)
                        .map_err(|e| err("virtio-console", loc, e))?;
                    log::info!("virtio-console at {loc}, irq {irq:?}");
                    console = ConsoleDevice::Virtio(Box::new(c));
                }
                DeviceType::EntropySource if !have_rng => {
                    let mut r = morgana_virtio::VirtioRng::new(dev.transport, dev.gsi)
                        .map_err(|e| err("virtio-rng", loc, e))?;
                    match seed_from(&mut r) {
                        Ok(seed) => {
                            log::info!("virtio-rng at {loc}, irq {irq:?}");
                            morgana_x86::entropy::seed(seed);
                            rt.spawn(reseed(r, rt.clone()));
                            have_rng = true;
                        }
                        Err(e) => log::warn!("virtio-rng at {loc}: {e}; not used"),
                    }
                }
                other => log::info!("ignoring virtio device {other:?} at {loc}"),
            }
        }
    }
    let stack = match nic {
        Some(nic) => direct::start(nic, cfg.direct, seed(&mut entropy), rt).0,
        None => {
            log::info!("no network device");
            Stack::new(Rc::new(NoNetwork), rt.clone())
        }
    };
    Ok(Devices { stack, clock: SystemClock, entropy, block, console })
}

/// Entropy the generator starts from: 32 bytes from virtio-rng, waiting
/// at most a second in all (boot only).
#[cfg(feature = "virtio")]
fn seed_from(rng: &mut morgana_virtio::VirtioRng) -> Result<[u8; 32], EntropyError> {
    let mut seed = [0u8; 32];
    let deadline = morgana_x86::clock::now() + core::time::Duration::from_secs(1);
    let mut have = 0;
    while have < seed.len() {
        let left = deadline.saturating_since(morgana_x86::clock::now());
        if left.is_zero() {
            return Err(EntropyError::Unavailable);
        }
        have += rng.read_at_boot(&mut seed[have..], left)?;
    }
    Ok(seed)
}

/// Mixes fresh virtio-rng bytes into the entropy generator after every
/// `RESEED_BYTES` it produces, and at least every 30 s. Waits for the
/// device's interrupt; requests never wait for this.
#[cfg(feature = "virtio")]
async fn reseed(mut rng: morgana_virtio::VirtioRng, rt: Handle) {
    use core::time::Duration;
    loop {
        let _ = rt.timeout(Duration::from_secs(30), core::future::poll_fn(morgana_x86::entropy::reseed_due)).await;
        let mut fresh = [0u8; morgana_virtio::RNG_BUF];
        match rt.timeout(Duration::from_secs(5), rng.read(&mut fresh)).await {
            Ok(Ok(n)) => {
                morgana_x86::entropy::reseed(&fresh[..n]);
                log::debug!("entropy generator reseeded with {n} bytes from virtio-rng");
            }
            Ok(Err(e)) => {
                log::error!("virtio-rng: {e}; entropy is no longer reseeded");
                return;
            }
            // The request stays in flight; the next read waits for it.
            Err(_) => log::warn!("virtio-rng did not answer within 5 s"),
        }
    }
}

#[cfg(feature = "xen")]
mod xen {
    use super::*;
    use alloc::format;
    use morgana_xen::Store;

    pub(super) fn start(cfg: BootConfig, rt: &Handle) -> Result<Devices, BootError> {
        let devs = morgana_xen::start().map_err(|e| BootError::Device(format!("Xen devices: {e}")))?;
        let console = match devs.console {
            Some(c) => {
                morgana_runtime::logger::set_sink(Box::new(c));
                PV_CONSOLE.store(true, core::sync::atomic::Ordering::Relaxed);
                log::info!("Xen PV console");
                ConsoleDevice::Xen(c)
            }
            None => ConsoleDevice::Serial(Serial),
        };
        let mut entropy = EntropyDevice;
        let block = devs.block.map(|b| {
            let i = b.info();
            log::info!("Xen vbd: {} sectors{}", i.sectors, if i.read_only { ", read-only" } else { "" });
            BlockDevice::Xen(b)
        });
        let stack = match devs.net {
            Some(nic) => {
                log::info!("Xen vif, MAC {:02x?}", morgana_devices::Net::mac_address(&nic));
                direct::start(nic, cfg.direct, seed(&mut entropy), rt).0
            }
            None => {
                log::info!("no network device");
                Stack::new(Rc::new(NoNetwork), rt.clone())
            }
        };
        rt.spawn(watch_shutdown(devs.store, rt.clone()));
        Ok(Devices { stack, clock: SystemClock, entropy, block, console })
    }

    /// Waits for the toolstack to write `control/shutdown` (`xl shutdown`,
    /// `xl reboot`), acknowledges it and ends the VM: powered off through
    /// the normal exit path, or with Xen's reboot reason so the toolstack
    /// starts it again. A unikernel cannot suspend; that request is refused.
    /// Every xenstore request waits for the event channel as a task, so the
    /// executor keeps running the app meanwhile.
    async fn watch_shutdown(mut xs: Store, rt: Handle) {
        const NODE: &str = "control/shutdown";
        const LIMIT: core::time::Duration = core::time::Duration::from_secs(5);
        loop {
            match core::future::poll_fn(|cx| xs.poll_watch(cx)).await {
                Ok((path, _)) if path == NODE => {}
                Ok(_) => continue,
                Err(e) => {
                    log::error!("xenstore: {e}; no longer watching for shutdown requests");
                    return;
                }
            }
            let what = match rt.timeout(LIMIT, xs.read_async(NODE)).await {
                Ok(Ok(what)) => what,
                Ok(Err(e)) => {
                    log::warn!("reading {NODE}: {e}");
                    continue;
                }
                Err(_) => {
                    log::warn!("reading {NODE}: xenstore did not answer");
                    continue;
                }
            };
            let known = matches!(what.as_str(), "poweroff" | "halt" | "reboot");
            if what.is_empty() {
                continue;
            }
            if !known {
                log::warn!("ignoring Xen shutdown request {what:?}: not supported");
            }
            // Acknowledges (or refuses) the request.
            match rt.timeout(LIMIT, xs.write_async(0, NODE, "")).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::warn!("clearing {NODE}: {e}"),
                Err(_) => log::warn!("clearing {NODE}: xenstore did not answer"),
            }
            if known {
                log::info!("Xen asked for {what}: exiting");
                if what == "reboot" {
                    morgana_x86::xen::reboot();
                }
                morgana_x86::exit(0);
            }
        }
    }
}

#[cfg(feature = "virtio")]
mod virtio_drivers_error {
    pub type E = morgana_virtio::net::Error;
}
