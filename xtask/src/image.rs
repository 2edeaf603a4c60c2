//! Bootable media for Morgana images through GRUB (multiboot2), built with
//! Debian's packaged tools and without root: `grub-mkrescue` (grub-common,
//! with grub-pc-bin for BIOS and grub-efi-amd64-bin for UEFI), which uses
//! xorriso and mtools.
//!
//! [`grub_iso`] makes a hybrid ISO that boots as a CD or as a disk on both
//! SeaBIOS and OVMF; [`make`] (`cargo xtask image`) writes an app's image
//! in each [`Format`]: a GPT disk for BIOS and UEFI ([`disk`], [`gpt`]),
//! its qcow2, the GCE tarball, the ISO, or a KubeVirt containerDisk
//! ([`oci`]).

pub mod disk;
pub mod gpt;
pub mod oci;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// What one GRUB menu entry boots.
#[derive(Debug, Clone)]
pub struct GrubEntry {
    /// The Morgana ELF image.
    pub image: PathBuf,
    /// Boot arguments, one word each (quoted for GRUB as needed).
    pub args: Vec<String>,
    /// Files loaded as multiboot2 modules, in order.
    pub modules: Vec<PathBuf>,
    /// Seconds the menu waits on the serial console before booting (a key
    /// stops it; `e` edits the entry, its boot arguments included); 0
    /// boots at once.
    pub timeout: u32,
}

/// Where the image and modules go on the medium.
pub(crate) const KERNEL: &str = "/boot/morgana";

pub(crate) fn module_path(i: usize) -> String {
    format!("/boot/module{i}")
}

/// A word quoted for GRUB's shell-like parser: as is when plain, else in
/// single quotes (inside which nothing is special but the quote itself).
pub fn grub_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_=.,:/+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The grub.cfg for `entry`: GRUB's terminal on the first serial port (as
/// the image's console; on OVMF the firmware console would echo it twice),
/// the menu's timeout, the image by multiboot2 with its arguments, and
/// its modules.
pub fn grub_cfg(entry: &GrubEntry) -> String {
    let mut cfg = String::from(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n",
    );
    let _ = writeln!(cfg, "set timeout={}", entry.timeout);
    cfg.push_str("menuentry \"morgana\" {\n");
    let _ = write!(cfg, "  multiboot2 {KERNEL}");
    for a in &entry.args {
        let _ = write!(cfg, " {}", grub_quote(a));
    }
    cfg.push('\n');
    for i in 0..entry.modules.len() {
        let _ = writeln!(cfg, "  module2 {}", module_path(i));
    }
    cfg.push_str("  boot\n}\n");
    cfg
}

/// Writes a hybrid BIOS + UEFI ISO to `out` that boots `entry` through
/// GRUB (`grub-mkrescue`; no root needed).
pub fn grub_iso(entry: &GrubEntry, out: &Path) -> Result<(), String> {
    let tree = out.with_extension("tree");
    let _ = std::fs::remove_dir_all(&tree);
    let grub_dir = tree.join("boot/grub");
    std::fs::create_dir_all(&grub_dir).map_err(|e| format!("{}: {e}", grub_dir.display()))?;
    let copy = |from: &Path, to: &str| {
        std::fs::copy(from, tree.join(to.trim_start_matches('/'))).map_err(|e| format!("{}: {e}", from.display()))
    };
    copy(&entry.image, KERNEL)?;
    for (i, m) in entry.modules.iter().enumerate() {
        copy(m, &module_path(i))?;
    }
    std::fs::write(grub_dir.join("grub.cfg"), grub_cfg(entry)).map_err(|e| format!("grub.cfg: {e}"))?;
    let output = Command::new("grub-mkrescue").arg("-o").arg(out).arg(&tree).output().map_err(|e| {
        format!(
            "cannot run grub-mkrescue (apt-get install grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools): {e}"
        )
    })?;
    let _ = std::fs::remove_dir_all(&tree);
    if !output.status.success() {
        return Err(format!("grub-mkrescue failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(())
}

/// What `cargo xtask image` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A GPT disk booting with BIOS and UEFI firmware.
    Raw,
    /// The raw disk as qcow2 (OpenStack, Proxmox).
    Qcow2,
    /// A hybrid BIOS + UEFI ISO (CD or disk).
    Iso,
    /// The `disk.raw` tarball Google Compute Engine imports.
    Gce,
    /// A KubeVirt containerDisk: an OCI image layout directory with the
    /// qcow2 under `/disk/`.
    ContainerDisk,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            "iso" => Ok(Format::Iso),
            "gce" => Ok(Format::Gce),
            "containerdisk" => Ok(Format::ContainerDisk),
            _ => Err(format!("unknown format '{s}' (expected raw, qcow2, iso, gce or containerdisk)")),
        }
    }
}

/// One `cargo xtask image` run.
#[derive(Debug, Clone)]
pub struct Request {
    /// The app's ELF image.
    pub image: PathBuf,
    /// A directory to pack as the content archive (a multiboot2 module).
    pub content: Option<PathBuf>,
    /// Boot arguments, in the GRUB entry.
    pub args: Vec<String>,
    /// What to write.
    pub format: Format,
    /// Where.
    pub out: PathBuf,
    /// The raw disk's size (at least what it needs), for `raw` and `qcow2`.
    pub size: Option<u64>,
    /// GRUB's menu timeout in seconds.
    pub timeout: u32,
}

