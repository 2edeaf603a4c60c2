//! Jitsu's flags: where to listen, the zones, the unikernels and how to
//! run them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use morgana::{ArgError, Args, ListenAddr};
use morgana_dns::{Name, ZoneFile};

/// `--listen`: `ADDR:PORT`, `[V6]:PORT` or `:PORT` (all addresses).
#[derive(Debug, Clone, Copy)]
pub struct Listen(pub ListenAddr);

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse().map(Listen)
    }
}

/// `--unikernel NAME=IMAGE,ip=ADDR[/LEN][,mem=MIB][,content=FILE][,args="…"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The name whose A query boots it (absolute).
    pub name: Name,
    /// The VM image (PVH ELF), booted with `-kernel`.
    pub image: PathBuf,
    /// The guest's address and prefix length (default /24).
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// Guest memory, MiB (default 64).
    pub mem_mib: u32,
    /// A content archive given as the boot module (`-initrd`).
    pub content: Option<PathBuf>,
    /// More boot arguments, after Jitsu's `--ipv4` ones.
    pub args: String,
}

/// Splits at commas outside double quotes.
fn split_fields(s: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl FromStr for Spec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut fields = split_fields(s).into_iter();
        let head = fields.next().unwrap_or_default();
        let (name, image) = head.split_once('=').ok_or("expected NAME=IMAGE,ip=ADDR[,...]")?;
        let name = Name::parse(name, Some(&Name::root())).map_err(|e| format!("bad name '{name}': {e}"))?;
        if image.is_empty() {
            return Err(String::from("empty image path"));
        }
        let mut spec = Spec {
            name,
            image: image.into(),
            ip: Ipv4Addr::UNSPECIFIED,
            prefix: 24,
            mem_mib: 64,
            content: None,
            args: String::new(),
        };
        let mut have_ip = false;
        for field in fields {
            let (key, value) = field.split_once('=').ok_or_else(|| format!("'{field}': expected KEY=VALUE"))?;
            match key {
                "ip" => {
                    let (addr, len) = value.split_once('/').unwrap_or((value, "24"));
                    spec.ip = addr.parse().map_err(|_| format!("ip: '{addr}' is not an IPv4 address"))?;
                    spec.prefix = len
                        .parse()
                        .ok()
                        .filter(|l| *l <= 32)
                        .ok_or_else(|| format!("ip: bad prefix length '{len}'"))?;
                    have_ip = true;
                }
                "mem" => {
                    spec.mem_mib = value.parse().ok().filter(|m| *m > 0).ok_or("mem: expected MiB, e.g. mem=32")?
                }
                "content" => spec.content = Some(value.into()),
                "args" => spec.args = value.trim_matches('"').into(),
                _ => return Err(format!("unknown key '{key}' (expected ip, mem, content, args)")),
            }
        }
        if !have_ip {
            return Err(String::from("ip=ADDR is required (the address the name answers with)"));
        }
        Ok(spec)
    }
}

/// How unikernels are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// QEMU microvm under TCG, on a TAP device on the bridge.
    Qemu,
    /// A transient libvirt domain (QEMU, TCG) with its NIC on the bridge.
    Libvirt,
    /// A Xen PVH domain made with `xl`, its vif on the bridge.
    Xl,
}

impl Launcher {
    /// The program it needs, and the Debian package that has it.
    fn program(self) -> (&'static str, &'static str) {
        match self {
            Launcher::Qemu => ("qemu-system-x86_64", "qemu-system-x86"),
            Launcher::Libvirt => ("virsh", "libvirt-clients"),
            Launcher::Xl => ("xl", "xen-utils"),
        }
    }
}

impl FromStr for Launcher {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "qemu" => Ok(Launcher::Qemu),
            "libvirt" => Ok(Launcher::Libvirt),
            "xl" => Ok(Launcher::Xl),
            _ => Err(String::from("expected qemu, libvirt or xl")),
        }
    }
}

