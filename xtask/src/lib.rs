//! Building Morgana VM images and running them under QEMU, shared by the
//! `cargo xtask` commands, the end-to-end tests and the benchmarks.
#![forbid(unsafe_code)]

pub mod bench;
pub mod debug;
pub mod image;
pub mod symbolize;
pub mod xen;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::str::FromStr;

/// The VM target.
pub const TARGET: &str = "x86_64-unknown-none";

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent").to_path_buf()
}

/// Builds `app` for the VM target (`cargo build [--release] -p APP --target
/// x86_64-unknown-none`) and returns the stripped image, `APP.stripped`
/// beside cargo's unstripped ELF ([`debug_elf`]).
pub fn build_image(app: &str, release: bool) -> Result<PathBuf, String> {
    build_image_with(app, release, None)
}

/// APP's default features other than its driver sets (`ipv6`, `dhcp`, …),
/// read from `apps/APP/Cargo.toml`.
pub fn optional_features(app: &str) -> Result<Vec<String>, String> {
    let path = workspace().join("apps").join(app).join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("default = ["))
        .ok_or_else(|| format!("{}: no default feature list", path.display()))?;
    let names = line.trim_end_matches(']').split(',').map(|f| f.trim().trim_matches('"').to_string());
    Ok(names.filter(|f| !f.is_empty() && f != "virtio" && f != "xen").collect())
}

/// Builds APP's image with exactly the given features
/// (`--no-default-features --features F`, e.g. `"virtio,ipv6"`); `None`
/// keeps the app's defaults. The image is written to the usual place, so
/// copy it before the next build. The image is stripped; cargo's ELF
/// beside it keeps the debug information.
pub fn build_image_with(app: &str, release: bool, features: Option<&str>) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace()).args(["build", "--quiet", "-p", app, "--target", TARGET]);
    if release {
        cmd.arg("--release");
    }
    if let Some(f) = features {
        cmd.args(["--no-default-features", "--features", f]);
    }
    // A RUSTFLAGS variable would replace the linker flags in .cargo/config.toml.
    cmd.env_remove("RUSTFLAGS");
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {app} for {TARGET} failed"));
    }
    let elf = debug_elf(app, release);
    let image = elf.with_extension("stripped");
    // Stripped beside it, then renamed into place: a QEMU that tests in
    // parallel start from the image reads the old file or the new one,
    // never one half written.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let part = elf.with_extension(format!("stripped.{}-{n}", std::process::id()));
    let status = Command::new("strip")
        .arg("-o")
        .arg(&part)
        .arg(&elf)
        .status()
        .map_err(|e| format!("cannot run strip (apt-get install binutils): {e}"))?;
    if !status.success() {
        let _ = std::fs::remove_file(&part);
        return Err(format!("strip {} failed", elf.display()));
    }
    std::fs::rename(&part, &image).map_err(|e| format!("{}: {e}", image.display()))?;
    Ok(image)
}

/// Cargo's ELF of `app` for the VM target: not stripped, with the debug
/// information gdb and `cargo xtask symbolize` read. (Not built here.)
pub fn debug_elf(app: &str, release: bool) -> PathBuf {
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    target_dir.join(TARGET).join(if release { "release" } else { "debug" }).join(app)
}

/// OVMF's code (Debian's `ovmf` package), for [`Vm::ovmf_vars`].
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
/// OVMF's empty variable store, to copy for [`Vm::ovmf_vars`].
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// QEMU machine types Morgana images are tested on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// `microvm`: virtio-mmio devices, no PCI, no firmware tables.
    Microvm,
    /// `pc` (i440fx): virtio-pci devices behind SeaBIOS.
    Pc,
    /// `q35` (ICH9, PCIe): virtio-pci devices behind SeaBIOS or OVMF.
    Q35,
}

impl FromStr for Machine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "microvm" => Ok(Machine::Microvm),
            "pc" => Ok(Machine::Pc),
            "q35" => Ok(Machine::Q35),
            _ => Err(format!("unknown machine '{s}' (expected microvm, pc or q35)")),
        }
    }
}

