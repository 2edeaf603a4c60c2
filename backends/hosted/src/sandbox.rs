//! `--sandbox`: once the app has set itself up, the process drops to a
//! seccomp-BPF allow-list of the system calls its devices need (as Solo5's
//! `spt` does). Any other system call is trapped: a SIGSYS handler names it
//! on stderr and the process dies of SIGSYS. `PR_SET_NO_NEW_PRIVS` is set
//! with the filter (by `seccompiler`), and the filter covers every thread.
//!
//! No call that opens a file or creates a socket is allowed: after start the
//! only new descriptors are connections accepted on host-socket listeners.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What the sandboxed process keeps using after start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sandbox {
    /// Host sockets (`--net=socket`) rather than a TAP device.
    pub host_sockets: bool,
    /// A `--block` file.
    pub block: bool,
}

/// One allowed system call, with conditions on its arguments (none: any).
struct Allowed {
    nr: i64,
    name: &'static str,
    rules: Vec<SeccompRule>,
}

fn any(nr: i64, name: &'static str) -> Allowed {
    Allowed { nr, name, rules: Vec::new() }
}

/// `arg & mask == 0`.
fn clear(arg: u8, mask: u64) -> Cond {
    Cond::new(arg, Len::Qword, Op::MaskedEq(mask), 0).expect("argument index below 6")
}

fn eq(arg: u8, value: u64) -> Cond {
    Cond::new(arg, Len::Dword, Op::Eq, value).expect("argument index below 6")
}

fn rule(conditions: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conditions).expect("at least one condition")
}

impl Sandbox {
    /// The allow-list, in the order the README lists it.
    fn allowed(&self) -> Vec<Allowed> {
        let no_exec = libc::PROT_EXEC as u64;
        let mut list = vec![
            // Devices: TAP frames, stdio, the reactor's eventfd.
            any(libc::SYS_read, "read"),
            any(libc::SYS_write, "write"),
            any(libc::SYS_epoll_wait, "epoll_wait"),
            // The vDSO answers these without a system call on most hosts.
            any(libc::SYS_clock_gettime, "clock_gettime"),
            any(libc::SYS_getrandom, "getrandom"),
            // The allocator; never executable memory.
            any(libc::SYS_brk, "brk"),
            Allowed { nr: libc::SYS_mmap, name: "mmap", rules: vec![rule(vec![clear(2, no_exec)])] },
            any(libc::SYS_munmap, "munmap"),
            any(libc::SYS_mremap, "mremap"),
            any(libc::SYS_madvise, "madvise"),
            Allowed { nr: libc::SYS_mprotect, name: "mprotect", rules: vec![rule(vec![clear(2, no_exec)])] },
            // Locks shared with the console's input thread.
            any(libc::SYS_futex, "futex"),
            any(libc::SYS_rt_sigreturn, "rt_sigreturn"),
            any(libc::SYS_exit_group, "exit_group"),
        ];
        if self.block {
            list.extend([
                any(libc::SYS_pread64, "pread64"),
                any(libc::SYS_pwrite64, "pwrite64"),
                any(libc::SYS_fdatasync, "fdatasync"),
            ]);
        }
        if self.host_sockets {
            let nodelay = rule(vec![eq(1, libc::IPPROTO_TCP as u64), eq(2, libc::TCP_NODELAY as u64)]);
            let linger = rule(vec![eq(1, libc::SOL_SOCKET as u64), eq(2, libc::SO_LINGER as u64)]);
            list.extend([
                any(libc::SYS_accept4, "accept4"),
                any(libc::SYS_recvfrom, "recvfrom"),
                any(libc::SYS_sendto, "sendto"),
                any(libc::SYS_recvmmsg, "recvmmsg"),
                any(libc::SYS_sendmmsg, "sendmmsg"),
                any(libc::SYS_epoll_ctl, "epoll_ctl"),
                Allowed { nr: libc::SYS_setsockopt, name: "setsockopt", rules: vec![nodelay, linger] },
                any(libc::SYS_shutdown, "shutdown"),
                any(libc::SYS_close, "close"),
                // Debug builds check that a descriptor is open before closing it.
                Allowed { nr: libc::SYS_fcntl, name: "fcntl", rules: vec![rule(vec![eq(1, libc::F_GETFD as u64)])] },
            ]);
        }
        list
    }

