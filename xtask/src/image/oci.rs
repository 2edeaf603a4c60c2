//! A KubeVirt containerDisk: an OCI image (image-spec 1.0) whose one layer
//! holds the qcow2 disk under `/disk/`, owned by uid and gid 107 (the
//! `qemu` user KubeVirt's virt-launcher runs as). Written here as an OCI
//! image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`),
//! which `skopeo copy oci:DIR:TAG docker://REGISTRY/NAME:TAG` pushes; the
//! layer is made by GNU tar and gzip.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use super::disk::{run, Scratch};

/// The tag in `index.json` (`org.opencontainers.image.ref.name`).
pub const TAG: &str = "latest";

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores `bytes` as a blob of the layout at `dir`; returns its digest.
fn blob(dir: &Path, bytes: &[u8]) -> Result<String, String> {
    let hex = sha256_hex(bytes);
    let path = dir.join("blobs/sha256").join(&hex);
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!("sha256:{hex}"))
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

/// Writes the containerDisk for `qcow2` (stored as `/disk/NAME`) as an OCI
/// image layout in the directory `out` (created; must not hold anything
/// else).
pub fn container_disk(qcow2: &Path, name: &str, out: &Path) -> Result<(), String> {
    if name.contains(['/', '"', '\\']) {
        return Err(format!("bad disk name {name}"));
    }
    let tmp = Scratch::new("oci")?;
    let root = tmp.join("root");
    std::fs::create_dir_all(root.join("disk")).map_err(|e| format!("{}: {e}", root.display()))?;
    std::fs::copy(qcow2, root.join("disk").join(name)).map_err(|e| format!("{}: {e}", qcow2.display()))?;
    let layer_tar = tmp.join("layer.tar");
    let mut tar = Command::new("tar");
    tar.args([
        "--format=posix",
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        "--sort=name",
        "--owner=107",
        "--group=107",
        "--numeric-owner",
        "--mtime=@0",
        "--mode=u=rwX,go=rX",
        "-cf",
    ])
    .arg(&layer_tar)
    .arg("-C")
    .arg(&root)
    .arg("disk");
    run(&mut tar, "tar")?;
    let diff = std::fs::read(&layer_tar).map_err(|e| format!("layer: {e}"))?;
    run(Command::new("gzip").args(["-n", "-6"]).arg(&layer_tar), "gzip")?;
    let layer = std::fs::read(tmp.join("layer.tar.gz")).map_err(|e| format!("layer: {e}"))?;

    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!("{} exists and is not empty", out.display()));
    }
    std::fs::create_dir_all(out.join("blobs/sha256")).map_err(|e| format!("{}: {e}", out.display()))?;
    let layer_digest = blob(out, &layer)?;
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}},"history":[{{"created_by":"cargo xtask image --format containerdisk"}}]}}"#,
        sha256_hex(&diff)
    );
    let config_digest = blob(out, config.as_bytes())?;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{},"layers":[{}]}}"#,
        descriptor(CONFIG, &config_digest, config.len()),
        descriptor(LAYER, &layer_digest, layer.len())
    );
    let manifest_digest = blob(out, manifest.as_bytes())?;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{MANIFEST}","digest":"{manifest_digest}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{TAG}"}}}}]}}"#,
        manifest.len()
    );
    let write = |name: &str, text: &str| std::fs::write(out.join(name), text).map_err(|e| format!("{name}: {e}"));
    write("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    write("index.json", &index)
}
