//! From boot arguments to a running app.

use alloc::boxed::Box;
use alloc::format;
use core::future::Future;

use log::LevelFilter;
use morgana_runtime::args::USAGE_EXIT_CODE;
use morgana_runtime::{logger, ArgError, Args, Executor};

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

/// Boots the app: takes the framework's, the backend's and the app's flags
/// (exit code 2 on a bad one), starts the backend, runs `main` and exits with
/// 0 when it returns `Ok`, 1 when it fails or the backend cannot start. Used
/// through [`crate::main!`].
#[cfg(not(target_os = "none"))]
pub fn run<C, F, Fut>(name: &'static str, config: fn(&mut Args) -> core::result::Result<C, ArgError>, main: F) -> !
where
    F: FnOnce(Env, C) -> Fut,
    Fut: Future<Output = Result> + 'static,
{
    use morgana_hosted as backend;

    let mut args = Args::from_words(backend::args());
    let program = backend::program_name();
    let help = args.help_requested();
    let parsed = (|| {
        let level = log_level(&mut args)?;
        let boot = backend::BootConfig::from_args(&mut args)?;
        let app = config(&mut args)?;
        Ok::<_, ArgError>((level, boot, app))
    })();
    if help {
        backend::print(&args.usage(&program));
        backend::exit(0);
    }
    let (level, boot, app) = match parsed.and_then(|p| args.finish().map(|_| p)) {
        Ok(p) => p,
        Err(e) => {
            backend::print_error(&format!("{program}: {e}"));
            backend::exit(USAGE_EXIT_CODE);
        }
    };
    logger::init(level, Box::new(backend::StderrSink), backend::monotonic);

    let reactor = match backend::Reactor::new() {
        Ok(r) => r,
        Err(e) => fail(&program, &e),
    };
    let executor = Executor::new(reactor.clone());
    let rt = executor.handle();
    let devices = match backend::start(boot, &reactor, &rt) {
        Ok(d) => d,
        Err(e) => fail(&program, &e),
    };
    let env = Env {
        name,
        net: devices.stack,
        rt,
        clock: devices.clock,
        entropy: devices.entropy,
        block: devices.block,
        console: devices.console,
    };
    match executor.block_on(main(env, app)) {
        Ok(()) => backend::exit(0),
        Err(e) => fail(&program, &e),
    }
}

#[cfg(not(target_os = "none"))]
fn fail(program: &str, e: &dyn core::fmt::Display) -> ! {
    morgana_hosted::print_error(&format!("{program}: error: {e}"));
    morgana_hosted::exit(1)
}