    /// The names of the allowed system calls.
    pub fn allowed_names(&self) -> Vec<&'static str> {
        self.allowed().iter().map(|a| a.name).collect()
    }

    fn program(&self) -> Result<BpfProgram, SandboxError> {
        let rules: BTreeMap<i64, Vec<SeccompRule>> = self.allowed().into_iter().map(|a| (a.nr, a.rules)).collect();
        let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SandboxError(e.to_string()))?;
        let filter = SeccompFilter::new(rules, SeccompAction::Trap, SeccompAction::Allow, arch)
            .map_err(|e| SandboxError(e.to_string()))?;
        filter.try_into().map_err(|e: seccompiler::BackendError| SandboxError(e.to_string()))
    }

    /// Installs the SIGSYS reporter and the panic hook, then the filter on
    /// every thread of the process. Cannot be undone.
    pub fn enter(&self) -> Result<(), SandboxError> {
        let program = self.program()?;
        trap::install().map_err(|e| SandboxError(format!("cannot install the SIGSYS handler: {e}")))?;
        install_panic_hook();
        seccompiler::apply_filter_all_threads(&program).map_err(|e| SandboxError(e.to_string()))?;
        SEALED.store(true, Ordering::Release);
        Ok(())
    }
}

/// Why the sandbox could not be entered.
#[derive(Debug)]
pub struct SandboxError(String);

impl fmt::Display for SandboxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot enter the sandbox: {}", self.0)
    }
}

impl std::error::Error for SandboxError {}

/// The sandbox `start` was asked for, entered once the app has set up.
static PENDING: Mutex<Option<Sandbox>> = Mutex::new(None);
static SEALED: AtomicBool = AtomicBool::new(false);

/// Asks for `sandbox` to be entered when [`crate::started`] is called.
pub(crate) fn request(sandbox: Sandbox) {
    *PENDING.lock().unwrap_or_else(|e| e.into_inner()) = Some(sandbox);
}

/// Enters the requested sandbox, if any; returns it.
pub(crate) fn enter_requested() -> Result<Option<Sandbox>, SandboxError> {
    let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
    match pending {
        None => Ok(None),
        Some(s) => s.enter().map(|_| Some(s)),
    }
}

/// Whether the process runs, or will run once set up, in the sandbox.
pub fn requested() -> bool {
    sealed() || PENDING.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// True once the filter is on: nothing may open sockets or files.
pub fn sealed() -> bool {
    SEALED.load(Ordering::Acquire)
}

/// std's panic message needs no system call beyond `write`, but its
/// backtrace reads `/proc/self/exe`, which the filter forbids: inside the
/// sandbox a panic prints its message and location and exits with 101
/// (aborting would need signal system calls).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>");
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        match info.location() {
            Some(l) => eprintln!("thread '{name}' panicked at {l}:\n{msg}\n(sandboxed: no backtrace)"),
            None => eprintln!("thread '{name}' panicked:\n{msg}\n(sandboxed: no backtrace)"),
        }
        exit(101);
    }));
}

/// Ends the process inside the sandbox: std's exit runs clean-up that makes
/// forbidden calls (sigaltstack), so flush stdout and call `_exit`.
pub(crate) fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    #[allow(unsafe_code)]
    // SAFETY: `_exit` ends the process at once; skipping atexit handlers
    // loses nothing, as stdout is flushed and stderr is unbuffered.
    unsafe {
        libc::_exit(code)
    }
}

/// The SIGSYS handler: says which call was refused, then dies of SIGSYS.
#[allow(unsafe_code)]
mod trap {
    use std::io;

    /// The kernel's `siginfo_t` for SIGSYS (`_sigsys` in
    /// `asm-generic/siginfo.h`), as far as we read it.
    #[repr(C)]
    struct SigsysInfo {
        signo: i32,
        errno: i32,
        code: i32,
        _pad: i32,
        call_addr: *mut libc::c_void,
        syscall: i32,
        arch: u32,
    }

