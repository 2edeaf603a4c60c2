//! Debugging VM images as a user does: `cargo xtask run echo --gdb` driven
//! by a scripted gdb (a breakpoint in echo's `serve` hit by a TCP
//! connection, then `bt`, `info registers`, `next`); vmcheck's deliberate
//! panic, W^X fault and stack overflow, whose console backtraces `cargo
//! xtask symbolize` names; and the CLI's answers to bad input. TCG only.
//! Without QEMU or gdb the tests are ignored (under `CI=true`, failed).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{free_port, workspace, Running};
use xtask::{app_exit_code, build_image, debug_elf, Vm};

type Result = std::result::Result<(), Failed>;

fn check(cond: bool, msg: impl FnOnce() -> String) -> Result {
    if cond {
        Ok(())
    } else {
        Err(msg().into())
    }
}

/// The release images, built once (before any timed part).
fn image(app: &str) -> PathBuf {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    let (echo, vmcheck) = IMAGES.get_or_init(|| {
        (build_image("echo", true).expect("build echo"), build_image("vmcheck", true).expect("build vmcheck"))
    });
    if app == "echo" {
        echo.clone()
    } else {
        vmcheck.clone()
    }
}

/// `cargo xtask ARGS...`, from the workspace.
fn xtask(args: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace()).arg("xtask").args(args).env_remove("RUSTFLAGS");
    cmd
}

fn output(mut cmd: Command, stdin: Option<&[u8]>) -> std::result::Result<Output, Failed> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let mut input = child.stdin.take().ok_or("no stdin")?;
    input.write_all(stdin.unwrap_or_default())?;
    drop(input);
    Ok(child.wait_with_output()?)
}

/// Kills a process group (`cargo xtask run` and its QEMU) when dropped.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).stderr(Stdio::null()).status();
    }
}

/// The 1-based number of the first line of `file` containing `needle`.
fn line_of(file: &str, needle: &str) -> std::result::Result<usize, Failed> {
    let text = std::fs::read_to_string(workspace().join(file))?;
    let n = text.lines().position(|l| l.contains(needle)).ok_or(format!("{file} has no {needle:?}"))?;
    Ok(n + 1)
}

