//! Boot paths under QEMU (TCG, never KVM): the images carry a multiboot2
//! header (`grub-file`), a PVH `-initrd` arrives as a boot module, and GRUB
//! (a hybrid ISO made by `xtask::image::grub_iso`, booted with no
//! `-kernel`, from CD or as a virtio-blk disk) starts them on SeaBIOS and
//! OVMF: boot arguments from
//! grub.cfg, the heap sized from the multiboot2 memory map, the multiboot2
//! module's bytes, and echo over virtio-net-pci on q35 and pc. Every QEMU
//! run has a timeout. A missing prerequisite reports the test ignored
//! (under `CI=true`, failed).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::client;
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{free_port, Running};
use xtask::image::{grub_iso, GrubEntry};
use xtask::{app_exit_code, build_image, Forward, Machine, Vm, OVMF_VARS};

type Result = std::result::Result<(), Failed>;

/// OVMF under TCG takes several seconds before GRUB even starts.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

fn image(app: &str) -> PathBuf {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (echo, vmcheck) = IMAGES.get_or_init(|| {
        // Copies: a later build of another app must not change them.
        let copy = |app: &str| {
            let built = build_image(app, true).unwrap_or_else(|e| panic!("build {app}: {e}"));
            let to = scratch(app);
            std::fs::copy(&built, &to).expect("copy image");
            to
        };
        (copy("echo"), copy("vmcheck"))
    });
    match app {
        "echo" => echo.clone(),
        _ => vmcheck.clone(),
    }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("morgana-boot-{}-{name}", std::process::id()))
}

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result {
    if cond {
        Ok(())
    } else {
        Err(msg().into())
    }
}

/// FNV-1a, 64 bits, as vmcheck's `--check=boot-module` computes it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// A module file of `len` bytes that are not a repeating pattern (so a
/// misplaced page would change the checksum).
fn module_file(name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ len as u64;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = scratch(name);
    std::fs::write(&path, &bytes).expect("write module file");
    (path, bytes)
}

/// The RAM in the memory map and the heap, in KiB, from the platform's
/// boot line ("... 65151 KiB RAM; heap 63700 KiB; ...").
fn ram_and_heap_kib(out: &[String]) -> Option<(u64, u64)> {
    let line = out.iter().find(|l| l.contains("boot: ") && l.contains(" heap "))?;
    let ram = line.split(" KiB RAM").next()?.rsplit(' ').next()?.parse().ok()?;
    let heap = line.split(" heap ").nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some((ram, heap))
}

/// Runs vmcheck `--check=boot-module` in `vm` and checks the loader, the
/// module's length and checksum, and that the heap came from a memory map
/// of `vm.memory_mib`.
fn boot_module_seen(mut vm: Vm, loader: &str, module: &[u8]) -> Result {
    let mem = vm.memory_mib as u64;
    vm.rng = false;
    let mut p = Running::start(vm.command());
    let code = app_exit_code(p.wait_status(BOOT_TIMEOUT));
    let out = p.output();
    let want = format!("boot-module: {} bytes, fnv1a64 {:016x}", module.len(), fnv1a64(module));
    check(code == Some(0), || format!("exit {code:?}: {out:#?}"))?;
    check(out.iter().any(|l| l.contains(&format!("boot: {loader} entry")) && l.contains(" 1 boot module(s)")), || {
        format!("no '{loader} entry ... 1 boot module(s)' line: {out:#?}")
    })?;
    check(out.iter().any(|l| l.contains(&want)), || format!("no line {want:?}: {out:#?}"))?;
    // The map holds most of the guest's RAM and the heap most of that
    // (firmware keeps some; the image and the module take the rest).
    let (ram, heap) = ram_and_heap_kib(&out).ok_or_else(|| format!("no memory figures: {out:#?}"))?;
    eprintln!("  memory map {ram} KiB RAM, heap {heap} KiB, of {mem} MiB");
    check(ram > mem * 1024 * 8 / 10 && ram <= mem * 1024, || format!("{ram} KiB RAM in the map of {mem} MiB"))?;
    check(heap > ram * 8 / 10 && heap < ram, || format!("heap {heap} KiB of {ram} KiB RAM"))
}

