//! A Linux TAP device as a [`Net`] device, for the direct stack on a host.
//!
//! The TAP interface must exist already (`ip tuntap add dev NAME mode tap`,
//! which can give it to an unprivileged user); Morgana attaches to it and
//! never creates one, so a typo is an error rather than a new device.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;
use std::task::Context;

use mio::unix::SourceFd;
use morgana_devices::{LinkState, Net, NetCounters, NetStats};

use crate::reactor::{Direction, Reactor, Registration};

const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `struct ifreq` as TUNSETIFF reads it: name, flags, padding to 40 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Why a TAP device could not be opened.
#[derive(Debug)]
pub enum TapError {
    /// The interface name is empty, too long or has odd characters.
    BadName(String),
    /// No interface of that name.
    Missing(String),
    /// The interface exists but is not a TAP device.
    NotTap(String),
    /// The kernel refused to attach.
    Attach(String, io::Error),
}

impl std::fmt::Display for TapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TapError::BadName(n) => write!(f, "'{n}' is not a valid interface name"),
            TapError::Missing(n) => {
                write!(f, "TAP device '{n}' does not exist (create it with: ip tuntap add dev {n} mode tap)")
            }
            TapError::NotTap(n) => write!(f, "interface '{n}' is not a TAP device"),
            TapError::Attach(n, e) if e.raw_os_error() == Some(libc::EPERM) => write!(
                f,
                "cannot attach to TAP device '{n}': permission denied (run as root, or create it with 'ip tuntap add dev {n} mode tap user $USER')"
            ),
            TapError::Attach(n, e) if e.raw_os_error() == Some(libc::EBUSY) => {
                write!(f, "cannot attach to TAP device '{n}': in use by another process")
            }
            TapError::Attach(n, e) => write!(f, "cannot attach to TAP device '{n}': {e}"),
        }
    }
}

impl std::error::Error for TapError {}

/// An attached TAP device.
pub struct TapDevice {
    file: File,
    reg: Registration,
    name: String,
    mac: [u8; 6],
    mtu: usize,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    counters: NetCounters,
}

impl TapDevice {
    /// Attaches to the existing TAP interface `name`. `mac` is the stack's
    /// own address on the link (not the host side's).
    pub fn open(name: &str, mac: [u8; 6], reactor: &Rc<Reactor>) -> Result<TapDevice, TapError> {
        let valid = !name.is_empty()
            && name.len() < libc::IFNAMSIZ
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            return Err(TapError::BadName(name.into()));
        }
        let sys = std::path::Path::new("/sys/class/net").join(name);
        if !sys.exists() {
            return Err(TapError::Missing(name.into()));
        }
        let flags = std::fs::read_to_string(sys.join("tun_flags")).map_err(|_| TapError::NotTap(name.into()))?;
        let flags = i64::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & IFF_TAP as i64 == 0 {
            return Err(TapError::NotTap(name.into()));
        }
        let mtu = std::fs::read_to_string(sys.join("mtu")).ok().and_then(|m| m.trim().parse().ok()).unwrap_or(1500);

        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|e| TapError::Attach(name.into(), e))?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], flags: IFF_TAP | IFF_NO_PI, _pad: [0; 22] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: `file` is an open /dev/net/tun descriptor and `req` is a
        // live, correctly laid out `struct ifreq` that TUNSETIFF reads and
        // writes only within its 40 bytes for the duration of the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(TapError::Attach(name.into(), io::Error::last_os_error()));
        }
        let reg = reactor.register(&mut SourceFd(&file.as_raw_fd())).map_err(|e| TapError::Attach(name.into(), e))?;
        Ok(TapDevice {
            file,
            reg,
            name: name.into(),
            mac,
            mtu,
            rx_buf: vec![0; mtu + 14],
            tx_buf: vec![0; mtu + 14],
            counters: NetCounters::default(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TapDevice {
    fn drop(&mut self) {
        self.reg.deregister(&mut SourceFd(&self.file.as_raw_fd()));
    }
}

/// A frame read from the TAP device.
pub struct TapRx<'a> {
    frame: &'a mut [u8],
}

/// A transmit slot on the TAP device.
pub struct TapTx<'a> {
    file: &'a File,
    buf: &'a mut Vec<u8>,
    counters: &'a NetCounters,
}

impl morgana_devices::RxToken for TapRx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl morgana_devices::TxToken for TapTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let too_big = len > self.buf.len();
        if too_big {
            self.buf.resize(len, 0);
        }
        let r = f(&mut self.buf[..len]);
        // A TAP write either takes the whole frame or fails; a full queue
        // (EAGAIN) drops the frame, as a NIC would.
        match (too_big, (&*self.file).write(&self.buf[..len])) {
            (false, Ok(n)) if n == len => {
                self.counters.sent(len);
            }
            _ => self.counters.tx_dropped(),
        }
        r
    }
}

impl Net for TapDevice {
    type RxToken<'a> = TapRx<'a>;
    type TxToken<'a> = TapTx<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(TapRx<'_>, TapTx<'_>)> {
        let file = &self.file;
        let buf = &mut self.rx_buf;
        loop {
            match self.reg.poll_io(cx, Direction::Read, || (&*file).read(buf)) {
                std::task::Poll::Pending => return None,
                std::task::Poll::Ready(Ok(n)) if n > 0 => {
                    self.counters.received(n);
                    return Some((
                        TapRx { frame: &mut self.rx_buf[..n] },
                        TapTx { file: &self.file, buf: &mut self.tx_buf, counters: &self.counters },
                    ));
                }
                // A zero-length or failed read: count it and try the next.
                std::task::Poll::Ready(_) => self.counters.rx_dropped(),
            }
        }
    }

    fn transmit(&mut self, _cx: &mut Context<'_>) -> Option<TapTx<'_>> {
        Some(TapTx { file: &self.file, buf: &mut self.tx_buf, counters: &self.counters })
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        LinkState::Up
    }

    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn stats(&self) -> NetStats {
        self.counters.stats()
    }
}
