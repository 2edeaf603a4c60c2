//! Building and running the app binaries under test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Builds the app `name` (debug profile, host target) once per test process
/// and returns the path of its binary.
pub fn app_binary(name: &str) -> PathBuf {
    build_app(name, None)
}

/// Builds the app `name` with its cargo feature `feature` (debug profile,
/// host target) once per test process and returns a copy of the binary,
/// `NAME+FEATURE`, which the default build does not overwrite.
pub fn app_binary_with(name: &str, feature: &str) -> PathBuf {
    build_app(name, Some(feature))
}

fn build_app(name: &str, feature: Option<&str>) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    let cargo_path = target.join("debug").join(name);
    let id = match feature {
        Some(f) => format!("{name}+{f}"),
        None => name.to_string(),
    };
    let path = target.join("debug").join(&id);
    if !built.contains(&id) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", name]).current_dir(workspace());
        if let Some(f) = feature {
            cmd.args(["--features", f]);
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p {name} (feature {feature:?}) failed");
        if feature.is_some() {
            std::fs::copy(&cargo_path, &path).expect("copy the feature build");
        }
        built.push(id);
    }
    path
}

/// A running process whose stderr lines are collected; killed on drop.
pub struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Arc<Mutex<Vec<String>>>,
    /// Output pipes not yet at end of file.
    open: Arc<AtomicUsize>,
}

impl Running {
    /// Starts `cmd` with stdout and stderr captured, line by line.
    pub fn start(mut cmd: Command) -> Running {
        cmd.stderr(Stdio::piped()).stdout(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, lines) = mpsc::channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(2));
        let stderr: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        let stdout: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        for stream in [stderr, stdout] {
            let (tx, seen, open) = (tx.clone(), seen.clone(), open.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let line = line.trim_end_matches('\r').to_string();
                    eprintln!("  | {line}");
                    seen.lock().unwrap_or_else(|e| e.into_inner()).push(line.clone());
                    let _ = tx.send(line);
                }
                open.fetch_sub(1, Ordering::AcqRel);
            });
        }
        Running { child, lines, seen, open }
    }

    /// After the process exited: waits (up to 5 s) until its output has
    /// been read to the end, so `output` holds all of it.
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the process if it is still running after `timeout`, then
    /// returns its exit status.
    pub fn wait_status(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("process still running after {timeout:?}; output: {:#?}", self.output());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything printed so far, stdout and stderr.
    pub fn output(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a stderr line contains `needle`; panics with what was
    /// seen after `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no line containing {needle:?} within {timeout:?}; stderr: {:#?}", self.output()),
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit (up to `timeout`) and returns its exit
    /// code (`None` if killed by a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return status.code();
            }
            assert!(Instant::now() < deadline, "process still running after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP and UDP port on 127.0.0.1 (as far as a quick check can tell).
pub fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
