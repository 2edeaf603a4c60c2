//! A unikernel for the VM tests. `--check=NAME` picks what it does:
//!
//! * `blk-write`: writes a pattern over the first 1 MiB of the disk, flushes.
//! * `blk-read`: reads it back and checks it.
//! * `entropy`: prints 32 bytes from the entropy device in hex (and checks
//!   the next 32 differ).
//! * `console`: writes a line to the console device.
//! * `busy-devices`: a 10 ms periodic timer runs for `--seconds` (default 3)
//!   while one task writes and flushes the disk in a loop and another reads
//!   entropy every millisecond; prints how late the timer was and what the
//!   devices did.
//! * `udp-busy`: the same timer while four sockets flood a fifth, which
//!   echoes every datagram back to senders that never read (so its send
//!   buffer fills where the network holds datagrams).
//! * `clock`: logs a line, sleeps `--seconds`, logs another (the test
//!   compares the host's time between them).
//! * `boot-module`: logs the first boot module's length and FNV-1a 64
//!   checksum (QEMU `-initrd FILE`, GRUB `module2`); fails without one.
//! * `aes-gcm`: runs the TLS provider's AES-GCM self-test (NIST vectors,
//!   records against the software suites) and logs which AES-GCM ran
//!   (the CPU's AES-NI engine, or software); fails if anything disagrees.
//!   Then logs how fast the provider's AES-GCM and software seal 4 MiB.
//! * `forbidden-call`: after its first wait, tries to bind a socket and
//!   to read a file (hosted: `--sandbox` must kill it).
//! * `panic`, `panic-after-wait`, `write-text`, `stack-overflow`: deliberate failures.
//!
//! It takes no content archive (`Options::without_content`): a boot
//! module's bytes and the disk are the checks' own.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use core::cell::Cell;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use morgana::log::info;
use morgana::{ArgError, Args, Block, Console, Entropy, Env, Handle, ListenAddr, UdpSocket};

struct Config {
    check: String,
    seconds: u64,
}

fn config(args: &mut Args) -> Result<Config, ArgError> {
    let check = args.value("check", "what to check")?.ok_or(ArgError::MissingValue("check"))?;
    let seconds = args.value("seconds", "how long the timed checks run (default 3)")?.unwrap_or(3);
    Ok(Config { check, seconds })
}

const LEN: usize = 1 << 20;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9) ^ 0xa5) as u8
}

