//! The unikernels and their lifecycle: stopped, booting (queries join the
//! boot), running (answered at once), stopped again when idle, when
//! another needs its place (`--max-running`), or when it exits.

use std::net::Ipv4Addr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use morgana::log::{info, warn};
use morgana_dns::Name;

use crate::flags::{Launcher, Spec};
use crate::launcher::{Launch, Names, Runner, Status};

enum State {
    Stopped,
    Booting(Launch, Instant),
    Running(Launch),
}

struct Unit {
    spec: Spec,
    state: State,
    /// The last query for it, start, or traffic on its TAP device: what
    /// idle means.
    last_used: Instant,
    /// The last query for it or start: what `--max-running` orders by
    /// (traffic would count the guests' own start-up chatter, which the
    /// bridge floods to every TAP device).
    last_query: Instant,
    /// TAP byte count when last sampled.
    traffic: u64,
    /// Boots started.
    attempts: u64,
}

/// What became of the boot a query joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Up,
    Pending,
    Failed,
}

/// Limits and where VMs go.
#[derive(Debug, Clone)]
pub struct Limits {
    pub runner: Runner,
    pub gateway: Option<Ipv4Addr>,
    pub idle_stop: Duration,
    pub max_running: usize,
    pub boot_timeout: Duration,
}

pub struct Registry {
    units: Vec<Unit>,
    limits: Limits,
    /// Boots started: TAP devices are `j<pid>-<n>` and domains
    /// `jitsu-<pid>-<n>-<name>`, unique per boot, and per Jitsu.
    boots: u64,
    /// Threads tearing VMs down.
    stopping: Vec<JoinHandle<()>>,
}

/// `name` without its final dot, each character a libvirt or Xen domain
/// name may not hold (anything but letters, digits, `.`, `-`, `_`) as `_`.
fn domain_safe(name: &Name) -> String {
    let text = name.to_string();
    let text = text.strip_suffix('.').unwrap_or(&text);
    // At most 64 characters: a DNS name may have 253, and the domain's
    // console log is named after it (file names end at 255 bytes).
    text.chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect()
}

impl Registry {
    pub fn new(specs: Vec<Spec>, limits: Limits) -> Registry {
        let now = Instant::now();
        let units = specs
            .into_iter()
            .map(|spec| Unit { spec, state: State::Stopped, last_used: now, last_query: now, traffic: 0, attempts: 0 })
            .collect();
        Registry { units, limits, boots: 0, stopping: Vec::new() }
    }

    /// The unikernel named `name`, if any.
    pub fn find(&self, name: &Name) -> Option<usize> {
        self.units.iter().position(|u| &u.spec.name == name)
    }

    /// A query for unit `i`: `Ok(None)` if it is up, else the boot (started
    /// now or already under way) to wait for; `Err` if none can start.
    pub fn demand(&mut self, i: usize) -> Result<Option<u64>, String> {
        self.refresh(i);
        let now = Instant::now();
        self.units[i].last_used = now;
        self.units[i].last_query = now;
        match self.units[i].state {
            State::Running(_) => return Ok(None),
            State::Booting(..) => return Ok(Some(self.units[i].attempts)),
            State::Stopped => {}
        }
        let active = self.units.iter().filter(|u| !matches!(u.state, State::Stopped)).count();
        if active >= self.limits.max_running {
            let lru = (0..self.units.len())
                .filter(|&j| matches!(self.units[j].state, State::Running(_)))
                .min_by_key(|&j| self.units[j].last_query);
            let Some(j) = lru else {
                let why = format!("all {} --max-running places are booting", self.limits.max_running);
                warn!("{}: not booted: {why}", self.units[i].spec.name);
                return Err(why);
            };
            info!(
                "stopping {} (least recently queried) to make way for {} (--max-running {})",
                self.units[j].spec.name, self.units[i].spec.name, self.limits.max_running
            );
            self.stop(j);
        }
        self.boots += 1;
        let (pid, n) = (std::process::id(), self.boots);
        let gateway = self.gateway_for(i);
        let u = &mut self.units[i];
        let names =
            Names { tap: format!("j{pid}-{n}"), domain: format!("jitsu-{pid}-{n}-{}", domain_safe(&u.spec.name)) };
        u.attempts += 1;
        let (name, image, tap) = (&u.spec.name, u.spec.image.display(), &names.tap);
        match self.limits.runner.launcher {
            Launcher::Qemu => info!("booting {name} from {image} on {tap} ({}/{})", u.spec.ip, u.spec.prefix),
            _ => info!("booting {name} from {image} as {} on {tap} ({}/{})", names.domain, u.spec.ip, u.spec.prefix),
        }
        let launch = Launch::start(&u.spec, names, &self.limits.runner, gateway);
        self.units[i].state = State::Booting(launch, now);
        Ok(Some(self.units[i].attempts))
    }

