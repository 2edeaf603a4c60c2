//! Embeds the zone files of `zones/` (or of the directory named by
//! `MORGANA_DNS_ZONES`) into the binary, parsed and checked here: a bad
//! zone fails the build with its file, line and error, and the image
//! carries compact binary records instead of the text parser.

use std::fmt::Write;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=MORGANA_DNS_ZONES");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("MORGANA_DNS_ZONES").map(PathBuf::from).unwrap_or_else(|| manifest.join("zones"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read zone directory {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zone"))
        .collect();
    files.sort();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut out = String::from(
        "/// Zones embedded at build time: (origin, file name, binary records).\npub static ZONES: &[(&str, &str, &[u8])] = &[\n",
    );
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path.file_stem().and_then(|s| s.to_str()).expect("UTF-8 zone file name");
        let origin = format!("{}.", stem.trim_end_matches('.'));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name =
            morgana_dns::Name::parse(&origin, None).unwrap_or_else(|e| panic!("{}: bad origin: {e}", path.display()));
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or(stem).to_string();
        let zone = morgana_dns::Zone::parse(&text, &name, &file, None).unwrap_or_else(|e| panic!("embedded zone {e}"));
        let bin = out_dir.join(format!("{origin}bin"));
        std::fs::write(&bin, zone.to_binary()).expect("write binary zone");
        writeln!(out, "    ({origin:?}, {file:?}, include_bytes!({:?})),", bin.display().to_string())
            .expect("write to String");
    }
    out.push_str("];\n");
    let dest = out_dir.join("zones.rs");
    std::fs::write(dest, out).expect("write zones.rs");
}
