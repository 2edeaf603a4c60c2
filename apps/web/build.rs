//! Embeds the files of `site/` (or of `MORGANA_WEB_SITE`) into the image,
//! like MirageOS's crunch: the VM needs no disk.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        println!("cargo:rerun-if-changed={}", p.display());
        if p.is_dir() {
            walk(&p, root, out);
        } else {
            let rel = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            out.push((rel, p));
        }
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=MORGANA_WEB_SITE");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = std::env::var_os("MORGANA_WEB_SITE").map(PathBuf::from).unwrap_or_else(|| manifest.join("site"));
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    let mut out = String::from("/// The embedded site: (path, bytes, modification time in Unix seconds).\npub static SITE: &[(&str, &[u8], u64)] = &[\n");
    for (rel, path) in files {
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        writeln!(out, "    ({rel:?}, include_bytes!({:?}), {modified}),", path.display().to_string()).expect("write");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("site.rs");
    std::fs::write(dest, out).expect("write site.rs");
}
