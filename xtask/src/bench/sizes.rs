//! `cargo xtask bench-sizes`: the stripped size of each app's image with
//! both driver sets (the default), with virtio alone, and with virtio and
//! nothing optional; then what each optional part of the DNS image and
//! the Xen drivers add. Sizes do not depend on the machine's load.

use crate::{build_image, build_image_with, optional_features};

const APPS: [&str; 3] = ["echo", "dns", "web"];

fn len(app: &str, features: Option<&str>) -> Result<i64, String> {
    let image = build_image_with(app, true, features)?;
    std::fs::metadata(&image).map(|m| m.len() as i64).map_err(|e| format!("{}: {e}", image.display()))
}

fn kib(n: i64) -> String {
    format!("{:.1}", n as f64 / 1024.0)
}

pub fn run() -> Result<(), String> {
    println!("| image | stripped size (bytes) | KiB |");
    println!("|---|---|---|");
    let mut xen_adds = Vec::new();
    for app in APPS {
        let optional = optional_features(app)?;
        let all = optional.join(",");
        let default = len(app, None)?;
        let virtio = len(app, Some(&format!("virtio,{all}")))?;
        let bare = len(app, Some("virtio"))?;
        println!("| {app}, default (virtio + Xen, {}) | {default} | {} |", optional.join(", "), kib(default));
        println!("| {app}, virtio only | {virtio} | {} |", kib(virtio));
        println!("| {app}, virtio only, nothing optional | {bare} | {} |", kib(bare));
        xen_adds.push((app, default - virtio));
    }
    println!();
    println!("| added to the DNS image with virtio and nothing optional | bytes | KiB |");
    println!("|---|---|---|");
    let base = len("dns", Some("virtio"))?;
    for part in optional_features("dns")? {
        let with = len("dns", Some(&format!("virtio,{part}")))?;
        println!("| `{part}` | {} | {} |", with - base, kib(with - base));
    }
    for (app, adds) in xen_adds {
        println!("| `xen` (the Xen platform code and drivers), to {app} with every part | {adds} | {} |", kib(adds));
    }
    // Leave the default images in place.
    for app in APPS {
        build_image(app, true)?;
    }
    Ok(())
}
