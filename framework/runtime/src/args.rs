//! Boot arguments: one schema for a hosted process's argv and a VM's kernel
//! command line.
//!
//! Flags are `--name=value`, `--name value` or, for switches, `--name`.
//! Whoever owns a flag takes it with [`Args::value`], [`Args::values`] or
//! [`Args::switch`] (the backend, the network stack, the app); the framework
//! then calls [`Args::finish`], which rejects anything nobody took. Every error
//! is one line naming the flag, meant to end the program with exit code 2.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

/// Exit status for bad boot arguments, as for command-line usage errors.
pub const USAGE_EXIT_CODE: i32 = 2;

#[derive(Debug, Clone)]
struct Token {
    text: String,
    used: bool,
}

/// Parsed boot arguments; see the module documentation.
#[derive(Debug, Clone)]
pub struct Args {
    tokens: Vec<Token>,
    help: Vec<(String, &'static str, &'static str)>,
}

/// A bad boot argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// A flag nobody knows.
    Unknown(String),
    /// A word that is not a flag.
    Unexpected(String),
    /// A flag that needs a value was given none.
    MissingValue(&'static str),
    /// A switch was given a value.
    UnexpectedValue(&'static str),
    /// A flag that may appear once appeared more often.
    Repeated(&'static str),
    /// A value that does not parse.
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it is wrong.
        reason: String,
    },
    /// Flags that cannot be combined, or a value that is wrong in context.
    Conflict(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::Unknown(flag) => write!(f, "unknown flag '{flag}' (try --help)"),
            ArgError::Unexpected(word) => write!(f, "unexpected argument '{word}' (flags start with --)"),
            ArgError::MissingValue(flag) => write!(f, "flag --{flag} needs a value"),
            ArgError::UnexpectedValue(flag) => write!(f, "flag --{flag} takes no value"),
            ArgError::Repeated(flag) => write!(f, "flag --{flag} given more than once"),
            ArgError::Invalid { flag, value, reason } => {
                write!(f, "invalid value '{value}' for --{flag}: {reason}")
            }
            ArgError::Conflict(msg) => f.write_str(msg),
        }
    }
}

impl core::error::Error for ArgError {}

impl Args {
    /// Arguments from a list of words (argv without the program name).
    pub fn from_words<I, S>(words: I) -> Args
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Args { tokens: words.into_iter().map(|w| Token { text: w.into(), used: false }).collect(), help: Vec::new() }
    }

    /// Arguments from a kernel command line: words separated by spaces; a
    /// double-quoted word may contain spaces (`--x="a b"`). Words that are
    /// not flags (`console=ttyS0`, `virtio_mmio.device=...`) belong to the
    /// platform and must be removed by it with [`Args::take_platform_words`].
    pub fn from_command_line(line: &str) -> Args {
        let mut words = Vec::new();
        let mut cur = String::new();
        let mut in_word = false;
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => {
                    quoted = !quoted;
                    in_word = true;
                }
                c if c.is_whitespace() && !quoted => {
                    if in_word {
                        words.push(core::mem::take(&mut cur));
                        in_word = false;
                    }
                }
                c => {
                    cur.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(cur);
        }
        Args::from_words(words)
    }

    /// Removes and returns the words that do not start with `--` and contain
    /// `=` or `.` (`key=value` parameters for the platform, like Linux's).
    pub fn take_platform_words(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for t in self.tokens.iter_mut().filter(|t| !t.used) {
            if !t.text.starts_with("--") && t.text.contains('=') {
                t.used = true;
                out.push(t.text.clone());
            }
        }
        out
    }

    fn note(&mut self, name: &'static str, kind: &'static str, help: &'static str) {
        if !self.help.iter().any(|(n, _, _)| n == name) {
            self.help.push((name.to_string(), kind, help));
        }
    }

    /// Finds unused occurrences of `--name`; returns (index, inline value).
    fn occurrences(&self, name: &str) -> Vec<(usize, Option<String>)> {
        let mut out = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            if t.used {
                continue;
            }
            let Some(rest) = t.text.strip_prefix("--") else { continue };
            if rest == name {
                out.push((i, None));
            } else if let Some(v) = rest.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                out.push((i, Some(v.to_string())));
            }
        }
        out
    }

    fn take_raw(&mut self, name: &'static str) -> Result<Vec<String>, ArgError> {
        let mut values = Vec::new();
        for (i, inline) in self.occurrences(name) {
            self.tokens[i].used = true;
            let value = match inline {
                Some(v) => v,
                None => match self.tokens.get_mut(i + 1) {
                    Some(next) if !next.used && !next.text.starts_with("--") => {
                        next.used = true;
                        next.text.clone()
                    }
                    _ => return Err(ArgError::MissingValue(name)),
                },
            };
            values.push(value);
        }
        Ok(values)
    }

    /// Takes the single value of `--name`, parsed as `T`. `None` if absent.
    pub fn value<T>(&mut self, name: &'static str, help: &'static str) -> Result<Option<T>, ArgError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.note(name, "VALUE", help);
        let mut values = self.take_raw(name)?;
        if values.len() > 1 {
            return Err(ArgError::Repeated(name));
        }
        match values.pop() {
            None => Ok(None),
            Some(v) => parse(name, v).map(Some),
        }
    }

    /// Takes every value of the repeatable flag `--name`, in order.
    pub fn values<T>(&mut self, name: &'static str, help: &'static str) -> Result<Vec<T>, ArgError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.note(name, "VALUE...", help);
        self.take_raw(name)?.into_iter().map(|v| parse(name, v)).collect()
    }

    /// Takes the switch `--name` (no value); true if present.
    pub fn switch(&mut self, name: &'static str, help: &'static str) -> Result<bool, ArgError> {
        self.note(name, "", help);
        let occ = self.occurrences(name);
        if occ.iter().any(|(_, v)| v.is_some()) {
            return Err(ArgError::UnexpectedValue(name));
        }
        if occ.len() > 1 {
            return Err(ArgError::Repeated(name));
        }
        for (i, _) in &occ {
            self.tokens[*i].used = true;
        }
        Ok(!occ.is_empty())
    }

    /// Whether an untaken `--name` or `--name=...` is present (without
    /// taking it).
    pub fn has(&self, name: &str) -> bool {
        !self.occurrences(name).is_empty()
    }

    /// Whether `--help` was given (it is taken too).
    pub fn help_requested(&mut self) -> bool {
        let mut found = false;
        for t in self.tokens.iter_mut().filter(|t| !t.used) {
            if t.text == "--help" || t.text == "-h" {
                t.used = true;
                found = true;
            }
        }
        found
    }

    /// A usage text listing every flag taken so far.
    pub fn usage(&self, program: &str) -> String {
        let mut s = format!("usage: {program} [FLAGS]\n\nflags:\n");
        for (name, kind, help) in &self.help {
            let left = if kind.is_empty() { format!("--{name}") } else { format!("--{name}={kind}") };
            s.push_str(&format!("  {left:<28} {help}\n"));
        }
        s.push_str(&format!("  {:<28} {}\n", "--help", "print this text"));
        s
    }

    /// Fails on the first argument that nobody took.
    pub fn finish(&self) -> Result<(), ArgError> {
        match self.tokens.iter().find(|t| !t.used) {
            None => Ok(()),
            Some(t) if t.text.starts_with('-') => {
                let flag = t.text.split('=').next().unwrap_or(&t.text);
                Err(ArgError::Unknown(flag.to_string()))
            }
            Some(t) => Err(ArgError::Unexpected(t.text.clone())),
        }
    }
}

