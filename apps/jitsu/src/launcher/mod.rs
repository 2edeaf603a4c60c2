//! Running one unikernel, with one of three launchers: QEMU microvm (TCG)
//! on a TAP device made here ([`qemu`]), a transient libvirt domain
//! ([`libvirt`]) or a Xen domain made with `xl` ([`xl`]). The slow parts
//! (commands, starting the VM, reading its console, watching it) run on
//! threads of their own, so the DNS server never waits for them; the
//! registry polls [`Launch::poll`].

mod libvirt;
mod qemu;
mod xl;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use morgana::log::debug;

use crate::flags::{Launcher, Spec};

/// Console lines kept for the log of a failed boot.
const TAIL: usize = 8;
/// What the framework logs on the guest console once it serves.
const READY: &str = "ready to serve";
/// How often a libvirt or xl guest's console log is read.
const FOLLOW: Duration = Duration::from_millis(50);
/// How often a libvirt or xl domain is checked for being still there
/// (each check runs `virsh` or `xl`).
const CHECK: Duration = Duration::from_millis(500);

/// How and where unikernels run.
#[derive(Debug, Clone)]
pub struct Runner {
    pub launcher: Launcher,
    /// libvirt's connection URI (`virsh -c`).
    pub libvirt_uri: String,
    /// The bridge the guests' network devices are attached to.
    pub bridge: String,
    /// Where the libvirt domain XML and xl configuration files go: a
    /// directory only root can enter ([`private_dir`]).
    pub workdir: PathBuf,
}

/// Makes a new directory `parent/jitsu-PID-RANDOM` that only its owner
/// may enter. It must not exist yet, so nobody else can have placed it
/// (or a symbolic link in it) for Jitsu, which runs as root, to write
/// through.
pub fn private_dir(parent: &std::path::Path, random: u64) -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = parent.join(format!("jitsu-{}-{random:016x}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Writes a new file (never an existing one, nor through a link) in the
/// private work directory.
fn write_new(file: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(file)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))
}

/// What one boot is called on the host.
#[derive(Debug, Clone)]
pub struct Names {
    /// The guest's network device on the host side (the TAP device, or
    /// Xen's vif): where its traffic is counted.
    pub tap: String,
    /// The libvirt or Xen domain.
    pub domain: String,
}

/// Where a launch is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Starting,
    Ready,
    /// It failed to start, or ended (the reason, with the console's last
    /// lines).
    Ended(String),
}

#[derive(Default)]
struct Shared {
    /// QEMU (QEMU launcher).
    child: Option<Child>,
    /// `xl console` (xl launcher).
    console_reader: Option<Child>,
    /// The libvirt or Xen domain was created: `stop` destroys it.
    domain_created: bool,
    /// The watcher found the domain gone (why).
    gone: Option<String>,
    /// The thread watching a libvirt or Xen domain.
    watcher: Option<JoinHandle<()>>,
    ready: bool,
    /// Set by `stop`: the launching thread starts nothing more.
    cancelled: bool,
    /// The TAP device exists and is this side's to delete.
    tap_created: bool,
    error: Option<String>,
    console: VecDeque<String>,
}

/// One start of one unikernel.
pub struct Launch {
    pub names: Names,
    runner: Runner,
    shared: Arc<Mutex<Shared>>,
    /// The thread creating the TAP device or domain and starting the VM.
    thread: JoinHandle<()>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long `ip`, `virsh` or `xl` may take before it is killed: a hung
/// libvirtd must not hold a stop, or Jitsu's own shutdown, for ever.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Runs `cmd` for at most [`COMMAND_LIMIT`]; its standard output, or on
/// failure its error output.
fn run(cmd: &mut Command) -> Result<String, String> {
    run_within(cmd, COMMAND_LIMIT)
}

fn run_within(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let shown = format!("{} {}", cmd.get_program().to_string_lossy(), {
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        args.join(" ")
    });
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    // Read on threads, so a command that writes much cannot stall on a
    // full pipe while this waits for it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut p| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = p.read_to_end(&mut v);
                v
            })
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let start = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{shown}: no answer within {} s; killed", limit.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("{shown}: {e}")),
        }
    };
    let text = |t: Option<JoinHandle<Vec<u8>>>| {
        String::from_utf8_lossy(&t.and_then(|t| t.join().ok()).unwrap_or_default()).into_owned()
    };
    if status.success() {
        Ok(text(out))
    } else {
        Err(format!("{shown}: {}", text(err).trim()))
    }
}

