//! Any bytes as what an HTTP client sends, to `morgana_http::serve_connection`
//! over an in-memory stream, on the runtime's executor with virtual time:
//! nothing may panic, the connection must end (the stream reports EOF after
//! the input; stalled reads and writes must end in a timeout, not a hang),
//! and every complete response written must be well framed.
//!
//! Input: one config byte, one schedule length byte `k`, `k` schedule bytes,
//! then the client's bytes. Each read takes the next schedule byte `s`
//! (cycling): 0 = not ready yet (woken at once), 255 = stall until the
//! server's timeout, otherwise up to `s` bytes.
#![no_main]

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use morgana_devices::{Clock, Instant, WallTime};
use morgana_http::{serve_connection, Config, Site};
use morgana_runtime::{Executor, Platform};

/// Virtual time: waiting for a deadline jumps the clock to it.
#[derive(Default)]
struct VirtualTime {
    now: Cell<u64>,
    busy: Cell<u32>,
}

impl Platform for VirtualTime {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.now.get())
    }
    fn wait(&self, deadline: Option<Instant>) {
        let d = deadline.expect("hang: no task ready and no timer pending");
        if d.as_nanos() > self.now.get() {
            self.now.set(d.as_nanos());
            self.busy.set(0);
        } else {
            // Ready tasks but no progress in time: bounded, or it is a livelock.
            self.busy.set(self.busy.get() + 1);
            assert!(self.busy.get() < 100_000, "livelock: tasks keep waking without time passing");
        }
    }
}

struct FuzzClock {
    time: Rc<VirtualTime>,
    wall: bool,
}

impl Clock for FuzzClock {
    fn now(&self) -> Instant {
        self.time.now()
    }
    fn wall(&self) -> Option<WallTime> {
        // 2026-11-27, plus virtual time.
        self.wall.then(|| WallTime(1_795_737_600_000_000_000 + self.time.now().as_nanos()))
    }
}

struct Stream {
    input: Vec<u8>,
    pos: usize,
    schedule: Vec<u8>,
    step: usize,
    /// A read returned "not ready" and must complete on the next poll.
    pending_once: bool,
    /// Writes stall (never complete) once this many bytes have been taken.
    write_limit: usize,
    written: Vec<u8>,
}

impl embedded_io_async::ErrorType for Stream {
    type Error = Infallible;
}

/// A future that is pending forever (a stalled peer): only a timeout ends it.
struct Stall;

impl Future for Stall {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Pending once, then ready (a read that has to wait a little).
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl embedded_io_async::Read for Stream {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() || self.pos >= self.input.len() {
            return Ok(0);
        }
        let s = if self.schedule.is_empty() { 64 } else { self.schedule[self.step % self.schedule.len()] };
        self.step += 1;
        match s {
            0 if !self.pending_once => {
                self.pending_once = true;
                YieldOnce(false).await;
            }
            255 => {
                Stall.await;
                unreachable!("a stalled read is only ever dropped");
            }
            _ => {}
        }
        self.pending_once = false;
        let n = (s.max(1) as usize).min(buf.len()).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io_async::Write for Stream {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.written.len() >= self.write_limit {
            Stall.await;
        }
        let n = buf.len().min(self.write_limit - self.written.len()).min(4096);
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    async fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

fn site() -> Site {
    let mut site = Site::new();
    site.add("index.html", &b"<!doctype html><title>fuzz</title>"[..], 1_700_000_000);
    site.add("a/index.html", &b"<p>a</p>"[..], 1_700_000_000);
    site.add("style.css", vec![b'x'; 5000], 1_700_000_100);
    site.add("style.css.gz", &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0][..], 1_700_000_100);
    site.add("empty.txt", &b""[..], 0);
    site.add("sp ace/x y.txt", &b"spaced"[..], 0);
    site.link_gzip_variants();
    site
}

/// Checks the framing of every complete response in `out`; returns how many.
fn responses(mut out: &[u8]) -> usize {
    let mut count = 0;
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut rsp = httparse::Response::new(&mut headers);
        let head = match rsp.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => break, // cut off by a stalled write
            Err(e) => panic!("malformed response head ({e}): {:?}", String::from_utf8_lossy(out)),
        };
        let status = rsp.code.expect("status");
        assert!((200..600).contains(&status), "status {status}");
        let length = rsp.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"));
        let length: usize = match length {
            Some(h) => std::str::from_utf8(h.value).unwrap().parse().expect("Content-Length"),
            None => {
                assert_eq!(status, 304, "a response without Content-Length");
                0
            }
        };
        out = &out[head..];
        count += 1;
        // A HEAD response or a 304/416 has no body: the next response follows.
        if status != 304 && status != 416 && !out.starts_with(b"HTTP/1.1 ") {
            if out.len() < length {
                break;
            }
            out = &out[length..];
        }
    }
    count
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg_byte, rest)) = data.split_first() else { return };
    let Some((&k, rest)) = rest.split_first() else { return };
    let k = (k as usize % 16).min(rest.len());
    let (schedule, input) = rest.split_at(k);

    let time = Rc::new(VirtualTime::default());
    let exec = Executor::new(time.clone());
    let rt = exec.handle();
    let cfg = Config {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(30),
        max_request_line: 256,
        max_head: 1024,
        max_headers: 16,
        max_body: 512,
        redirect_https: match cfg_byte & 3 {
            1 => Some(443),
            2 => Some(8443),
            _ => None,
        },
        hsts: (cfg_byte & 16 != 0).then_some(31_536_000),
        acme_challenges: None,
    };
    let stalls_writes = cfg_byte & 4 != 0;
    let clock = FuzzClock { time: time.clone(), wall: cfg_byte & 8 != 0 };
    let mut stream = Stream {
        input: input.to_vec(),
        pos: 0,
        schedule: schedule.to_vec(),
        step: 0,
        pending_once: false,
        write_limit: if stalls_writes { (cfg_byte as usize >> 4) * 97 } else { usize::MAX },
        written: Vec::new(),
    };
    let rt2 = rt.clone();
    let (result, stream) = exec.block_on(async move {
        let site = site();
        let r = serve_connection(&mut stream, &site, &cfg, &rt2, &clock).await;
        (r, stream)
    });
    let Ok((_outcome, served)) = result;
    let complete = responses(&stream.written);
    if !stalls_writes {
        assert_eq!(complete, served, "responses written vs requests served");
    }
    // Each stall ends within the longest timeout: the time is bounded too.
    let stalls = stream.step as u64 + 2;
    assert!(time.now().as_nanos() <= stalls * 31_000_000_000, "virtual time ran away");
});