/// A port forward from the host into the guest (QEMU user networking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// "tcp" or "udp".
    pub proto: String,
    /// Host address, e.g. 127.0.0.1.
    pub host_addr: String,
    /// Host port.
    pub host_port: u16,
    /// Guest port.
    pub guest_port: u16,
}

impl FromStr for Forward {
    type Err = String;
    /// `tcp:127.0.0.1:7007-:7` (QEMU's hostfwd syntax).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad forward '{s}' (expected PROTO:HOSTADDR:HOSTPORT-:GUESTPORT)");
        let (host, guest) = s.split_once("-:").ok_or_else(bad)?;
        let mut parts = host.split(':');
        let proto = parts.next().ok_or_else(bad)?;
        let host_addr = parts.next().ok_or_else(bad)?;
        let host_port = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if !matches!(proto, "tcp" | "udp") || parts.next().is_some() {
            return Err(bad());
        }
        Ok(Forward {
            proto: proto.into(),
            host_addr: host_addr.into(),
            host_port,
            guest_port: guest.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}-:{}", self.proto, self.host_addr, self.host_port, self.guest_port)
    }
}

/// How to run one image.
#[derive(Debug, Clone)]
pub struct Vm {
    /// The ELF image.
    pub image: PathBuf,
    /// Machine type.
    pub machine: Machine,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// QEMU's CPU model (`-cpu`); `None` keeps QEMU's default, `qemu64`,
    /// which has no AES-NI, PCLMULQDQ or RDRAND (`max` has them under TCG).
    pub cpu: Option<String>,
    /// User-networking port forwards; with none and `network` false the
    /// guest gets no NIC.
    pub forwards: Vec<Forward>,
    /// Give the guest a NIC (implied by forwards).
    pub network: bool,
    /// Attach the NIC to this TAP device instead of user networking (QEMU
    /// must then run where the device is, e.g. in its network namespace).
    pub tap: Option<String>,
    /// A disk image for virtio-blk.
    pub disk: Option<PathBuf>,
    /// The disk image's format: QEMU's name for it, `raw` or `qcow2`.
    pub disk_format: &'static str,
    /// Add a virtio-rng device.
    pub rng: bool,
    /// Add a virtio-console device (output to the given file).
    pub virtio_console: Option<PathBuf>,
    /// The kernel command line (boot arguments; with `-kernel` only).
    pub cmdline: String,
    /// A file given as a boot module (`-initrd`; with `-kernel` only).
    pub initrd: Option<PathBuf>,
    /// Boot this CD image through the firmware instead of `-kernel IMAGE`
    /// (e.g. one made by [`image::grub_iso`]).
    pub cdrom: Option<PathBuf>,
    /// Boot `disk` through the firmware instead of `-kernel IMAGE` (a disk
    /// with a boot loader, e.g. a hybrid ISO from [`image::grub_iso`]).
    pub boot_from_disk: bool,
    /// Use OVMF (UEFI) as firmware, with this writable copy of its
    /// variable store; `None` keeps QEMU's default, SeaBIOS.
    pub ovmf_vars: Option<PathBuf>,
    /// Start with the CPU stopped and QEMU's GDB stub on 127.0.0.1:PORT.
    pub gdb: Option<u16>,
}

impl Vm {
    /// A VM for `image` with defaults: microvm, 64 MiB, virtio-rng, no NIC.
    pub fn new(image: impl AsRef<Path>) -> Vm {
        Vm {
            image: image.as_ref().to_path_buf(),
            machine: Machine::Microvm,
            memory_mib: 64,
            cpu: None,
            forwards: Vec::new(),
            network: false,
            tap: None,
            disk: None,
            disk_format: "raw",
            rng: true,
            virtio_console: None,
            cmdline: String::new(),
            initrd: None,
            cdrom: None,
            boot_from_disk: false,
            ovmf_vars: None,
            gdb: None,
        }
    }

