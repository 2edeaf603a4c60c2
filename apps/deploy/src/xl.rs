//! An `xl` configuration for a Xen PVH guest.

/// An `xl` domain configuration for a PVH guest.
#[derive(Debug, Clone)]
pub struct Domain {
    /// Domain name.
    pub name: String,
    /// Kernel path inside dom0.
    pub kernel: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Boot arguments.
    pub cmdline: String,
    /// A vif with this MAC (on `bridge`, else `xenbr0`).
    pub mac: Option<String>,
    /// A vif on this bridge (with `mac`, if given).
    pub bridge: Option<String>,
    /// The name of the vif's backend device in dom0 (`vifname=`), where
    /// its traffic can be counted; `None`: Xen's `vifDOMID.0`.
    pub vif_name: Option<String>,
    /// A disk image path inside dom0.
    pub disk: Option<String>,
    /// The disk is read-only (a content archive).
    pub disk_read_only: bool,
    /// A file inside dom0 given to the guest as its boot module
    /// (`ramdisk =`, PVH `start_info` modules).
    pub ramdisk: Option<String>,
}

impl Domain {
    /// A guest with no devices.
    pub fn new(name: &str, kernel: &str) -> Domain {
        Domain {
            name: name.into(),
            kernel: kernel.into(),
            memory_mib: 32,
            cmdline: String::new(),
            mac: None,
            bridge: None,
            vif_name: None,
            disk: None,
            disk_read_only: false,
            ramdisk: None,
        }
    }

    /// Whether every value can be written into the configuration: `xl`
    /// strings have no escapes, so no quotes or newlines, and the vif and
    /// disk specifications are comma-separated lists.
    pub fn check(&self) -> Result<(), String> {
        let quoted = [("name", &self.name), ("kernel", &self.kernel), ("cmdline", &self.cmdline)];
        for (what, v) in quoted.into_iter().chain(self.ramdisk.as_ref().map(|r| ("ramdisk", r))) {
            if v.contains(['"', '\'', '\n']) {
                return Err(format!("xl {what} {v:?}: no quotes or newlines"));
            }
        }
        let listed = [("mac", &self.mac), ("bridge", &self.bridge), ("vifname", &self.vif_name), ("disk", &self.disk)];
        for (what, v) in listed.into_iter().filter_map(|(w, v)| Some((w, v.as_ref()?))) {
            if v.contains(['"', '\'', '\n', ',', '=', ']']) {
                return Err(format!("xl {what} {v:?}: no quotes, newlines, commas or '='"));
            }
        }
        Ok(())
    }

    /// The `xl` configuration file text (see [`Domain::check`] for the
    /// values it can hold).
    pub fn config(&self) -> String {
        let mut c = format!(
            "type = \"pvh\"\nname = \"{}\"\nkernel = \"{}\"\nmemory = {}\ncmdline = \"{}\"\non_crash = \"destroy\"\n",
            self.name, self.kernel, self.memory_mib, self.cmdline
        );
        if self.mac.is_some() || self.bridge.is_some() || self.vif_name.is_some() {
            let bridge = self.bridge.as_deref().unwrap_or("xenbr0");
            let mac = self.mac.as_ref().map(|m| format!(",mac={m}")).unwrap_or_default();
            let vifname = self.vif_name.as_ref().map(|v| format!(",vifname={v}")).unwrap_or_default();
            c += &format!("vif = ['bridge={bridge}{mac}{vifname}']\n");
        }
        if let Some(disk) = &self.disk {
            let access = if self.disk_read_only { "ro" } else { "rw" };
            c += &format!("disk = ['format=raw,vdev=xvda,access={access},target={disk}']\n");
        }
        if let Some(ramdisk) = &self.ramdisk {
            c += &format!("ramdisk = \"{ramdisk}\"\n");
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvh_guest_with_named_vif() {
        let mut d = Domain::new("jitsu-1-www", "/srv/dns");
        d.memory_mib = 64;
        d.cmdline = "--ipv4=10.0.0.2/24".into();
        d.bridge = Some("br0".into());
        d.mac = Some("52:54:0a:00:00:02".into());
        d.vif_name = Some("j42-1".into());
        d.ramdisk = Some("/srv/zones.tar".into());
        d.check().unwrap();
        let c = d.config();
        assert!(c.starts_with("type = \"pvh\"\nname = \"jitsu-1-www\"\nkernel = \"/srv/dns\"\nmemory = 64\n"), "{c}");
        assert!(c.contains("cmdline = \"--ipv4=10.0.0.2/24\"\non_crash = \"destroy\"\n"), "{c}");
        assert!(c.contains("vif = ['bridge=br0,mac=52:54:0a:00:00:02,vifname=j42-1']\n"), "{c}");
        assert!(c.contains("ramdisk = \"/srv/zones.tar\"\n") && !c.contains("disk = ["), "{c}");
    }

    #[test]
    fn plain_guest_has_no_devices_and_bad_values_are_refused() {
        let c = Domain::new("nodev", "/tmp/vmcheck").config();
        assert!(!c.contains("vif") && !c.contains("disk") && c.contains("memory = 32\n"), "{c}");
        let mut d = Domain::new("x", "/k");
        d.cmdline = "--a=\"b\"".into();
        assert!(d.check().is_err());
        d.cmdline.clear();
        d.bridge = Some("br0,script=evil".into());
        assert!(d.check().is_err());
    }
}
