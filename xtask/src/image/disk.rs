//! The GPT disk that boots on BIOS and UEFI firmware, without root:
//!
//! ```text
//! LBA 0        protective MBR, with GRUB's boot.img as boot code
//! LBA 1..33    GPT header and entries
//! 1 MiB        BIOS boot partition: GRUB i386-pc core.img
//! 2 MiB        EFI system partition (FAT): \EFI\BOOT\BOOTX64.EFI (GRUB
//!              x86_64-efi), /boot/grub/grub.cfg, /boot/morgana (the ELF),
//!              /boot/module0... (the content archive)
//! end          backup GPT entries and header
//! ```
//!
//! Both GRUBs are made by `grub-mkimage` with their modules built in and
//! an embedded configuration that finds the EFI system partition by its
//! FAT serial number, so neither needs GRUB's module directories on the
//! disk. The FAT is made by `mformat`/`mcopy` (mtools) in a file; the GPT
//! and the two patches `grub-bios-setup` would make are written here.
//! The same inputs make the same bytes: GUIDs and the FAT serial number
//! come from a hash of them, and mtools' timestamps from
//! `SOURCE_DATE_EPOCH`.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::gpt::{self, Partition, SECTOR};
use super::{grub_cfg, module_path, GrubEntry, KERNEL};

const MIB: u64 = 1 << 20;

/// The GRUB modules built into both GRUB images: enough to find the
/// partition, read FAT, run grub.cfg's menu on the serial port and load a
/// multiboot2 image with modules.
const GRUB_MODULES: &[&str] = &[
    "part_gpt",
    "fat",
    "search",
    "search_fs_uuid",
    "normal",
    "configfile",
    "echo",
    "test",
    "serial",
    "terminal",
    "multiboot2",
    "boot",
];

/// Where GRUB keeps its platform files (Debian's grub-pc-bin and
/// grub-efi-amd64-bin).
const GRUB_LIB: &str = "/usr/lib/grub";

/// A FAT timestamp that is the same on every build (2000-01-01 00:00 UTC)
/// unless `SOURCE_DATE_EPOCH` says otherwise.
const DEFAULT_EPOCH: &str = "946684800";

/// A scratch directory removed when dropped.
pub(super) struct Scratch(pub PathBuf);

impl Scratch {
    pub(super) fn new(what: &str) -> Result<Scratch, String> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "morgana-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }

