//! The VM image under QEMU: curl, no entropy device, Chromium.

use super::tls::s_client;
use super::*;

pub(super) struct WebVm {
    _q: Running,
    pub(super) http: u16,
    pub(super) https: u16,
}

pub(super) fn start_vm() -> Result<WebVm> {
    let image = xtask::build_image("web", true)?;
    let (http, https) = (free_port(), free_port());
    let mut vm = xtask::Vm::new(&image);
    vm.forwards = vec![format!("tcp:127.0.0.1:{http}-:80").parse()?, format!("tcp:127.0.0.1:{https}-:443").parse()?];
    vm.memory_mib = 64;
    let mut q = Running::start(vm.command());
    q.wait_for("ready to serve", Duration::from_secs(60));
    Ok(WebVm { _q: q, http, https })
}

pub(super) fn vm_curl() -> Result {
    let vm = start_vm()?;
    curl_suite(&format!("http://127.0.0.1:{}", vm.http), &[])?;
    // The image carries the development certificate: check it is the one
    // for localhost, then skip verification for the rest.
    let v = curl(&["-v", "-k", "-o", "/dev/null", &format!("https://127.0.0.1:{}/", vm.https)])?;
    check(v.contains("CN=localhost") || v.contains("CN = localhost"), "development certificate for localhost", &v)?;
    curl_suite(&format!("https://127.0.0.1:{}", vm.https), &["-k"])?;
    let t13 = s_client(vm.https, &["-tls1_3", "-alpn", "http/1.1"])?;
    check(t13.contains("TLSv1.3") && t13.contains("ALPN protocol: http/1.1"), "TLS 1.3 in the VM", &t13)?;
    let t12 = s_client(vm.https, &["-tls1_2"])?;
    check(t12.contains("Protocol  : TLSv1.2"), "TLS 1.2 in the VM", &t12)
}

/// Without virtio-rng (and no RDRAND in QEMU's default CPU) the image must
/// refuse HTTPS at boot, saying why, rather than fail at the first handshake.
pub(super) fn vm_without_entropy_refuses_https() -> Result {
    let image = xtask::build_image("web", true)?;
    let mut vm = xtask::Vm::new(&image);
    vm.rng = false;
    vm.network = true;
    let out = vm.command().output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    check(
        xtask::app_exit_code(out.status) == Some(1) && text.contains("HTTPS needs an entropy source"),
        "exit 1 with a clear message",
        &text,
    )
}

pub(super) fn chromium_renders_vm_site() -> Result {
    let vm = start_vm()?;
    let dir = std::env::temp_dir().join(format!("morgana-chromium-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let shot = dir.join("shot.png");
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--ignore-certificate-errors",
        "--window-size=800,600",
    ];
    let url = format!("https://127.0.0.1:{}/", vm.https);
    let profile = format!("--user-data-dir={}", dir.join("profile").display());
    let dom = run(Command::new("chromium").args(base).arg(&profile).arg("--dump-dom").arg(&url))?;
    check(
        dom.contains("<title>Morgana unikernel web server</title>") && dom.contains("About this site"),
        "rendered DOM",
        &dom,
    )?;
    let shot_arg = format!("--screenshot={}", shot.display());
    run(Command::new("chromium").args(base).arg(&profile).arg(&shot_arg).arg(&url))?;
    let png = std::fs::read(&shot)?;
    check(png.starts_with(b"\x89PNG") && png.len() > 2000, "non-empty screenshot", &png.len().to_string())?;
    eprintln!("  screenshot {} bytes at {}", png.len(), shot.display());
    Ok(())
}