    /// Async-signal-safe: formats into a stack buffer and writes once.
    extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo_t (128 bytes) to an
        // SA_SIGINFO handler; for SIGSYS its union holds `_sigsys`, whose
        // layout SigsysInfo mirrors and which lies within those 128 bytes.
        let nr = unsafe { (*info.cast::<SigsysInfo>()).syscall };
        let mut buf = [0u8; 160];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            let n = bytes.len().min(buf.len() - len);
            buf[len..len + n].copy_from_slice(&bytes[..n]);
            len += n;
        };
        put(b"sandbox: forbidden system call ");
        let mut digits = [0u8; 12];
        let mut i = digits.len();
        let mut v = nr.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        put(&digits[i..]);
        put(b" (");
        put(super::syscall_name(nr as i64).as_bytes());
        put(b"): the process is killed\n");
        // SAFETY: writes `len` initialised bytes of `buf` to stderr.
        unsafe { libc::write(2, buf.as_ptr().cast(), len) };
        // SIGSYS is blocked while its handler runs, so the kernel delivers
        // the trap of this second forbidden call with the default action:
        // the process dies of SIGSYS.
        // SAFETY: the call is refused by the filter before it does anything.
        unsafe { libc::syscall(nr as libc::c_long) };
        // SAFETY: _exit is async-signal-safe; only reached if the above
        // unexpectedly returned.
        unsafe { libc::_exit(128 + libc::SIGSYS) };
    }

    pub fn install() -> io::Result<()> {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); we set
        // the handler and flags before passing it to the kernel.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        // SAFETY: `action` is initialised and on_sigsys has the SA_SIGINFO
        // signature; it only calls async-signal-safe functions.
        if unsafe { libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Names of the calls a sandboxed app is most likely to try.
fn syscall_name(nr: i64) -> &'static str {
    const NAMES: &[(i64, &str)] = &[
        (libc::SYS_open, "open"),
        (libc::SYS_openat, "openat"),
        (libc::SYS_close, "close"),
        (libc::SYS_stat, "stat"),
        (libc::SYS_fstat, "fstat"),
        (libc::SYS_newfstatat, "newfstatat"),
        (libc::SYS_statx, "statx"),
        (libc::SYS_lseek, "lseek"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_socket, "socket"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_bind, "bind"),
        (libc::SYS_listen, "listen"),
        (libc::SYS_accept4, "accept4"),
        (libc::SYS_getsockopt, "getsockopt"),
        (libc::SYS_setsockopt, "setsockopt"),
        (libc::SYS_getpeername, "getpeername"),
        (libc::SYS_getsockname, "getsockname"),
        (libc::SYS_sendmsg, "sendmsg"),
        (libc::SYS_recvmsg, "recvmsg"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_fork, "fork"),
        (libc::SYS_vfork, "vfork"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_execveat, "execveat"),
        (libc::SYS_kill, "kill"),
        (libc::SYS_tgkill, "tgkill"),
        (libc::SYS_getpid, "getpid"),
        (libc::SYS_gettid, "gettid"),
        (libc::SYS_rt_sigaction, "rt_sigaction"),
        (libc::SYS_rt_sigprocmask, "rt_sigprocmask"),
        (libc::SYS_ptrace, "ptrace"),
        (libc::SYS_prctl, "prctl"),
        (libc::SYS_mount, "mount"),
        (libc::SYS_unlink, "unlink"),
        (libc::SYS_unlinkat, "unlinkat"),
        (libc::SYS_mkdirat, "mkdirat"),
        (libc::SYS_getdents64, "getdents64"),
        (libc::SYS_readlink, "readlink"),
        (libc::SYS_uname, "uname"),
        (libc::SYS_epoll_pwait, "epoll_pwait"),
        (libc::SYS_poll, "poll"),
        (libc::SYS_ppoll, "ppoll"),
        (libc::SYS_nanosleep, "nanosleep"),
        (libc::SYS_clock_nanosleep, "clock_nanosleep"),
        (libc::SYS_fsync, "fsync"),
        (libc::SYS_sched_yield, "sched_yield"),
    ];
    NAMES.iter().find(|(n, _)| *n == nr).map_or("see syscall(2)", |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_process_needs_at_most_fifteen_calls() {
        let tap = Sandbox { host_sockets: false, block: false };
        assert!(tap.allowed_names().len() <= 15, "{:?}", tap.allowed_names());
        assert!(!tap.allowed_names().contains(&"accept4"));
        let sockets = Sandbox { host_sockets: true, block: true };
        for name in ["accept4", "sendmmsg", "pread64", "fdatasync"] {
            assert!(sockets.allowed_names().contains(&name), "{name}");
        }
    }

    #[test]
    fn nothing_that_opens_or_executes_is_allowed() {
        let all = Sandbox { host_sockets: true, block: true };
        let nrs: Vec<i64> = all.allowed().iter().map(|a| a.nr).collect();
        for nr in [
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_socket,
            libc::SYS_connect,
            libc::SYS_execve,
            libc::SYS_clone,
            libc::SYS_clone3,
            libc::SYS_ptrace,
        ] {
            assert!(!nrs.contains(&nr), "{} allowed", syscall_name(nr));
        }
        all.program().expect("the filter compiles");
    }
}