    pub(super) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, with its program's Debian package named if it is missing.
pub(super) fn run(cmd: &mut Command, package: &str) -> Result<(), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| format!("cannot run {program} (apt-get install {package}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            crate::render(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Identity of a disk: a hash of everything that goes on it.
fn identity(entry: &GrubEntry, size: Option<u64>) -> Result<[u8; 32], String> {
    let mut h = Sha256::new();
    h.update(b"morgana disk 1\0");
    for f in std::iter::once(&entry.image).chain(&entry.modules) {
        let bytes = read(f)?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    for a in &entry.args {
        h.update((a.len() as u64).to_le_bytes());
        h.update(a.as_bytes());
    }
    h.update(entry.timeout.to_le_bytes());
    h.update(size.unwrap_or(0).to_le_bytes());
    Ok(h.finalize().into())
}

fn derive(id: &[u8; 32], what: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(id);
    h.update(what.as_bytes());
    h.finalize().into()
}

/// `grub-mkimage` for `platform` with [`GRUB_MODULES`] and `early` as the
/// embedded configuration.
fn grub_mkimage(platform: &str, early: &Path, out: &Path) -> Result<(), String> {
    let dir = Path::new(GRUB_LIB).join(platform);
    let package = if platform == "i386-pc" { "grub-pc-bin" } else { "grub-efi-amd64-bin" };
    if !dir.join("multiboot2.mod").exists() {
        return Err(format!("no GRUB for {platform} in {} (apt-get install {package})", dir.display()));
    }
    let mut cmd = Command::new("grub-mkimage");
    cmd.args(["-O", platform, "-d"]).arg(&dir).arg("-o").arg(out).arg("-c").arg(early).args(["-p", "/boot/grub"]);
    if platform == "i386-pc" {
        cmd.arg("biosdisk");
    }
    cmd.args(GRUB_MODULES);
    run(&mut cmd, "grub-common")
}

/// The EFI system partition's FAT file system, in `out`, holding
/// `files` (path on the FAT, file on the host).
fn fat(out: &Path, serial: u32, hidden_sectors: u64, files: &[(String, PathBuf)]) -> Result<u64, String> {
    let mut bytes = 0;
    for (_, f) in files {
        bytes += std::fs::metadata(f).map_err(|e| format!("{}: {e}", f.display()))?.len();
    }
    // Room for the FATs, directories, cluster slack, and a little to spare
    // for someone who edits grub.cfg on the disk.
    let size = (bytes + bytes / 8 + MIB).div_ceil(MIB) * MIB;
    File::create(out).and_then(|f| f.set_len(size)).map_err(|e| format!("{}: {e}", out.display()))?;
    let epoch = std::env::var("SOURCE_DATE_EPOCH").unwrap_or_else(|_| DEFAULT_EPOCH.into());
    let mtools = |args: &[&str]| {
        let mut cmd = Command::new(args[0]);
        cmd.arg("-i").arg(out).args(&args[1..]).env("SOURCE_DATE_EPOCH", &epoch).env("MTOOLS_SKIP_CHECK", "1");
        run(&mut cmd, "mtools")
    };
    let sectors = (size / SECTOR).to_string();
    let serial = format!("{serial:08x}");
    let hidden = hidden_sectors.to_string();
    mtools(&["mformat", "-T", &sectors, "-h", "64", "-s", "32", "-H", &hidden, "-N", &serial, "-v", "MORGANA", "::"])?;
    let mut dirs: Vec<String> = Vec::new();
    for (path, _) in files {
        let mut at = 0;
        while let Some(i) = path[at + 1..].find('/') {
            at += i + 1;
            let d = path[..at].to_string();
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    for d in &dirs {
        mtools(&["mmd", &format!("::{d}")])?;
    }
    for (path, file) in files {
        let file = file.to_string_lossy();
        mtools(&["mcopy", &file, &format!("::{path}")])?;
    }
    Ok(size)
}

/// Writes `bytes` at `offset`, skipping all-zero 4 KiB blocks so that the
/// file stays sparse.
fn write_sparse(f: &mut File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    for (i, block) in bytes.chunks(4096).enumerate() {
        if block.iter().any(|b| *b != 0) {
            f.seek(SeekFrom::Start(offset + i as u64 * 4096))?;
            f.write_all(block)?;
        }
    }
    Ok(())
}

/// Writes the GPT disk for `entry` to `out`: at least `size` bytes when
/// given (rounded up to whole MiB), else as small as it fits. Returns the
/// disk's size.
pub fn raw(entry: &GrubEntry, out: &Path, size: Option<u64>) -> Result<u64, String> {
    let tmp = Scratch::new("disk")?;
    let id = identity(entry, size)?;
    let serial = u32::from_le_bytes(derive(&id, "fat serial")[..4].try_into().expect("4 bytes"));
    let uuid = format!("{:04x}-{:04x}", serial >> 16, serial & 0xffff);
    // Found by the FAT's serial number, so another disk's /boot cannot
    // take over; $prefix is where normal mode reads grub.cfg from.
    let early = tmp.join("early.cfg");
    let early_cfg = format!("search --no-floppy --fs-uuid --set=root {uuid}\nset prefix=($root)/boot/grub\n");
    std::fs::write(&early, early_cfg).map_err(|e| format!("early.cfg: {e}"))?;
    let (core_img, efi) = (tmp.join("core.img"), tmp.join("BOOTX64.EFI"));
    grub_mkimage("i386-pc", &early, &core_img)?;
    grub_mkimage("x86_64-efi", &early, &efi)?;
    let cfg = tmp.join("grub.cfg");
    std::fs::write(&cfg, grub_cfg(entry)).map_err(|e| format!("grub.cfg: {e}"))?;

    let core_lba = MIB / SECTOR;
    let mut core = read(&core_img)?;
    gpt::patch_core(&mut core, core_lba)?;
    let bios_mib = (core.len() as u64).div_ceil(MIB);
    let esp_lba = (1 + bios_mib) * MIB / SECTOR;

    let mut files = vec![
        ("/EFI/BOOT/BOOTX64.EFI".to_string(), efi),
        ("/boot/grub/grub.cfg".to_string(), cfg),
        (KERNEL.to_string(), entry.image.clone()),
    ];
    for (i, m) in entry.modules.iter().enumerate() {
        files.push((module_path(i), m.clone()));
    }
    let esp_img = tmp.join("esp.img");
    let esp_size = fat(&esp_img, serial, esp_lba, &files)?;
    let esp_end = esp_lba * SECTOR + esp_size;
    // A MiB after the ESP for the backup GPT (33 sectors), as partitioning
    // tools align.
    let needed = esp_end + MIB;
    let disk_size = match size {
        Some(s) if s < needed => return Err(format!("the disk needs {needed} bytes, more than the {s} asked for")),
        Some(s) => s.div_ceil(MIB) * MIB,
        None => needed,
    };
    let sectors = disk_size / SECTOR;

    let part = |type_guid: &str, what: &str, first: u64, last: u64, name: &str| Partition {
        type_guid: gpt::guid(type_guid),
        guid: gpt::guid_from(&derive(&id, what)),
        first_lba: first,
        last_lba: last,
        name: name.into(),
    };
    let parts = [
        part(gpt::BIOS_BOOT, "bios boot", core_lba, esp_lba - 1, "BIOS boot"),
        part(gpt::EFI_SYSTEM, "esp", esp_lba, esp_end / SECTOR - 1, "EFI system"),
    ];
    let table = gpt::gpt(sectors, gpt::guid_from(&derive(&id, "disk")), &parts)?;
    let boot_img = read(&Path::new(GRUB_LIB).join("i386-pc/boot.img"))?;
    let mbr = gpt::bios_boot_sector(&boot_img, &gpt::protective_mbr(sectors), core_lba)?;

    let write = || -> std::io::Result<()> {
        let mut f = File::create(out)?;
        f.set_len(disk_size)?;
        write_sparse(&mut f, 0, &mbr)?;
        write_sparse(&mut f, SECTOR, &table.primary)?;
        write_sparse(&mut f, 2 * SECTOR, &table.entries)?;
        write_sparse(&mut f, core_lba * SECTOR, &core)?;
        write_sparse(&mut f, esp_lba * SECTOR, &std::fs::read(&esp_img)?)?;
        write_sparse(&mut f, table.backup_entries_lba * SECTOR, &table.entries)?;
        write_sparse(&mut f, (sectors - 1) * SECTOR, &table.backup)?;
        f.sync_all()
    };
    write().map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(disk_size)
}

/// `qemu-img convert` of the raw disk `raw` to qcow2 in `out`.
pub fn qcow2(raw: &Path, out: &Path) -> Result<(), String> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["convert", "-f", "raw", "-O", "qcow2"]).arg(raw).arg(out);
    run(&mut cmd, "qemu-utils")
}

/// The tarball Google Compute Engine imports: a gzip'd GNU-format tar
/// holding one file, `disk.raw`, whose size is a whole number of GiB (the
/// disk is grown to the next GiB, sparse, so the tar stays small).
pub fn gce(entry: &GrubEntry, out: &Path) -> Result<(), String> {
    let tmp = Scratch::new("gce")?;
    let disk = tmp.join("disk.raw");
    // Sized first to learn what it needs, then at the next whole GiB.
    let needed = raw(entry, &disk, None)?;
    raw(entry, &disk, Some(needed.div_ceil(1 << 30) << 30))?;
    let mut cmd = Command::new("tar");
    cmd.args(["--format=oldgnu", "--sparse", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-czf"])
        .arg(out)
        .arg("-C")
        .arg(&tmp.0)
        .arg("disk.raw");
    run(&mut cmd, "tar")
}