fn images_are_multiboot2() -> Result {
    for app in ["echo", "vmcheck"] {
        let img = image(app);
        let status = std::process::Command::new("grub-file").arg("--is-x86-multiboot2").arg(&img).status()?;
        check(status.success(), || format!("grub-file --is-x86-multiboot2 {} failed", img.display()))?;
        // Not multiboot (version 1): only the multiboot2 header is there.
        let v1 = std::process::Command::new("grub-file").arg("--is-x86-multiboot").arg(&img).status()?;
        check(!v1.success(), || format!("{} unexpectedly passes as multiboot v1", img.display()))?;
    }
    Ok(())
}

fn pvh_initrd_is_a_boot_module(machine: Machine) -> Result {
    // Not a whole number of pages, so the length is the file's, not the
    // loader's rounding.
    let (file, bytes) = module_file(&format!("initrd-{machine:?}"), 300_001);
    let mut vm = Vm::new(image("vmcheck"));
    vm.machine = machine;
    vm.memory_mib = 96;
    vm.initrd = Some(file.clone());
    vm.cmdline = "--check=boot-module".into();
    let r = boot_module_seen(vm, "PVH", &bytes);
    let _ = std::fs::remove_file(file);
    r
}

/// A fresh copy of OVMF's variable store.
fn ovmf_vars(name: &str) -> PathBuf {
    let vars = scratch(&format!("{name}-vars.fd"));
    std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF_VARS.fd");
    vars
}

/// A GRUB ISO for `entry`, and a VM on `machine` booting it with SeaBIOS
/// or (with `ovmf`) OVMF, from CD (or, with `as_disk`, from the same file
/// as a virtio-blk disk: the ISO is hybrid).
fn grub_vm(
    name: &str,
    entry: &GrubEntry,
    machine: Machine,
    ovmf: bool,
    as_disk: bool,
) -> std::result::Result<Vm, Failed> {
    let iso = scratch(&format!("{name}.iso"));
    grub_iso(entry, &iso)?;
    let mut vm = Vm::new(&entry.image);
    vm.machine = machine;
    if as_disk {
        vm.disk = Some(iso);
        vm.boot_from_disk = true;
    } else {
        vm.cdrom = Some(iso);
    }
    vm.ovmf_vars = ovmf.then(|| ovmf_vars(name));
    Ok(vm)
}

/// Removes a VM's ISO and OVMF variables when dropped (a failed check
/// panics).
struct Cleanup(Vm);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for f in [&self.0.cdrom, &self.0.disk, &self.0.ovmf_vars].into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn grub_boot_module(name: &str, ovmf: bool, as_disk: bool) -> Result {
    let (file, bytes) = module_file(&format!("{name}-module"), 200_003);
    // The arguments come from grub.cfg: without them vmcheck exits 2.
    let entry = GrubEntry {
        image: image("vmcheck"),
        args: vec!["--check=boot-module".into(), "--log=debug".into()],
        modules: vec![file.clone()],
        timeout: 0,
    };
    let mut vm = grub_vm(name, &entry, Machine::Q35, ovmf, as_disk)?;
    vm.memory_mib = 160;
    let _cleanup = Cleanup(vm.clone());
    let r = boot_module_seen(vm, "multiboot2", &bytes);
    let _ = std::fs::remove_file(file);
    r
}

