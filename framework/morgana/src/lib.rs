//! Morgana: write a network service once, against abstract devices and a
//! small network API; run it as a Linux process during development, and
//! boot the same crate as a single-address-space VM image.
//!
//! An app is a crate with a config function, an async entry function, and one
//! [`main!`] line:
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! use morgana::{Args, ArgError, Env};
//!
//! struct Config { port: u16 }
//!
//! fn config(args: &mut Args) -> Result<Config, ArgError> {
//!     Ok(Config { port: args.value("port", "port to serve")?.unwrap_or(7) })
//! }
//!
//! async fn serve(env: Env, cfg: Config) -> morgana::Result {
//!     let mut listener = env.net.tcp_listen(cfg.port)?;
//!     loop {
//!         let (stream, _peer) = listener.accept().await?;
//!         env.spawn(async move { /* serve */ drop(stream) });
//!     }
//! }
//!
//! morgana::main!(config, serve);
//! ```
//!
//! The backend (hosted Linux, or the VM platform with virtio or Xen devices)
//! is chosen by the build target, never by the app.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod boot;
mod content;
mod error;
mod scrape;

use core::ops::Deref;

pub use boot::{run, run_with, Options};
pub use content::{Content, ContentError, ContentSource};
pub use error::{Context, Error, Result};
pub use morgana_devices as devices;
pub use morgana_devices::{Block, Clock, Console, Entropy, Instant, WallTime};
pub use morgana_kv as kv;
pub use morgana_kv::KeyValue;
pub use morgana_net as net;
pub use morgana_net::{ListenAddr, Slot, Slots, Stack, TcpListener, TcpStream, UdpSocket};
pub use morgana_runtime::{metrics, ArgError, Args, Elapsed, Handle, JoinHandle};
pub use {embedded_io_async as io, log};

/// The backend the build selected: the hosted one on Linux.
#[cfg(not(target_os = "none"))]
pub use morgana_hosted as backend;
/// The backend the build selected: the VM platform on bare metal.
#[cfg(target_os = "none")]
pub use morgana_vm as backend;

/// The block device type of this build's backend.
pub type BlockDevice = backend::BlockDevice;
/// The console device type of this build's backend.
pub type ConsoleDevice = backend::ConsoleDevice;
/// The clock type of this build's backend.
pub type ClockDevice = backend::ClockDevice;
/// The entropy source type of this build's backend.
pub type EntropyDevice = backend::EntropyDevice;

/// True when the app runs as a Linux process, false in a VM image. For
/// defaults that should differ (an unprivileged port when hosted); never
/// needed to choose devices or stacks.
pub const HOSTED: bool = cfg!(not(target_os = "none"));

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError(pub alloc::string::String);

impl core::fmt::Display for FileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for FileError {}

/// The host's files (hosted only; in a VM image every call fails).
#[derive(Debug, Clone, Copy)]
pub struct Files(());

impl Files {
    /// Reads a text file.
    pub fn read(&self, path: &str) -> core::result::Result<alloc::string::String, FileError> {
        backend::read_file(path).map_err(|e| FileError(alloc::format!("{path}: {e}")))
    }

    /// Writes a file whole (replacing it atomically), readable by its owner
    /// only.
    pub fn write(&self, path: &str, contents: &[u8]) -> core::result::Result<(), FileError> {
        backend::write_file(path, contents).map_err(|e| FileError(alloc::format!("{path}: {e}")))
    }
}

/// What an app is given: its devices and the executor. Dereferences to the
/// executor's [`Handle`] (`env.spawn(..)`, `env.sleep(..)`, `env.now()`).
pub struct Env {
    /// The app's name (its crate name).
    pub name: &'static str,
    /// The network stack.
    pub net: Stack,
    /// The executor.
    pub rt: Handle,
    /// Monotonic and wall-clock time.
    pub clock: ClockDevice,
    /// Unpredictable bytes from a real source.
    pub entropy: EntropyDevice,
    /// The block device, if the machine has one and it does not hold the
    /// content archive.
    pub block: Option<BlockDevice>,
    /// Content given from outside the image (a ustar archive in a boot
    /// module or on the first block device), if any: see [`Content`].
    /// `None` means the app serves what it embeds.
    pub content: Option<Content>,
    /// The console.
    pub console: ConsoleDevice,
}

impl Env {
    /// Reads a text file. Only hosted processes have files; in a VM image
    /// this fails (embed data at build time instead).
    pub fn read_file(&self, path: &str) -> core::result::Result<alloc::string::String, FileError> {
        backend::read_file(path).map_err(|e| FileError(alloc::format!("{path}: {e}")))
    }

    /// When a file was last modified (nanoseconds since the Unix epoch),
    /// to notice changes. Hosted only, and not inside `--sandbox`.
    pub fn file_modified(&self, path: &str) -> core::result::Result<u64, FileError> {
        backend::file_modified(path).map_err(|e| FileError(alloc::format!("{path}: {e}")))
    }

    /// Whether the process runs under `--sandbox` (hosted): once the app
    /// has set up (its first wait), it can open no new sockets or files.
    pub fn sandboxed(&self) -> bool {
        backend::sandboxed()
    }

    /// Whether the operator asked the app to reload its files since the
    /// last call (SIGHUP to a hosted process; never in a VM image).
    pub fn reload_requested(&self) -> bool {
        backend::reload_requested()
    }
}

impl Env {
    /// The host's files, as a handle a task can keep.
    pub fn files(&self) -> Files {
        Files(())
    }

    /// Reads every file under a directory: (relative path with `/`
    /// separators, bytes, modification time in Unix seconds). Hosted only.
    pub fn load_dir(&self, path: &str) -> core::result::Result<alloc::vec::Vec<morgana_runtime::FileEntry>, FileError> {
        backend::load_dir(path).map_err(|e| FileError(alloc::format!("{path}: {e}")))
    }
}

impl Deref for Env {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.rt
    }
}

/// Declares an app's entry point: `morgana::main!(config, serve);` where
/// `config: fn(&mut Args) -> Result<C, ArgError>` takes the app's flags and
/// `serve: async fn(Env, C) -> morgana::Result`. Expands to the entry point
/// of whichever backend the build targets. A third argument gives
/// [`Options`], e.g. `morgana::main!(config, serve,
/// morgana::Options::DEFAULT.without_content());`.
#[macro_export]
macro_rules! main {
    ($config:path, $main:path) => {
        $crate::main!($config, $main, $crate::Options::DEFAULT);
    };
    ($config:path, $main:path, $options:expr) => {
        #[cfg(not(target_os = "none"))]
        fn main() {
            $crate::run_with(env!("CARGO_PKG_NAME"), $options, $config, $main)
        }

        /// The VM platform calls this once it has set up the machine.
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        pub extern "Rust" fn morgana_app_main() -> ! {
            $crate::run_with(env!("CARGO_PKG_NAME"), $options, $config, $main)
        }
    };
}