/// A locally administered MAC from the guest's address (unique on the
/// bridge as the addresses are).
fn mac(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// The guest's boot arguments: its address, and no IPv6 unless `args=`
/// asks for some (any `--ipv6` flag): the guest's router solicitations
/// and MLD reports would reach every TAP on the bridge and count as
/// traffic against the idle timer.
fn boot_args(spec: &Spec, gateway: Option<Ipv4Addr>) -> String {
    let mut append = format!("--ipv4={}/{}", spec.ip, spec.prefix);
    if let Some(gw) = gateway {
        append += &format!(" --ipv4-gateway={gw}");
    }
    if !spec.args.split_whitespace().any(|w| w.starts_with("--ipv6")) {
        append += " --ipv6=off";
    }
    if !spec.args.is_empty() {
        append += " ";
        append += &spec.args;
    }
    append
}

impl Launch {
    /// Starts `spec` as `names` (on a thread).
    pub fn start(spec: &Spec, names: Names, runner: &Runner, gateway: Option<Ipv4Addr>) -> Launch {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (spec2, names2, runner2, shared2) = (spec.clone(), names.clone(), runner.clone(), shared.clone());
        let thread = std::thread::spawn(move || {
            let name = spec2.name.to_string();
            let started = match runner2.launcher {
                Launcher::Qemu => {
                    let cmd = qemu::command(&spec2, &names2.tap, gateway);
                    qemu::start(&shared2, cmd, &names2.tap, &runner2.bridge, &name)
                }
                Launcher::Libvirt => libvirt::start(&shared2, &spec2, &names2, &runner2, gateway),
                Launcher::Xl => xl::start(&shared2, &spec2, &names2, &runner2, gateway),
            };
            if let Err(e) = started {
                lock(&shared2).error = Some(e);
            }
        });
        Launch { names, runner: runner.clone(), shared, thread }
    }

    /// Where the launch is; `Ended` once QEMU has exited or the domain is
    /// gone.
    pub fn poll(&self) -> Status {
        let mut s = lock(&self.shared);
        if let Some(e) = s.error.clone().or_else(|| s.gone.clone()) {
            return Status::Ended(with_console(e, &s.console));
        }
        let exited = match s.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(format!("QEMU exited ({status})")),
            Some(Err(e)) => Some(format!("QEMU: {e}")),
            _ => None,
        };
        match exited {
            Some(why) => Status::Ended(with_console(why, &s.console)),
            None if s.ready => Status::Ready,
            None => Status::Starting,
        }
    }

    /// Marks the launch failed (a boot that timed out): its stop then
    /// keeps what a failed boot keeps (libvirt's domain log).
    pub fn fail(&self, why: &str) {
        lock(&self.shared).error.get_or_insert_with(|| why.to_string());
    }

    /// The console's last lines, for a log message.
    pub fn console_tail(&self) -> String {
        with_console(String::new(), &lock(&self.shared).console)
    }

    /// Bytes through the guest's host-side network device both ways, as
    /// the kernel counts them.
    pub fn traffic(&self) -> Option<u64> {
        let stat = |what| {
            let path = format!("/sys/class/net/{}/statistics/{what}", self.names.tap);
            std::fs::read_to_string(path).ok()?.trim().parse::<u64>().ok()
        };
        Some(stat("rx_bytes")? + stat("tx_bytes")?)
    }

    /// Stops the VM (QEMU killed and its TAP device deleted, or the domain
    /// destroyed), on a thread: join it to know it is gone.
    pub fn stop(self) -> JoinHandle<()> {
        lock(&self.shared).cancelled = true;
        std::thread::spawn(move || {
            // Once the launching thread is done, nothing more is started.
            let _ = self.thread.join();
            let watcher = lock(&self.shared).watcher.take();
            if let Some(w) = watcher {
                let _ = w.join();
            }
            match self.runner.launcher {
                Launcher::Qemu => qemu::stop(&self.shared, &self.names.tap),
                Launcher::Libvirt => libvirt::stop(&self.shared, &self.names, &self.runner),
                Launcher::Xl => xl::stop(&self.shared, &self.names, &self.runner),
            }
        })
    }
}

fn with_console(why: String, console: &VecDeque<String>) -> String {
    if console.is_empty() {
        return why;
    }
    let lines: Vec<&str> = console.iter().map(String::as_str).collect();
    format!("{why}; console: {}", lines.join(" | "))
}

/// One line of the guest's console: logged at debug level, kept among the
/// last lines, and the launch is ready when the guest says it serves.
fn console_line(shared: &Mutex<Shared>, name: &str, line: &str) {
    let line = line.trim_end_matches('\r').to_string();
    debug!("{name}| {line}");
    let mut s = lock(shared);
    if line.contains(READY) {
        s.ready = true;
    }
    if s.console.len() == TAIL {
        s.console.pop_front();
    }
    s.console.push_back(line);
}

/// Reads a console stream (QEMU's output, `xl console`) line by line.
fn read_console(shared: &Mutex<Shared>, stream: Box<dyn Read + Send>, name: &str) {
    for line in BufReader::new(stream).lines().map_while(Result::ok) {
        console_line(shared, name, &line);
    }
}

