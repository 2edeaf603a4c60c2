//! VM benchmarks: launch-to-first-echo time against the bare PVH floor,
//! image size, and the smallest memory the echo image boots and serves in.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{build_image, Machine, Vm};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Time from spawning QEMU until the floor kernel has exited.
fn floor_once(vm: &Vm) -> Result<Duration, String> {
    let mut cmd = vm.command();
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let status = cmd.status().map_err(|e| e.to_string())?;
    let t = start.elapsed();
    if status.code() != Some(1) {
        return Err(format!("floor kernel ended with {status}"));
    }
    Ok(t)
}

/// Time from spawning QEMU until a TCP echo reply arrives through the
/// forwarded port; also returns the guest's own "ready to serve" time.
fn echo_once(vm: &Vm, port: u16) -> Result<(Duration, Option<f64>), String> {
    let mut cmd = vm.command();
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = start + Duration::from_secs(20);
    let result = loop {
        if Instant::now() > deadline {
            break Err("no echo within 20 s".to_string());
        }
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        };
        // Until the guest listens, QEMU's user network keeps the host side
        // open but never answers; try again soon rather than wait.
        let _ = s.set_read_timeout(Some(Duration::from_millis(5)));
        let mut b = [0u8; 1];
        // QEMU accepts on the host side before the guest listens; only a
        // reply proves the guest served it.
        if s.write_all(b"x").is_ok() && s.read_exact(&mut b).is_ok() && b == *b"x" {
            break Ok(start.elapsed());
        }
    };
    let _ = child.kill();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let _ = child.wait();
    let ready = out.lines().find_map(|l| {
        let ms = l.split("ready to serve, ").nth(1)?.split(" ms").next()?;
        ms.parse::<f64>().ok()
    });
    result.map(|t| (t, ready))
}

fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    (v[0], v[v.len() / 2])
}

/// The boot benchmark: `runs` alternating floor and echo launches per
/// machine type. Prints a Markdown table.
pub fn boot(runs: usize) -> Result<(), String> {
    let echo = build_image("echo", true)?;
    let floor = build_image("pvh-floor", true)?;
    println!("| machine | floor: launch→exit min / median (ms) | floor with the echo VM's NIC, min / median (ms) | echo: launch→first TCP echo min / median (ms) | ratio to floor (median) | ratio to floor with NIC (median) | guest entry→ready median (ms) |");
    println!("|---|---|---|---|---|---|---|");
    for machine in [Machine::Microvm, Machine::Pc] {
        let mut fvm = Vm::new(&floor);
        fvm.machine = machine;
        fvm.rng = false;
        let mut fnvm = fvm.clone();
        fnvm.forwards = vec![format!("tcp:127.0.0.1:{}-:7", free_port()).parse()?];
        let (mut ft, mut fnt, mut et, mut ready) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            ft.push(floor_once(&fvm)?.as_secs_f64() * 1e3);
            fnt.push(floor_once(&fnvm)?.as_secs_f64() * 1e3);
            let port = free_port();
            let mut evm = Vm::new(&echo);
            evm.machine = machine;
            evm.rng = false;
            evm.forwards = vec![format!("tcp:127.0.0.1:{port}-:7").parse()?];
            evm.cmdline = "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2".into();
            let (t, r) = echo_once(&evm, port)?;
            et.push(t.as_secs_f64() * 1e3);
            ready.extend(r);
        }
        let (fmin, fmed) = stats(&mut ft);
        let (fnmin, fnmed) = stats(&mut fnt);
        let (emin, emed) = stats(&mut et);
        let (_, rmed) = if ready.is_empty() { (0.0, f64::NAN) } else { stats(&mut ready) };
        println!(
            "| {machine:?} | {fmin:.1} / {fmed:.1} | {fnmin:.1} / {fnmed:.1} | {emin:.1} / {emed:.1} | {:.2}× | {:.2}× | {rmed:.1} |",
            emed / fmed,
            emed / fnmed
        );
    }
    Ok(())
}

/// Stripped sizes of the given images.
pub fn sizes(apps: &[&str]) -> Result<(), String> {
    println!("| image | stripped size (bytes) | KiB |");
    println!("|---|---|---|");
    for app in apps {
        let image = build_image(app, true)?;
        let out = std::env::temp_dir().join(format!("{app}.stripped"));
        let status = Command::new("strip").arg("-o").arg(&out).arg(&image).status().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("strip {} failed", image.display()));
        }
        let len = std::fs::metadata(&out).map_err(|e| e.to_string())?.len();
        println!("| {app} | {len} | {:.1} |", len as f64 / 1024.0);
    }
    Ok(())
}

/// Whether echo boots and answers with `mib` MiB of memory.
fn serves_with(echo: &std::path::Path, machine: Machine, mib: u32) -> bool {
    let port = free_port();
    let mut vm = Vm::new(echo);
    vm.machine = machine;
    vm.memory_mib = mib;
    vm.forwards = vec![format!("tcp:127.0.0.1:{port}-:7").parse().expect("forward")];
    vm.cmdline = "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2".into();
    echo_once(&vm, port).is_ok()
}

/// The smallest `-m` (whole MiB) at which echo boots and serves.
pub fn min_memory() -> Result<(), String> {
    let echo = build_image("echo", true)?;
    println!("| machine | smallest -m that boots and echoes |");
    println!("|---|---|");
    for machine in [Machine::Microvm, Machine::Pc] {
        let found = (1..=64).find(|&m| serves_with(&echo, machine, m));
        match found {
            Some(m) => println!("| {machine:?} | {m} MiB |"),
            None => println!("| {machine:?} | more than 64 MiB |"),
        }
    }
    Ok(())
}
