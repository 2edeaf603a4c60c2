//! `--sandbox`: the apps as seccomp-sandboxed Linux processes, served by
//! real clients (echo clients, `dig`, `curl`), over host sockets and over a
//! TAP device in a network namespace the test creates; and a process that
//! makes a forbidden call after start-up, which must die of SIGSYS.

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::client;
use morgana_tests::netns::{self, TapNamespace};
use morgana_tests::prereq::{self, Prereq};
use morgana_tests::process::{app_binary, free_port, Running};

const START: Duration = Duration::from_secs(30);
/// Linux x86_64 numbers.
const SIGSYS: i32 = 31;
const SYS_OPENAT: u32 = 257;

/// Checks the kernel's view of the process: one seccomp filter in filter
/// mode, and no new privileges.
fn assert_filtered(pid: u32) -> Result<(), Failed> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("status: {e}"))?;
    for want in ["Seccomp:\t2", "Seccomp_filters:\t1", "NoNewPrivs:\t1"] {
        if !status.lines().any(|l| l == want) {
            return Err(format!("/proc/{pid}/status lacks {want:?}:\n{status}").into());
        }
    }
    Ok(())
}

/// Waits for the sandbox's log line and returns how many calls it allows.
fn sandbox_on(app: &mut Running) -> Result<usize, Failed> {
    let line = app.wait_for("sandbox on:", START);
    let n = line.split("sandbox on: ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok());
    n.ok_or_else(|| format!("no count in {line:?}").into())
}

fn still_running(app: &mut Running, name: &str) -> Result<(), Failed> {
    if !app.is_running() {
        return Err(format!("{name} exited: {:#?}", app.output()).into());
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<String, Failed> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn echo_over_host_sockets() -> Result<(), Failed> {
    let port = free_port();
    let mut cmd = Command::new(app_binary("echo"));
    cmd.args(["--port", &port.to_string(), "--sandbox"]);
    let mut echo = Running::start(cmd);
    let allowed = sandbox_on(&mut echo)?;
    eprintln!("  {allowed} system calls allowed");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    client::tcp_echo(addr, &client::pattern(1 << 20, 7))?;
    client::udp_echo(addr, 50, 1200)?;
    client::concurrent(addr, 50)?;
    assert_filtered(echo.pid())?;
    still_running(&mut echo, "echo")
}

fn dns_over_host_sockets() -> Result<(), Failed> {
    let port = free_port().to_string();
    let mut cmd = Command::new(app_binary("dns"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--sandbox"]);
    let mut dns = Running::start(cmd);
    sandbox_on(&mut dns)?;
    let dig =
        |extra: &[&str]| run(Command::new("dig").args(["@127.0.0.1", "-p", &port, "+tries=1", "+time=5"]).args(extra));
    for transport in ["+notcp", "+tcp"] {
        let soa = dig(&[transport, "+short", "example.com", "SOA"])?;
        if !soa.starts_with("ns1.example.com. hostmaster.example.com.") {
            return Err(format!("SOA over {transport}: {soa:?}").into());
        }
        let nx = dig(&[transport, "nope.example.com", "A"])?;
        if !nx.contains("status: NXDOMAIN") {
            return Err(format!("no NXDOMAIN over {transport}: {nx}").into());
        }
    }
    assert_filtered(dns.pid())?;
    still_running(&mut dns, "dns")
}

fn web_over_host_sockets() -> Result<(), Failed> {
    let (http, https) = (free_port(), free_port());
    let mut cmd = Command::new(app_binary("web"));
    cmd.args(["--http", &format!("127.0.0.1:{http}"), "--https", &format!("127.0.0.1:{https}"), "--sandbox"]);
    let mut web = Running::start(cmd);
    sandbox_on(&mut web)?;
    let status = |url: String| {
        run(Command::new("curl").args(["-sk", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", &url]))
    };
    for (url, want) in [
        (format!("http://127.0.0.1:{http}/"), "200"),
        (format!("https://127.0.0.1:{https}/"), "200"),
        (format!("https://127.0.0.1:{https}/no-such-page"), "404"),
    ] {
        let got = status(url.clone())?;
        if got != want {
            return Err(format!("{url}: {got}, not {want}").into());
        }
    }
    assert_filtered(web.pid())?;
    still_running(&mut web, "web")
}

/// Content on a block device is read on demand: `pread64` inside the
/// sandbox.
fn web_content_from_a_block_device() -> Result<(), Failed> {
    let dir = std::env::temp_dir().join(format!("morgana-sandbox-{}", std::process::id()));
    let site = dir.join("site");
    std::fs::create_dir_all(&site)?;
    let page = "served from a block device inside the sandbox\n";
    std::fs::write(site.join("index.html"), page)?;
    let tar = dir.join("content.tar");
    run(Command::new("tar").args(["--format=ustar", "-cf"]).arg(&tar).arg("-C").arg(&site).arg("."))?;
    let http = free_port();
    let mut cmd = Command::new(app_binary("web"));
    cmd.args(["--http", &format!("127.0.0.1:{http}"), "--no-https", "--block"]).arg(&tar).arg("--sandbox");
    let mut web = Running::start(cmd);
    let allowed = sandbox_on(&mut web)?;
    let body = run(Command::new("curl").args(["-s", "--max-time", "10", &format!("http://127.0.0.1:{http}/")]));
    let _ = std::fs::remove_dir_all(&dir);
    if body? != page.trim_end() {
        return Err("the page from the archive was not served".into());
    }
    eprintln!("  {allowed} system calls allowed with a block device");
    assert_filtered(web.pid())?;
    still_running(&mut web, "web")
}

/// The direct stack needs no socket calls: the shortest list.
fn echo_over_tap() -> Result<(), Failed> {
    let ns = TapNamespace::create("sbx");
    let mut cmd = ns.command(app_binary("echo").to_str().ok_or("utf-8 path")?);
    cmd.args([&format!("--net=tap:{}", ns.tap), "--port=7", "--ipv4=10.77.0.2/24", "--sandbox"]);
    let mut echo = Running::start(cmd);
    let allowed = sandbox_on(&mut echo)?;
    if allowed > 15 {
        return Err(format!("{allowed} system calls allowed over TAP; the target is 15 at most").into());
    }
    let client = env!("CARGO_BIN_EXE_echo-client");
    run(ns.command(client).args(["tcp", "10.77.0.2:7", "1048576"]))?;
    run(ns.command(client).args(["udp", "10.77.0.2:7", "50", "1000"]))?;
    assert_filtered(echo.pid())?;
    still_running(&mut echo, "echo")
}

fn vmcheck(check: &str, sandbox: bool) -> Running {
    let mut cmd = Command::new(app_binary("vmcheck"));
    cmd.arg(format!("--check={check}")).arg("--seconds=0");
    if sandbox {
        cmd.arg("--sandbox");
    }
    Running::start(cmd)
}

fn has_line(app: &Running, needle: &str) -> Result<(), Failed> {
    if !app.output().iter().any(|l| l.contains(needle)) {
        return Err(format!("no line containing {needle:?}: {:#?}", app.output()).into());
    }
    Ok(())
}

fn forbidden_call_dies_of_sigsys() -> Result<(), Failed> {
    // Unsandboxed, the same check binds a socket and reads the file.
    let mut free = vmcheck("forbidden-call", false);
    if free.wait_exit(START) != Some(0) {
        return Err(format!("unsandboxed run failed: {:#?}", free.output()).into());
    }
    has_line(&free, "forbidden-call: read")?;

    let mut boxed = vmcheck("forbidden-call", true);
    let status = boxed.wait_status(START);
    if status.signal() != Some(SIGSYS) {
        return Err(format!("not killed by SIGSYS but {status:?}: {:#?}", boxed.output()).into());
    }
    has_line(&boxed, "no new socket: the sandbox allows no new sockets")?;
    has_line(&boxed, &format!("sandbox: forbidden system call {} (openat)", SYS_OPENAT))?;
    if boxed.output().iter().any(|l| l.contains("forbidden-call: read")) {
        return Err("the file was read inside the sandbox".into());
    }
    Ok(())
}

fn panic_and_exit_inside_the_sandbox() -> Result<(), Failed> {
    let mut panics = vmcheck("panic-after-wait", true);
    let code = panics.wait_exit(START);
    if code != Some(101) {
        return Err(format!("a sandboxed panic exited with {code:?}, not 101: {:#?}", panics.output()).into());
    }
    has_line(&panics, "deliberate panic after the first wait")?;
    // A clean end inside the sandbox is still a clean end.
    let mut ends = vmcheck("clock", true);
    let code = ends.wait_exit(START);
    if code != Some(0) {
        return Err(format!("a sandboxed clean exit gave {code:?}: {:#?}", ends.output()).into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let dig = Prereq::program("dig", "-v", "bind9-dnsutils");
    let curl = Prereq::program("curl", "--version", "curl");
    let tar = Prereq::program("tar", "--version", "tar");
    let [root, ip] = netns::prerequisites();
    let tests = vec![
        prereq::trial("echo_over_host_sockets", &[], echo_over_host_sockets),
        prereq::trial("dns_over_host_sockets", &[&dig], dns_over_host_sockets),
        prereq::trial("web_over_host_sockets", &[&curl], web_over_host_sockets),
        prereq::trial("web_content_from_a_block_device", &[&curl, &tar], web_content_from_a_block_device),
        prereq::trial("echo_over_tap", &[&root, &ip], echo_over_tap),
        prereq::trial("forbidden_call_dies_of_sigsys", &[], forbidden_call_dies_of_sigsys),
        prereq::trial("panic_and_exit_inside_the_sandbox", &[], panic_and_exit_inside_the_sandbox),
    ];
    libtest_mimic::run(&args, tests).exit();
}
