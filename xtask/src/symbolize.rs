//! Naming the frames of a VM image's backtrace (`cargo xtask symbolize`,
//! and live in `cargo xtask run`).
//!
//! The platform prints a panic's or CPU exception's trace as
//!
//! ```text
//! morgana: backtrace (cargo xtask symbolize names the frames):
//!   #0 0x000000000010a2b3 (pc)
//!   #1 0x000000000010c0de
//! morgana: backtrace ends: outermost frame
//! ```
//!
//! `(pc)` marks the faulting instruction; every other address is a return
//! address, looked up one byte earlier (in the call instruction). Names,
//! files and lines come from binutils' `addr2line` (with inlined frames and
//! Rust demangling) on the unstripped ELF: binutils is already on any
//! machine that links Rust for Linux, so no crate or tool is added.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The line that starts a trace.
const HEADER: &str = "morgana: backtrace (";
/// The line that ends one.
const FOOTER: &str = "morgana: backtrace ends";

/// One frame of a printed trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Its number, `#N`.
    pub index: u32,
    /// The address printed.
    pub addr: u64,
    /// The faulting instruction itself rather than a return address.
    pub pc: bool,
}

impl Frame {
    /// The address to look up: a return address points after its call.
    pub fn lookup(&self) -> u64 {
        if self.pc {
            self.addr
        } else {
            self.addr.saturating_sub(1)
        }
    }
}

/// Parses a frame line, `#N 0xADDR` with an optional ` (pc)`, after any
/// prefix a log may add (indentation, `\r`, a test harness's `| `).
pub fn parse_frame(line: &str) -> Option<Frame> {
    let line = line.trim_end();
    let (_, rest) = line.split_once('#')?;
    let (index, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("0x")?;
    let (hex, pc) = match rest.strip_suffix(" (pc)") {
        Some(h) => (h, true),
        None => (rest, false),
    };
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    Some(Frame { index: index.parse().ok()?, addr: u64::from_str_radix(hex, 16).ok()?, pc })
}

/// Finds traces in a console log, line by line.
#[derive(Debug, Default)]
pub struct Scanner {
    inside: bool,
    frames: Vec<Frame>,
}

impl Scanner {
    /// Feeds one line; returns a trace's frames when it is complete (its
    /// last line, or the first other line after its frames: a log cut off
    /// mid-trace still gets what it has).
    pub fn line(&mut self, line: &str) -> Option<Vec<Frame>> {
        if line.contains(HEADER) {
            let done = self.take();
            self.inside = true;
            return done;
        }
        if !self.inside {
            return None;
        }
        match parse_frame(line) {
            Some(f) if !line.contains(FOOTER) => {
                self.frames.push(f);
                None
            }
            _ => self.take(),
        }
    }

    /// The end of the log: a trace still open is complete.
    pub fn finish(&mut self) -> Option<Vec<Frame>> {
        self.take()
    }

    fn take(&mut self) -> Option<Vec<Frame>> {
        self.inside = false;
        let frames = std::mem::take(&mut self.frames);
        (!frames.is_empty()).then_some(frames)
    }
}

/// One source location: a function and `file:line` (`??` when unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The demangled function name.
    pub function: String,
    /// `file:line`.
    pub place: String,
}

/// Parses `addr2line -a -f -i` output: per address its line `0x...`, then
/// pairs of function and `file:line`, innermost (inlined) first.
pub fn parse_addr2line(out: &str) -> Vec<Vec<Location>> {
    let mut result: Vec<Vec<Location>> = Vec::new();
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("0x") && u64::from_str_radix(&l[2..], 16).is_ok() {
            result.push(Vec::new());
            continue;
        }
        let place = lines.next().unwrap_or("??:0");
        if let Some(last) = result.last_mut() {
            last.push(Location { function: l.to_string(), place: place.to_string() });
        }
    }
    result
}

/// Looks addresses up in an unstripped ELF.
#[derive(Debug, Clone)]
pub struct Symbolizer {
    elf: PathBuf,
    /// Prefix to drop from file names (the workspace).
    root: String,
}

