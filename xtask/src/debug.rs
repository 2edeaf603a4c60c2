//! `cargo xtask run --gdb`: the gdb command that attaches to QEMU's stub,
//! and running QEMU with its console's backtraces symbolized as they come.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::symbolize::{Scanner, Symbolizer};

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The debugger to name: `rust-gdb` (gdb with Rust pretty-printers) if it
/// runs, else `gdb`.
pub fn debugger() -> &'static str {
    let runs = |p: &str| {
        Command::new(p).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
    };
    if runs("rust-gdb") {
        "rust-gdb"
    } else {
        "gdb"
    }
}

/// The command that attaches `gdb` (the program) to the stub on `port`
/// with `elf`'s symbols and runs the VM to the first 64-bit Rust function.
///
/// QEMU stops at the reset vector, before the firmware and the 32-bit PVH
/// entry. gdb is told the architecture is x86-64 from the start (QEMU's
/// stub sends 64-bit registers in every mode), and a temporary hardware
/// breakpoint on the first instruction of `morgana_x86_main` (entered in
/// long mode) stops there with its arguments shown, so no one steps through
/// 32-bit code that gdb would disassemble as 64-bit.
pub fn gdb_command(gdb: &str, elf: &Path, port: u16) -> String {
    let elf = elf.display().to_string();
    let elf = if elf.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
        format!("'{}'", elf.replace('\'', "'\\''"))
    } else {
        elf
    };
    format!(
        "{gdb} -q {elf} -ex 'set architecture i386:x86-64' -ex 'target remote 127.0.0.1:{port}' \
         -ex 'thbreak *morgana_x86_main' -ex continue"
    )
}

/// Runs `qemu` with its console (stdout) passed through, and after each
/// backtrace the console prints, the frames named from `elf`. A missing or
/// bad ELF only costs the names: the run goes on.
pub fn run_symbolized(mut qemu: Command, elf: &Path) -> Result<ExitStatus, String> {
    let sym = Symbolizer::new(elf);
    if let Err(e) = &sym {
        eprintln!("xtask: backtraces will not be symbolized: {e}");
    }
    let mut child = qemu.stdout(Stdio::piped()).spawn().map_err(|e| format!("cannot run qemu-system-x86_64: {e}"))?;
    let mut console = child.stdout.take().ok_or("no QEMU stdout")?;
    let mut out = std::io::stdout();
    let (mut scanner, mut pending, mut buf) = (Scanner::default(), Vec::new(), [0u8; 4096]);
    // The console's lines end in CRLF (QEMU may have the terminal raw).
    let symbolize = |frames: Vec<_>, out: &mut std::io::Stdout| {
        if let Ok(s) = &sym {
            match s.render(&frames) {
                Ok(text) => {
                    let _ = out.write_all(text.replace('\n', "\r\n").as_bytes());
                }
                Err(e) => eprintln!("xtask: cannot symbolize the backtrace: {e}"),
            }
        }
    };
    loop {
        let n = match console.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = out.write_all(&buf[..n]);
        let _ = out.flush();
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(frames) = scanner.line(&String::from_utf8_lossy(&line)) {
                symbolize(frames, &mut out);
            }
        }
    }
    if let Some(frames) = scanner.finish() {
        symbolize(frames, &mut out);
    }
    child.wait().map_err(|e| format!("waiting for QEMU: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_command_quotes_the_path() {
        let c = gdb_command("gdb", Path::new("/w/target/x86_64-unknown-none/release/echo"), 4321);
        assert!(c.starts_with("gdb -q /w/target/x86_64-unknown-none/release/echo "), "{c}");
        assert!(c.contains("-ex 'target remote 127.0.0.1:4321'"), "{c}");
        let c = gdb_command("gdb", Path::new("/my dir/it's"), 1);
        assert!(c.starts_with("gdb -q '/my dir/it'\\''s' "), "{c}");
    }

    #[test]
    fn free_ports_are_nonzero() {
        assert_ne!(free_port().unwrap(), 0);
    }
}
