//! The echo app with the direct (smoltcp) stack over a real Linux TAP device
//! inside a network namespace the test creates. Without root these tests are
//! reported as ignored (skipped), never as passed; under `CI=true` they fail.

use std::time::Duration;

use libtest_mimic::{Arguments, Failed};
use morgana_tests::netns::{self, TapNamespace};
use morgana_tests::prereq;
use morgana_tests::process::{app_binary, Running};

const CLIENT: &str = env!("CARGO_BIN_EXE_echo-client");

fn client(ns: &TapNamespace, args: &[&str]) -> Result<String, Failed> {
    let out = ns.command(CLIENT).args(args).output().map_err(|e| format!("run echo-client: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        return Err(format!("echo-client {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    eprintln!("  {stdout}");
    Ok(stdout)
}

fn start_echo(ns: &TapNamespace, extra: &[&str]) -> Running {
    let mut cmd = ns.command(app_binary("echo").to_str().expect("utf-8 path"));
    cmd.args([&format!("--net=tap:{}", ns.tap), "--port=7", "--log=debug"]).args(extra);
    let mut echo = Running::start(cmd);
    echo.wait_for("echo on TCP and UDP port 7", Duration::from_secs(20));
    echo
}

fn static_v4_and_v6() -> Result<(), Failed> {
    let ns = TapNamespace::create("tap");
    let mut echo = start_echo(&ns, &["--ipv4=10.77.0.2/24", "--ipv4-gateway=10.77.0.1", "--ipv6=fd77::2/64"]);
    client(&ns, &["tcp", "10.77.0.2:7", "1048576"])?;
    client(&ns, &["udp", "10.77.0.2:7", "50", "1000"])?;
    client(&ns, &["concurrent", "10.77.0.2:7", "20"])?;
    client(&ns, &["tcp", "[fd77::2]:7", "1048576"])?;
    client(&ns, &["udp", "[fd77::2]:7", "20", "1200"])?;
    if !echo.is_running() {
        return Err("echo exited".into());
    }
    Ok(())
}

fn ten_mebibytes_over_tap() -> Result<(), Failed> {
    let ns = TapNamespace::create("tap10");
    let _echo = start_echo(&ns, &["--ipv4=10.77.0.2/24"]);
    let out = client(&ns, &["tcp", "10.77.0.2:7", "10485760"])?;
    if !out.contains("10485760 bytes echoed") {
        return Err(format!("unexpected client output: {out}").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let [root, ip] = netns::prerequisites();
    let trial = |name: &str, f: fn() -> Result<(), Failed>| prereq::trial(name, &[&root, &ip], f);
    let tests = vec![
        trial("direct_stack_over_tap_ipv4_and_ipv6", static_v4_and_v6),
        trial("direct_stack_over_tap_10_mib", ten_mebibytes_over_tap),
    ];
    libtest_mimic::run(&args, tests).exit();
}
