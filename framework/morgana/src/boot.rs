//! From boot arguments to a running app: the same steps on every backend.

use alloc::boxed::Box;
use alloc::format;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use log::LevelFilter;
use morgana_runtime::args::USAGE_EXIT_CODE;
use morgana_runtime::{logger, ArgError, Args, Executor};

use crate::backend;
use crate::{Env, Result};

/// Parses `--log`.
fn log_level(args: &mut Args) -> core::result::Result<LevelFilter, ArgError> {
    let level: Option<alloc::string::String> =
        args.value("log", "log level: off, error, warn, info (default), debug, trace")?;
    match level {
        None => Ok(LevelFilter::Info),
        Some(v) => {
            logger::parse_level(&v).map_err(|reason| ArgError::Invalid { flag: "log", value: v, reason: reason.into() })
        }
    }
}

/// The framework's memory and metrics flags.
struct MemoryFlags {
    /// `--memory MIB`: the heap budget of a hosted process.
    budget: Option<usize>,
    /// `--memory-report SECS`: log heap use this often.
    report: Option<u64>,
    /// `--metrics ADDR:PORT`: serve the counters there.
    metrics: Option<morgana_net::ListenAddr>,
}

fn memory_flags(args: &mut Args) -> core::result::Result<MemoryFlags, ArgError> {
    let budget: Option<usize> = if crate::HOSTED {
        args.value(
            "memory",
            "heap budget in MiB: connections are refused or shed before it runs out (hosted; default none)",
        )?
    } else {
        None // a VM's budget is its RAM
    };
    if budget == Some(0) {
        return Err(ArgError::Invalid { flag: "memory", value: "0".into(), reason: "must be at least 1 MiB".into() });
    }
    let report: Option<u64> = args.value("memory-report", "log heap use every SECS seconds (default: never)")?;
    let metrics: Option<crate::scrape::Addr> = args.value(
        "metrics",
        "serve counters at http://ADDR:PORT/metrics in the Prometheus text format (ADDR:PORT or :PORT); \
         listen on a management address, not the public one (default: off)",
    )?;
    Ok(MemoryFlags {
        budget: budget.map(|m| m.saturating_mul(1024 * 1024)),
        report: report.filter(|&s| s > 0),
        metrics: metrics.map(|a| a.0),
    })
}

/// Logs heap use every `every`.
async fn report_memory(rt: crate::Handle, every: core::time::Duration) {
    use morgana_runtime::memory;
    loop {
        rt.sleep(every).await;
        let limit = memory::limit().map_or(alloc::string::String::from("none"), |l| format!("{} KiB", l / 1024));
        log::info!("heap: in use {} KiB, peak {} KiB, limit {limit}", memory::in_use() / 1024, memory::peak() / 1024);
    }
}

/// What an app asks of the framework at boot, beyond its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// Look for a content archive (a boot module, or a block device holding
    /// one) and hand it to the app as [`Env::content`]. On by default. An
    /// app that serves no content and wants a boot module's raw bytes or
    /// any disk for itself turns it off: then a boot module is not refused
    /// for not being a ustar archive, and the disk stays in [`Env::block`].
    pub content: bool,
}

impl Options {
    /// Content discovery on.
    pub const DEFAULT: Options = Options { content: true };

    /// These options without content discovery.
    pub const fn without_content(mut self) -> Options {
        self.content = false;
        self
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::DEFAULT
    }
}