fn echo_from_grub(name: &str, machine: Machine, ovmf: bool) -> Result {
    let entry = GrubEntry { image: image("echo"), args: vec!["--log=info".into()], modules: vec![], timeout: 0 };
    let mut vm = grub_vm(name, &entry, machine, ovmf, false)?;
    let port = free_port();
    vm.forwards = vec![
        format!("tcp:127.0.0.1:{port}-:7").parse::<Forward>()?,
        format!("udp:127.0.0.1:{port}-:7").parse::<Forward>()?,
    ];
    let _cleanup = Cleanup(vm.clone());
    // Dropped before `_cleanup`: QEMU ends before its files go.
    let mut qemu = Running::start(vm.command());
    qemu.wait_for("ready to serve", BOOT_TIMEOUT);
    let out = qemu.output();
    check(out.iter().any(|l| l.contains("boot: multiboot2 entry")), || format!("not booted by GRUB: {out:#?}"))?;
    check(out.iter().any(|l| l.contains("virtio-net at pci")), || format!("no virtio-net-pci: {out:#?}"))?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    client::tcp_echo(addr, b"hello from GRUB\n")?;
    client::udp_echo(addr, 20, 1000)?;
    let t = client::tcp_echo(addr, &client::pattern(1 << 20, 7))?;
    eprintln!("  1 MiB echoed in {:.3} s", t.as_secs_f64());
    check(qemu.is_running(), || "QEMU exited".into())
}

fn main() {
    let args = Arguments::from_args();
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let grub_file = Prereq::program("grub-file", "--help", "grub-common");
    let mkrescue = Prereq::program("grub-mkrescue", "--version", "grub-common");
    let xorriso = Prereq::program("xorriso", "-version", "xorriso");
    let mtools = Prereq::program("mformat", "--version", "mtools");
    let dir = |name: &str, path: &str, package: &str| {
        let missing = (!Path::new(path).exists()).then(|| format!("no {path} (apt-get install {package})"));
        Prereq::new(name, missing)
    };
    let grub_bios = dir("GRUB for BIOS", "/usr/lib/grub/i386-pc/multiboot2.mod", "grub-pc-bin");
    let grub_efi = dir("GRUB for UEFI", "/usr/lib/grub/x86_64-efi/multiboot2.mod", "grub-efi-amd64-bin");
    let ovmf = dir("OVMF", xtask::OVMF_CODE, "ovmf");
    let ovmf_vars = dir("OVMF variables", OVMF_VARS, "ovmf");
    let iso: Vec<&Prereq> = vec![&qemu, &mkrescue, &xorriso, &mtools, &grub_bios, &grub_efi];
    let with_ovmf: Vec<&Prereq> = iso.iter().copied().chain([&ovmf, &ovmf_vars]).collect();
    let t = |name: &str, needs: &[&Prereq], f: fn() -> Result| prereq::trial(name, needs, f);
    let tests = vec![
        t("images_are_multiboot2", &[&grub_file], images_are_multiboot2),
        t("pvh_initrd_is_a_boot_module_on_microvm", &[&qemu], || pvh_initrd_is_a_boot_module(Machine::Microvm)),
        t("pvh_initrd_is_a_boot_module_on_q35", &[&qemu], || pvh_initrd_is_a_boot_module(Machine::Q35)),
        t("grub_module_and_args_on_seabios_q35", &iso, || grub_boot_module("seabios-module", false, false)),
        t("grub_module_and_args_on_ovmf_q35", &with_ovmf, || grub_boot_module("ovmf-module", true, false)),
        t("grub_from_virtio_disk_on_seabios_q35", &iso, || grub_boot_module("seabios-disk", false, true)),
        t("grub_from_virtio_disk_on_ovmf_q35", &with_ovmf, || grub_boot_module("ovmf-disk", true, true)),
        t("echo_from_grub_on_seabios_pc", &iso, || echo_from_grub("seabios-pc", Machine::Pc, false)),
        t("echo_from_grub_on_seabios_q35", &iso, || echo_from_grub("seabios-q35", Machine::Q35, false)),
        t("echo_from_grub_on_ovmf_q35", &with_ovmf, || echo_from_grub("ovmf-q35", Machine::Q35, true)),
    ];
    let conclusion = libtest_mimic::run(&args, tests);
    for app in ["echo", "vmcheck"] {
        let _ = std::fs::remove_file(scratch(app));
    }
    conclusion.exit();
}
