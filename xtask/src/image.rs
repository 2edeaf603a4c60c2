//! Bootable media for Morgana images through GRUB (multiboot2), built with
//! Debian's packaged tools and without root: `grub-mkrescue` (grub-common,
//! with grub-pc-bin for BIOS and grub-efi-amd64-bin for UEFI), which uses
//! xorriso and mtools.
//!
//! [`grub_iso`] makes a hybrid ISO that boots as a CD or as a disk on both
//! SeaBIOS and OVMF; `cargo xtask image` (GPT disks, qcow2, GCE) is meant to
//! grow from [`GrubEntry`] and [`grub_cfg`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What one GRUB menu entry boots.
#[derive(Debug, Clone)]
pub struct GrubEntry {
    /// The Morgana ELF image.
    pub image: PathBuf,
    /// Boot arguments, one word each (quoted for GRUB as needed).
    pub args: Vec<String>,
    /// Files loaded as multiboot2 modules, in order.
    pub modules: Vec<PathBuf>,
}

/// Where the image and modules go on the medium.
const KERNEL: &str = "/boot/morgana";

fn module_path(i: usize) -> String {
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
/// no menu delay, the image by multiboot2 with its arguments, and
/// its modules.
pub fn grub_cfg(entry: &GrubEntry) -> String {
    let mut cfg = String::from(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         set timeout=0\n\
         menuentry \"morgana\" {\n",
    );
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
        };
        let cfg = grub_cfg(&entry);
        assert!(cfg.contains("  multiboot2 /boot/morgana --log=debug 'x y'\n"), "{cfg}");
        assert!(cfg.contains("  module2 /boot/module0\n  module2 /boot/module1\n"), "{cfg}");
        assert!(cfg.contains("serial --unit=0"), "{cfg}");
    }
}
