//! VM benchmarks: launch-to-first-echo time against the bare PVH floor,
//! image size, and the smallest memory the echo image boots and serves in.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{build_image, Machine, Vm};

pub mod image;
pub mod sizes;
pub mod web;

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

pub(crate) fn stats(v: &mut [f64]) -> (f64, f64) {
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

/// A minimal DNS query for `www.example.com A` with ID `id`.
fn dns_query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    q
}

/// Time from spawning QEMU until a DNS answer arrives through the
/// forwarded UDP port.
fn dns_once(vm: &Vm, port: u16) -> Result<(Duration, Option<f64>), String> {
    dns_once_within(vm, port, Duration::from_secs(20))
}

/// [`dns_once`] with another limit (firmware boots take longer).
pub(crate) fn dns_once_within(vm: &Vm, port: u16, limit: Duration) -> Result<(Duration, Option<f64>), String> {
    let mut cmd = vm.command();
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let mut id = 0u16;
    let result = loop {
        if start.elapsed() > limit {
            break Err(format!("no DNS answer within {limit:?}"));
        }
        id = id.wrapping_add(1);
        // A new source port per try, as a resolver's retries use: QEMU's
        // user network holds packets of one flow while it resolves the
        // guest's MAC, and retries that only after a second.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(3))).map_err(|e| e.to_string())?;
        let _ = sock.send_to(&dns_query(id), ("127.0.0.1", port));
        if let Ok(n) = sock.recv(&mut buf) {
            if n > 12 && buf[2] & 0x80 != 0 {
                break Ok(start.elapsed());
            }
        }
    };
    let _ = child.kill();
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    let _ = child.wait();
    let ready = out.lines().find_map(|l| l.split("ready to serve, ").nth(1)?.split(" ms").next()?.parse::<f64>().ok());
    result.map(|t| (t, ready))
}

/// The DNS VM benchmark: image size, launch→first answer against the floor
/// on microvm, the smallest memory, and queries per second through QEMU's
/// user network with dnsperf.
pub fn dns(runs: usize) -> Result<(), String> {
    sizes(&["dns"])?;
    let image = build_image("dns", true)?;
    let floor = build_image("pvh-floor", true)?;
    let mut fvm = Vm::new(&floor);
    fvm.rng = false;
    let (mut ft, mut dt, mut ready) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        ft.push(floor_once(&fvm)?.as_secs_f64() * 1e3);
        let port = free_port();
        let mut vm = Vm::new(&image);
        vm.rng = false;
        vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
        // DHCP, as deployed: the exchange also tells QEMU's NAT the
        // guest's MAC address before the first query arrives.
        let (t, r) = dns_once(&vm, port)?;
        dt.push(t.as_secs_f64() * 1e3);
        ready.extend(r);
    }
    let (fmin, fmed) = stats(&mut ft);
    let (dmin, dmed) = stats(&mut dt);
    let (_, rmed) = if ready.is_empty() { (0.0, f64::NAN) } else { stats(&mut ready) };
    println!();
    println!("| microvm, {runs} runs | floor: launch→exit min / median (ms) | DNS: launch→first answer min / median (ms) | ratio (median) | guest entry→ready median (ms) |");
    println!("|---|---|---|---|---|");
    println!("| | {fmin:.1} / {fmed:.1} | {dmin:.1} / {dmed:.1} | {:.2}× | {rmed:.1} |", dmed / fmed);

    let serves = |mib: u32| {
        let port = free_port();
        let mut vm = Vm::new(&image);
        vm.memory_mib = mib;
        vm.rng = false;
        vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse().expect("forward")];
        vm.cmdline = "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2".into();
        dns_once(&vm, port).is_ok()
    };
    let min = (1..=64).find(|&m| serves(m));
    println!();
    println!("| smallest -m at which the DNS image boots and answers (microvm) |");
    println!("|---|");
    println!("| {} |", min.map_or("more than 64 MiB".into(), |m| format!("{m} MiB")));

    // Throughput through QEMU's user network (slirp), 10 s of dnsperf, with
    // rate limiting off: all of it comes from one source.
    let port = free_port();
    let mut vm = Vm::new(&image);
    vm.forwards = vec![format!("udp:127.0.0.1:{port}-:53").parse()?];
    vm.cmdline = "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2 --rrl-rate=0".into();
    let mut cmd = vm.command();
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_secs(2));
    let queries = std::env::temp_dir().join("morgana-dns-queries.txt");
    std::fs::write(&queries, "www.example.com A\nexample.com MX\nnothere.example.com A\nmail.example.com AAAA\n")
        .map_err(|e| e.to_string())?;
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-l", "10", "-q", "100", "-d"])
        .arg(&queries)
        .output();
    let _ = child.kill();
    let _ = child.wait();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let qps = text
        .lines()
        .find(|l| l.contains("Queries per second"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("n/a");
    let lost = text.lines().find(|l| l.contains("Queries lost")).map(str::trim).unwrap_or("Queries lost: n/a");
    println!();
    println!("| DNS VM (microvm, TCG) through QEMU user networking, dnsperf 10 s | queries/s |");
    println!("|---|---|");
    println!("| DNS image ({lost}) | {qps} |");
    Ok(())
}

/// Whether `curl` fetches `url` (HTTPS without verification: the image
/// carries the development certificate).
fn fetches(url: &str) -> bool {
    Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "--max-time", "10", "-w", "%{http_code}", url])
        .output()
        .is_ok_and(|o| o.stdout == b"200")
}
