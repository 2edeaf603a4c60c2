//! Starting the hosted backend from boot arguments.

use std::fmt;
use std::path::PathBuf;
use std::rc::Rc;
use std::str::FromStr;

use morgana_devices::Entropy;
use morgana_net::{direct, Stack};
use morgana_runtime::{ArgError, Args, Handle};

use crate::sandbox::Sandbox;
use crate::sockets::HostStack;
use crate::tap::TapDevice;
use crate::{FileBlock, HostClock, OsEntropy, Reactor, StdioConsole};

/// Which network stack the process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetChoice {
    /// The host kernel's sockets (`--net=socket`, the default).
    Socket,
    /// Morgana's direct stack over an existing TAP device (`--net=tap:NAME`).
    Tap(String),
}

impl FromStr for NetChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            None if s == "socket" => Ok(NetChoice::Socket),
            Some(("tap", name)) if !name.is_empty() => Ok(NetChoice::Tap(name.into())),
            _ => Err("expected 'socket' or 'tap:NAME'".into()),
        }
    }
}

/// A MAC address written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let mut mac = [0u8; 6];
        if parts.len() != 6 {
            return Err("expected six hex bytes separated by ':'".into());
        }
        for (b, p) in mac.iter_mut().zip(parts) {
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("'{p}' is not a hex byte"))?;
        }
        if mac[0] & 1 != 0 {
            return Err("a multicast address cannot be a station address".into());
        }
        Ok(Mac(mac))
    }
}

const DIRECT_FLAGS: [&str; 7] =
    ["ipv4", "ipv4-gateway", "ipv6", "ipv6-gateway", "tcp-buffer", "tcp-backlog", "udp-buffer"];

/// The hosted backend's boot arguments.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// `--net`.
    pub net: NetChoice,
    /// The direct stack's settings (with `--net=tap:NAME`).
    pub direct: direct::Config,
    /// `--mac`: the direct stack's MAC address (random by default).
    pub mac: Option<Mac>,
    /// `--block`: a file to serve as the block device.
    pub block: Option<PathBuf>,
    /// `--block-read-only`.
    pub block_read_only: bool,
    /// `--sandbox`: a seccomp allow-list once the app has set up.
    pub sandbox: bool,
}

impl BootConfig {
    /// Takes the hosted backend's flags from `args`.
    pub fn from_args(args: &mut Args) -> Result<BootConfig, ArgError> {
        let net = args.value("net", "network: socket (host sockets, default) or tap:NAME (direct stack)")?;
        let net = net.unwrap_or(NetChoice::Socket);
        if net == NetChoice::Socket {
            if let Some(flag) = DIRECT_FLAGS.iter().chain(&["mac"]).find(|f| args.has(f)) {
                return Err(ArgError::Conflict(format!(
                    "--{flag} applies to the direct stack; add --net=tap:NAME to use it"
                )));
            }
        }
        // Parsed either way, so `--help` lists the direct stack's flags; with
        // host sockets they were refused above and the stack is not used, so
        // its defaults (DHCP, even in a build without it) are not checked.
        let direct = direct::Config::parse(args)?;
        if net != NetChoice::Socket {
            direct.check()?;
        }
        let mac = args.value("mac", "MAC address of the direct stack (default: random)")?;
        let block: Option<PathBuf> = args.value("block", "file to use as the block device")?;
        let block_read_only = args.switch("block-read-only", "open the --block file read-only")?;
        if block_read_only && block.is_none() {
            return Err(ArgError::Conflict("--block-read-only needs --block=PATH".into()));
        }
        let sandbox = args.switch(
            "sandbox",
            "once set up, allow only the system calls the devices need (seccomp); any other kills the process",
        )?;
        Ok(BootConfig { net, direct, mac, block, block_read_only, sandbox })
    }
}

/// Why the hosted backend could not start.
#[derive(Debug)]
pub enum BootError {
    /// The network could not be set up.
    Net(String),
    /// The block device file could not be opened.
    Block(PathBuf, std::io::Error),
    /// The OS entropy source failed.
    Entropy,
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Net(msg) => f.write_str(msg),
            BootError::Block(p, e) => write!(f, "cannot open block device file '{}': {e}", p.display()),
            BootError::Entropy => f.write_str("the OS entropy source failed"),
        }
    }
}

impl std::error::Error for BootError {}

/// The hosted backend's devices.
pub struct Devices {
    /// The network stack.
    pub stack: Stack,
    /// Clocks.
    pub clock: HostClock,
    /// Entropy.
    pub entropy: OsEntropy,
    /// The block device, if `--block` was given.
    pub block: Option<FileBlock>,
    /// Stdio.
    pub console: StdioConsole,
}

/// Opens the devices `cfg` asks for and starts the network stack on `rt`.
pub fn start(cfg: BootConfig, reactor: &Rc<Reactor>, rt: &Handle) -> Result<Devices, BootError> {
    let mut entropy = OsEntropy;
    let block = match &cfg.block {
        None => None,
        Some(p) => Some(FileBlock::open(p, cfg.block_read_only).map_err(|e| BootError::Block(p.clone(), e))?),
    };
    if cfg.sandbox {
        crate::sandbox::request(Sandbox { host_sockets: cfg.net == NetChoice::Socket, block: block.is_some() });
    }
    let stack = match cfg.net {
        NetChoice::Socket => Stack::new(Rc::new(HostStack::new(reactor.clone())), rt.clone()),
        NetChoice::Tap(name) => {
            let mut seed = [0u8; 32];
            entropy.fill(&mut seed).map_err(|_| BootError::Entropy)?;
            let mac = match cfg.mac {
                Some(m) => m.0,
                None => {
                    let mut m = [0u8; 6];
                    entropy.fill(&mut m).map_err(|_| BootError::Entropy)?;
                    m[0] = (m[0] & 0xfe) | 0x02; // unicast, locally administered
                    m
                }
            };
            let tap = TapDevice::open(&name, mac, reactor).map_err(|e| BootError::Net(e.to_string()))?;
            direct::start(tap, cfg.direct, seed, rt).0
        }
    };
    let mut console = StdioConsole::new(reactor);
    if cfg.sandbox {
        // Its input thread cannot be started inside the sandbox.
        console.start_reader();
    }
    Ok(Devices { stack, clock: HostClock, entropy, block, console })
}
