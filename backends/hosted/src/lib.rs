//! The hosted backend: a Morgana unikernel as an ordinary Linux process.
//!
//! * [`Reactor`]: the executor's [`Platform`](morgana_runtime::Platform),
//!   sleeping in `epoll_wait` (through mio) until a file descriptor is ready
//!   or the next timer is due.
//! * Networking, chosen with `--net`: host sockets ([`sockets::HostStack`],
//!   the default) or the direct smoltcp stack over a Linux TAP device
//!   ([`tap::TapDevice`], `--net=tap:NAME`).
//! * A file-backed [`Block`](morgana_devices::Block) device (`--block=PATH`),
//!   stdio [`Console`](morgana_devices::Console), the system clocks and the
//!   OS entropy source.
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod alloc;
mod block;
mod boot;
mod console;
mod reactor;
mod reload;
pub mod sandbox;
pub mod sockets;
pub mod tap;

pub use block::FileBlock;
pub use boot::{start, BootConfig, BootError, Devices, NetChoice};
pub use console::{StderrSink, StdioConsole};
pub use reactor::Reactor;

use morgana_devices::{Clock, Entropy, EntropyError, Instant, WallTime};

/// The block device type (`--block=PATH`).
pub type BlockDevice = FileBlock;
/// The console type.
pub type ConsoleDevice = StdioConsole;
/// The clock type.
pub type ClockDevice = HostClock;
/// The entropy source type.
pub type EntropyDevice = OsEntropy;

/// The host's clocks: `CLOCK_MONOTONIC` from process start, and the system
/// wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostClock;

static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Monotonic time since the process started.
pub fn monotonic() -> Instant {
    let start = START.get_or_init(std::time::Instant::now);
    Instant::from_nanos(start.elapsed().as_nanos() as u64)
}

impl Clock for HostClock {
    fn now(&self) -> Instant {
        monotonic()
    }

    fn wall(&self) -> Option<WallTime> {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
        Some(WallTime(d.as_nanos() as u64))
    }
}

/// Entropy from the kernel (`getrandom(2)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        getrandom::fill(buf).map_err(|_| EntropyError::Unavailable)
    }
}

/// The process's arguments after the program name.
pub fn args() -> morgana_runtime::Args {
    morgana_runtime::Args::from_words(std::env::args().skip(1))
}

/// The program name for messages (the file name of argv\[0\]).
pub fn program_name(_app: &str) -> String {
    std::env::args()
        .next()
        .and_then(|p| std::path::Path::new(&p).file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "morgana".into())
}

/// Writes `msg` to stderr (no logger needed).
pub fn print_error(msg: &str) {
    eprintln!("{msg}");
}

/// Writes `msg` to stdout.
pub fn print(msg: &str) {
    print!("{msg}");
}

/// Where log lines go.
pub fn log_sink() -> Box<dyn morgana_runtime::logger::LogSink> {
    Box::new(StderrSink)
}

/// The executor platform (and the SIGHUP handler, set up before any
/// sandbox).
pub fn platform() -> std::io::Result<std::rc::Rc<Reactor>> {
    reload::install()?;
    Reactor::new()
}

/// Time since the process started, for "ready" messages.
pub fn since_entry() -> core::time::Duration {
    core::time::Duration::from_nanos(monotonic().as_nanos())
}

/// Reads a text file.
pub fn read_file(path: &str) -> Result<String, String> {
    no_files_in_sandbox()?;
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// When the file was last modified, in nanoseconds since the Unix epoch.
pub fn file_modified(path: &str) -> Result<u64, String> {
    no_files_in_sandbox()?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).map_err(|e| e.to_string())?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).map_err(|e| e.to_string())?;
    Ok(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// Inside the sandbox, file system calls would kill the process: refuse.
fn no_files_in_sandbox() -> Result<(), String> {
    match sandbox::sealed() {
        true => Err("the sandbox allows no file access after start".into()),
        false => Ok(()),
    }
}

pub use reload::reload_requested;

/// Whether the app runs under `--sandbox` (no new sockets or files once
/// it has set up).
pub fn sandboxed() -> bool {
    sandbox::requested()
}

/// Writes a file whole, readable by its owner only: a temporary file
/// renamed over `path`, so a crash leaves the old or the new contents.
/// Parent directories are created (owner only). Not inside the sandbox.
pub fn write_file(path: &str, contents: &[u8]) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    no_files_in_sandbox()?;
    let path = std::path::Path::new(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| e.to_string())?;
    f.write_all(contents).and_then(|()| f.sync_all()).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Reads every file under `dir`: (path relative to `dir` with `/`
/// separators, bytes, modification time in Unix seconds).
pub fn load_dir(dir: &str) -> Result<Vec<morgana_runtime::FileEntry>, String> {
    no_files_in_sandbox()?;
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<morgana_runtime::FileEntry>,
    ) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let path = e.path();
            let meta = std::fs::metadata(&path)?;
            if meta.is_dir() {
                walk(root, &path, out)?;
            } else if meta.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                out.push((rel, std::fs::read(&path)?, modified.map_or(0, |d| d.as_secs())));
            }
        }
        Ok(())
    }
    let root = std::path::Path::new(dir);
    let mut out = Vec::new();
    walk(root, root, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// The boot module holding the content archive: a process has none (give
/// the archive as the block device, `--block=content.tar`).
pub fn boot_module() -> Option<&'static [u8]> {
    None
}

/// The app has set itself up (its first wait): with `--sandbox`, the
/// process now drops to the sandbox's allow-list.
pub fn started() -> Result<(), sandbox::SandboxError> {
    if let Some(s) = sandbox::enter_requested()? {
        let names = s.allowed_names();
        log::info!("sandbox on: {} system calls allowed: {}", names.len(), names.join(", "));
    }
    Ok(())
}

/// Ends the process with `code`.
pub fn exit(code: i32) -> ! {
    if sandbox::sealed() {
        sandbox::exit(code)
    }
    std::process::exit(code)
}