/// Checks what can be checked before building the app: the content
/// directory exists, and the output can be written (tried, and left as
/// it was).
pub fn check(req: &Request) -> Result<(), String> {
    if let Some(dir) = &req.content {
        if !dir.is_dir() {
            return Err(format!("--content {}: not a directory", dir.display()));
        }
    }
    if req.size.is_some() && !matches!(req.format, Format::Raw | Format::Qcow2) {
        return Err("--size is for the raw and qcow2 formats (gce is a whole number of GiB)".into());
    }
    let out = &req.out;
    let existed = out.exists();
    if req.format == Format::ContainerDisk {
        if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
            return Err(format!("{}: the OCI layout directory exists and is not empty", out.display()));
        } else if existed && !out.is_dir() {
            return Err(format!("{}: exists and is not a directory", out.display()));
        }
        std::fs::create_dir_all(out).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        if !existed {
            let _ = std::fs::remove_dir(out);
        }
        return Ok(());
    }
    if out.is_dir() {
        return Err(format!("{}: is a directory", out.display()));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    if !existed {
        let _ = std::fs::remove_file(out);
    }
    Ok(())
}

/// `tar --format=ustar -cf TO -C DIR .`, as the README tells users to pack
/// content (`--sort=name` so the same directory makes the same archive).
pub fn content_archive(dir: &Path, to: &Path) -> Result<(), String> {
    let mut cmd = Command::new("tar");
    cmd.args(["--format=ustar", "--sort=name", "-cf"]).arg(to).arg("-C").arg(dir).arg(".");
    disk::run(&mut cmd, "tar")
}

/// Writes `req`'s image (see [`Format`]). The ELF must be built already.
pub fn make(req: &Request) -> Result<(), String> {
    let mb2 = Command::new("grub-file").arg("--is-x86-multiboot2").arg(&req.image).status();
    match mb2 {
        Ok(s) if s.success() => {}
        Ok(_) => {
            return Err(format!("{}: not a multiboot2 image (grub-file --is-x86-multiboot2)", req.image.display()))
        }
        Err(e) => return Err(format!("cannot run grub-file (apt-get install grub-common): {e}")),
    }
    check(req)?;
    let tmp = disk::Scratch::new("image")?;
    let mut modules = Vec::new();
    if let Some(dir) = &req.content {
        let tar = tmp.join("content.tar");
        content_archive(dir, &tar)?;
        modules.push(tar);
    }
    let entry = GrubEntry { image: req.image.clone(), args: req.args.clone(), modules, timeout: req.timeout };
    let out = &req.out;
    let result = match req.format {
        Format::Raw => disk::raw(&entry, out, req.size).map(drop),
        Format::Qcow2 => {
            let raw = tmp.join("disk.raw");
            disk::raw(&entry, &raw, req.size).and_then(|_| disk::qcow2(&raw, out))
        }
        Format::Iso => grub_iso(&entry, out),
        Format::Gce => disk::gce(&entry, out),
        Format::ContainerDisk => {
            let (raw, qcow2) = (tmp.join("disk.raw"), tmp.join("disk.qcow2"));
            disk::raw(&entry, &raw, None)
                .and_then(|_| disk::qcow2(&raw, &qcow2))
                .and_then(|_| oci::container_disk(&qcow2, "morgana.qcow2", out))
        }
    };
    if result.is_err() {
        if req.format == Format::ContainerDisk {
            let _ = std::fs::remove_dir_all(out);
        } else {
            let _ = std::fs::remove_file(out);
        }
    }
    result
}

/// A size: bytes, or a number with K, M or G (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size '{s}' (expected e.g. 64M or 1G)");
    let (num, shift) = match s.char_indices().last().ok_or_else(bad)? {
        (i, 'K' | 'k') => (&s[..i], 10),
        (i, 'M' | 'm') => (&s[..i], 20),
        (i, 'G' | 'g') => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_grub() {
        assert_eq!(grub_quote("--ipv4=10.0.2.15/24"), "--ipv4=10.0.2.15/24");
        assert_eq!(grub_quote("a b"), "'a b'");
        assert_eq!(grub_quote("it's"), r"'it'\''s'");
        assert_eq!(grub_quote("$x"), "'$x'");
        assert_eq!(grub_quote(""), "''");
    }

    #[test]
    fn cfg_names_image_arguments_and_modules() {
        let entry = GrubEntry {
            image: "echo".into(),
            args: vec!["--log=debug".into(), "x y".into()],
            modules: vec!["a.tar".into(), "b".into()],
            timeout: 3,
        };
        let cfg = grub_cfg(&entry);
        assert!(cfg.contains("  multiboot2 /boot/morgana --log=debug 'x y'\n"), "{cfg}");
        assert!(cfg.contains("  module2 /boot/module0\n  module2 /boot/module1\n"), "{cfg}");
        assert!(cfg.contains("serial --unit=0"), "{cfg}");
        assert!(cfg.contains("set timeout=3\n"), "{cfg}");
    }

    #[test]
    fn formats_and_sizes_parse() {
        assert_eq!("containerdisk".parse::<Format>(), Ok(Format::ContainerDisk));
        assert!("vmdk".parse::<Format>().unwrap_err().contains("unknown format 'vmdk'"));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("G").is_err() && parse_size("").is_err() && parse_size("99999999999G").is_err());
    }
}