    /// The QEMU command line (software emulation, TCG; never KVM).
    pub fn command(&self) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        let (machine, suffix) = match self.machine {
            Machine::Microvm => ("microvm,x-option-roms=off,pit=off,pic=off,rtc=on,acpi=off", "device"),
            Machine::Pc => ("pc", "pci"),
            Machine::Q35 => ("q35", "pci"),
        };
        c.args(["-M", machine, "-accel", "tcg", "-m", &format!("{}M", self.memory_mib)]);
        if let Some(cpu) = &self.cpu {
            c.args(["-cpu", cpu]);
        }
        c.args(["-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"]);
        c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
        if let Some(port) = self.gdb {
            c.args(["-gdb", &format!("tcp:127.0.0.1:{port}"), "-S"]);
        }
        let pci = self.machine != Machine::Microvm;
        if let Some(vars) = &self.ovmf_vars {
            c.args(["-drive", &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}")]);
            c.args(["-drive", &format!("if=pflash,format=raw,unit=1,file={}", vars.display())]);
        }
        // No option ROM on the NIC: iPXE only slows the firmware down.
        let pci_rom = if pci { ",romfile=" } else { "" };
        if let Some(tap) = &self.tap {
            let netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
            c.args(["-netdev", &netdev, "-device", &format!("virtio-net-{suffix},netdev=n0{pci_rom}")]);
        } else if self.network || !self.forwards.is_empty() {
            let mut netdev = String::from("user,id=n0");
            for f in &self.forwards {
                netdev.push_str(&format!(",hostfwd={f}"));
            }
            c.args(["-netdev", &netdev, "-device", &format!("virtio-net-{suffix},netdev=n0{pci_rom}")]);
        }
        if let Some(disk) = &self.disk {
            c.args(["-drive", &format!("id=d0,file={},format={},if=none", disk.display(), self.disk_format)]);
            c.args(["-device", &format!("virtio-blk-{suffix},drive=d0")]);
        }
        if self.rng {
            c.args(["-device", &format!("virtio-rng-{suffix}")]);
        }
        if let Some(out) = &self.virtio_console {
            c.args(["-chardev", &format!("file,id=vc0,path={}", out.display())]);
            let bus = if pci { "virtio-serial-pci" } else { "virtio-serial-device" };
            c.args(["-device", bus, "-device", "virtconsole,chardev=vc0"]);
        }
        if let Some(cd) = &self.cdrom {
            c.arg("-cdrom").arg(cd);
            return c;
        }
        if self.boot_from_disk {
            return c;
        }
        c.arg("-kernel").arg(&self.image);
        if let Some(initrd) = &self.initrd {
            c.arg("-initrd").arg(initrd);
        }
        if !self.cmdline.is_empty() {
            c.args(["-append", &self.cmdline]);
        }
        c
    }
}

/// The app's exit code from QEMU's status: isa-debug-exit makes QEMU exit
/// with `2 * code + 1`. `None` if QEMU ended another way (signal, its own
/// error, or status 0 from a guest that halted without the exit device).
pub fn app_exit_code(status: ExitStatus) -> Option<i32> {
    match status.code() {
        Some(s) if s % 2 == 1 => Some((s - 1) / 2),
        _ => None,
    }
}

/// Renders a command for printing, quoting arguments that need it.
pub fn render(cmd: &Command) -> String {
    let quote = |s: &str| {
        if s.is_empty() || s.contains(|c: char| c.is_whitespace() || "\"'$&|;<>".contains(c)) {
            format!("'{}'", s.replace('\'', "'\\''"))
        } else {
            s.to_string()
        }
    };
    let mut out = quote(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        out.push(' ');
        out.push_str(&quote(&a.to_string_lossy()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse() {
        let f: Forward = "tcp:127.0.0.1:7007-:7".parse().unwrap();
        assert_eq!((f.proto.as_str(), f.host_port, f.guest_port), ("tcp", 7007, 7));
        assert_eq!(f.to_string(), "tcp:127.0.0.1:7007-:7");
        assert!("sctp:127.0.0.1:1-:2".parse::<Forward>().is_err());
        assert!("tcp:127.0.0.1:7007".parse::<Forward>().is_err());
    }

    #[test]
    fn optional_features_are_the_defaults_without_drivers() {
        assert_eq!(optional_features("dns").unwrap(), ["ipv6", "dhcp", "dnssec", "transfers", "cookies"]);
        assert_eq!(optional_features("echo").unwrap(), ["ipv6", "dhcp"]);
        assert!(optional_features("no-such-app").is_err());
    }
}
