//! The `log` facade, written to the console.
//!
//! Lines look like `[    1.234567 INFO  echo] listening on port 7`: monotonic
//! seconds since boot, level, module, message.

use alloc::boxed::Box;
use core::fmt::{self, Write};

use log::{LevelFilter, Log, Metadata, Record};
use morgana_devices::Instant;

/// Where log lines go: the backend's console.
pub trait LogSink: Send {
    /// Writes one formatted piece of a line.
    fn write_str(&mut self, s: &str);
}

struct Logger {
    sink: spin::Mutex<Option<Box<dyn LogSink>>>,
    clock: spin::Once<fn() -> Instant>,
}

static LOGGER: Logger = Logger { sink: spin::Mutex::new(None), clock: spin::Once::new() };

struct SinkWriter<'a>(&'a mut dyn LogSink);

impl Write for SinkWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s);
        Ok(())
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // Driver and stack crates' chatter shows only when debugging.
        let chatty = ["virtio_drivers", "smoltcp"].iter().any(|c| record.target().starts_with(c));
        if chatty && record.level() > log::Level::Warn && log::max_level() < LevelFilter::Debug {
            return;
        }
        let now = self.clock.get().map(|f| f()).unwrap_or(Instant::ZERO);
        let mut sink = self.sink.lock();
        if let Some(sink) = sink.as_mut() {
            let module = record.module_path().unwrap_or("?");
            let module = module.split("::").next().unwrap_or(module);
            let _ =
                writeln!(SinkWriter(sink.as_mut()), "[{:>15} {:<5} {}] {}", now, record.level(), module, record.args());
        }
    }

    fn flush(&self) {}
}

/// Routes `log` records at or above `level` to `sink`, stamped by `clock`.
/// A second call replaces the sink and level (the clock stays the first).
pub fn init(level: LevelFilter, sink: Box<dyn LogSink>, clock: fn() -> Instant) {
    LOGGER.clock.call_once(|| clock);
    *LOGGER.sink.lock() = Some(sink);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// Sends log lines to `sink` from now on (a backend's console that
/// comes up after the logger).
pub fn set_sink(sink: Box<dyn LogSink>) {
    *LOGGER.sink.lock() = Some(sink);
}

/// Writes `s` as it is (no stamp, not filtered by level) to the log sink,
/// if there is one yet; returns whether there was. For a fatal message that
/// must reach the console the log lines go to.
pub fn write_raw(s: &str) -> bool {
    match LOGGER.sink.lock().as_mut() {
        Some(sink) => {
            sink.write_str(s);
            true
        }
        None => false,
    }
}

/// Parses a `--log` value: off, error, warn, info, debug or trace.
pub fn parse_level(s: &str) -> Result<LevelFilter, &'static str> {
    s.parse().map_err(|_| "expected off, error, warn, info, debug or trace")
}
