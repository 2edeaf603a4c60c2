//! The xl launcher (Xen, run in dom0): `xl create` of a PVH guest whose
//! vif on the bridge has the name Jitsu gives it (so its traffic can be
//! counted), readiness from `xl console`, `xl destroy` to stop. A domain
//! that ends by itself (power-off, crash: `on_crash = "destroy"`) is gone
//! from `xl list`, which Jitsu notices.

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use morgana::log::warn;
use morgana_deploy::xl::Domain;

use super::{boot_args, lock, mac, read_console, run, watch, write_new, Names, Runner, Shared};
use crate::flags::Spec;

fn xl(args: &[&str]) -> Result<String, String> {
    run(Command::new("xl").args(args))
}

fn config_file(names: &Names, runner: &Runner) -> PathBuf {
    runner.workdir.join(format!("{}.cfg", names.domain))
}

fn absolute(p: &std::path::Path) -> Result<String, String> {
    std::fs::canonicalize(p).map(|p| p.display().to_string()).map_err(|e| format!("{}: {e}", p.display()))
}

/// The xl configuration for one boot of `spec`.
pub fn config(spec: &Spec, names: &Names, bridge: &str, gateway: Option<Ipv4Addr>) -> Result<String, String> {
    let mut d = Domain::new(&names.domain, &absolute(&spec.image)?);
    d.memory_mib = spec.mem_mib;
    d.cmdline = boot_args(spec, gateway);
    d.bridge = Some(bridge.into());
    d.mac = Some(mac(spec.ip));
    d.vif_name = Some(names.tap.clone());
    d.ramdisk = spec.content.as_deref().map(absolute).transpose()?;
    d.check()?;
    Ok(d.config())
}

/// Writes the configuration, creates the domain, attaches `xl console`
/// and starts watching the domain.
pub fn start(
    shared: &Arc<Mutex<Shared>>,
    spec: &Spec,
    names: &Names,
    runner: &Runner,
    gateway: Option<Ipv4Addr>,
) -> Result<(), String> {
    let text = config(spec, names, &runner.bridge, gateway)?;
    let file = config_file(names, runner);
    write_new(&file, &text)?;
    if lock(shared).cancelled {
        return Ok(());
    }
    xl(&["create", "-q", &file.display().to_string()])?;
    // `stop` waits for this thread, then destroys what was created.
    let mut s = lock(shared);
    s.domain_created = true;
    if s.cancelled {
        return Ok(());
    }
    // Its stdin stays open (and idle): at end of input it would detach.
    let console = Command::new("xl")
        .args(["console", &names.domain])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    match console {
        Ok(mut child) => {
            let out = child.stdout.take().map(|o| Box::new(o) as Box<dyn Read + Send>);
            let err = child.stderr.take().map(|e| Box::new(e) as Box<dyn Read + Send>);
            for stream in [out, err].into_iter().flatten() {
                let (shared, name) = (Arc::clone(shared), spec.name.to_string());
                std::thread::spawn(move || read_console(&shared, stream, &name));
            }
            s.console_reader = Some(child);
        }
        Err(e) => s.error = Some(format!("cannot run xl console: {e}")),
    }
    let domain = names.domain.clone();
    let unsure = std::sync::atomic::AtomicBool::new(false);
    let alive = move || match xl(&["domid", &domain]) {
        Ok(_) => {
            unsure.store(false, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        // xl's words when the name is not a domain.
        Err(e) if e.contains("does not exist") => Err(format!("the domain is gone ({e})")),
        Err(e) => {
            if !unsure.swap(true, std::sync::atomic::Ordering::Relaxed) {
                warn!("{domain}: xl does not say whether it runs ({e}); still counted as running");
            }
            Ok(())
        }
    };
    s.watcher = Some(watch(shared.clone(), spec.name.to_string(), None, alive));
    Ok(())
}

/// Destroys the domain (Xen's hotplug script removes its vif), ends `xl
/// console` and removes the configuration file.
pub fn stop(shared: &Mutex<Shared>, names: &Names, runner: &Runner) {
    let (created, gone, console) = {
        let mut s = lock(shared);
        (std::mem::take(&mut s.domain_created), s.gone.is_some(), s.console_reader.take())
    };
    if created {
        match xl(&["destroy", &names.domain]) {
            Err(e) if !gone => warn!("{e}"),
            _ => {}
        }
    }
    if let Some(mut c) = console {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_file(config_file(names, runner));
}

#[cfg(test)]
mod tests {
    use super::super::tests::spec;
    use super::*;

    #[test]
    fn pvh_guest_on_the_bridge_with_jitsus_vif_name() {
        let mut s = spec("--log=debug");
        s.image = std::env::current_exe().unwrap();
        s.content = Some(s.image.clone());
        let names = Names { tap: "j42-1".into(), domain: "jitsu-42-1-www.example".into() };
        let c = config(&s, &names, "xenbr0", None).unwrap();
        let image = s.image.display();
        assert!(c.contains(&format!("name = \"jitsu-42-1-www.example\"\nkernel = \"{image}\"\nmemory = 64\n")), "{c}");
        assert!(c.contains("cmdline = \"--ipv4=10.78.0.10/24 --ipv6=off --log=debug\"\non_crash = \"destroy\""), "{c}");
        assert!(c.contains("vif = ['bridge=xenbr0,mac=52:54:0a:4e:00:0a,vifname=j42-1']"), "{c}");
        assert!(c.contains(&format!("ramdisk = \"{image}\"")), "{c}");
        s.args = "--x=\"y\"".into();
        assert!(config(&s, &names, "xenbr0", None).is_err(), "no quotes in an xl string");
    }
}