/// Boots the app: takes the framework's, the backend's and the app's flags
/// (exit status 2 on a bad one), starts the backend, runs `serve` and exits
/// with 0 when it returns `Ok`, 1 when it fails or the backend cannot start.
/// Used through [`crate::main!`].
pub fn run<C, F, Fut>(name: &'static str, config: fn(&mut Args) -> core::result::Result<C, ArgError>, serve: F) -> !
where
    F: FnOnce(Env, C) -> Fut,
    Fut: Future<Output = Result> + 'static,
{
    run_with(name, Options::DEFAULT, config, serve)
}

/// [`run`] with [`Options`]; used through [`crate::main!`]'s third argument.
pub fn run_with<C, F, Fut>(
    name: &'static str,
    options: Options,
    config: fn(&mut Args) -> core::result::Result<C, ArgError>,
    serve: F,
) -> !
where
    F: FnOnce(Env, C) -> Fut,
    Fut: Future<Output = Result> + 'static,
{
    let mut args = backend::args();
    let program = backend::program_name(name);
    let help = args.help_requested();
    let parsed = (|| {
        let level = log_level(&mut args)?;
        let memory = memory_flags(&mut args)?;
        let boot = backend::BootConfig::from_args(&mut args)?;
        let app = config(&mut args)?;
        Ok::<_, ArgError>((level, memory, boot, app))
    })();
    if help {
        backend::print(&args.usage(&program));
        backend::exit(0);
    }
    let (level, memory, boot, app) = match parsed.and_then(|p| args.finish().map(|_| p)) {
        Ok(p) => p,
        Err(e) => {
            backend::print_error(&format!("{program}: {e}"));
            backend::exit(USAGE_EXIT_CODE);
        }
    };
    logger::init(level, backend::log_sink(), backend::monotonic);

    let platform = match backend::platform() {
        Ok(p) => p,
        Err(e) => fail(&program, &e),
    };
    if let Some(bytes) = memory.budget {
        morgana_runtime::memory::set_limit(bytes);
    }
    let executor = Executor::new(platform.clone());
    let rt = executor.handle();
    if let Some(secs) = memory.report {
        rt.spawn(report_memory(rt.clone(), core::time::Duration::from_secs(secs)));
    }
    let devices = match backend::start(boot, &platform, &rt) {
        Ok(d) => d,
        Err(e) => fail(&program, &e),
    };
    let (content, block) = if options.content {
        match executor.block_on(crate::content::discover(backend::boot_module(), devices.block)) {
            Ok(found) => found,
            Err(e) => fail(&program, &e),
        }
    } else {
        log::debug!("content: not looked for (the app takes none)");
        (None, devices.block)
    };
    let env = Env {
        name,
        net: devices.stack,
        rt,
        clock: devices.clock,
        entropy: devices.entropy,
        block,
        content,
        console: devices.console,
    };
    // Bound before the app runs, so it exists before a sandbox goes on.
    if let Some(addr) = memory.metrics {
        match env.net.tcp_listen(addr) {
            Ok(l) => {
                log::info!("metrics at http://{addr}/metrics");
                env.rt.spawn(crate::scrape::serve(l, env.net.clone(), env.rt.clone()));
            }
            Err(e) => fail(&program, &format!("metrics listener {addr}: {e}")),
        }
    }
    let net = env.net.clone();
    let rt = env.rt.clone();
    let main = ReportReady { inner: Box::pin(serve(env, app)), on_ready: Some((net, rt)), program: program.clone() };
    match executor.block_on(main) {
        Ok(()) => backend::exit(0),
        Err(e) => fail(&program, &e),
    }
}

/// Runs the app's future; the first time it waits, the app has set itself
/// up: the backend is told (a hosted process with `--sandbox` drops to its
/// allow-list there), and once the network is configured the framework logs
/// that it is ready to serve and how long that took since the process or VM
/// started.
struct ReportReady<F> {
    inner: Pin<Box<F>>,
    on_ready: Option<(crate::Stack, crate::Handle)>,
    program: alloc::string::String,
}

impl<F: Future> Future for ReportReady<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = self.inner.as_mut().poll(cx);
        if out.is_pending() {
            if let Some((net, rt)) = self.on_ready.take() {
                if let Err(e) = backend::started() {
                    fail(&self.program, &e);
                }
                rt.spawn(async move {
                    net.wait_configured().await;
                    let t = backend::since_entry();
                    log::info!("ready to serve, {}.{:03} ms after start", t.as_millis(), t.as_micros() % 1000);
                });
            }
        }
        out
    }
}

fn fail(program: &str, e: &dyn core::fmt::Display) -> ! {
    backend::print_error(&format!("{program}: error: {e}"));
    backend::exit(1)
}