/// Whether `program` is an executable file in one of the `path`
/// directories (`$PATH`).
fn on_path(program: &str, path: &std::ffi::OsStr) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path).any(|dir| {
        std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Everything Jitsu was told.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Listen>,
    pub zones: Vec<ZoneFile>,
    pub unikernels: Vec<Spec>,
    pub bridge: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub launcher: Launcher,
    /// libvirt's connection URI (`--libvirt-uri`).
    pub libvirt_uri: String,
    pub idle_stop: Duration,
    pub max_running: usize,
    pub boot_timeout: Duration,
}

fn invalid(flag: &'static str, value: impl Into<String>, reason: impl Into<String>) -> ArgError {
    ArgError::Invalid { flag, value: value.into(), reason: reason.into() }
}

pub fn config(args: &mut Args) -> Result<Config, ArgError> {
    let mut listen: Vec<Listen> =
        args.values("listen", "address to serve DNS on (UDP and TCP), ADDR:PORT or :PORT (repeatable)")?;
    if listen.is_empty() {
        listen.push(Listen(SocketAddr::from(([127, 0, 0, 1], 5353)).into()));
    }
    let zones: Vec<ZoneFile> = args.values("zone", "ORIGIN=PATH: serve this zone file (repeatable)")?;
    let unikernels: Vec<Spec> = args.values(
        "unikernel",
        "NAME=IMAGE,ip=ADDR[/LEN][,mem=MIB][,content=FILE][,args=\"...\"]: boot IMAGE when NAME is looked up (repeatable)",
    )?;
    let bridge: Option<String> = args.value("bridge", "bridge the unikernels' TAP devices are attached to")?;
    let gateway = args.value("gateway", "the guests' IPv4 gateway (default: the bridge's address in their subnet)")?;
    let launcher: Option<Launcher> =
        args.value("launcher", "how unikernels run: qemu (default, QEMU microvm), libvirt or xl (Xen)")?;
    let libvirt_uri: Option<String> =
        args.value("libvirt-uri", "libvirt connection URI for --launcher libvirt (default qemu:///system)")?;
    let idle: Option<u64> = args.value("idle-stop", "stop a unikernel after this many idle seconds (default 60)")?;
    let max_running: Option<usize> = args.value("max-running", "unikernels running at once (default 16)")?;
    let boot_timeout: Option<u64> =
        args.value("boot-timeout", "seconds a boot may take before it counts as failed (default 30)")?;
    if zones.is_empty() {
        return Err(ArgError::Conflict("at least one --zone ORIGIN=PATH is needed".into()));
    }
    for (i, u) in unikernels.iter().enumerate() {
        let shown = || format!("{}={}", u.name, u.image.display());
        if !u.image.is_file() {
            return Err(invalid("unikernel", shown(), format!("image {}: no such file", u.image.display())));
        }
        if let Some(c) = u.content.as_ref().filter(|c| !c.is_file()) {
            return Err(invalid("unikernel", shown(), format!("content {}: no such file", c.display())));
        }
        if !zones.iter().any(|z| u.name.is_within(&z.origin)) {
            return Err(invalid("unikernel", shown(), "the name is in none of the --zone zones"));
        }
        if unikernels[..i].iter().any(|o| o.name == u.name || o.ip == u.ip) {
            return Err(invalid("unikernel", shown(), "another --unikernel has this name or address"));
        }
    }
    if !unikernels.is_empty() && bridge.is_none() {
        return Err(ArgError::Conflict("--unikernel needs --bridge BR (where their TAP devices go)".into()));
    }
    let idle_stop = Duration::from_secs(idle.unwrap_or(60));
    if idle_stop.is_zero() {
        return Err(invalid("idle-stop", "0", "at least 1 second"));
    }
    let max_running = max_running.unwrap_or(16);
    if max_running == 0 {
        return Err(invalid("max-running", "0", "at least 1"));
    }
    let boot_timeout = Duration::from_secs(boot_timeout.unwrap_or(30).max(1));
    let launcher = launcher.unwrap_or(Launcher::Qemu);
    if libvirt_uri.is_some() && launcher != Launcher::Libvirt {
        return Err(ArgError::Conflict("--libvirt-uri is for --launcher libvirt".into()));
    }
    let (program, package) = launcher.program();
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !unikernels.is_empty() && !on_path(program, &path) {
        return Err(invalid(
            "launcher",
            format!("{launcher:?}").to_lowercase(),
            format!("{program} is not installed (apt-get install {package}), or not on PATH"),
        ));
    }
    let libvirt_uri = libvirt_uri.unwrap_or_else(|| "qemu:///system".into());
    Ok(Config {
        listen,
        zones,
        unikernels,
        bridge,
        gateway,
        launcher,
        libvirt_uri,
        idle_stop,
        max_running,
        boot_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unikernel_specs() {
        let s: Spec =
            "www.example.org=/srv/dns,ip=10.0.0.5,mem=32,content=/srv/c.tar,args=\"--a=1, --b\"".parse().unwrap();
        assert_eq!(s.name, Name::parse("www.example.org.", None).unwrap());
        assert_eq!(s.image, PathBuf::from("/srv/dns"));
        assert_eq!((s.ip, s.prefix, s.mem_mib), (Ipv4Addr::new(10, 0, 0, 5), 24, 32));
        assert_eq!(s.content, Some(PathBuf::from("/srv/c.tar")));
        assert_eq!(s.args, "--a=1, --b");
        let s: Spec = "a.test=img,ip=192.0.2.9/28".parse().unwrap();
        assert_eq!((s.prefix, s.mem_mib, s.args.as_str()), (28, 64, ""));
        for bad in ["a.test", "a.test=img", "a.test=,ip=1.2.3.4", "a.test=img,ip=1.2.3", "a.test=img,ip=1.2.3.4/40"] {
            assert!(bad.parse::<Spec>().is_err(), "{bad}");
        }
        let e = "a.test=img,ip=1.2.3.4,cpus=2".parse::<Spec>().unwrap_err();
        assert!(e.contains("unknown key 'cpus'"), "{e}");
    }

    #[test]
    fn launchers() {
        assert_eq!("qemu".parse::<Launcher>(), Ok(Launcher::Qemu));
        assert_eq!("libvirt".parse::<Launcher>(), Ok(Launcher::Libvirt));
        assert_eq!("xl".parse::<Launcher>(), Ok(Launcher::Xl));
        assert!("firecracker".parse::<Launcher>().is_err());
    }

    #[test]
    fn programs_are_looked_up_on_path() {
        let dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        let path = std::env::join_paths(["/no/such/dir".into(), dir]).unwrap();
        assert!(on_path(name, &path));
        assert!(!on_path("no-such-program-here", &path));
        assert!(!on_path(name, std::ffi::OsStr::new("/no/such/dir")));
    }

    fn parse(words: &[&str]) -> Result<Config, ArgError> {
        let mut args = Args::from_words(words.iter().copied());
        let c = config(&mut args)?;
        args.finish()?;
        Ok(c)
    }

    #[test]
    fn flags_checked_at_start() {
        let exe = std::env::current_exe().unwrap();
        let image = exe.to_str().unwrap();
        let ok = format!("--unikernel=www.t={image},ip=10.9.0.2");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let c = parse(&["--zone=t=x.zone", &ok, "--bridge=br0", "--idle-stop=3", "--max-running=2"]);
        if on_path("qemu-system-x86_64", &path) {
            let c = c.unwrap();
            assert_eq!((c.unikernels.len(), c.idle_stop, c.max_running), (1, Duration::from_secs(3), 2));
        } else {
            assert!(c.unwrap_err().to_string().contains("qemu-system-x86_64 is not installed"));
        }
        assert!(parse(&["--zone=t=x.zone", &ok]).is_err(), "no bridge");
        assert!(parse(&["--unikernel=www.t=/no/such/image,ip=10.9.0.2", "--zone=t=x", "--bridge=b"]).is_err());
        assert!(parse(&[&format!("--unikernel=www.other={image},ip=10.9.0.2"), "--zone=t=x", "--bridge=b"]).is_err());
        assert!(parse(&["--zone=t=x", "--launcher=firecracker"]).is_err());
        let c = parse(&["--zone=t=x", "--launcher=libvirt", "--libvirt-uri=qemu:///session"]).unwrap();
        assert_eq!((c.launcher, c.libvirt_uri.as_str()), (Launcher::Libvirt, "qemu:///session"));
        assert!(parse(&["--zone=t=x", "--libvirt-uri=qemu:///session"]).is_err(), "URI without libvirt");
        let xl = parse(&["--zone=t=x", &ok, "--bridge=b", "--launcher=xl"]);
        match (on_path("xl", &path), xl) {
            (true, xl) => assert!(xl.is_ok()),
            (false, Err(e)) => assert!(e.to_string().contains("xl is not installed"), "{e}"),
            (false, Ok(_)) => panic!("no xl on PATH, yet --launcher xl was accepted"),
        }
        assert!(parse(&["--zone=t=x", "--idle-stop=0"]).is_err());
        assert!(parse(&[]).is_err(), "no zone");
    }
}
