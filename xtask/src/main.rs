//! `cargo xtask run APP [options] [-- BOOT ARGUMENTS]`: builds APP as a VM
//! image and runs it under QEMU (user networking, no root), printing the
//! QEMU command first. Exits with the app's exit code. `--initrd FILE`
//! hands FILE to the image as its boot module.
//!
//! `--gdb [PORT]` starts the VM stopped, with QEMU's GDB stub on
//! 127.0.0.1 (PORT, or a free one), and prints the gdb command to attach.
//! Backtraces on the console are followed by their symbolized form.
//!
//! `cargo xtask symbolize [--elf FILE | APP] [LOGFILE|-]`: a saved console
//! log (or stdin) with its backtraces named from the unstripped ELF.
//!
//! `cargo xtask xen-run APP`: the same image as a Xen PVH guest on the nested
//! Xen test host (tests/xen/; needs root the first time, to build it).
//!
//! `cargo xtask image APP -o FILE [--format raw|qcow2|iso|gce|containerdisk]
//! [--content DIR] [-- BOOT ARGUMENTS]`: APP's release image on a disk
//! that boots through GRUB on BIOS and UEFI firmware (see `xtask::image`);
//! `--elf FILE` in place of APP takes a released image, built by no one.
//!
//! `cargo xtask libvirt APP` and `cargo xtask xl APP` print a libvirt domain
//! XML or an `xl` configuration for APP's image (built first).

use std::path::PathBuf;
use std::process::ExitCode;

use morgana_deploy::libvirt::{Boot, Libvirt};

use xtask::{app_exit_code, build_image, render, Forward, Machine, Vm};

const USAGE: &str = "usage: cargo xtask run APP [--machine microvm|pc|q35] [--cpu MODEL] [--memory MIB] \
[--forward PROTO:HOST:PORT-:PORT]... [--disk FILE] [--initrd FILE] [--no-rng] [--debug] [--gdb [PORT]]
                   [-- BOOT ARGUMENTS...]
       cargo xtask build APP [--debug]
       cargo xtask symbolize [--debug] APP|--elf FILE [LOGFILE|-]
       cargo xtask image APP|--elf FILE -o FILE [--format raw|qcow2|iso|gce|containerdisk] [--content DIR]
                   [--size SIZE] [--grub-timeout SECONDS] [-- BOOT ARGUMENTS...]
       cargo xtask bench-vm [RUNS]
       cargo xtask bench-sizes
       cargo xtask bench-dns-vm [RUNS]
       cargo xtask bench-web-vm [--cpu MODEL] [--elf FILE]
       cargo xtask bench-image [RUNS]
       cargo xtask xen-run APP [--disk-mib N] [--seconds N] [-- BOOT ARGUMENTS...]
       cargo xtask bench-xen [RUNS]
       cargo xtask libvirt APP|--elf FILE [--kernel | --disk FILE [--uefi]] [--content FILE] [--memory MIB]
                   [--bridge NAME] [--name NAME] [--tcg] [-- BOOT ARGUMENTS...]
       cargo xtask xl APP|--elf FILE [--content FILE] [--memory MIB] [--bridge NAME] [--name NAME] [-- BOOT ARGUMENTS...]";

