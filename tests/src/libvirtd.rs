//! A libvirtd of the test's own: libvirtd and virtlogd inside a network
//! namespace with a bridge, so guests reach nothing else. Starting one
//! fails if another libvirtd already answers on the machine. On drop every
//! domain left is destroyed, then the daemons are killed.
//!
//! libvirtd sees `/dev/kvm` masked by a root-only null device: the tests
//! never use KVM, and a `/dev/kvm` that its QEMU user cannot open makes
//! libvirt 9.0 probe QEMU's capabilities again (about 4 s) every time it
//! needs them, which made one `virsh create` take 80 s here. With the mask
//! the probe finds no KVM and its cache stays valid (`virsh create`: under
//! a second).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::netns::Namespace;
use crate::process::Running;

/// `virsh -c qemu:///system ARGS`: its output, or its error.
pub fn virsh(args: &[&str]) -> Result<String, String> {
    let out = Command::new("virsh").args(["-c", "qemu:///system"]).args(args).output().map_err(|e| e.to_string())?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("virsh {}: {}", args.join(" "), text.trim()))
    }
}

/// The running domains' names (`virsh list --name`).
pub fn running_domains() -> Result<Vec<String>, String> {
    Ok(virsh(&["list", "--name"])?.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// libvirtd and virtlogd in a namespace with a bridge.
pub struct Libvirtd {
    daemons: Vec<Running>,
    /// The namespace they (and the guests' TAP devices) are in.
    pub ns: Namespace,
}

impl Libvirtd {
    /// Starts them in namespace `morgana-TAG-PID` with bridge `bridge` at
    /// `cidr` (e.g. `10.94.0.1/24`), and waits until libvirtd answers.
    pub fn start(tag: &str, bridge: &str, cidr: &str) -> Result<Libvirtd, String> {
        if virsh(&["version"]).is_ok() {
            return Err(
                "a libvirtd already runs on this machine; stop it (the test runs its own, in a namespace)".into()
            );
        }
        let ns = Namespace::create(tag);
        ns.exec_ok(&["ip", "link", "add", bridge, "type", "bridge"]);
        ns.exec_ok(&["ip", "addr", "add", cidr, "dev", bridge]);
        ns.exec_ok(&["ip", "link", "set", bridge, "up"]);
        // `ip netns exec` gives the daemon a mount namespace of its own,
        // where the mask stays.
        let mask = format!("/run/morgana-nokvm-{}", std::process::id());
        let script = format!(
            "if [ -e /dev/kvm ]; then rm -f {mask} && mknod -m 600 {mask} c 1 3 && mount --bind {mask} /dev/kvm || exit 1; fi; exec \"$0\""
        );
        let mut virtlogd = Command::new("ip");
        virtlogd.args(["netns", "exec", &ns.name, "virtlogd"]);
        let mut lv = Libvirtd { daemons: vec![Running::start(virtlogd)], ns };
        let deadline = Instant::now() + Duration::from_secs(30);
        // libvirtd starts domains only once virtlogd listens.
        while std::os::unix::net::UnixStream::connect("/run/libvirt/virtlogd-sock").is_err() {
            if Instant::now() > deadline {
                return Err("virtlogd did not listen within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut libvirtd = Command::new("ip");
        libvirtd.args(["netns", "exec", &lv.ns.name, "sh", "-c", &script, "libvirtd"]);
        lv.daemons.push(Running::start(libvirtd));
        while virsh(&["version"]).is_err() {
            if Instant::now() > deadline {
                return Err("libvirtd did not answer within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(lv)
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        for d in running_domains().unwrap_or_default() {
            let _ = virsh(&["destroy", &d]);
        }
        // libvirtd before virtlogd, which it logs through.
        while let Some(d) = self.daemons.pop() {
            drop(d);
        }
        let _ = std::fs::remove_file(format!("/run/morgana-nokvm-{}", std::process::id()));
    }
}
