//! The nested Xen test host: Xen 4.17 and a Debian dom0 under QEMU (TCG),
//! built by `tests/xen/build-host.sh` and cached in `target/xen-host`.
//!
//! A run shares one directory with dom0 over 9p: the caller puts images and
//! a `run.sh` there; dom0's init runs the script, writes `run.log` and
//! `run.status` back, and powers off.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace;

/// The built host.
#[derive(Debug, Clone)]
pub struct XenHost {
    /// Holds `xen`, `vmlinuz`, `initrd.img`, `rootfs.img`.
    pub dir: PathBuf,
}

/// What a run left behind.
#[derive(Debug, Clone)]
pub struct XenRun {
    /// The script's stdout and stderr.
    pub log: String,
    /// The script's exit status, if it finished.
    pub status: Option<i32>,
    /// Xen's and dom0's serial console.
    pub serial: String,
    /// How long QEMU ran.
    pub elapsed: Duration,
}

impl XenHost {
    /// Builds the host unless it is cached (needs root and debootstrap;
    /// about 4 minutes the first time).
    pub fn ensure() -> Result<XenHost, String> {
        let dir = workspace().join("target/xen-host");
        let status = Command::new(workspace().join("tests/xen/build-host.sh"))
            .arg(&dir)
            .stdout(Stdio::inherit())
            .status()
            .map_err(|e| format!("cannot run tests/xen/build-host.sh: {e}"))?;
        if !status.success() {
            return Err(format!("building the Xen test host failed ({status})"));
        }
        Ok(XenHost { dir })
    }

    /// The QEMU command booting the host with `share` as dom0's `/share`.
    pub fn command(&self, share: &Path) -> Command {
        let mut c = Command::new("qemu-system-x86_64");
        c.current_dir(&self.dir);
        c.args(["-M", "pc", "-cpu", "qemu64,+svm,+npt,+rdrand", "-m", "3G", "-smp", "2"]);
        c.args(["-no-reboot", "-display", "none", "-serial", "stdio", "-nic", "none", "-kernel", "xen"]);
        c.args([
            "-append",
            "dom0_mem=1024M,max:1024M dom0_max_vcpus=1 loglvl=all guest_loglvl=all console=com1 com1=115200,8n1",
        ]);
        c.args(["-initrd", "vmlinuz root=/dev/vda rw console=hvc0 init=/sbin/morgana-init,initrd.img"]);
        c.args(["-drive", "file=rootfs.img,if=virtio,format=raw,snapshot=on"]);
        c.arg("-virtfs").arg(format!("local,path={},mount_tag=share,security_model=none", share.display()));
        c
    }