fn run(args: &[String]) -> Result<ExitCode, String> {
    let (cmd, rest) = args.split_first().ok_or(USAGE)?;
    if cmd == "bench-xen" {
        let runs = rest.first().map(|r| r.parse().map_err(|_| "bad run count")).transpose()?.unwrap_or(10);
        xtask::xen::sizes(&["echo", "dns", "web"])?;
        println!();
        xtask::xen::bench(runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cmd == "xen-run" {
        let (app, mut rest) = rest.split_first().ok_or(USAGE)?;
        let (mut disk_mib, mut seconds, mut boot_args) = (0, 20, Vec::new());
        while let Some((flag, tail)) = rest.split_first() {
            let value =
                |t: &[String]| t.first().and_then(|v| v.parse::<u32>().ok()).ok_or(format!("{flag} needs a number"));
            match flag.as_str() {
                "--disk-mib" => disk_mib = value(tail)?,
                "--seconds" => seconds = value(tail)?,
                "--" => {
                    boot_args = tail.to_vec();
                    break;
                }
                other => return Err(format!("unknown option {other}\n{USAGE}")),
            }
            rest = &tail[1..];
        }
        let image = build_image(app, true)?;
        xtask::xen::run_image(&image, &boot_args.join(" "), disk_mib, seconds)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cmd == "image" {
        return image(rest);
    }
    if cmd == "symbolize" {
        return symbolize(rest);
    }
    if cmd == "libvirt" || cmd == "xl" {
        return deploy(cmd, rest);
    }
    if cmd == "bench-image" {
        let runs = rest.first().map(|r| r.parse().map_err(|_| "bad run count")).transpose()?.unwrap_or(5);
        xtask::bench::image::run(runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cmd == "bench-web-vm" {
        let (mut cpu, mut elf) = (None, None);
        for pair in rest.chunks(2) {
            match pair {
                [flag, model] if flag == "--cpu" => cpu = Some(model.clone()),
                [flag, file] if flag == "--elf" => elf = Some(PathBuf::from(file)),
                _ => return Err(USAGE.into()),
            }
        }
        xtask::bench::web::run(cpu, elf)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cmd == "bench-dns-vm" {
        let runs = rest.first().map(|r| r.parse().map_err(|_| "bad run count")).transpose()?.unwrap_or(20);
        xtask::bench::dns(runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cmd == "bench-sizes" {
        xtask::bench::sizes::run()?;
        return Ok(ExitCode::SUCCESS);
    }
    if cmd == "bench-vm" {
        let runs = rest.first().map(|r| r.parse().map_err(|_| "bad run count")).transpose()?.unwrap_or(20);
        xtask::bench::sizes(&["pvh-floor", "echo"])?;
        println!();
        xtask::bench::boot(runs)?;
        println!();
        xtask::bench::min_memory()?;
        return Ok(ExitCode::SUCCESS);
    }
    let (app, mut rest) = rest.split_first().ok_or(USAGE)?;
    let mut release = true;
    let mut machine = Machine::Microvm;
    let mut memory = 64;
    let mut cpu = None;
    let mut forwards = Vec::new();
    let mut disk = None;
    let mut initrd = None;
    let mut rng = true;
    let mut gdb = None;
    let mut boot_args = Vec::new();
    while let Some((flag, tail)) = rest.split_first() {
        let mut value = || flag_value(flag, tail, &mut rest);
        match flag.as_str() {
            "--machine" => machine = value()?.parse()?,
            "--memory" => memory = value()?.parse().map_err(|_| "bad --memory")?,
            "--cpu" => cpu = Some(value()?),
            "--forward" => forwards.push(value()?.parse::<Forward>()?),
            "--disk" => disk = Some(value()?.into()),
            "--initrd" => initrd = Some(value()?.into()),
            "--no-rng" => {
                rng = false;
                rest = tail;
            }
            "--debug" => {
                release = false;
                rest = tail;
            }
            // An optional value: a number after --gdb is its port.
            "--gdb" => match tail.first().filter(|v| v.starts_with(|c: char| c.is_ascii_digit())) {
                Some(port) => {
                    gdb = Some(port.parse::<u16>().ok().filter(|&p| p != 0).ok_or("bad --gdb port")?);
                    rest = &tail[1..];
                }
                None => {
                    gdb = Some(xtask::debug::free_port()?);
                    rest = tail;
                }
            },
            "--" => {
                boot_args = tail.to_vec();
                rest = &[];
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if app.starts_with('-') {
        return Err(format!("{cmd}: the app comes first\n{USAGE}"));
    }
    if gdb.is_some() && cmd != "run" {
        return Err("--gdb is an option of run".into());
    }
    let image = build_image(app, release)?;
    match cmd.as_str() {
        "build" => {
            println!("{}", image.display());
            Ok(ExitCode::SUCCESS)
        }
        "run" => {
            let mut vm = Vm::new(&image);
            vm.machine = machine;
            vm.memory_mib = memory;
            vm.cpu = cpu;
            vm.network = true;
            vm.forwards = forwards;
            vm.disk = disk;
            vm.initrd = initrd;
            vm.rng = rng;
            vm.cmdline = boot_args.join(" ");
            vm.gdb = gdb;
            let qemu = vm.command();
            eprintln!("+ {}", render(&qemu));
            let elf = xtask::debug_elf(app, release);
            if let Some(port) = gdb {
                eprintln!("xtask: the VM waits for a debugger on 127.0.0.1:{port}; attach with:");
                eprintln!("{}", xtask::debug::gdb_command(xtask::debug::debugger(), &elf, port));
            }
            let status = xtask::debug::run_symbolized(qemu, &elf)?;
            match app_exit_code(status) {
                Some(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
                // `kill` in gdb ends QEMU with status 0.
                None if gdb.is_some() && status.success() => {
                    eprintln!("xtask: QEMU ended from the debugger");
                    Ok(ExitCode::SUCCESS)
                }
                None => Err(format!("QEMU ended without an exit code from the app ({status})")),
            }
        }
        _ => Err(USAGE.into()),
    }
}

/// The value after `flag` (the head of `tail`); `rest` moves past it.
fn flag_value<'a>(flag: &str, tail: &'a [String], rest: &mut &'a [String]) -> Result<String, String> {
    let (v, t) = tail.split_first().ok_or(format!("{flag} needs a value"))?;
    *rest = t;
    Ok(v.clone())
}

/// The leading `APP` or `--elf FILE` (a released image instead of APP's
/// build: nothing is compiled), and the arguments after it.
fn app_or_elf(args: &[String]) -> Result<(&String, Option<PathBuf>, &[String]), String> {
    let (app, rest) = args.split_first().ok_or(USAGE)?;
    if app != "--elf" {
        return Ok((app, None, rest));
    }
    let (file, rest) = rest.split_first().ok_or("--elf needs a file")?;
    Ok((app, Some(PathBuf::from(file)), rest))
}

/// `cargo xtask symbolize [--debug] APP|--elf FILE [LOGFILE|-]`: the log
/// with each backtrace followed by its named frames. Exit status 1 if the
/// log holds no backtrace.
fn symbolize(args: &[String]) -> Result<ExitCode, String> {
    let (release, args) = match args.split_first() {
        Some((d, rest)) if d == "--debug" => (false, rest),
        _ => (true, args),
    };
    let (app, elf, rest) = app_or_elf(args)?;
    let elf = match elf {
        Some(f) => f,
        None if app.starts_with('-') => return Err(format!("symbolize: unknown option {app}\n{USAGE}")),
        None => {
            let f = xtask::debug_elf(app, release);
            if !f.is_file() {
                return Err(format!(
                    "no image of {app} at {} (build it: cargo xtask build {app}; or pass --elf FILE)",
                    f.display()
                ));
            }
            f
        }
    };
    let sym = xtask::symbolize::Symbolizer::new(&elf)?;
    let (name, bytes) = match rest {
        [] => ("stdin".to_string(), read_stdin()?),
        [f] if f == "-" => ("stdin".to_string(), read_stdin()?),
        [f] => (f.clone(), std::fs::read(f).map_err(|e| format!("{f}: {e}"))?),
        _ => return Err(format!("symbolize takes one log file\n{USAGE}")),
    };
    let log = String::from_utf8_lossy(&bytes);
    let traces = xtask::symbolize::annotate(&log, &sym, &mut std::io::stdout().lock())?;
    if traces == 0 {
        eprintln!("xtask: {name}: no backtrace (no line starting 'morgana: backtrace (')");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|e| format!("reading stdin: {e}"))?;
    Ok(bytes)
}

/// Guest memory UEFI firmware (OVMF) needs to boot.
const UEFI_MIN_MIB: u32 = 128;

/// `cargo xtask libvirt|xl APP ...`: prints the description to stdout.
fn deploy(cmd: &str, args: &[String]) -> Result<ExitCode, String> {
    let (app, elf, mut rest) = app_or_elf(args)?;
    let elf = elf.map(|f| absolute(&f.display().to_string())).transpose()?;
    let default_name = match &elf {
        Some(file) => file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "morgana".into()),
        None => app.clone(),
    };
    let image = || match &elf {
        Some(file) => Ok(file.clone()),
        None => build_image(app, true),
    };
    let xen = cmd == "xl";
    let (mut kernel, mut disk, mut uefi, mut tcg) = (false, None::<PathBuf>, false, false);
    let (mut content, mut memory, mut bridge, mut name, mut boot_args) = (None, None, None, default_name, Vec::new());
    while let Some((flag, tail)) = rest.split_first() {
        let mut value = || flag_value(flag, tail, &mut rest);
        match flag.as_str() {
            "--content" => content = Some(absolute(&value()?)?),
            "--memory" => memory = Some(value()?.parse::<u32>().map_err(|_| "bad --memory")?),
            "--bridge" => bridge = Some(value()?),
            "--name" => name = value()?,
            "--disk" if !xen => disk = Some(absolute(&value()?)?),
            "--kernel" | "--uefi" | "--tcg" if !xen => {
                match flag.as_str() {
                    "--kernel" => kernel = true,
                    "--uefi" => uefi = true,
                    _ => tcg = true,
                }
                rest = tail;
            }
            "--" => {
                boot_args = tail.to_vec();
                rest = &[];
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if kernel && disk.is_some() {
        return Err("--kernel and --disk exclude each other".into());
    }
    if uefi && disk.is_none() {
        return Err("--uefi needs --disk (a direct kernel boot has no firmware choice)".into());
    }
    // OVMF itself needs about 128 MiB (with 32 it faults before GRUB).
    let memory = match (memory, uefi) {
        (Some(m), true) if m < UEFI_MIN_MIB => return Err(format!("--uefi needs --memory {UEFI_MIN_MIB} or more")),
        (Some(m), _) => m,
        (None, true) => UEFI_MIN_MIB,
        (None, false) => 32,
    };
    let cmdline = boot_args.join(" ");
    if cmdline.contains(['"', '\'', '\n']) {
        return Err("boot arguments cannot contain quotes or newlines".into());
    }
    let text = if xen {
        let mut d = xtask::xen::Domain::new(&name, &image()?.display().to_string());
        d.memory_mib = memory;
        d.cmdline = cmdline;
        d.bridge = Some(bridge.unwrap_or_else(|| "xenbr0".into()));
        d.disk = content.map(|c| c.display().to_string());
        d.disk_read_only = true;
        d.check()?;
        d.config()
    } else {
        let boot = match disk {
            Some(file) => Boot::Disk { file, uefi },
            None => Boot::Kernel(image()?),
        };
        let mut d = Libvirt::new(&name, boot);
        (d.content, d.memory_mib, d.bridge, d.tcg, d.cmdline) = (content, memory, bridge, tcg, cmdline);
        d.xml()?
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask image APP -o FILE ...`: checks the options and the
/// output, builds APP, writes the image.
fn image(args: &[String]) -> Result<ExitCode, String> {
    use xtask::image::{Format, Request};
    let (app, elf, mut rest) = app_or_elf(args)?;
    if elf.is_none() && app.starts_with('-') {
        return Err(format!("image: the app (or --elf FILE) comes first\n{USAGE}"));
    }
    let (mut out, mut format, mut content, mut size, mut timeout) = (None, Format::Raw, None, None, 1);
    let mut boot_args = Vec::new();
    while let Some((flag, tail)) = rest.split_first() {
        let mut value = || flag_value(flag, tail, &mut rest);
        match flag.as_str() {
            "-o" | "--output" => out = Some(PathBuf::from(value()?)),
            "--format" => format = value()?.parse()?,
            "--content" => content = Some(PathBuf::from(value()?)),
            "--size" => size = Some(xtask::image::parse_size(&value()?)?),
            "--grub-timeout" => timeout = value()?.parse().map_err(|_| "bad --grub-timeout (seconds)")?,
            "--" => {
                boot_args = tail.to_vec();
                rest = &[];
            }
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let out = out.ok_or(format!("image: -o FILE is needed\n{USAGE}"))?;
    if boot_args.iter().any(|a| a.contains('\n')) {
        return Err("boot arguments cannot contain newlines".into());
    }
    let mut req = Request { image: PathBuf::new(), content, args: boot_args, format, out, size, timeout };
    if let Some(f) = elf.as_ref().filter(|f| !f.is_file()) {
        return Err(format!("--elf {}: no such file", f.display()));
    }
    // Before the build: a typo should not cost a release build.
    xtask::image::check(&req)?;
    req.image = match elf {
        Some(f) => f,
        None => build_image(app, true)?,
    };
    xtask::image::make(&req)?;
    eprintln!("xtask: wrote {}", req.out.display());
    Ok(ExitCode::SUCCESS)
}

/// `p` made absolute (libvirt and xl need absolute paths); it must exist.
fn absolute(p: &str) -> Result<PathBuf, String> {
    std::fs::canonicalize(p).map_err(|e| format!("{p}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}