/// The lines appended to a console log file since the last call.
struct Follower {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    fn new(path: PathBuf) -> Follower {
        Follower { path, offset: 0, partial: Vec::new() }
    }

    /// The complete lines written since the last call (none while the
    /// file does not exist yet).
    fn lines(&mut self) -> Vec<String> {
        use std::io::{Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else { return Vec::new() };
        let mut fresh = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut fresh).is_err() {
            return Vec::new();
        }
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| String::from_utf8_lossy(l).into()).collect()
    }
}

/// Watches a libvirt or Xen domain until `stop` or its end: reads its
/// console log (if it has one) and checks with `alive` that the domain is
/// still there; when it is not, says why in `gone`.
fn watch(
    shared: Arc<Mutex<Shared>>,
    name: String,
    console: Option<PathBuf>,
    alive: impl Fn() -> Result<(), String> + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut follower = console.map(Follower::new);
        let checks_every = (CHECK.as_millis() / FOLLOW.as_millis()).max(1) as u64;
        for n in 0u64.. {
            if lock(&shared).cancelled {
                return;
            }
            let ended = if n % checks_every == 0 { alive().err() } else { None };
            // The last words of a guest that ended are read before it is
            // declared gone.
            for line in follower.as_mut().map(Follower::lines).unwrap_or_default() {
                console_line(&shared, &name, &line);
            }
            if let Some(why) = ended {
                lock(&shared).gone = Some(why);
                return;
            }
            std::thread::sleep(FOLLOW);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_dns::Name;

    pub fn spec(args: &str) -> Spec {
        Spec {
            name: Name::parse("www.example.", None).unwrap(),
            image: "dns.elf".into(),
            ip: Ipv4Addr::new(10, 78, 0, 10),
            prefix: 24,
            mem_mib: 64,
            content: None,
            args: args.into(),
        }
    }

    #[test]
    fn guests_get_no_ipv6_unless_their_args_ask() {
        let gw = Some(Ipv4Addr::new(10, 78, 0, 1));
        assert_eq!(boot_args(&spec(""), gw), "--ipv4=10.78.0.10/24 --ipv4-gateway=10.78.0.1 --ipv6=off");
        assert_eq!(boot_args(&spec("--log=debug"), None), "--ipv4=10.78.0.10/24 --ipv6=off --log=debug");
        assert_eq!(boot_args(&spec("--ipv6=slaac"), None), "--ipv4=10.78.0.10/24 --ipv6=slaac");
        assert_eq!(boot_args(&spec("--ipv6 fd00::2/64"), None), "--ipv4=10.78.0.10/24 --ipv6 fd00::2/64");
        assert_eq!(
            boot_args(&spec("--log=info --ipv6-gateway=fe80::1"), None),
            "--ipv4=10.78.0.10/24 --log=info --ipv6-gateway=fe80::1"
        );
    }

    #[test]
    fn console_log_is_followed_line_by_line() {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("jitsu-follow-{}", std::process::id()));
        let mut f = Follower::new(path.clone());
        assert!(f.lines().is_empty(), "no file yet");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"first\r\nsec").unwrap();
        assert_eq!(f.lines(), ["first\r"]);
        file.write_all(b"ond\nready to serve, 3 ms\n").unwrap();
        assert_eq!(f.lines(), ["second", "ready to serve, 3 ms"]);
        assert!(f.lines().is_empty());
        let shared = Mutex::new(Shared::default());
        console_line(&shared, "www", "first\r");
        assert!(!lock(&shared).ready);
        console_line(&shared, "www", "ready to serve, 3 ms");
        assert!(lock(&shared).ready && lock(&shared).console == ["first", "ready to serve, 3 ms"]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn private_dir_is_new_and_only_for_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let random = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let dir = private_dir(&std::env::temp_dir(), random).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        // One placed in advance (by anyone) is refused, not reused.
        let again = private_dir(&std::env::temp_dir(), random).unwrap_err();
        assert!(again.contains("exists"), "{again}");
        let file = dir.join("a.cfg");
        write_new(&file, "x").unwrap();
        assert!(write_new(&file, "y").unwrap_err().contains("exists"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn commands_answer_or_are_killed() {
        assert_eq!(run(Command::new("sh").args(["-c", "echo out; echo err >&2"])).unwrap(), "out\n");
        let e = run(Command::new("sh").args(["-c", "echo why >&2; exit 3"])).unwrap_err();
        assert!(e.ends_with(": why"), "{e}");
        let start = std::time::Instant::now();
        let e = run_within(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(e.contains("no answer within") && start.elapsed() < Duration::from_secs(5), "{e}");
    }
}
