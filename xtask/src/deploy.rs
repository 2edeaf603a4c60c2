//! Deployment descriptions for an image: a libvirt domain (`cargo xtask
//! libvirt`) and an `xl` configuration for Xen (`cargo xtask xl`).

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
        }
        let name = escape(&self.name);
        let kind = if self.tcg { "qemu" } else { "kvm" };
        let mut x = format!("<domain type='{kind}'>\n  <name>{name}</name>\n");
        x += &format!("  <memory unit='MiB'>{}</memory>\n  <vcpu>1</vcpu>\n", self.memory_mib);
        match &self.boot {
            Boot::Kernel(kernel) => {
                x += "  <os>\n    <type arch='x86_64' machine='q35'>hvm</type>\n";
                x += &format!("    <kernel>{}</kernel>\n", path(kernel));
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
        x += "      <model type='virtio'/>\n    </interface>\n";
        x += "    <serial type='pty'>\n";
        x += &format!("      <log file='/var/log/libvirt/qemu/{name}-console.log' append='off'/>\n");
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
        Libvirt {
            name: "dns".into(),
            boot: Boot::Kernel("/srv/dns".into()),
            content: Some("/srv/zones.tar".into()),
            memory_mib: 32,
            bridge: Some("br0".into()),
            tcg: true,
            cmdline: "--ipv4=10.0.0.2/24 --log=<debug>".into(),
        }
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
}
