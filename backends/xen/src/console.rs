//! The PV console (`xen/include/public/io/console.h`): a 1 KiB input and a
//! 2 KiB output ring in one page, drained by xenconsoled in dom0.

use core::sync::atomic::{fence, AtomicBool, Ordering};
use core::task::{Context, Poll};
use core::time::Duration;

use morgana_devices::{Console, ConsoleError};
use morgana_runtime::logger::LogSink;
use morgana_x86::xen::Port;

use crate::page::SharedPage;

const IN: usize = 0;
const IN_SIZE: u32 = 1024;
const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const IN_CONS: usize = 3072;
const IN_PROD: usize = 3076;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;

/// Output is being dropped: xenconsoled stopped draining the ring.
static STALLED: AtomicBool = AtomicBool::new(false);

/// The PV console.
#[derive(Debug, Clone, Copy)]
pub struct PvConsole {
    page: SharedPage,
    port: Port,
}

// SAFETY: one CPU, no threads; the ring page is Xen's console page, used
// only from task context (and the logger, which runs there too).
unsafe impl Send for PvConsole {}

impl PvConsole {
    /// The console whose ring is at `addr`, signalled on `port`.
    pub fn new(addr: u64, port: Port) -> Option<PvConsole> {
        // SAFETY: `addr` is the console ring frame Xen named in
        // HVM_PARAM_CONSOLE_PFN: guest RAM below 4 GiB (identity mapped), set
        // aside by the toolstack for the ring, outside the heap and image.
        let page = unsafe { SharedPage::at(addr as usize)? };
        port.unmask();
        Some(PvConsole { page, port })
    }

    fn idx(&self, off: usize) -> u32 {
        // SAFETY: `off` is one of the four index offsets inside the console
        // page, 4-byte aligned; xenconsoled updates them concurrently.
        unsafe { self.page.ptr().add(off).cast::<u32>().read_volatile() }
    }

    fn set_idx(&self, off: usize, v: u32) {
        // SAFETY: as for `idx`.
        unsafe { self.page.ptr().add(off).cast::<u32>().write_volatile(v) }
    }

    /// Writes what fits; returns how much.
    fn put(&self, bytes: &[u8]) -> usize {
        let cons = self.idx(OUT_CONS);
        let prod = self.idx(OUT_PROD);
        fence(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        if used > OUT_SIZE {
            return 0; // corrupt indices: write nothing
        }
        let n = bytes.len().min((OUT_SIZE - used) as usize);
        for (k, &b) in bytes[..n].iter().enumerate() {
            let i = prod.wrapping_add(k as u32) % OUT_SIZE;
            // SAFETY: `i` < OUT_SIZE, so the byte is in the output ring.
            unsafe { self.page.ptr().add(OUT + i as usize).write_volatile(b) };
        }
        fence(Ordering::Release);
        self.set_idx(OUT_PROD, prod.wrapping_add(n as u32));
        self.port.notify();
        n
    }

    /// Writes all of `bytes`, waiting up to a second for xenconsoled to
    /// make room; what does not fit then is dropped, and so is later output
    /// until the ring has room again (so a stopped xenconsoled costs the
    /// app one second, not one per line).
    fn write_all(&self, mut bytes: &[u8]) {
        let deadline = morgana_x86::clock::now() + Duration::from_secs(1);
        while !bytes.is_empty() {
            let n = self.put(bytes);
            bytes = &bytes[n..];
            if n > 0 {
                STALLED.store(false, Ordering::Relaxed);
            } else {
                let now = morgana_x86::clock::now();
                if now >= deadline || STALLED.load(Ordering::Relaxed) {
                    STALLED.store(true, Ordering::Relaxed);
                    return;
                }
                morgana_runtime::Platform::wait(&morgana_x86::Machine, Some(now + Duration::from_millis(1)));
            }
        }
    }
}

impl LogSink for PvConsole {
    fn write_str(&mut self, s: &str) {
        self.write_all(s.as_bytes());
    }
}

impl Console for PvConsole {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        self.write_all(bytes);
        Ok(())
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ConsoleError>> {
        self.port.register(cx.waker());
        let cons = self.idx(IN_CONS);
        let prod = self.idx(IN_PROD);
        fence(Ordering::Acquire);
        let avail = prod.wrapping_sub(cons);
        if avail > IN_SIZE {
            return Poll::Ready(Err(ConsoleError::Device));
        }
        if avail == 0 {
            return Poll::Pending;
        }
        let n = buf.len().min(avail as usize);
        for (k, b) in buf[..n].iter_mut().enumerate() {
            let i = cons.wrapping_add(k as u32) % IN_SIZE;
            // SAFETY: `i` < IN_SIZE, so the byte is in the input ring.
            *b = unsafe { self.page.ptr().add(IN + i as usize).read_volatile() };
        }
        fence(Ordering::Release);
        self.set_idx(IN_CONS, cons.wrapping_add(n as u32));
        self.port.notify();
        Poll::Ready(Ok(n))
    }
}