async fn serve(mut env: Env, cfg: Config) -> morgana::Result {
    match cfg.check.as_str() {
        "blk-write" | "blk-read" => {
            let disk = env.block.as_mut().ok_or("no block device")?;
            let info = disk.info();
            info!("disk: {} sectors of {} bytes", info.sectors, info.sector_size);
            if cfg.check == "blk-write" {
                let data: alloc::vec::Vec<u8> = (0..LEN).map(pattern).collect();
                disk.write(0, &data).await?;
                disk.flush().await?;
                info!("blk: wrote and flushed {LEN} bytes");
            } else {
                let mut data = vec![0u8; LEN];
                disk.read(0, &mut data).await?;
                if let Some(i) = (0..LEN).find(|&i| data[i] != pattern(i)) {
                    return Err(alloc::format!("blk: byte {i} differs").into());
                }
                info!("blk: pattern intact ({LEN} bytes)");
            }
        }
        "entropy" => {
            let mut b = [0u8; 32];
            env.entropy.fill(&mut b)?;
            let hex: String = b.iter().map(|x| alloc::format!("{x:02x}")).collect();
            let mut next = [0u8; 32];
            env.entropy.fill(&mut next)?;
            if next == b {
                return Err("entropy: the same 32 bytes twice".into());
            }
            info!("entropy: {hex}");
        }
        "busy-devices" => {
            let rt = env.rt.clone();
            let stop = Rc::new(Cell::new(false));
            let disk = env.block.take().map(|d| rt.spawn(write_and_flush(d, stop.clone())));
            let rng = rt.spawn(read_entropy(env.entropy, stop.clone(), rt.clone()));
            let late = periodic(&rt, Duration::from_secs(cfg.seconds)).await;
            stop.set(true);
            if let Some(disk) = disk {
                let (bytes, flushes) = disk.await?;
                info!("busy: disk: {} KiB written in {flushes} write+flush rounds", bytes / 1024);
            }
            match rng.await {
                Ok(bytes) => info!("busy: entropy: {} KiB read", bytes / 1024),
                Err(e) => info!("busy: entropy: {e}"),
            }
            info!("{late}");
        }
        "udp-busy" => {
            let rt = env.rt.clone();
            let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let srv = env.net.udp_bind(ListenAddr { ip: Some(local), port: 0 })?;
            let to = SocketAddr::new(local, srv.local_addr().port);
            let stop = Rc::new(Cell::new(false));
            for _ in 0..4 {
                let peer = env.net.udp_bind(ListenAddr { ip: Some(local), port: 0 })?;
                rt.spawn(flood(peer, to, stop.clone(), rt.clone()));
            }
            let echoed = Rc::new(Cell::new(0u64));
            rt.spawn(echo(srv, echoed.clone(), rt.clone()));
            let late = periodic(&rt, Duration::from_secs(cfg.seconds)).await;
            stop.set(true);
            info!("busy: udp: {} datagrams echoed", echoed.get());
            info!("{late}");
        }
        "clock" => {
            let start = env.rt.now();
            info!("clock: start");
            env.rt.sleep(Duration::from_secs(cfg.seconds)).await;
            info!(
                "clock: {} s later by the guest's clock ({} ns)",
                cfg.seconds,
                env.rt.now().saturating_since(start).as_nanos()
            );
        }
        "forbidden-call" => {
            // The first wait: a hosted `--sandbox` process is sealed here.
            env.rt.sleep(Duration::from_millis(10)).await;
            match env.net.udp_bind(ListenAddr { ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), port: 0 }) {
                Ok(_) => info!("forbidden-call: a new socket was bound"),
                Err(e) => info!("forbidden-call: no new socket: {e}"),
            }
            // Opening a file is not on any allow-list. (Straight to the
            // system: the framework's file calls refuse inside a sandbox.)
            #[cfg(not(target_os = "none"))]
            let status = std::fs::read_to_string("/proc/self/status").map_err(|e| alloc::format!("{e}"))?;
            #[cfg(target_os = "none")]
            let status = env.read_file("/proc/self/status")?;
            info!("forbidden-call: read {} bytes of /proc/self/status", status.len());
        }
        "console" => {
            env.console.write(b"hello from the console device\n")?;
        }
        "aes-gcm" => {
            let report = morgana_tls::selftest::run();
            info!("aes-gcm: {report}");
            if !report.ok() {
                return Err(alloc::format!("aes-gcm: self-test failed: {report}").into());
            }
            // Sealing speed, 4 MiB in 16 KiB records, by the provider's
            // AES-GCM and by software, in this VM.
            let mut buf = vec![0u8; 4 << 20];
            for (label, software) in [("provider", false), ("software", true)] {
                let start = env.rt.now();
                if !morgana_tls::selftest::seal_records(&mut buf, software) {
                    return Err("aes-gcm: sealing failed".into());
                }
                let ns = env.rt.now().saturating_since(start).as_nanos().max(1);
                info!("aes-gcm: {label} seals {} KiB/s", (4u128 << 20) * 1_000_000_000 / ns / 1024);
            }
        }
        "boot-module" => {
            let module = boot_module().ok_or("boot-module: the loader gave no boot module")?;
            info!("boot-module: {} bytes, fnv1a64 {:016x}", module.len(), fnv1a64(module));
        }
        "panic" => panic!("deliberate panic"),
        "panic-after-wait" => {
            env.rt.sleep(Duration::from_millis(10)).await;
            panic!("deliberate panic after the first wait")
        }
        #[cfg(target_os = "none")]
        "write-text" => morgana::backend::fault::write_to_text(),
        #[cfg(target_os = "none")]
        "stack-overflow" => morgana::backend::fault::overflow_stack(),
        other => return Err(alloc::format!("unknown check '{other}'").into()),
    }
    Ok(())
}