impl Symbolizer {
    /// A symbolizer for `elf`, which must exist and be an ELF file.
    pub fn new(elf: &Path) -> Result<Symbolizer, String> {
        let mut magic = [0u8; 4];
        let mut f = std::fs::File::open(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
        std::io::Read::read_exact(&mut f, &mut magic).map_err(|_| format!("{}: not an ELF file", elf.display()))?;
        if &magic != b"\x7fELF" {
            return Err(format!("{}: not an ELF file", elf.display()));
        }
        let root = format!("{}/", crate::workspace().display());
        Ok(Symbolizer { elf: elf.to_path_buf(), root })
    }

    /// The locations of each frame, in order (one `addr2line` run).
    pub fn lookup(&self, frames: &[Frame]) -> Result<Vec<Vec<Location>>, String> {
        let out = Command::new("addr2line")
            .args(["-a", "-f", "-i", "-C", "-e"])
            .arg(&self.elf)
            .args(frames.iter().map(|f| format!("{:#x}", f.lookup())))
            .output()
            .map_err(|e| format!("cannot run addr2line (apt-get install binutils): {e}"))?;
        if !out.status.success() {
            return Err(format!("addr2line failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        let found = parse_addr2line(&String::from_utf8_lossy(&out.stdout));
        if found.len() != frames.len() {
            return Err(format!("addr2line answered for {} of {} addresses", found.len(), frames.len()));
        }
        Ok(found)
    }

    /// The trace as text, one frame per line with its inlined callers
    /// below it.
    pub fn render(&self, frames: &[Frame]) -> Result<String, String> {
        let mut out = format!("xtask: backtrace, symbolized with {}:\n", self.elf.display());
        for (f, locs) in frames.iter().zip(self.lookup(frames)?) {
            for (i, loc) in locs.iter().enumerate() {
                let place = loc.place.strip_prefix(&self.root).unwrap_or(&loc.place);
                if i == 0 {
                    out.push_str(&format!("  #{:<2} {:#018x} in {} at {place}\n", f.index, f.addr, loc.function));
                } else {
                    out.push_str(&format!("      {:18} inlined into {} at {place}\n", "", loc.function));
                }
            }
        }
        Ok(out)
    }
}

/// Copies a console log to `out`, adding the symbolized form of each trace
/// after it. Returns the number of traces.
pub fn annotate(log: &str, sym: &Symbolizer, out: &mut impl Write) -> Result<usize, String> {
    let mut scanner = Scanner::default();
    let mut traces = 0;
    let io = |e: std::io::Error| format!("writing the output: {e}");
    for line in log.lines() {
        let done = scanner.line(line);
        writeln!(out, "{line}").map_err(io)?;
        if let Some(frames) = done {
            out.write_all(sym.render(&frames)?.as_bytes()).map_err(io)?;
            traces += 1;
        }
    }
    if let Some(frames) = scanner.finish() {
        out.write_all(sym.render(&frames)?.as_bytes()).map_err(io)?;
        traces += 1;
    }
    Ok(traces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines_parse() {
        assert_eq!(parse_frame("  #0 0x000000000010a2b3 (pc)"), Some(Frame { index: 0, addr: 0x10a2b3, pc: true }));
        assert_eq!(parse_frame("  #12 0x10c0de\r"), Some(Frame { index: 12, addr: 0x10c0de, pc: false }));
        assert_eq!(parse_frame("  |   #3 0x10c0de"), Some(Frame { index: 3, addr: 0x10c0de, pc: false }));
        assert_eq!(Frame { index: 1, addr: 0x1000, pc: false }.lookup(), 0xfff);
        assert_eq!(Frame { index: 0, addr: 0x1000, pc: true }.lookup(), 0x1000);
        for bad in [
            "",
            "#",
            "#1",
            "#1 10c0de",
            "#x 0x10",
            "#1 0x",
            "#1 0xzz",
            "#1 0x10 trailing",
            "#1 0x11112222333344445",
            "# 0x10",
            "#-1 0x10",
        ] {
            assert_eq!(parse_frame(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scanner_finds_traces_and_ignores_the_rest() {
        let log = "booting\n#1 0x10 outside a trace\nmorgana: panic: oops\nmorgana: backtrace (x):\n  #0 0x1000 (pc)\n  #1 0x2000\nmorgana: backtrace ends: outermost frame\nafter\n";
        let mut s = Scanner::default();
        let traces: Vec<_> = log.lines().filter_map(|l| s.line(l)).collect();
        assert_eq!(s.finish(), None);
        assert_eq!(
            traces,
            vec![vec![Frame { index: 0, addr: 0x1000, pc: true }, Frame { index: 1, addr: 0x2000, pc: false }]]
        );
        // A log cut off inside a trace, and a header with no frames.
        let mut s = Scanner::default();
        assert_eq!(s.line("morgana: backtrace (x):"), None);
        assert_eq!(s.line("morgana: backtrace (x):"), None);
        assert_eq!(s.line("  #1 0x2000"), None);
        assert_eq!(s.finish(), Some(vec![Frame { index: 1, addr: 0x2000, pc: false }]));
    }

    #[test]
    fn addr2line_output_parses() {
        let out = "0x000000000010a2b2\ninner\n/w/a.rs:3\nouter\n/w/b.rs:9\n0x0000000000000010\n??\n??:0\n";
        let locs = parse_addr2line(out);
        assert_eq!(locs.len(), 2);
        assert_eq!(locs[0].len(), 2);
        assert_eq!(locs[0][1], Location { function: "outer".into(), place: "/w/b.rs:9".into() });
        assert_eq!(locs[1], vec![Location { function: "??".into(), place: "??:0".into() }]);
        assert!(parse_addr2line("").is_empty());
    }

    #[test]
    fn non_elf_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-sym-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("not-elf");
        std::fs::write(&text, "hello").unwrap();
        assert!(Symbolizer::new(&text).unwrap_err().contains("not an ELF file"));
        std::fs::write(&text, "").unwrap();
        assert!(Symbolizer::new(&text).unwrap_err().contains("not an ELF file"));
        assert!(Symbolizer::new(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
