//! Embeds the files of `site/` (or of `MORGANA_WEB_SITE`) into the image,
//! like MirageOS's crunch: the VM needs no disk. Also embeds a certificate
//! and key: the files named by `MORGANA_WEB_CERT` and `MORGANA_WEB_KEY`, or
//! else a development certificate for localhost generated here once; and
//! the ACME CA's roots named by `MORGANA_WEB_ACME_CA`, if set.

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
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("site.rs"), out).expect("write site.rs");
    certificate(&out_dir);
}

fn certificate(out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=MORGANA_WEB_CERT");
    println!("cargo:rerun-if-env-changed=MORGANA_WEB_KEY");
    let (cert, key, dev) = match (std::env::var_os("MORGANA_WEB_CERT"), std::env::var_os("MORGANA_WEB_KEY")) {
        (Some(c), Some(k)) => (PathBuf::from(c), PathBuf::from(k), false),
        (None, None) => {
            let (c, k) = (out_dir.join("dev-cert.pem"), out_dir.join("dev-key.pem"));
            if !c.exists() || !k.exists() {
                let mut params =
                    rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
                        .expect("certificate parameters");
                let mut dn = rcgen::DistinguishedName::new();
                dn.push(rcgen::DnType::CommonName, "localhost");
                dn.push(rcgen::DnType::OrganizationName, "Morgana DEVELOPMENT certificate - not for production");
                params.distinguished_name = dn;
                let key = rcgen::KeyPair::generate().expect("generate key");
                let cert = params.self_signed(&key).expect("self-sign");
                std::fs::write(&c, cert.pem()).expect("write certificate");
                std::fs::write(&k, key.serialize_pem()).expect("write key");
            }
            (c, k, true)
        }
        _ => panic!("set both MORGANA_WEB_CERT and MORGANA_WEB_KEY, or neither"),
    };
    println!("cargo:rerun-if-changed={}", cert.display());
    println!("cargo:rerun-if-changed={}", key.display());
    let rs = format!(
        "/// The embedded certificate chain (PEM).\npub static CERT: &[u8] = include_bytes!({:?});\n/// Its key (PEM).\npub static KEY: &[u8] = include_bytes!({:?});\n/// Whether it is the generated development certificate.\npub const DEV_CERT: bool = {dev};\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    // Roots for the ACME directory's HTTPS, for images (which have no
    // files for --acme-ca).
    println!("cargo:rerun-if-env-changed=MORGANA_WEB_ACME_CA");
    let acme_ca = match std::env::var_os("MORGANA_WEB_ACME_CA") {
        Some(path) => {
            let path = PathBuf::from(path);
            println!("cargo:rerun-if-changed={}", path.display());
            format!("Some(include_bytes!({:?}))", path.display().to_string())
        }
        None => "None".into(),
    };
    let rs = format!(
        "{rs}/// Root certificates trusted for the ACME directory's HTTPS (PEM), embedded at build time.\npub static ACME_CA: Option<&[u8]> = {acme_ca};\n"
    );
    std::fs::write(out_dir.join("cert.rs"), rs).expect("write cert.rs");
}