/// The first boot module (VM images only).
fn boot_module() -> Option<&'static [u8]> {
    #[cfg(target_os = "none")]
    return morgana::backend::boot_module();
    #[cfg(not(target_os = "none"))]
    None
}

/// FNV-1a, 64 bits: a checksum the test computes on the host too.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// How late a periodic timer fired.
struct Lateness {
    period: Duration,
    ticks: u32,
    max: Duration,
    /// The tick that was latest.
    worst: u32,
    /// Ticks late by more than a period.
    missed: u32,
    total: Duration,
}

impl core::fmt::Display for Lateness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ms = |d: Duration| alloc::format!("{}.{:03}", d.as_millis(), d.as_micros() % 1000);
        let mean = self.total / self.ticks.max(1);
        write!(
            f,
            "timer: {} ticks of {} ms, late by at most {} ms (tick {}), mean {} ms, {} late by over a period",
            self.ticks,
            self.period.as_millis(),
            ms(self.max),
            self.worst,
            ms(mean),
            self.missed
        )
    }
}

/// Runs a 10 ms periodic timer for `total`, keeping its schedule, and
/// measures how late each tick fires.
async fn periodic(rt: &Handle, total: Duration) -> Lateness {
    let period = Duration::from_millis(10);
    let start = rt.now();
    let end = start + total;
    let mut next = start + period;
    let mut late = Lateness { period, ticks: 0, max: Duration::ZERO, worst: 0, missed: 0, total: Duration::ZERO };
    while next <= end {
        rt.sleep_until(next).await;
        let by = rt.now().saturating_since(next);
        late.ticks += 1;
        if by > late.max {
            late.max = by;
            late.worst = late.ticks;
        }
        if by > period {
            late.missed += 1;
        }
        late.total += by;
        next = next + period;
    }
    late
}

/// Writes 256 KiB and flushes, round after round, across the disk.
async fn write_and_flush(
    mut disk: morgana::BlockDevice,
    stop: Rc<Cell<bool>>,
) -> Result<(u64, u64), morgana::devices::BlockError> {
    let info = disk.info();
    let len = 256 * 1024;
    let data: alloc::vec::Vec<u8> = (0..len).map(pattern).collect();
    let span = (info.sectors / (len / info.sector_size) as u64).max(1);
    let (mut bytes, mut rounds) = (0u64, 0u64);
    while !stop.get() {
        let first = (rounds % span) * (len / info.sector_size) as u64;
        disk.write(first, &data).await?;
        disk.flush().await?;
        bytes += len as u64;
        rounds += 1;
    }
    Ok((bytes, rounds))
}

/// Reads 256 bytes of entropy every millisecond.
async fn read_entropy(
    mut entropy: morgana::EntropyDevice,
    stop: Rc<Cell<bool>>,
    rt: Handle,
) -> Result<u64, morgana::devices::EntropyError> {
    let mut buf = [0u8; 256];
    let mut bytes = 0u64;
    while !stop.get() {
        entropy.fill(&mut buf)?;
        bytes += buf.len() as u64;
        rt.sleep(Duration::from_millis(1)).await;
    }
    Ok(bytes)
}

/// Sends 200-byte datagrams to `to` until stopped; never reads.
async fn flood(mut socket: UdpSocket, to: SocketAddr, stop: Rc<Cell<bool>>, rt: Handle) {
    let data = [0x5au8; 200];
    while !stop.get() {
        let _ = socket.send_to(&data, to).await;
        rt.yield_now().await;
    }
}

/// Echoes every datagram to its sender, letting other tasks run in
/// between (a socket that always has data never makes it wait).
async fn echo(mut socket: UdpSocket, echoed: Rc<Cell<u64>>, rt: Handle) {
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        if socket.send_to(&buf[..n], from).await.is_ok() {
            echoed.set(echoed.get() + 1);
        }
        rt.yield_now().await;
    }
}

// The checks want a boot module's raw bytes and the disk for themselves:
// no content archive is looked for.
morgana::main!(config, serve, morgana::Options::DEFAULT.without_content());
