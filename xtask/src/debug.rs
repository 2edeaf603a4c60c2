//! Running QEMU with its console's backtraces symbolized as they come.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use crate::symbolize::{Scanner, Symbolizer};

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
