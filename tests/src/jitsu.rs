//! Client side of the Jitsu tests: `dig` inside a namespace and what it
//! answered, and the processes in a namespace.

use std::process::{Child, Command, Stdio};

/// The processes in namespace `ns`.
pub fn pids(ns: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "pids", ns]).output().expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

/// A `dig` under way; killed and reaped if never read.
pub struct Dig(Option<Child>);

impl Dig {
    /// `dig @SERVER +tries=1 +time=10 OPTIONS NAME A` in namespace `ns`, in
    /// the background (a later `+tries` or `+time` in `options` wins).
    pub fn spawn(ns: &str, server: &str, name: &str, options: &[&str]) -> Dig {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "dig", &format!("@{server}"), "+tries=1", "+time=10"])
            .args(options)
            .args([name, "A"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dig");
        Dig(Some(child))
    }
}

impl Drop for Dig {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What `dig` got: the status and the A records with their TTLs.
#[derive(Debug)]
pub struct Answer {
    pub status: String,
    pub records: Vec<(u32, String)>,
    pub output: String,
}

impl Answer {
    /// Waits for `dig` and reads its output.
    pub fn of(mut dig: Dig) -> Answer {
        let out = dig.0.take().expect("a dig").wait_with_output().expect("dig");
        let output = String::from_utf8_lossy(&out.stdout).to_string();
        let status = output.split("status: ").nth(1).and_then(|s| s.split(',').next()).unwrap_or("none").to_string();
        let records = output
            .lines()
            .skip_while(|l| !l.starts_with(";; ANSWER SECTION"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() == 5 && w[3] == "A").then(|| (w[1].parse().unwrap_or(u32::MAX), w[4].to_string()))
            })
            .collect();
        Answer { status, records, output }
    }

    /// Its one address, if it is a NOERROR answer with one A record.
    pub fn address(&self) -> Result<&str, String> {
        match (self.status.as_str(), self.records.as_slice()) {
            ("NOERROR", [(_, a)]) => Ok(a),
            _ => Err(format!("expected one A record, got: {}", self.output)),
        }
    }
}
