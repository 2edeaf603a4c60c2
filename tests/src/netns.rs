//! Network namespaces: with a TAP device, for testing the direct stack over
//! a real Linux interface, or empty, for shaping loopback traffic. Needs
//! root (CAP_NET_ADMIN) and iproute2.

use std::process::{Command, Stdio};

use crate::prereq::Prereq;

/// What namespaces need: root and iproute2's `ip`.
pub fn prerequisites() -> [Prereq; 2] {
    [Prereq::root(), Prereq::program("ip", "-V", "iproute2")]
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// An empty network namespace with its loopback up; deleted on drop.
pub struct Namespace {
    /// Namespace name.
    pub name: String,
}

impl Namespace {
    /// Creates the namespace `morgana-TAG-PID`.
    pub fn create(tag: &str) -> Namespace {
        let name = format!("morgana-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        ip(&["netns", "add", &name]);
        let ns = Namespace { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `args` inside the namespace; panics if it fails.
    pub fn exec_ok(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// The arguments that run a program inside the namespace
    /// (`ip netns exec NAME`), to put before the program and its own.
    pub fn exec_prefix(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.name]
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A namespace holding a TAP device `tap` with the host side at
/// `10.77.0.1/24` and `fd77::1/64`; deleted on drop.
pub struct TapNamespace {
    /// Namespace name.
    pub name: String,
    /// TAP device name.
    pub tap: String,
}

impl TapNamespace {
    /// Creates the namespace and the TAP device in it.
    pub fn create(tag: &str) -> TapNamespace {
        let name = format!("morgana-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        ip(&["netns", "add", &name]);
        let ns = TapNamespace { name, tap: "mtap0".into() };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns.exec_ok(&["ip", "tuntap", "add", "dev", "mtap0", "mode", "tap"]);
        ns.exec_ok(&["ip", "addr", "add", "10.77.0.1/24", "dev", "mtap0"]);
        ns.exec_ok(&["ip", "-6", "addr", "add", "fd77::1/64", "dev", "mtap0", "nodad"]);
        ns.exec_ok(&["ip", "link", "set", "mtap0", "up"]);
        ns
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    fn exec_ok(&self, args: &[&str]) {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }
}

impl Drop for TapNamespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
