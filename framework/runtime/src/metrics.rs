//! Counters and gauges, and their Prometheus text exposition (format
//! 0.0.4).
//!
//! A [`Counter`] or [`Gauge`] is one relaxed atomic (the executor is
//! single-threaded, so nothing orders them against other memory), `const`
//! constructible so it can be a `static`; counting is one add, with no
//! allocation and no formatting. Text is written only when scraped: each
//! crate that counts [`register`]s a function writing its metrics through an
//! [`Encoder`], and [`render`] runs them all after the heap gauges.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{Display, Write};
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// A value that only grows (wraps at `u64::MAX`).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Zero.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Zero.
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// Takes one away.
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Relaxed);
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }

    /// The value now.
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// A metric family's type, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Writes metric families in the text format: a `# HELP` and a `# TYPE`
/// line per family, then its samples.
pub struct Encoder<'a> {
    out: &'a mut String,
}

impl<'a> Encoder<'a> {
    /// Appends to `out`.
    pub fn new(out: &'a mut String) -> Encoder<'a> {
        Encoder { out }
    }

    /// Starts the family `name`. Write all its samples before the next
    /// family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push_str(match kind {
            Kind::Counter => " counter\n",
            Kind::Gauge => " gauge\n",
        });
    }

    /// One sample of the current family: `name{label="value",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                for c in v.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A counter family with one unlabelled sample.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, Kind::Counter, help);
        self.sample(name, &[], value);
    }

    /// A gauge family with one unlabelled sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, Kind::Gauge, help);
        self.sample(name, &[], value);
    }

    /// A counter family with one sample per entry of a fixed label set.
    pub fn labelled(&mut self, name: &str, help: &str, label: &str, counters: &[(&str, &Counter)]) {
        self.family(name, Kind::Counter, help);
        for (value, c) in counters {
            self.sample(name, &[(label, value)], c.get());
        }
    }
}

/// Writes one crate's metrics.
pub type Source = fn(&mut Encoder<'_>);

static SOURCES: spin::Mutex<Vec<(&str, Source)>> = spin::Mutex::new(Vec::new());

/// Adds `write` to what [`render`] writes, under a unique `name`; a second
/// registration under the same name is ignored, so a server started twice
/// (one task per listener) can register each time.
pub fn register(name: &'static str, write: Source) {
    let mut sources = SOURCES.lock();
    if !sources.iter().any(|(n, _)| *n == name) {
        sources.push((name, write));
    }
}

/// Writes the heap gauges, then every registered source, in the text
/// format.
pub fn render(out: &mut String) {
    let mut enc = Encoder::new(out);
    enc.gauge("morgana_heap_in_use_bytes", "Heap bytes allocated now.", crate::memory::in_use());
    enc.gauge("morgana_heap_peak_bytes", "Most heap bytes allocated at once since start.", crate::memory::peak());
    if let Some(limit) = crate::memory::limit() {
        enc.gauge("morgana_heap_limit_bytes", "Heap size (the budget).", limit);
    }
    let sources: Vec<Source> = SOURCES.lock().iter().map(|(_, s)| *s).collect();
    for write in sources {
        write(&mut enc);
    }
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_count() {
        static C: Counter = Counter::new();
        C.inc();
        C.add(41);
        assert_eq!(C.get(), 42);
        let g = Gauge::new();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
        g.dec();
        g.dec();
        assert_eq!(g.get(), -1, "a gauge may go below zero rather than wrap");
        g.set(7);
        assert_eq!(g.get(), 7);
    }

    #[test]
    fn families_have_help_and_type_lines_and_escape_what_they_must() {
        let mut out = String::new();
        let mut enc = Encoder::new(&mut out);
        enc.family("morgana_x_total", Kind::Counter, "Back\\slash and\nnewline; \"quotes\" stay.");
        enc.sample("morgana_x_total", &[("path", "a\\b\"c\nd"), ("code", "200")], 3u64);
        enc.sample("morgana_x_total", &[], 0u64);
        enc.gauge("morgana_y", "A gauge.", -2i64);
        let hits = [Counter::new(), Counter::new()];
        hits[1].add(5);
        enc.labelled("morgana_z_total", "Labelled.", "rcode", &[("NOERROR", &hits[0]), ("NXDOMAIN", &hits[1])]);
        assert_eq!(
            out,
            "# HELP morgana_x_total Back\\\\slash and\\nnewline; \"quotes\" stay.\n\
             # TYPE morgana_x_total counter\n\
             morgana_x_total{path=\"a\\\\b\\\"c\\nd\",code=\"200\"} 3\n\
             morgana_x_total 0\n\
             # HELP morgana_y A gauge.\n\
             # TYPE morgana_y gauge\n\
             morgana_y -2\n\
             # HELP morgana_z_total Labelled.\n\
             # TYPE morgana_z_total counter\n\
             morgana_z_total{rcode=\"NOERROR\"} 0\n\
             morgana_z_total{rcode=\"NXDOMAIN\"} 5\n"
        );
    }

    #[test]
    fn sources_are_registered_once_and_rendered_after_the_heap() {
        fn mine(enc: &mut Encoder<'_>) {
            enc.counter("morgana_test_source_total", "A test source.", 9);
        }
        register("test", mine);
        register("test", mine);
        let mut out = String::new();
        render(&mut out);
        assert!(out.starts_with("# HELP morgana_heap_in_use_bytes "), "{out}");
        assert!(out.contains("\n# TYPE morgana_heap_peak_bytes gauge\n"), "{out}");
        assert_eq!(out.matches("\nmorgana_test_source_total 9\n").count(), 1, "{out}");
        // Every line is a comment or `name[{labels}] value`.
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("morgana_") && value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
