//! Running one unikernel: a TAP device on the bridge and QEMU microvm
//! (TCG) on it. The slow parts (the `ip` commands, starting QEMU, reading
//! its console) run on threads of their own, so the DNS server never waits
//! for them; the registry polls [`Launch::poll`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use morgana::log::debug;

use crate::flags::Spec;

/// Console lines kept for the log of a failed boot.
const TAIL: usize = 8;
/// What the framework logs on the guest console once it serves.
const READY: &str = "ready to serve";

/// Where a launch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Starting,
    Ready,
    /// It failed to start, or ended (the reason, with the console's last
    /// lines).
    Ended(String),
}

#[derive(Default)]
struct Shared {
    child: Option<Child>,
    ready: bool,
    /// Set by `stop`: the launching thread starts nothing more.
    cancelled: bool,
    /// The TAP device exists and is this side's to delete.
    tap_created: bool,
    error: Option<String>,
    console: VecDeque<String>,
}

/// One start of one unikernel.
pub struct Launch {
    pub tap: String,
    shared: Arc<Mutex<Shared>>,
    /// The thread creating the TAP device and starting QEMU.
    thread: JoinHandle<()>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `ip ARGS`; its error output on failure.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A locally administered MAC from the guest's address (unique on the
/// bridge as the addresses are).
fn mac(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// The QEMU command for `spec` on `tap` (software emulation only: never
/// KVM).
pub fn qemu_command(spec: &Spec, tap: &str, gateway: Option<Ipv4Addr>) -> Command {
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

/// The guest's boot arguments: its address, and no IPv6 unless `args=`
/// asks for some (any `--ipv6` flag): the guest's router solicitations
/// and MLD reports would reach every TAP on the bridge and count as
/// traffic against the idle timer.
fn boot_args(spec: &Spec, gateway: Option<Ipv4Addr>) -> String {
    let mut append = format!("--ipv4={}/{}", spec.ip, spec.prefix);
    if let Some(gw) = gateway {
        append += &format!(" --ipv4-gateway={gw}");
    }
    if !spec.args.split_whitespace().any(|w| w.starts_with("--ipv6")) {
        append += " --ipv6=off";
    }
    if !spec.args.is_empty() {
        append += " ";
        append += &spec.args;
    }
    append
}

impl Launch {
    /// Creates `tap` on `bridge` and starts QEMU on it, on a thread.
    pub fn start(spec: &Spec, tap: String, bridge: &str, gateway: Option<Ipv4Addr>) -> Launch {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut cmd = qemu_command(spec, &tap, gateway);
        let (bridge, name, tap2, shared2) = (bridge.to_string(), spec.name.to_string(), tap.clone(), shared.clone());
        let thread = std::thread::spawn(move || {
            if let Err(e) = launch_thread(&shared2, &mut cmd, &tap2, &bridge, &name) {
                lock(&shared2).error = Some(e);
            }
        });
        Launch { tap, shared, thread }
    }

    /// Where the launch is; `Ended` once QEMU has exited.
    pub fn poll(&self) -> Status {
        let mut s = lock(&self.shared);
        if let Some(e) = s.error.clone() {
            return Status::Ended(with_console(e, &s.console));
        }
        let exited = match s.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(format!("QEMU exited ({status})")),
            Some(Err(e)) => Some(format!("QEMU: {e}")),
            _ => None,
        };
        match exited {
            Some(why) => Status::Ended(with_console(why, &s.console)),
            None if s.ready => Status::Ready,
            None => Status::Starting,
        }
    }

    /// Bytes through the TAP device both ways, as the kernel counts them.
    pub fn traffic(&self) -> Option<u64> {
        let stat = |what| {
            let path = format!("/sys/class/net/{}/statistics/{what}", self.tap);
            std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok()
        };
        Some(stat("rx_bytes")? + stat("tx_bytes")?)
    }

    /// Kills QEMU and deletes the TAP device, on a thread (join it to know
    /// both are gone).
    pub fn stop(self) -> JoinHandle<()> {
        lock(&self.shared).cancelled = true;
        std::thread::spawn(move || {
            // Once the launching thread is done, nothing more is started.
            let _ = self.thread.join();
            let (child, tap_created) = {
                let mut s = lock(&self.shared);
                (s.child.take(), std::mem::take(&mut s.tap_created))
            };
            if let Some(mut child) = child {
                let _ = child.kill();
                let _ = child.wait();
            }
            if tap_created {
                if let Err(e) = ip(&["link", "del", &self.tap]) {
                    morgana::log::warn!("{e}");
                }
            }
        })
    }
}

fn with_console(why: String, console: &VecDeque<String>) -> String {
    if console.is_empty() {
        return why;
    }
    let lines: Vec<&str> = console.iter().map(String::as_str).collect();
    format!("{why}; console: {}", lines.join(" | "))
}

fn launch_thread(
    shared: &Arc<Mutex<Shared>>,
    cmd: &mut Command,
    tap: &str,
    bridge: &str,
    name: &str,
) -> Result<(), String> {
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
    std::os::unix::process::CommandExt::process_group(cmd, 0);
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

/// Reads QEMU's output (the guest's serial console, or QEMU's own errors)
/// line by line: logs it at debug level, keeps the last lines, and marks
/// the launch ready when the guest says it serves.
fn read_console(shared: &Mutex<Shared>, stream: Box<dyn Read + Send>, name: &str) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        let line = line.trim_end_matches('\r').to_string();
        debug!("{name}| {line}");
        let mut s = lock(shared);
        if line.contains(READY) {
            s.ready = true;
        }
        if s.console.len() == TAIL {
            s.console.pop_front();
        }
        s.console.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_dns::Name;

    fn spec(args: &str) -> Spec {
        Spec {
            name: Name::parse("www.example.", None).unwrap(),
            image: "dns.elf".into(),
            ip: Ipv4Addr::new(10, 78, 0, 10),
            prefix: 24,
            mem_mib: 64,
            content: None,
            args: args.into(),
        }
    }

    #[test]
    fn guests_get_no_ipv6_unless_their_args_ask() {
        let gw = Some(Ipv4Addr::new(10, 78, 0, 1));
        assert_eq!(boot_args(&spec(""), gw), "--ipv4=10.78.0.10/24 --ipv4-gateway=10.78.0.1 --ipv6=off");
        assert_eq!(boot_args(&spec("--log=debug"), None), "--ipv4=10.78.0.10/24 --ipv6=off --log=debug");
        assert_eq!(boot_args(&spec("--ipv6=slaac"), None), "--ipv4=10.78.0.10/24 --ipv6=slaac");
        assert_eq!(boot_args(&spec("--ipv6 fd00::2/64"), None), "--ipv4=10.78.0.10/24 --ipv6 fd00::2/64");
        assert_eq!(
            boot_args(&spec("--log=info --ipv6-gateway=fe80::1"), None),
            "--ipv4=10.78.0.10/24 --log=info --ipv6-gateway=fe80::1"
        );
    }
}
