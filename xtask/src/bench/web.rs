//! The web VM benchmark: image size, the smallest memory at which HTTPS
//! works, and requests per second through QEMU's user network with wrk,
//! for the page and a 1 MiB file, over HTTP and HTTPS.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{fetches, free_port, sizes};
use crate::{build_image, Vm};

/// Bytes of the large file.
const BIG: usize = 1 << 20;

/// A content archive (a boot module) holding the embedded site's page and
/// a 1 MiB file, made with `tar --format=ustar` as the README says.
fn content() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("morgana-bench-web-{}", std::process::id()));
    let files = dir.join("content");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("../apps/web/site/index.html");
    std::fs::copy(&site, files.join("index.html")).map_err(|e| format!("{}: {e}", site.display()))?;
    let big: Vec<u8> = (0..BIG).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(files.join("big.bin"), big).map_err(|e| e.to_string())?;
    let tar = dir.join("content.tar");
    let ok = Command::new("tar")
        .args(["--format=ustar", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&files)
        .arg(".")
        .status()
        .map_err(|e| format!("tar: {e}"))?
        .success();
    if !ok {
        return Err("tar failed".into());
    }
    Ok(tar)
}

/// Runs the benchmark; `cpu` is QEMU's `-cpu` (e.g. `max`, which has
/// AES-NI and PCLMULQDQ under TCG); `elf` an image to measure instead of
/// building the web app (e.g. another commit's).
pub fn run(cpu: Option<String>, elf: Option<PathBuf>) -> Result<(), String> {
    let image = match elf {
        Some(elf) => elf,
        None => {
            sizes(&["web"])?;
            build_image("web", true)?
        }
    };
    let tar = content()?;
    let boot = |mib: u32, initrd: Option<&Path>| -> Result<(Child, u16, u16), String> {
        let (http, https) = (free_port(), free_port());
        let mut vm = Vm::new(&image);
        vm.memory_mib = mib;
        vm.cpu = cpu.clone();
        vm.initrd = initrd.map(Path::to_path_buf);
        vm.forwards =
            vec![format!("tcp:127.0.0.1:{http}-:80").parse()?, format!("tcp:127.0.0.1:{https}-:443").parse()?];
        vm.cmdline = "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2".into();
        let mut cmd = vm.command();
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        Ok((child, http, https))
    };
    let works = |mib: u32| -> bool {
        let Ok((mut child, _, https)) = boot(mib, None) else { return false };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut ok = false;
        while Instant::now() < deadline && !ok {
            ok = fetches(&format!("https://127.0.0.1:{https}/"));
            if !ok {
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        ok
    };
    let min = (1..=64).find(|&m| works(m));
    println!();
    println!("| smallest -m at which the web image serves HTTPS (microvm) |");
    println!("|---|");
    println!("| {} |", min.map_or("more than 64 MiB".into(), |m| format!("{m} MiB")));

    let (mut child, http, https) = boot(64, Some(&tar))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !fetches(&format!("http://127.0.0.1:{http}/")) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "--max-time", "60", "-w", "%{size_download}"])
        .arg(format!("https://127.0.0.1:{https}/big.bin"))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if got.stdout != BIG.to_string().as_bytes() {
        let _ = child.kill();
        return Err(format!("the 1 MiB file came back as {} bytes", String::from_utf8_lossy(&got.stdout)));
    }
    let model = cpu.as_deref().unwrap_or("qemu64 (default)");
    println!();
    println!(
        "| web VM (microvm, TCG, -cpu {model}) through QEMU user networking, wrk 10 s, 8 connections | requests/s |"
    );
    println!("|---|---|");
    for (label, url) in [
        ("index.html over HTTP", format!("http://127.0.0.1:{http}/")),
        ("index.html over HTTPS", format!("https://127.0.0.1:{https}/")),
        ("1 MiB file over HTTP", format!("http://127.0.0.1:{http}/big.bin")),
        ("1 MiB file over HTTPS", format!("https://127.0.0.1:{https}/big.bin")),
    ] {
        let out = Command::new("wrk").args(["-t1", "-c8", "-d10s", "--timeout", "10s", &url]).output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("n/a");
        let errors = if text.contains("Non-2xx") || text.contains("Socket errors") { " (wrk saw errors)" } else { "" };
        println!("| {label} | {rps}{errors} |");
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(dir) = tar.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
