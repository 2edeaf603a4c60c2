//! What tests need from the machine (root, QEMU, NSD, dig, curl, ...).
//!
//! A test whose prerequisite is missing is reported as ignored, with a line
//! saying what is missing, except under `CI=true`, where it fails naming the
//! missing prerequisite: CI must not pass by running nothing.

use std::process::{Command, Stdio};

use libtest_mimic::{Failed, Trial};

/// Something tests need from the machine, and whether it is there.
#[derive(Debug, Clone)]
pub struct Prereq {
    name: String,
    missing: Option<String>,
}

impl Prereq {
    /// `name`, missing for the reason `missing` (`None`: present).
    pub fn new(name: &str, missing: Option<String>) -> Prereq {
        Prereq { name: name.into(), missing }
    }

    /// The program `program`, present if `program arg` runs and succeeds;
    /// `package` is the Debian package that provides it.
    pub fn program(program: &str, arg: &str, package: &str) -> Prereq {
        let ok = Command::new(program)
            .arg(arg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let missing = (!ok).then(|| format!("not installed (apt-get install {package})"));
        Prereq::new(program, missing)
    }

    /// Running as root.
    pub fn root() -> Prereq {
        use std::os::unix::fs::MetadataExt;
        // /proc/self is owned by the process's effective user.
        let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX);
        Prereq::new("root", (euid != 0).then(|| "the tests run as another user".into()))
    }

    /// Whether it is there.
    pub fn present(&self) -> bool {
        self.missing.is_none()
    }
}

/// What to do with a test, given its prerequisites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything is there: run it.
    Run,
    /// Something is missing: report the test ignored, for this reason.
    Skip(String),
    /// Something is missing under CI: fail, with this message.
    Fail(String),
}

/// Whether the value of the `CI` environment variable asks for CI rules
/// (`true` in any case, or `1`).
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The decision for a test that needs `needs`, in CI or not.
pub fn decide(needs: &[&Prereq], ci: bool) -> Decision {
    let missing: Vec<String> =
        needs.iter().filter_map(|p| p.missing.as_ref().map(|why| format!("{}: {why}", p.name))).collect();
    if missing.is_empty() {
        Decision::Run
    } else if ci {
        Decision::Fail(format!("missing prerequisite under CI=true ({})", missing.join("; ")))
    } else {
        Decision::Skip(format!("needs {}", missing.join("; ")))
    }
}

/// The test `name` running `f` if everything in `needs` is present; else
/// ignored with a message, or under `CI=true` a test that fails naming what
/// is missing.
pub fn trial<F>(name: &str, needs: &[&Prereq], f: F) -> Trial
where
    F: FnOnce() -> Result<(), Failed> + Send + 'static,
{
    trial_in(name, needs, is_ci(std::env::var("CI").ok().as_deref()), f)
}

fn trial_in<F>(name: &str, needs: &[&Prereq], ci: bool, f: F) -> Trial
where
    F: FnOnce() -> Result<(), Failed> + Send + 'static,
{
    match decide(needs, ci) {
        Decision::Run => Trial::test(name, f),
        Decision::Skip(why) => {
            eprintln!("{name} skipped: {why}");
            Trial::test(name, f).with_ignored_flag(true)
        }
        Decision::Fail(msg) => Trial::test(name, move || fail(&msg)),
    }
}

fn fail(msg: &str) -> Result<(), Failed> {
    panic!("{msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_values() {
        for yes in ["true", "TRUE", "True", "1"] {
            assert!(is_ci(Some(yes)), "{yes}");
        }
        for no in [None, Some(""), Some("false"), Some("0"), Some("yes please")] {
            assert!(!is_ci(no), "{no:?}");
        }
    }

    #[test]
    fn decisions() {
        let here = Prereq::new("curl", None);
        let gone = Prereq::new("nsd", Some("not installed (apt-get install nsd)".into()));
        let root = Prereq::new("root", Some("the tests run as another user".into()));
        assert_eq!(decide(&[], false), Decision::Run);
        assert_eq!(decide(&[&here], true), Decision::Run);
        assert_eq!(decide(&[&here], false), Decision::Run);
        assert_eq!(
            decide(&[&here, &gone], false),
            Decision::Skip("needs nsd: not installed (apt-get install nsd)".into())
        );
        match decide(&[&gone, &here, &root], true) {
            Decision::Fail(m) => {
                assert!(m.contains("CI=true") && m.contains("nsd: not installed") && m.contains("root:"), "{m}");
                assert!(!m.contains("curl"), "{m}");
            }
            d => panic!("missing prerequisites under CI must fail, got {d:?}"),
        }
    }

    #[test]
    fn programs_are_probed() {
        assert!(Prereq::program(env!("CARGO"), "--version", "cargo").present());
        let none = Prereq::program("morgana-no-such-program", "--version", "nothing");
        assert!(!none.present());
        assert!(matches!(decide(&[&none], true), Decision::Fail(m) if m.contains("morgana-no-such-program")));
    }

    #[test]
    fn trials_run_skip_or_fail() {
        let gone = Prereq::new("qemu-system-x86_64", Some("not installed".into()));
        assert!(!trial_in("t", &[], true, || Ok(())).has_ignored_flag());
        assert!(trial_in("t", &[&gone], false, || Ok(())).has_ignored_flag());
        // Under CI the trial is not ignored; its body is `fail`, which panics.
        assert!(!trial_in("t", &[&gone], true, || Ok(())).has_ignored_flag());
        let panic = std::panic::catch_unwind(|| fail("missing qemu")).expect_err("fail panics");
        assert_eq!(panic.downcast_ref::<String>().map(String::as_str), Some("missing qemu"));
    }
}
