//! The libvirt launcher: a transient domain (`virsh create`), QEMU under
//! TCG on libvirt's q35 machine with direct kernel boot, its NIC on the
//! bridge through a TAP device libvirt makes under the name Jitsu gives
//! it (so its traffic can be counted); the console logged to a file Jitsu
//! follows; `virsh destroy` to stop. A domain that ends by itself
//! (power-off, panic) is destroyed by libvirt, which Jitsu notices.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use morgana::log::warn;
use morgana_deploy::libvirt::{Boot, Libvirt};

use super::{boot_args, lock, mac, run, watch, write_new, Names, Runner, Shared};
use crate::flags::Spec;

/// `virsh -c URI ARGS`.
fn virsh(uri: &str, args: &[&str]) -> Result<String, String> {
    run(Command::new("virsh").args(["-q", "-c", uri]).args(args))
}

/// Where the domain's console is logged (where libvirt logs consoles, so
/// virtlogd may write there under any security driver).
fn console_log(domain: &str) -> PathBuf {
    PathBuf::from(format!("/var/log/libvirt/qemu/{domain}-console.log"))
}

fn xml_file(names: &Names, runner: &Runner) -> PathBuf {
    runner.workdir.join(format!("{}.xml", names.domain))
}

/// `p` absolute: libvirtd resolves paths on its own side.
fn absolute(p: &std::path::Path) -> Result<PathBuf, String> {
    std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// The domain XML for one boot of `spec`.
pub fn domain_xml(spec: &Spec, names: &Names, bridge: &str, gateway: Option<Ipv4Addr>) -> Result<String, String> {
    let mut d = Libvirt::new(&names.domain, Boot::Kernel(absolute(&spec.image)?));
    d.tcg = true;
    d.memory_mib = spec.mem_mib;
    d.bridge = Some(bridge.into());
    d.mac = Some(mac(spec.ip));
    d.interface_dev = Some(names.tap.clone());
    d.console_log = Some(console_log(&names.domain));
    d.initrd = spec.content.as_deref().map(absolute).transpose()?;
    d.cmdline = boot_args(spec, gateway);
    d.xml()
}

/// Writes the XML, creates the domain and starts watching it.
pub fn start(
    shared: &Arc<Mutex<Shared>>,
    spec: &Spec,
    names: &Names,
    runner: &Runner,
    gateway: Option<Ipv4Addr>,
) -> Result<(), String> {
    let xml = domain_xml(spec, names, &runner.bridge, gateway)?;
    let file = xml_file(names, runner);
    write_new(&file, &xml)?;
    if lock(shared).cancelled {
        return Ok(());
    }
    virsh(&runner.libvirt_uri, &["create", &file.display().to_string()])?;
    // `stop` waits for this thread, then destroys what was created.
    let mut s = lock(shared);
    s.domain_created = true;
    if s.cancelled {
        return Ok(());
    }
    let (uri, domain) = (runner.libvirt_uri.clone(), names.domain.clone());
    let unsure = std::sync::atomic::AtomicBool::new(false);
    let alive = move || match virsh(&uri, &["domstate", &domain]) {
        Ok(state) if matches!(state.trim(), "running" | "paused" | "blocked" | "in shutdown") => {
            unsure.store(false, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        Ok(state) => Err(format!("the domain is {}", state.trim())),
        // virsh's words when the lookup ran and found no such domain (the
        // second line does not always come).
        Err(e) if e.contains("failed to get domain") || e.contains("Domain not found") => {
            Err(format!("the domain is gone ({e})"))
        }
        // libvirtd restarting or unreachable says nothing about the domain:
        // it is still stopped (destroyed) when its time comes.
        Err(e) => {
            if !unsure.swap(true, std::sync::atomic::Ordering::Relaxed) {
                warn!("{domain}: libvirt does not say whether it runs ({e}); still counted as running");
            }
            Ok(())
        }
    };
    s.watcher = Some(watch(shared.clone(), spec.name.to_string(), Some(console_log(&names.domain)), alive));
    Ok(())
}

/// Destroys the domain (libvirt deletes its TAP device) and removes its
/// files.
pub fn stop(shared: &Mutex<Shared>, names: &Names, runner: &Runner) {
    let (created, gone, failed) = {
        let mut s = lock(shared);
        (std::mem::take(&mut s.domain_created), s.gone.is_some(), s.error.is_some())
    };
    if created {
        // A domain that ended by itself is gone already: no warning then.
        match virsh(&runner.libvirt_uri, &["destroy", &names.domain]) {
            Err(e) if !gone => warn!("{e}"),
            _ => {}
        }
    }
    let _ = std::fs::remove_file(xml_file(names, runner));
    let _ = std::fs::remove_file(console_log(&names.domain));
    // libvirt's own log of the domain (QEMU's command line and errors): one
    // per boot, so kept only when the domain failed or ended by itself.
    if !gone && !failed {
        let _ = std::fs::remove_file(format!("/var/log/libvirt/qemu/{}.log", names.domain));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::spec;
    use super::*;

    #[test]
    fn transient_domain_on_the_bridge_with_jitsus_tap_name() {
        let mut s = spec("--log=debug");
        s.image = std::env::current_exe().unwrap();
        let names = Names { tap: "j42-1".into(), domain: "jitsu-42-1-www.example".into() };
        let x = domain_xml(&s, &names, "br0", Some(Ipv4Addr::new(10, 78, 0, 1))).unwrap();
        assert!(x.starts_with("<domain type='qemu'>") && x.contains("<memory unit='MiB'>64</memory>"), "{x}");
        assert!(x.contains(&format!("<kernel>{}</kernel>", s.image.display())), "{x}");
        let cmdline = "<cmdline>--ipv4=10.78.0.10/24 --ipv4-gateway=10.78.0.1 --ipv6=off --log=debug</cmdline>";
        assert!(x.contains(cmdline), "{x}");
        assert!(x.contains("<source bridge='br0'/>") && x.contains("<target dev='j42-1'/>"), "{x}");
        assert!(x.contains("<mac address='52:54:0a:4e:00:0a'/>"), "{x}");
        assert!(x.contains("/var/log/libvirt/qemu/jitsu-42-1-www.example-console.log"), "{x}");
        assert!(x.contains("<on_crash>destroy</on_crash>") && x.contains("<on_poweroff>destroy</on_poweroff>"));
        s.content = Some("/no/such/archive".into());
        assert!(domain_xml(&s, &names, "br0", None).unwrap_err().contains("/no/such/archive"));
    }
}
