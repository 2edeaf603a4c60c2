//! A libvirt domain for an image (`cargo xtask libvirt`, Jitsu's libvirt
//! launcher).

use std::path::PathBuf;

/// How a libvirt domain boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// Direct kernel boot: QEMU loads the ELF through its PVH entry.
    Kernel(PathBuf),
    /// Firmware boots a disk made by `cargo xtask image` (GRUB on it).
    Disk {
        /// The disk file.
        file: PathBuf,
        /// UEFI (OVMF) rather than BIOS (SeaBIOS).
        uefi: bool,
    },
}

/// A libvirt domain for one image.
#[derive(Debug, Clone)]
pub struct Libvirt {
    /// Domain name.
    pub name: String,
    /// How it boots.
    pub boot: Boot,
    /// A content archive, attached as a read-only virtio disk.
    pub content: Option<PathBuf>,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// A host bridge for the NIC; `None` uses libvirt's `default` network.
    pub bridge: Option<String>,
    /// Software emulation (`type='qemu'`) instead of KVM.
    pub tcg: bool,
    /// Boot arguments (direct kernel boot only: a disk has them in GRUB).
    pub cmdline: String,
    /// A boot module (`<initrd>`, e.g. a content archive; direct kernel
    /// boot only).
    pub initrd: Option<PathBuf>,
    /// The NIC's MAC address; `None` lets libvirt pick one.
    pub mac: Option<String>,
    /// The name of the host-side TAP device (`<target dev=.../>`); `None`
    /// lets libvirt pick one (`vnetN`).
    pub interface_dev: Option<String>,
    /// Where the console is logged; `None`:
    /// `/var/log/libvirt/qemu/NAME-console.log`.
    pub console_log: Option<PathBuf>,
}