fn parse<T>(flag: &'static str, value: String) -> Result<T, ArgError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value.parse().map_err(|e: T::Err| ArgError::Invalid { flag, reason: e.to_string(), value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn both_value_forms_and_switches() {
        let mut a = Args::from_words(["--port", "7007", "--ipv4=10.0.0.2/24", "--quiet"]);
        assert_eq!(a.value::<u16>("port", "").unwrap(), Some(7007));
        assert_eq!(a.value::<String>("ipv4", "").unwrap().as_deref(), Some("10.0.0.2/24"));
        assert!(a.switch("quiet", "").unwrap());
        assert!(!a.switch("loud", "").unwrap());
        a.finish().unwrap();
    }

    #[test]
    fn unknown_and_unexpected() {
        let mut a = Args::from_words(["--port=1", "--bogus=3"]);
        a.value::<u16>("port", "").unwrap();
        assert_eq!(a.finish().unwrap_err().to_string(), "unknown flag '--bogus' (try --help)");
        let a = Args::from_words(["stray"]);
        assert_eq!(a.finish().unwrap_err(), ArgError::Unexpected("stray".into()));
    }

    #[test]
    fn invalid_values_name_the_flag() {
        let mut a = Args::from_words(["--port=banana"]);
        let e = a.value::<u16>("port", "").unwrap_err().to_string();
        assert_eq!(e, "invalid value 'banana' for --port: invalid digit found in string");
        let mut a = Args::from_words(["--port"]);
        assert_eq!(a.value::<u16>("port", "").unwrap_err(), ArgError::MissingValue("port"));
        let mut a = Args::from_words(["--port", "--x"]);
        assert_eq!(a.value::<u16>("port", "").unwrap_err(), ArgError::MissingValue("port"));
        let mut a = Args::from_words(["--quiet=yes"]);
        assert_eq!(a.switch("quiet", "").unwrap_err(), ArgError::UnexpectedValue("quiet"));
    }

    #[test]
    fn repeats() {
        let mut a = Args::from_words(["--port=1", "--port=2"]);
        assert_eq!(a.value::<u16>("port", "").unwrap_err(), ArgError::Repeated("port"));
        let mut a = Args::from_words(["--zone", "a", "--zone=b"]);
        assert_eq!(a.values::<String>("zone", "").unwrap(), vec!["a".to_string(), "b".to_string()]);
    }

    #[test]
    fn prefix_is_not_a_match() {
        let mut a = Args::from_words(["--ipv4-gateway=10.0.0.1"]);
        assert_eq!(a.value::<String>("ipv4", "").unwrap(), None);
        assert!(a.value::<String>("ipv4-gateway", "").unwrap().is_some());
    }

    #[test]
    fn kernel_command_line() {
        let mut a = Args::from_command_line(
            "  --ipv4=10.0.0.2/24 console=ttyS0 virtio_mmio.device=4K@0xfeb00000:12 --name=\"a b\" ",
        );
        let platform = a.take_platform_words();
        assert_eq!(platform, vec!["console=ttyS0", "virtio_mmio.device=4K@0xfeb00000:12"]);
        assert_eq!(a.value::<String>("name", "").unwrap().as_deref(), Some("a b"));
        assert!(a.value::<String>("ipv4", "").unwrap().is_some());
        a.finish().unwrap();
    }

    #[test]
    fn help() {
        let mut a = Args::from_words(["--help"]);
        a.value::<u16>("port", "port to serve").unwrap();
        assert!(a.help_requested());
        assert!(a.usage("echo").contains("--port=VALUE"));
        a.finish().unwrap();
    }
}
