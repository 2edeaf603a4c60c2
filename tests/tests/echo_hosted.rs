//! The echo app as a Linux process with host sockets, driven by real clients
//! over 127.0.0.1 and ::1.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use morgana_tests::client;
use morgana_tests::process::{app_binary, free_port, Running};

fn start_echo(port: u16) -> Running {
    let mut cmd = Command::new(app_binary("echo"));
    cmd.args(["--port", &port.to_string()]);
    let mut echo = Running::start(cmd);
    echo.wait_for("echo on TCP and UDP port", Duration::from_secs(20));
    echo
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

#[test]
fn tcp_and_udp_echo_over_ipv4_and_ipv6() {
    let port = free_port();
    let _echo = start_echo(port);
    client::tcp_echo(addr("127.0.0.1", port), b"hello, morgana\n").unwrap();
    client::tcp_echo(addr("[::1]", port), b"hello over IPv6\n").unwrap();
    client::udp_echo(addr("127.0.0.1", port), 50, 512).unwrap();
    client::udp_echo(addr("[::1]", port), 50, 1400).unwrap();
}

#[test]
fn ten_mebibytes_echoed_byte_exact_then_clean_close() {
    let port = free_port();
    let _echo = start_echo(port);
    let data = client::pattern(10 << 20, 99);
    // tcp_echo half-closes after sending and fails unless the server echoes
    // every byte and then ends the stream with FIN (a reset is an error).
    client::tcp_echo(addr("127.0.0.1", port), &data).unwrap();
}

#[test]
fn hundred_concurrent_connections() {
    let port = free_port();
    let mut echo = start_echo(port);
    client::concurrent(addr("127.0.0.1", port), 100).unwrap();
    assert!(echo.is_running());
}

#[test]
fn empty_connection_and_abrupt_reset_do_not_disturb_the_server() {
    let port = free_port();
    let mut echo = start_echo(port);
    // Connect and close at once; connect, send, and reset.
    drop(std::net::TcpStream::connect(addr("127.0.0.1", port)).unwrap());
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr("127.0.0.1", port)).unwrap();
        s.write_all(&[1u8; 100_000]).unwrap();
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    }
    client::tcp_echo(addr("127.0.0.1", port), b"still here").unwrap();
    assert!(echo.is_running());
}

fn run_to_exit(args: &[&str]) -> (Option<i32>, Vec<String>) {
    let mut cmd = Command::new(app_binary("echo"));
    cmd.args(args);
    let mut p = Running::start(cmd);
    let code = p.wait_exit(Duration::from_secs(20));
    (code, p.output())
}

fn assert_one_line_error(args: &[&str], code: i32, expect: &str) {
    let (got, stderr) = run_to_exit(args);
    assert_eq!(got, Some(code), "exit code for {args:?}; stderr {stderr:?}");
    assert_eq!(stderr.len(), 1, "one line for {args:?}: {stderr:?}");
    assert!(stderr[0].contains(expect), "{args:?}: {:?} lacks {expect:?}", stderr[0]);
    assert!(!stderr[0].contains("panicked"), "{stderr:?}");
}

#[test]
fn bad_input_gives_one_line_and_nonzero_exit() {
    assert_one_line_error(&["--bogus"], 2, "echo: unknown flag '--bogus'");
    assert_one_line_error(&["--port", "seventy"], 2, "invalid value 'seventy' for --port");
    assert_one_line_error(&["--port=70000"], 2, "invalid value '70000' for --port");
    assert_one_line_error(&["--net=tap:x", "--ipv4=10.0.0.300/24"], 2, "invalid value '10.0.0.300/24' for --ipv4");
    assert_one_line_error(&["--net=tap:x", "--ipv4=banana"], 2, "invalid value 'banana' for --ipv4");
    assert_one_line_error(&["--net=ethernet"], 2, "invalid value 'ethernet' for --net");
    assert_one_line_error(&["--log=loud"], 2, "invalid value 'loud' for --log");
    assert_one_line_error(&["stray"], 2, "unexpected argument 'stray'");
    assert_one_line_error(&["--net=tap:mtap-missing9"], 1, "TAP device 'mtap-missing9' does not exist");
}

#[test]
fn port_already_in_use_is_a_clean_error() {
    let holder = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    assert_one_line_error(&["--port", &port], 1, "TCP port");
    let (_, stderr) = run_to_exit(&["--port", &port]);
    assert!(stderr[0].contains("address already in use"), "{stderr:?}");
}

#[test]
fn help_lists_flags_and_exits_zero() {
    let out = Command::new(app_binary("echo")).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in ["--port", "--net", "--ipv4", "--log"] {
        assert!(text.contains(flag), "help lacks {flag}: {text}");
    }
}