    /// The gateway for unit `i`'s guest: given, and in its subnet.
    fn gateway_for(&self, i: usize) -> Option<Ipv4Addr> {
        let spec = &self.units[i].spec;
        let mask = u32::MAX.checked_shl(32 - spec.prefix as u32).unwrap_or(0);
        self.limits.gateway.filter(|gw| u32::from(*gw) & mask == u32::from(spec.ip) & mask)
    }

    /// Whether the boot `attempt` of unit `i` has come up or failed.
    pub fn outcome(&mut self, i: usize, attempt: u64) -> Outcome {
        self.refresh(i);
        let u = &mut self.units[i];
        match u.state {
            State::Running(_) => {
                (u.last_used, u.last_query) = (Instant::now(), Instant::now());
                Outcome::Up
            }
            State::Booting(..) if u.attempts == attempt => Outcome::Pending,
            // This boot failed, or the VM was stopped (or booted again) since.
            _ => Outcome::Failed,
        }
    }

    /// Moves unit `i` on: a boot that came up, failed or timed out; a VM
    /// that exited.
    fn refresh(&mut self, i: usize) {
        let timeout = self.limits.boot_timeout;
        let u = &mut self.units[i];
        let (status, booted_at) = match &u.state {
            State::Stopped => return,
            State::Booting(l, since) if since.elapsed() > timeout => {
                let why = format!("not ready to serve within {} s{}", timeout.as_secs(), l.console_tail());
                l.fail(&why);
                (Status::Ended(why), Some(*since))
            }
            State::Booting(l, since) => (l.poll(), Some(*since)),
            State::Running(l) => (l.poll(), None),
        };
        match (status, booted_at) {
            (Status::Starting, _) | (Status::Ready, None) => {}
            (Status::Ready, Some(since)) => {
                info!("{} is up at {} ({} ms after the query)", u.spec.name, u.spec.ip, since.elapsed().as_millis());
                if let State::Booting(l, _) = std::mem::replace(&mut u.state, State::Stopped) {
                    u.traffic = l.traffic().unwrap_or(0);
                    (u.last_used, u.last_query) = (Instant::now(), Instant::now());
                    u.state = State::Running(l);
                }
            }
            (Status::Ended(why), Some(_)) => {
                warn!("{}: boot of {} failed: {why}", u.spec.name, u.spec.image.display());
                self.stop(i);
            }
            (Status::Ended(why), None) => {
                let (name, image) = (&u.spec.name, u.spec.image.display());
                warn!("{name} ({image}) stopped by itself: {why}; the next query boots it again");
                self.stop(i);
            }
        }
    }

    /// Stops unit `i` (its QEMU killed and TAP device deleted on a thread).
    fn stop(&mut self, i: usize) {
        match std::mem::replace(&mut self.units[i].state, State::Stopped) {
            State::Booting(l, _) | State::Running(l) => self.stopping.push(l.stop()),
            State::Stopped => {}
        }
        self.stopping.retain(|t| !t.is_finished());
    }

    /// Periodic work: boots that finished, VMs that exited, idle VMs.
    pub fn tick(&mut self) {
        for i in 0..self.units.len() {
            self.refresh(i);
            let idle_stop = self.limits.idle_stop;
            let u = &mut self.units[i];
            let State::Running(l) = &u.state else { continue };
            if let Some(bytes) = l.traffic().filter(|b| *b != u.traffic) {
                u.traffic = bytes;
                u.last_used = Instant::now();
            }
            if u.last_used.elapsed() >= idle_stop {
                info!("stopping {}: idle for {} s", u.spec.name, idle_stop.as_secs());
                self.stop(i);
            }
        }
    }

    /// Stops every VM and waits until they are gone and their TAP devices
    /// deleted.
    pub fn shutdown(&mut self) {
        for i in 0..self.units.len() {
            self.stop(i);
        }
        for t in self.stopping.drain(..) {
            let _ = t.join();
        }
        if !self.limits.runner.workdir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir(&self.limits.runner.workdir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_hold_only_safe_characters() {
        assert_eq!(domain_safe(&Name::parse("www.example.org.", None).unwrap()), "www.example.org");
        let odd = Name::parse("a\\/b.ex_ample.", None).unwrap();
        assert!(domain_safe(&odd).chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)), "{odd}");
        let long = Name::parse(&format!("{0}.{0}.{0}.example.", "a".repeat(63)), None).unwrap();
        assert_eq!(domain_safe(&long), "a".repeat(63) + ".");
    }
}