impl Libvirt {
    /// A domain booting `boot` with 32 MiB, on libvirt's `default` network,
    /// under KVM, with no arguments: set the fields for more.
    pub fn new(name: &str, boot: Boot) -> Libvirt {
        Libvirt {
            name: name.into(),
            boot,
            content: None,
            memory_mib: 32,
            bridge: None,
            tcg: false,
            cmdline: String::new(),
            initrd: None,
            mac: None,
            interface_dev: None,
            console_log: None,
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

fn path(p: &std::path::Path) -> String {
    escape(&p.display().to_string())
}

impl Libvirt {
    /// The domain XML. The serial port is the console (`virsh console`,
    /// logged to `/var/log/libvirt/qemu/NAME-console.log`); ACPI lets
    /// `virsh shutdown` press the power button, which ends the app and
    /// powers off (state "shut off (shutdown)"); an app that fails reports
    /// it through pvpanic (state "shut off (crashed)").
    pub fn xml(&self) -> Result<String, String> {
        if let Boot::Disk { .. } = self.boot {
            if !self.cmdline.is_empty() {
                return Err("boot arguments of a disk are in its GRUB entry: give them to cargo xtask image".into());
            }
            if self.initrd.is_some() {
                return Err("a disk boots through GRUB, which loads its own modules: no initrd".into());
            }
        }
        let name = escape(&self.name);
        let kind = if self.tcg { "qemu" } else { "kvm" };
        let mut x = format!("<domain type='{kind}'>\n  <name>{name}</name>\n");
        x += &format!("  <memory unit='MiB'>{}</memory>\n  <vcpu>1</vcpu>\n", self.memory_mib);
        match &self.boot {
            Boot::Kernel(kernel) => {
                x += "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n";
                x += &format!("    <kernel>{}</kernel>\n", path(kernel));
                if let Some(initrd) = &self.initrd {
                    x += &format!("    <initrd>{}</initrd>\n", path(initrd));
                }
                if !self.cmdline.is_empty() {
                    x += &format!("    <cmdline>{}</cmdline>\n", escape(&self.cmdline));
                }
                x += "  </os>\n";
            }
            Boot::Disk { uefi, .. } => {
                let firmware = if *uefi { " firmware='efi'" } else { "" };
                x += &format!("  <os{firmware}>\n    <type arch='x86_64' machine='q35'>hvm</type>\n");
                if *uefi {
                    // GRUB on the disk is not signed: firmware without Secure Boot.
                    x += "    <firmware>\n      <feature enabled='no' name='secure-boot'/>\n";
                    x += "      <feature enabled='no' name='enrolled-keys'/>\n    </firmware>\n";
                }
                x += "    <boot dev='hd'/>\n  </os>\n";
            }
        }
        x += "  <features>\n    <acpi/>\n  </features>\n";
        x += "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n";
        x += "  <devices>\n";
        let mut disk = |file: &std::path::Path, dev: &str, read_only: bool| {
            let format = if file.extension().is_some_and(|e| e == "qcow2") { "qcow2" } else { "raw" };
            x += "    <disk type='file' device='disk'>\n";
            x += &format!("      <driver name='qemu' type='{format}'/>\n");
            x += &format!("      <source file='{}'/>\n", path(file));
            x += &format!("      <target dev='{dev}' bus='virtio'/>\n");
            if read_only {
                x += "      <readonly/>\n";
            }
            x += "    </disk>\n";
        };
        if let Boot::Disk { file, .. } = &self.boot {
            disk(file, "vda", false);
        }
        if let Some(content) = &self.content {
            if let Boot::Disk { .. } = self.boot {
                return Err(
                    "a disk carries its content (cargo xtask image --content DIR); --content is for --kernel".into()
                );
            }
            disk(content, "vda", true);
        }
        match &self.bridge {
            Some(b) => x += &format!("    <interface type='bridge'>\n      <source bridge='{}'/>\n", escape(b)),
            None => x += "    <interface type='network'>\n      <source network='default'/>\n",
        }
        if let Some(mac) = &self.mac {
            x += &format!("      <mac address='{}'/>\n", escape(mac));
        }
        if let Some(dev) = &self.interface_dev {
            x += &format!("      <target dev='{}'/>\n", escape(dev));
        }
        x += "      <model type='virtio'/>\n    </interface>\n";
        x += "    <serial type='pty'>\n";
        let log = match &self.console_log {
            Some(file) => path(file),
            None => format!("/var/log/libvirt/qemu/{name}-console.log"),
        };
        x += &format!("      <log file='{log}' append='off'/>\n");
        x += "      <target port='0'/>\n    </serial>\n";
        x += "    <console type='pty'>\n      <target type='serial' port='0'/>\n    </console>\n";
        x += "    <rng model='virtio'>\n      <backend model='random'>/dev/urandom</backend>\n    </rng>\n";
        x += "    <panic model='isa'>\n      <address type='isa' iobase='0x505'/>\n    </panic>\n";
        x += "    <memballoon model='none'/>\n";
        x += "  </devices>\n</domain>\n";
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> Libvirt {
        let mut d = Libvirt::new("dns", Boot::Kernel("/srv/dns".into()));
        d.content = Some("/srv/zones.tar".into());
        d.bridge = Some("br0".into());
        d.tcg = true;
        d.cmdline = "--ipv4=10.0.0.2/24 --log=<debug>".into();
        d
    }

    #[test]
    fn kernel_boot_with_content_disk() {
        let x = domain().xml().unwrap();
        assert!(x.starts_with("<domain type='qemu'>"));
        assert!(x.contains("<kernel>/srv/dns</kernel>"));
        assert!(x.contains("<cmdline>--ipv4=10.0.0.2/24 --log=&lt;debug&gt;</cmdline>"), "escaped");
        assert!(x.contains("<source file='/srv/zones.tar'/>") && x.contains("<readonly/>"));
        assert!(x.contains("<source bridge='br0'/>") && x.contains("<panic model='isa'>"));
    }

    #[test]
    fn disk_boot_takes_no_arguments_or_content() {
        let mut d = domain();
        d.boot = Boot::Disk { file: "/srv/dns.qcow2".into(), uefi: true };
        assert!(d.xml().is_err(), "arguments belong in GRUB");
        d.cmdline.clear();
        assert!(d.xml().is_err(), "content belongs on the disk");
        d.content = None;
        d.tcg = false;
        d.bridge = None;
        let x = d.xml().unwrap();
        assert!(x.starts_with("<domain type='kvm'>") && x.contains("<os firmware='efi'>"));
        assert!(x.contains("<feature enabled='no' name='secure-boot'/>"), "unsigned GRUB");
        assert!(x.contains("<driver name='qemu' type='qcow2'/>") && x.contains("<source network='default'/>"));
    }

    #[test]
    fn jitsu_domain_names_its_tap_and_console_log() {
        let mut d = domain();
        d.content = None;
        d.initrd = Some("/srv/zones.tar".into());
        d.mac = Some("52:54:0a:4e:00:0a".into());
        d.interface_dev = Some("j42-1".into());
        d.console_log = Some("/var/log/libvirt/qemu/j42-1.log".into());
        let x = d.xml().unwrap();
        assert!(x.contains("<initrd>/srv/zones.tar</initrd>") && !x.contains("<disk"), "{x}");
        assert!(x.contains("<mac address='52:54:0a:4e:00:0a'/>") && x.contains("<target dev='j42-1'/>"), "{x}");
        assert!(x.contains("<log file='/var/log/libvirt/qemu/j42-1.log' append='off'/>"), "{x}");
        assert!(x.contains("<on_crash>destroy</on_crash>"));
        d.boot = Boot::Disk { file: "/srv/dns.raw".into(), uefi: false };
        d.cmdline.clear();
        assert!(d.xml().is_err(), "GRUB loads the modules of a disk");
    }

    #[test]
    fn default_console_log_is_libvirts() {
        let x = Libvirt::new("a&b", Boot::Kernel("/k".into())).xml().unwrap();
        assert!(x.contains("<log file='/var/log/libvirt/qemu/a&amp;b-console.log' append='off'/>"), "{x}");
        assert!(x.contains("<source network='default'/>") && x.starts_with("<domain type='kvm'>"));
    }
}