    /// Boots the host, lets dom0 run `share/run.sh`, and collects results.
    /// QEMU is killed after `timeout`.
    pub fn run(&self, share: &Path, timeout: Duration) -> Result<XenRun, String> {
        for f in ["run.log", "run.status"] {
            let _ = std::fs::remove_file(share.join(f));
        }
        let serial_path = share.join("serial.log");
        let serial_file = std::fs::File::create(&serial_path).map_err(|e| format!("{}: {e}", serial_path.display()))?;
        let started = Instant::now();
        let mut child = self
            .command(share)
            .stdin(Stdio::null())
            .stdout(serial_file)
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run qemu-system-x86_64: {e}"))?;
        let finished = loop {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                break true;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let elapsed = started.elapsed();
        let read = |f: &str| std::fs::read_to_string(share.join(f)).unwrap_or_default();
        let run = XenRun {
            log: read("run.log"),
            status: read("run.status").trim().strip_prefix("exit ").and_then(|s| s.parse().ok()),
            serial: read("serial.log"),
            elapsed,
        };
        if !finished {
            return Err(format!(
                "the Xen host did not finish within {timeout:?}\n--- run.log\n{}\n--- serial (last 3000 bytes)\n{}",
                run.log,
                tail(&run.serial, 3000)
            ));
        }
        Ok(run)
    }
}

/// The last `n` bytes of `s` (at a character boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

pub use morgana_deploy::xl::Domain;

/// A fresh share directory under `target/`.
pub fn share_dir(tag: &str) -> Result<PathBuf, String> {
    let dir = workspace().join(format!("target/xen-share/{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Copies `from` into `share` as `name`.
pub fn put(share: &Path, name: &str, from: &Path) -> Result<(), String> {
    std::fs::copy(from, share.join(name)).map(|_| ()).map_err(|e| format!("copying {}: {e}", from.display()))
}

/// Writes an executable `run.sh` into `share`.
pub fn put_script(share: &Path, script: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let path = share.join("run.sh");
    std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// Shell functions for `run.sh`: `start NAME CONFIG` creates a domain,
/// `wait_gone NAME SECONDS` waits for it to end, `section NAME` prints a
/// marker that [`sections`] splits on.
pub const SCRIPT_PRELUDE: &str = r#"#!/bin/sh
section() { echo "=== $1"; }
wait_gone() { i=0; while xl domid "$1" >/dev/null 2>&1; do i=$((i+1)); [ $i -gt $(($2*10)) ] && { echo "domain $1 still running after $2 s"; xl destroy "$1"; return 1; }; sleep 0.1; done; echo "domain $1 ended"; }
"#;

/// Splits a run log at `=== NAME` lines.
pub fn sections(log: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut name = String::new();
    for line in log.lines() {
        if let Some(n) = line.strip_prefix("=== ") {
            name = n.trim().to_string();
            continue;
        }
        let e: &mut String = out.entry(name.clone()).or_default();
        e.push_str(line);
        e.push('\n');
    }
    out
}

/// Stripped size of a file in bytes.
fn stripped_len(image: &Path) -> Result<u64, String> {
    let out = image.with_extension("size-check");
    let status = Command::new("strip").arg("-o").arg(&out).arg(image).status().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("strip {} failed", image.display()));
    }
    std::fs::metadata(&out).map(|m| m.len()).map_err(|e| e.to_string())
}

/// Prints image sizes with both driver sets and with one (each with the
/// app's other default features).
pub fn sizes(apps: &[&str]) -> Result<(), String> {
    println!("| image | virtio + Xen (default) | virtio only | Xen only | Xen drivers add |");
    println!("|---|---|---|---|---|");
    for app in apps {
        let optional = crate::optional_features(app)?;
        let mut len = Vec::new();
        for drivers in ["virtio,xen", "virtio", "xen"] {
            let features =
                [drivers.to_string()].into_iter().chain(optional.iter().cloned()).collect::<Vec<_>>().join(",");
            len.push(stripped_len(&crate::build_image_with(app, true, Some(&features))?)?);
        }
        let kib = |n: u64| format!("{:.1} KiB", n as f64 / 1024.0);
        println!(
            "| {app} | {} | {} | {} | {} ({:.0} %) |",
            kib(len[0]),
            kib(len[1]),
            kib(len[2]),
            kib(len[0] - len[1]),
            100.0 * (len[0] - len[1]) as f64 / len[1] as f64
        );
    }
    // Leave the default images in place.
    for app in apps {
        crate::build_image(app, true)?;
    }
    Ok(())
}

/// Builds a host tool from the tests crate and returns its path.
fn host_tool(bin: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace())
        .args(["build", "--quiet", "--release", "-p", "morgana-tests", "--bin", bin])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building {bin} failed"));
    }
    Ok(workspace().join("target/release").join(bin))
}

fn min_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

/// `xl create` → first DNS answer from the DNS image, against `xl create`
/// → exit of a guest with no devices, `runs` times each, in one host boot.
pub fn bench(runs: usize) -> Result<(), String> {
    let host = XenHost::ensure()?;
    let share = share_dir("bench")?;
    put(&share, "dns", &crate::build_image("dns", true)?)?;
    put(&share, "vmcheck", &crate::build_image("vmcheck", true)?)?;
    put(&share, "dns-probe", &host_tool("dns-probe")?)?;
    let mut dns = Domain::new("dns", "/tmp/dns");
    dns.cmdline = "--ipv4=10.77.0.3/24 --log=warn".into();
    dns.mac = Some("00:16:3e:00:00:03".into());
    let mut nodev = Domain::new("nodev", "/tmp/vmcheck");
    nodev.cmdline = "--check=console --log=warn".into();
    std::fs::write(share.join("dns.cfg"), dns.config()).map_err(|e| e.to_string())?;
    std::fs::write(share.join("nodev.cfg"), nodev.config()).map_err(|e| e.to_string())?;
    let script = format!(
        r#"{SCRIPT_PRELUDE}
cp /share/dns /share/vmcheck /share/dns-probe /tmp/
# One untimed round first: the first xl create pays for loading libraries.
xl create -q /share/nodev.cfg; wait_gone nodev 60 >/dev/null
for i in $(seq {runs}); do
  t0=$(date +%s%N)
  xl create -q /share/dns.cfg
  t1=$(/tmp/dns-probe 10.77.0.3:53 www.example.com 60) && echo "RESULT dns $(( (t1 - t0) / 1000 ))"
  xl destroy dns; wait_gone dns 60 >/dev/null
  t0=$(date +%s%N)
  xl create -F /share/nodev.cfg >/dev/null 2>&1 && t1=$(date +%s%N) && echo "RESULT nodev $(( (t1 - t0) / 1000 ))"
done
"#
    );
    put_script(&share, &script)?;
    let run = host.run(&share, Duration::from_secs(120 + 60 * runs as u64))?;
    let mut dns_ms = Vec::new();
    let mut nodev_ms = Vec::new();
    for line in run.log.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("RESULT") {
            continue;
        }
        let (what, us) = (w.next(), w.next().and_then(|v| v.parse::<f64>().ok()));
        match (what, us) {
            (Some("dns"), Some(us)) => dns_ms.push(us / 1000.0),
            (Some("nodev"), Some(us)) => nodev_ms.push(us / 1000.0),
            _ => {}
        }
    }
    if dns_ms.len() != runs || nodev_ms.len() != runs {
        return Err(format!("expected {runs} results of each kind\n--- run.log\n{}", run.log));
    }
    let (dmin, dmed) = min_median(&mut dns_ms);
    let (nmin, nmed) = min_median(&mut nodev_ms);
    println!("Nested Xen 4.17 under QEMU TCG, {runs} runs each, timed in dom0:");
    println!();
    println!("| guest | min (ms) | median (ms) | median / no-device |");
    println!("|---|---|---|---|");
    println!("| no-device PVH guest (vmcheck): `xl create -F` → exit and teardown | {nmin:.0} | {nmed:.0} | 1.00 |");
    println!(
        "| DNS (netfront, static IPv4): `xl create` → first answer | {dmin:.0} | {dmed:.0} | {:.2} |",
        dmed / nmed
    );
    Ok(())
}

