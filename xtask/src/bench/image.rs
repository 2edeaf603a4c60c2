//! `cargo xtask bench-image [RUNS]`: the DNS image's launch-to-first-answer
//! time booted from its GPT disk through GRUB (SeaBIOS and OVMF, q35,
//! TCG) beside a direct `-kernel` (PVH) boot with the same content as
//! `-initrd`, and the sizes of the ELF and of each image format.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{dns_once_within, free_port, stats};
use crate::image::{make, Format, Request};
use crate::{build_image, Machine, Vm, OVMF_VARS};

/// A firmware boot under TCG can take tens of seconds on a busy machine.
const LIMIT: Duration = Duration::from_secs(120);

/// The zone every run serves: from the content archive, as deployed.
const ZONE: &str = "$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 300\n@ IN NS ns1\n\
                    ns1 IN A 192.0.2.53\nwww IN A 203.0.113.7\n";

struct Case {
    what: String,
    vm: Vm,
}

fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn mib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / (1 << 20) as f64)
}

/// Runs the benchmark and prints Markdown tables.
pub fn run(runs: usize) -> Result<(), String> {
    let elf = build_image("dns", true)?;
    let dir = std::env::temp_dir().join(format!("morgana-bench-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("zones")).map_err(|e| e.to_string())?;
    let result = run_in(&dir, &elf, runs);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(dir: &Path, elf: &Path, runs: usize) -> Result<(), String> {
    let zones = path(dir, "zones");
    std::fs::write(zones.join("example.com.zone"), ZONE).map_err(|e| e.to_string())?;
    let make_as = |format: Format, name: &str, timeout: u32| -> Result<PathBuf, String> {
        let out = path(dir, name);
        let req = Request {
            image: elf.to_path_buf(),
            content: Some(zones.clone()),
            args: vec![],
            format,
            out: out.clone(),
            size: None,
            timeout,
        };
        make(&req)?;
        Ok(out)
    };
    let raw = make_as(Format::Raw, "dns.raw", 1)?;
    let raw0 = make_as(Format::Raw, "dns-menu0.raw", 0)?;
    let qcow2 = make_as(Format::Qcow2, "dns.qcow2", 1)?;
    let iso = make_as(Format::Iso, "dns.iso", 1)?;
    let gce = make_as(Format::Gce, "dns.tar.gz", 1)?;
    let tar = path(dir, "content.tar");
    crate::image::content_archive(&zones, &tar)?;

    let q35 = |image: &Path| {
        let mut vm = Vm::new(image);
        vm.machine = Machine::Q35;
        vm.rng = false;
        vm
    };
    let disk_vm = |disk: &Path, ovmf: bool| -> Result<Vm, String> {
        let mut vm = q35(elf);
        vm.disk = Some(disk.to_path_buf());
        vm.boot_from_disk = true;
        if ovmf {
            let vars = path(dir, &format!("vars-{}.fd", disk.file_name().unwrap_or_default().to_string_lossy()));
            std::fs::copy(OVMF_VARS, &vars).map_err(|e| format!("{OVMF_VARS}: {e}"))?;
            vm.ovmf_vars = Some(vars);
        }
        Ok(vm)
    };
    let mut kernel = q35(elf);
    kernel.initrd = Some(tar.clone());
    let mut cases = vec![Case { what: "q35, `-kernel` (PVH) + `-initrd content.tar`".into(), vm: kernel }];
    for (ovmf, firmware) in [(false, "SeaBIOS"), (true, "OVMF")] {
        cases.push(Case { what: format!("q35, raw disk, {firmware}, GRUB menu 0 s"), vm: disk_vm(&raw0, ovmf)? });
        cases.push(Case {
            what: format!("q35, raw disk, {firmware}, GRUB menu 1 s (the default)"),
            vm: disk_vm(&raw, ovmf)?,
        });
    }
    let mut times: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); cases.len()];
    // Interleaved, so a burst of load on the shared machine hits every case.
    for _ in 0..runs {
        for (case, (t, ready)) in cases.iter_mut().zip(times.iter_mut()) {
            let port = free_port();
            case.vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
            let (d, r) = dns_once_within(&case.vm, port, LIMIT).map_err(|e| format!("{}: {e}", case.what))?;
            t.push(d.as_secs_f64() * 1e3);
            ready.extend(r);
        }
    }
    println!(
        "| DNS image, TCG, {runs} runs each | launch→first answer min / median (ms) | guest entry→ready median (ms) |"
    );
    println!("|---|---|---|");
    for (case, (t, ready)) in cases.iter().zip(times.iter_mut()) {
        let (min, med) = stats(t);
        let (_, rmed) = if ready.is_empty() { (0.0, f64::NAN) } else { stats(ready) };
        println!("| {} | {min:.0} / {med:.0} | {rmed:.1} |", case.what);
    }

    println!();
    println!("| file (DNS image, 1 zone of content) | apparent size (bytes) | MiB | allocated on disk (MiB) |");
    println!("|---|---|---|---|");
    for (what, f) in [
        ("ELF image (release, stripped)", elf.to_path_buf()),
        ("raw GPT disk", raw),
        ("qcow2", qcow2),
        ("ISO (grub-mkrescue)", iso),
        ("GCE tarball (disk.raw of 1 GiB, sparse, gzip'd)", gce),
    ] {
        let m = std::fs::metadata(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        println!("| {what} | {} | {} | {} |", m.len(), mib(m.len()), mib(m.blocks() * 512));
    }
    Ok(())
}
