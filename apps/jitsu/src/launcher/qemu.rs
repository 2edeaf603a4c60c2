//! The QEMU launcher: a TAP device on the bridge, made here, and
//! `qemu-system-x86_64 -M microvm` (TCG) on it, its serial console on
//! stdout.

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{boot_args, lock, mac, read_console, run, Shared};
use crate::flags::Spec;

/// The QEMU command for `spec` on `tap` (software emulation only: never
/// KVM).
pub fn command(spec: &Spec, tap: &str, gateway: Option<Ipv4Addr>) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-name", &format!("jitsu:{}", spec.name)]);
    c.args(["-M", "microvm,x-option-roms=off,pit=off,pic=off,rtc=on,acpi=off", "-accel", "tcg"]);
    c.args(["-m", &format!("{}M", spec.mem_mib)]);
    c.args(["-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"]);
    c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"]);
    c.args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")]);
    c.args(["-device", &format!("virtio-net-device,netdev=n0,mac={}", mac(spec.ip))]);
    c.args(["-device", "virtio-rng-device"]);
    c.arg("-kernel").arg(&spec.image);
    if let Some(content) = &spec.content {
        c.arg("-initrd").arg(content);
    }
    c.args(["-append", &boot_args(spec, gateway)]);
    c
}

/// Runs `ip ARGS`.
fn ip(args: &[&str]) -> Result<String, String> {
    run(Command::new("ip").args(args))
}

/// Creates `tap` on `bridge` and starts QEMU on it (on the launching
/// thread).
pub fn start(shared: &Arc<Mutex<Shared>>, mut cmd: Command, tap: &str, bridge: &str, name: &str) -> Result<(), String> {
    ip(&["tuntap", "add", "dev", tap, "mode", "tap"])?;
    let up = ip(&["link", "set", tap, "master", bridge]).and_then(|_| ip(&["link", "set", tap, "up"]));
    let mut s = lock(shared);
    s.tap_created = true; // deleted by `stop`
    up?;
    if s.cancelled {
        return Ok(());
    }
    // Its own process group: a Ctrl-C at a terminal reaches Jitsu, which
    // stops its VMs itself, and not QEMU behind its back.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let out = child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>);
    let err = child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>);
    s.child = Some(child);
    drop(s);
    for stream in [out, err].into_iter().flatten() {
        let (shared, name) = (Arc::clone(shared), name.to_string());
        std::thread::spawn(move || read_console(&shared, stream, &name));
    }
    Ok(())
}

/// Kills QEMU and deletes the TAP device.
pub fn stop(shared: &Mutex<Shared>, tap: &str) {
    let (child, tap_created) = {
        let mut s = lock(shared);
        (s.child.take(), std::mem::take(&mut s.tap_created))
    };
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    if tap_created {
        if let Err(e) = ip(&["link", "del", tap]) {
            morgana::log::warn!("{e}");
        }
    }
}