/// Runs `image` as a domU with a vif on dom0's bridge (dom0 is
/// 10.77.0.1/24) and, if `disk_mib` > 0, a blank disk, for `seconds`;
/// then `xl shutdown` and prints the guest's console.
pub fn run_image(image: &Path, cmdline: &str, disk_mib: u32, seconds: u32) -> Result<(), String> {
    let host = XenHost::ensure()?;
    let share = share_dir("run")?;
    put(&share, "image", image)?;
    let mut d = Domain::new("guest", "/tmp/image");
    d.cmdline = cmdline.into();
    d.mac = Some("00:16:3e:00:00:02".into());
    if disk_mib > 0 {
        d.disk = Some("/tmp/disk.img".into());
    }
    std::fs::write(share.join("guest.cfg"), d.config()).map_err(|e| e.to_string())?;
    let script = format!(
        r#"{SCRIPT_PRELUDE}
cp /share/image /tmp/image
truncate -s {disk_mib}M /tmp/disk.img
section create
xl create /share/guest.cfg 2>&1
sleep {seconds}
section shutdown
timeout 30 xl shutdown -w guest 2>&1
section console
cat /var/log/xen/guest-guest.log
section xen
xl dmesg | grep -a '(d[1-9]' | tail -50
"#
    );
    put_script(&share, &script)?;
    eprintln!("+ {}", crate::render(&host.command(&share)));
    let run = host.run(&share, Duration::from_secs(120 + seconds as u64))?;
    print!("{}", run.log);
    Ok(())
}