fn gdb_breaks_in_echo_serve() -> Result {
    image("echo");
    let (stub, fwd) = (free_port(), free_port());
    let mut cmd = xtask(&["run", "echo", "--gdb", &stub.to_string(), "--forward", &format!("tcp:127.0.0.1:{fwd}-:7")]);
    cmd.process_group(0);
    let mut vm = Running::start(cmd);
    let _group = Group(vm.pid());
    // The printed command, run as printed, with a script after it.
    let attach = vm.wait_for(" -ex 'target remote 127.0.0.1:", Duration::from_secs(60));
    check(attach.starts_with("gdb -q ") || attach.starts_with("rust-gdb -q "), || format!("printed {attach:?}"))?;
    check(attach.contains(&format!("'target remote 127.0.0.1:{stub}'")), || format!("printed {attach:?}"))?;
    let line = line_of("apps/echo/src/main.rs", "debug!(\"connection from {peer}\");")?;
    let script = format!(
        "{attach} -batch -ex 'break apps/echo/src/main.rs:{line}' -ex continue -ex bt -ex 'info registers' \
         -ex next -ex kill"
    );
    let mut sh = Command::new("sh");
    sh.args(["-c", &script]).current_dir(workspace());
    let mut gdb = Running::start(sh);
    // Connect (and send a line) until the breakpoint stops the VM.
    let addr: SocketAddr = format!("127.0.0.1:{fwd}").parse()?;
    let deadline = Instant::now() + Duration::from_secs(45);
    while !gdb.output().iter().any(|l| l.starts_with("Breakpoint 2, ")) {
        check(Instant::now() < deadline, || format!("no breakpoint hit; gdb: {:#?}", gdb.output()))?;
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = s.write_all(b"hello\n");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let code = gdb.wait_exit(Duration::from_secs(30));
    let out = gdb.output();
    let find = |pred: &dyn Fn(&str) -> bool| out.iter().position(|l| pred(l));
    let dump = || format!("gdb exited {code:?}: {out:#?}");
    // Stopped at the entry of the first 64-bit function, then at the line.
    check(find(&|l| l.starts_with("Temporary breakpoint 1, ") && l.contains("morgana_x86_main")).is_some(), dump)?;
    let hit = find(&|l| l.starts_with("Breakpoint 2, ") && l.contains("echo::serve")).ok_or_else(dump)?;
    check(out[hit].ends_with(&format!("apps/echo/src/main.rs:{line}")), dump)?;
    // bt: the serve frame first, the chain down to the platform's entry.
    let bt = find(&|l| l.starts_with("#0 ") && l.contains("echo::serve")).ok_or_else(dump)?;
    check(out[bt..].iter().any(|l| l.starts_with('#') && l.contains("morgana_x86_main")), dump)?;
    // info registers: RIP where the breakpoint is, long mode with paging.
    let reg = |name: &str| out.iter().find(|l| l.split_whitespace().next() == Some(name)).cloned().unwrap_or_default();
    check(reg("rip").split_whitespace().nth(1).is_some_and(|v| v.starts_with("0x1")), dump)?;
    check(reg("cr0").contains("PG") && reg("efer").contains("LMA"), || {
        format!("cr0 {:?} efer {:?}", reg("cr0"), reg("efer"))
    })?;
    // next: a source line of echo's main.rs after the registers.
    let regs_end = find(&|l| l.starts_with("mxcsr")).ok_or_else(dump)?;
    let stepped = out[regs_end..].iter().any(|l| l.split_once('\t').is_some_and(|(n, _)| n.parse::<usize>().is_ok()));
    check(stepped, dump)?;
    check(!out.iter().any(|l| l.contains("Cannot execute this command")), dump)?;
    // gdb's kill ends QEMU, and xtask reports a clean end.
    let xtask_code = vm.wait_exit(Duration::from_secs(30));
    check(xtask_code == Some(0), || format!("xtask run exited {xtask_code:?}: {:#?}", vm.output()))
}

/// Runs vmcheck's `--check=NAME` to its fatal exit and returns the
/// console (as a log file's text) and `cargo xtask symbolize vmcheck LOG`.
fn fault_trace(name: &str) -> std::result::Result<(String, String), Failed> {
    let mut vm = Vm::new(image("vmcheck"));
    vm.cmdline = format!("--check={name}");
    let mut p = Running::start(vm.command());
    let code = app_exit_code(p.wait_status(Duration::from_secs(30)));
    let console = p.output().join("\n");
    check(code == Some(64), || format!("{name}: exit {code:?}: {console}"))?;
    check(console.contains("morgana: backtrace (") && console.contains("morgana: backtrace ends: "), || {
        console.clone()
    })?;
    let log = std::env::temp_dir().join(format!("morgana-debug-{name}-{}.log", std::process::id()));
    std::fs::write(&log, &console)?;
    let r = output(xtask(&["symbolize", "vmcheck", &log.display().to_string()]), None);
    let _ = std::fs::remove_file(&log);
    let r = r?;
    let named = String::from_utf8_lossy(&r.stdout).into_owned();
    check(r.status.success(), || format!("symbolize: {:?} {}", r.status, String::from_utf8_lossy(&r.stderr)))?;
    // The log comes back whole, the names after it.
    check(named.starts_with(&console), || format!("the log was not copied: {named}"))?;
    Ok((console, named))
}

fn panic_trace_names_the_function() -> Result {
    let (console, named) = fault_trace("panic")?;
    let line = line_of("tests/vmcheck/src/main.rs", "\"panic\" => panic!")?;
    check(console.contains("outermost frame"), || console.clone())?;
    let at = format!("tests/vmcheck/src/main.rs:{line}");
    check(named.lines().any(|l| l.contains(" in vmcheck::serve") && l.ends_with(&at)), || named.clone())?;
    check(named.contains("in core::panicking::panic_fmt"), || named.clone())
}

fn page_fault_trace_names_the_function() -> Result {
    let (console, named) = fault_trace("write-text")?;
    check(console.lines().any(|l| l.trim_start().starts_with("#0 0x") && l.ends_with(" (pc)")), || console.clone())?;
    let line = line_of("backends/x86/src/fault.rs", "write_volatile(target")?;
    let at = format!("morgana_x86::fault::write_to_text at backends/x86/src/fault.rs:{line}");
    // Frame 0 (the faulting write, inlined into write_to_text), then its
    // caller.
    let symbolized = named.lines().skip_while(|l| !l.starts_with("xtask: backtrace, symbolized"));
    let first = symbolized.skip(1).take(2).collect::<Vec<_>>().join("\n");
    check(first.contains(&at), || named.clone())?;
    check(named.lines().any(|l| l.starts_with("  #1 ") && l.contains(" in vmcheck::serve")), || named.clone())?;
    // The same through stdin and --elf.
    let elf = debug_elf("vmcheck", true).display().to_string();
    let r = output(xtask(&["symbolize", "--elf", &elf, "-"]), Some(console.as_bytes()))?;
    check(r.status.success() && String::from_utf8_lossy(&r.stdout) == named, || format!("stdin: {r:?}"))
}

fn stack_overflow_trace_is_bounded() -> Result {
    let (console, named) = fault_trace("stack-overflow")?;
    check(console.contains("morgana: backtrace ends: stopped after 64 frames"), || console.clone())?;
    let recursions = named.lines().filter(|l| l.contains(" in morgana_x86::fault::recurse at ")).count();
    check(recursions >= 60, || named.clone())
}

/// Runs `cargo xtask ARGS` and checks its status and a piece of stderr.
fn refuses(args: &[&str], code: i32, says: &str) -> Result {
    let r = output(xtask(args), None)?;
    let err = String::from_utf8_lossy(&r.stderr);
    check(r.status.code() == Some(code) && err.contains(says), || {
        format!("cargo xtask {args:?}: {:?}, stderr {err:?} (wanted {code} and {says:?})", r.status)
    })?;
    check(!err.contains("panicked"), || format!("cargo xtask {args:?} panicked: {err}"))
}

fn bad_input_is_refused() -> Result {
    image("vmcheck");
    let elf = debug_elf("vmcheck", true).display().to_string();
    let dir = std::env::temp_dir().join(format!("morgana-debug-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = |name: &str, bytes: &[u8]| -> std::result::Result<String, Failed> {
        let p: &Path = &dir.join(name);
        std::fs::write(p, bytes)?;
        Ok(p.display().to_string())
    };
    let plain = file("plain.log", b"booting\nready to serve\n#1 0x1234 but no trace header\n")?;
    let garbage =
        file("garbage.log", &(0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>())?;
    let text = file("not-an-elf", b"hello")?;
    let result = (|| {
        refuses(&["symbolize", "--elf", "/nonexistent/elf", &plain], 2, "/nonexistent/elf")?;
        refuses(&["symbolize", "--elf", &text, &plain], 2, "not an ELF file")?;
        refuses(&["symbolize", "no-such-app", &plain], 2, "no image of no-such-app")?;
        refuses(&["symbolize", "--elf", &elf, "/nonexistent.log"], 2, "/nonexistent.log")?;
        refuses(&["symbolize", "--elf", &elf, &plain, "extra"], 2, "one log file")?;
        refuses(&["symbolize", "--elf"], 2, "--elf needs a file")?;
        refuses(&["symbolize", "--frobnicate"], 2, "unknown option")?;
        refuses(&["symbolize", "--elf", &elf, &plain], 1, "no backtrace")?;
        refuses(&["symbolize", "--elf", &elf, &garbage], 1, "no backtrace")?;
        refuses(&["run", "echo", "--gdb", "0"], 2, "bad --gdb port")?;
        refuses(&["run", "echo", "--gdb", "70000"], 2, "bad --gdb port")?;
        refuses(&["build", "echo", "--gdb"], 2, "--gdb is an option of run")?;
        refuses(&["run", "--gdb"], 2, "the app comes first")
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() {
    let args = Arguments::from_args();
    let qemu = Prereq::program("qemu-system-x86_64", "--version", "qemu-system-x86");
    let gdb = Prereq::program("gdb", "--version", "gdb");
    let binutils = Prereq::program("addr2line", "--version", "binutils");
    let tests = vec![
        prereq::trial("gdb_breaks_in_echo_serve", &[&qemu, &gdb, &binutils], gdb_breaks_in_echo_serve),
        prereq::trial("panic_trace_names_the_function", &[&qemu, &binutils], panic_trace_names_the_function),
        prereq::trial("page_fault_trace_names_the_function", &[&qemu, &binutils], page_fault_trace_names_the_function),
        prereq::trial("stack_overflow_trace_is_bounded", &[&qemu, &binutils], stack_overflow_trace_is_bounded),
        prereq::trial("bad_input_is_refused", &[&binutils], bad_input_is_refused),
    ];
    libtest_mimic::run(&args, tests).exit();
}
