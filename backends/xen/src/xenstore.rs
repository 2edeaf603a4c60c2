//! The xenstore protocol (`xen/include/public/io/xs_wire.h`) over its
//! shared ring page, and a client.
//!
//! Requests and responses are a 16-byte header (type, request id,
//! transaction id, length) and a payload, streamed through two 1 KiB
//! circular buffers. The daemon on the other side is trusted no more than
//! any backend: lengths and indices are checked.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};
use core::task::{Context, Poll, Waker};

use crate::page::SharedPage;

/// Message types.
#[allow(missing_docs)]
pub mod op {
    pub const DIRECTORY: u32 = 1;
    pub const READ: u32 = 2;
    pub const WATCH: u32 = 4;
    pub const UNWATCH: u32 = 5;
    pub const TRANSACTION_START: u32 = 6;
    pub const TRANSACTION_END: u32 = 7;
    pub const WRITE: u32 = 11;
    pub const WATCH_EVENT: u32 = 15;
    pub const ERROR: u32 = 16;
}

const RING: u32 = 1024;
const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
/// Largest payload the protocol allows.
pub const MAX_PAYLOAD: usize = 4096;
/// Watch events kept for [`Client::poll_event`]; older ones are dropped.
const MAX_EVENTS: usize = 64;
/// Messages that are not the answer (watch events, late answers) taken
/// while waiting for one, before the daemon counts as flooding the ring.
const MAX_UNRELATED: usize = 256;

/// A failed xenstore operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsError {
    /// The daemon answered with an error (`ENOENT`, `EACCES`, `EAGAIN`...).
    Daemon(String),
    /// The daemon broke the protocol.
    Protocol(&'static str),
    /// No answer in time.
    TimedOut,
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Daemon(e) => write!(f, "xenstore: {e}"),
            XsError::Protocol(e) => write!(f, "xenstore protocol error: {e}"),
            XsError::TimedOut => f.write_str("xenstore did not answer"),
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Type.
    pub kind: u32,
    /// Request id (echoed in the response).
    pub req_id: u32,
    /// Transaction id (0: none).
    pub tx_id: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Message {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.payload.len());
        for v in [self.kind, self.req_id, self.tx_id, self.payload.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.payload);
        out
    }
}

/// The shared page, seen from either side.
#[derive(Debug, Clone, Copy)]
pub struct RingPage {
    page: SharedPage,
}

impl RingPage {
    /// The ring in `page`.
    pub fn new(page: SharedPage) -> RingPage {
        RingPage { page }
    }

    fn idx(&self, off: usize) -> u32 {
        // SAFETY: `off` is one of the four index offsets, within the page
        // and 4-byte aligned; the other side writes them concurrently.
        unsafe { self.page.ptr().add(off).cast::<u32>().read_volatile() }
    }

    fn set_idx(&self, off: usize, v: u32) {
        // SAFETY: as for `idx`.
        unsafe { self.page.ptr().add(off).cast::<u32>().write_volatile(v) }
    }

    fn byte(&self, base: usize, i: u32) -> u8 {
        // SAFETY: base is REQ or RSP and `i % RING` < 1024: inside the page.
        unsafe { self.page.ptr().add(base + (i % RING) as usize).read_volatile() }
    }

    fn set_byte(&self, base: usize, i: u32, b: u8) {
        // SAFETY: as for `byte`.
        unsafe { self.page.ptr().add(base + (i % RING) as usize).write_volatile(b) }
    }

    /// Appends as much of `data` to the stream at `base` as fits; returns
    /// how much (producer side).
    fn produce(&self, base: usize, cons_off: usize, prod_off: usize, data: &[u8]) -> Result<usize, XsError> {
        let cons = self.idx(cons_off);
        let prod = self.idx(prod_off);
        fence(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        if used > RING {
            return Err(XsError::Protocol("request ring indices out of range"));
        }
        let n = data.len().min((RING - used) as usize);
        for (k, &b) in data[..n].iter().enumerate() {
            self.set_byte(base, prod.wrapping_add(k as u32), b);
        }
        fence(Ordering::Release);
        self.set_idx(prod_off, prod.wrapping_add(n as u32));
        Ok(n)
    }

    /// Bytes available on the stream at `base` (consumer side).
    fn available(&self, cons_off: usize, prod_off: usize) -> Result<u32, XsError> {
        let avail = self.idx(prod_off).wrapping_sub(self.idx(cons_off));
        fence(Ordering::Acquire);
        if avail > RING {
            return Err(XsError::Protocol("response ring indices out of range"));
        }
        Ok(avail)
    }

    fn peek(&self, base: usize, cons_off: usize, out: &mut [u8]) {
        let cons = self.idx(cons_off);
        for (k, b) in out.iter_mut().enumerate() {
            *b = self.byte(base, cons.wrapping_add(k as u32));
        }
    }

    fn consume(&self, cons_off: usize, n: u32) {
        fence(Ordering::Release);
        self.set_idx(cons_off, self.idx(cons_off).wrapping_add(n));
    }
}

/// Reads one whole message from the stream at `base`, if one is there.
fn read_message(
    r: &RingPage,
    base: usize,
    cons: usize,
    prod: usize,
    partial: &mut Vec<u8>,
) -> Result<Option<Message>, XsError> {
    let avail = r.available(cons, prod)? as usize;
    if avail > 0 {
        let mut chunk = alloc::vec![0u8; avail];
        r.peek(base, cons, &mut chunk);
        r.consume(cons, avail as u32);
        partial.extend_from_slice(&chunk);
    }
    if partial.len() < 16 {
        return Ok(None);
    }
    let word = |i: usize| u32::from_le_bytes(partial[4 * i..4 * i + 4].try_into().unwrap_or([0; 4]));
    let len = word(3) as usize;
    if len > MAX_PAYLOAD {
        return Err(XsError::Protocol("message longer than 4096 bytes"));
    }
    if partial.len() < 16 + len {
        return Ok(None);
    }
    let msg = Message { kind: word(0), req_id: word(1), tx_id: word(2), payload: partial[16..16 + len].to_vec() };
    partial.drain(..16 + len);
    Ok(Some(msg))
}

/// What the client needs from its surroundings: a way to kick the daemon
/// and ways to wait for it.
pub trait Channel {
    /// Notifies the daemon (event channel).
    fn notify(&mut self);
    /// Waits a little for the daemon (an event, or a short timeout);
    /// `false` once the overall time allowed has run out. Used by the
    /// synchronous requests only (at boot: it holds up the executor).
    fn wait(&mut self) -> bool;
    /// Wakes `waker` at the daemon's next event (for the async requests).
    fn register(&mut self, waker: &Waker);
}

/// Request bytes waiting for room in the ring, at most (two of the largest
/// requests); beyond that the daemon is not reading and requests fail.
const MAX_OUTGOING: usize = 2 * (16 + MAX_PAYLOAD);

/// A xenstore client: synchronous requests for boot ([`Client::read`]...),
/// asynchronous ones for tasks ([`Client::read_async`]...). One request at
/// a time: answers to anything but the request being waited for (a request
/// given up on) are skipped.
pub struct Client<C: Channel> {
    ring: RingPage,
    channel: C,
    next_id: u32,
    partial: Vec<u8>,
    events: VecDeque<(String, String)>,
    /// Encoded requests not yet in the ring (a whole message is always
    /// sent, even if its request was given up on, so framing holds).
    outgoing: VecDeque<u8>,
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl<C: Channel> Client<C> {
    /// A client on `page`, reached through `channel`.
    pub fn new(page: SharedPage, channel: C) -> Self {
        Client {
            ring: RingPage::new(page),
            channel,
            next_id: 1,
            partial: Vec::new(),
            events: VecDeque::new(),
            outgoing: VecDeque::new(),
        }
    }

    /// The channel.
    pub fn channel(&mut self) -> &mut C {
        &mut self.channel
    }

    /// Queues a request and sends what the ring takes; returns its id.
    pub fn send(&mut self, kind: u32, tx_id: u32, payload: Vec<u8>) -> Result<u32, XsError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(XsError::Protocol("request too long"));
        }
        let req_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let bytes = Message { kind, req_id, tx_id, payload }.encode();
        if self.outgoing.len() + bytes.len() > MAX_OUTGOING {
            return Err(XsError::TimedOut);
        }
        self.outgoing.extend(bytes);
        self.push_out()?;
        self.channel.notify();
        Ok(req_id)
    }

    /// Moves queued request bytes into the ring, as far as they fit.
    fn push_out(&mut self) -> Result<(), XsError> {
        while !self.outgoing.is_empty() {
            let (front, _) = self.outgoing.as_slices();
            let n = self.ring.produce(REQ, REQ_CONS, REQ_PROD, front)?;
            if n == 0 {
                break;
            }
            self.outgoing.drain(..n);
        }
        Ok(())
    }

    /// The answer to request `req_id` of type `kind`, if it has arrived
    /// (queueing watch events that arrive meanwhile); sends queued request
    /// bytes first. Never waits. `unrelated` counts the other messages seen
    /// for this request: past [`MAX_UNRELATED`] the daemon is flooding.
    pub fn answer(&mut self, req_id: u32, kind: u32, unrelated: &mut usize) -> Result<Option<Vec<u8>>, XsError> {
        self.push_out()?;
        let result = loop {
            let m = read_message(&self.ring, RSP, RSP_CONS, RSP_PROD, &mut self.partial);
            if matches!(&m, Ok(Some(m)) if m.kind == op::WATCH_EVENT || m.req_id != req_id) {
                *unrelated += 1;
                if *unrelated > MAX_UNRELATED {
                    break Err(XsError::Protocol("flooded with messages that are not the answer"));
                }
            }
            match m {
                Ok(Some(m)) if m.kind == op::WATCH_EVENT => self.queue_event(&m),
                // The late answer to a request given up on: skip it.
                Ok(Some(m)) if m.req_id != req_id => {}
                Ok(Some(m)) if m.kind == op::ERROR => {
                    let text = String::from_utf8_lossy(&m.payload).trim_end_matches('\0').to_string();
                    break Err(XsError::Daemon(text));
                }
                Ok(Some(m)) if m.kind != kind => break Err(XsError::Protocol("answer of another type")),
                Ok(Some(m)) => break Ok(Some(m.payload)),
                Ok(None) => break Ok(None),
                Err(e) => break Err(e),
            }
        };
        // We consumed, or wait for more: the daemon may continue.
        self.channel.notify();
        result
    }

    /// Sends a request and waits for its answer through [`Channel::wait`]
    /// (for boot: the executor waits too).
    pub fn request(&mut self, kind: u32, tx_id: u32, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        let req_id = self.send(kind, tx_id, payload)?;
        let mut unrelated = 0;
        loop {
            if let Some(answer) = self.answer(req_id, kind, &mut unrelated)? {
                return Ok(answer);
            }
            if !self.channel.wait() {
                return Err(XsError::TimedOut);
            }
        }
    }

    /// Sends a request and waits for its answer through
    /// [`Channel::register`], as a task: other tasks run meanwhile. Dropping
    /// the future gives the request up (its answer is skipped later).
    pub async fn call(&mut self, kind: u32, tx_id: u32, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        let req_id = self.send(kind, tx_id, payload)?;
        let mut unrelated = 0;
        core::future::poll_fn(|cx| {
            self.channel.register(cx.waker());
            match self.answer(req_id, kind, &mut unrelated) {
                Ok(Some(answer)) => Poll::Ready(Ok(answer)),
                Ok(None) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            }
        })
        .await
    }

    /// Reads a value, as a task.
    pub async fn read_async(&mut self, path: &str) -> Result<String, XsError> {
        let v = self.call(op::READ, 0, nul_terminated(path)).await?;
        String::from_utf8(v)
            .map(|s| s.trim_end_matches('\0').to_string())
            .map_err(|_| XsError::Protocol("value is not UTF-8"))
    }

    /// Writes a value (in transaction `tx`, 0 for none), as a task.
    pub async fn write_async(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
        let mut p = nul_terminated(path);
        p.extend_from_slice(value.as_bytes());
        self.call(op::WRITE, tx, p).await.map(|_| ())
    }

    /// A watch event received, if any; else wakes `cx` at the daemon's next
    /// event.
    pub fn poll_watch(&mut self, cx: &mut Context<'_>) -> Poll<Result<(String, String), XsError>> {
        self.channel.register(cx.waker());
        match self.poll_event() {
            Ok(Some(event)) => Poll::Ready(Ok(event)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn queue_event(&mut self, m: &Message) {
        let mut parts = m.payload.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
        if let (Some(path), Some(token)) = (parts.next(), parts.next()) {
            if self.events.len() == MAX_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back((path, token));
        }
    }

    /// Reads a value.
    pub fn read(&mut self, path: &str) -> Result<String, XsError> {
        let v = self.request(op::READ, 0, nul_terminated(path))?;
        String::from_utf8(v)
            .map(|s| s.trim_end_matches('\0').to_string())
            .map_err(|_| XsError::Protocol("value is not UTF-8"))
    }

    /// Writes a value (in transaction `tx`, 0 for none).
    pub fn write(&mut self, tx: u32, path: &str, value: &str) -> Result<(), XsError> {
        let mut p = nul_terminated(path);
        p.extend_from_slice(value.as_bytes());
        self.request(op::WRITE, tx, p).map(|_| ())
    }

    /// Lists a directory.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsError> {
        let v = self.request(op::DIRECTORY, 0, nul_terminated(path))?;
        Ok(v.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| String::from_utf8_lossy(p).into_owned()).collect())
    }

    /// Starts a transaction.
    pub fn transaction_start(&mut self) -> Result<u32, XsError> {
        let v = self.request(op::TRANSACTION_START, 0, alloc::vec![0])?;
        core::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.trim_end_matches('\0').parse().ok())
            .ok_or(XsError::Protocol("bad transaction id"))
    }

    /// Ends a transaction; `Err(Daemon("EAGAIN"))` means: retry it.
    pub fn transaction_end(&mut self, tx: u32, commit: bool) -> Result<(), XsError> {
        self.request(op::TRANSACTION_END, tx, nul_terminated(if commit { "T" } else { "F" })).map(|_| ())
    }

    /// Watches `path` (events carry `token`).
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), XsError> {
        let mut p = nul_terminated(path);
        p.extend(nul_terminated(token));
        self.request(op::WATCH, 0, p).map(|_| ())
    }

    /// A watch event received, if any (without waiting). Takes a bounded
    /// number of messages per call, so a flooding daemon cannot hold it.
    pub fn poll_event(&mut self) -> Result<Option<(String, String)>, XsError> {
        self.push_out()?;
        let mut consumed = false;
        for _ in 0..MAX_EVENTS {
            let Some(m) = read_message(&self.ring, RSP, RSP_CONS, RSP_PROD, &mut self.partial)? else { break };
            consumed = true;
            if m.kind == op::WATCH_EVENT {
                self.queue_event(&m);
            }
        }
        if consumed {
            self.channel.notify(); // room in the ring: the daemon may continue
        }
        Ok(self.events.pop_front())
    }
}

/// A simulated xenstore daemon for tests and fuzzing (feature `sim`): a
/// map of paths, which can also misbehave.
#[cfg(any(test, feature = "sim"))]
pub struct FakeDaemon {
    /// The ring it serves.
    pub ring: RingPage,
    /// The store.
    pub store: alloc::collections::BTreeMap<String, String>,
    partial: Vec<u8>,
    /// Corrupt the next answer this way.
    pub sabotage: Option<fn(&mut Vec<u8>)>,
    /// Takes no requests while set.
    pub paused: bool,
}

#[cfg(any(test, feature = "sim"))]
impl FakeDaemon {
    /// A daemon on `page`.
    pub fn new(page: SharedPage) -> FakeDaemon {
        FakeDaemon {
            ring: RingPage::new(page),
            store: Default::default(),
            partial: Vec::new(),
            sabotage: None,
            paused: false,
        }
    }

    /// Empties both streams: all four indices zero (a fresh ring).
    pub fn reset(&mut self) {
        for off in [REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD] {
            self.ring.set_idx(off, 0);
        }
        self.partial.clear();
    }

    /// Writes raw bytes into the response stream; returns how many fit.
    pub fn inject(&self, bytes: &[u8]) -> usize {
        self.ring.produce(RSP, RSP_CONS, RSP_PROD, bytes).unwrap_or(0)
    }

    /// Sets the response producer or the request consumer to any value.
    pub fn force_indices(&self, rsp_prod: Option<u32>, req_cons: Option<u32>) {
        if let Some(v) = rsp_prod {
            self.ring.set_idx(RSP_PROD, v);
        }
        if let Some(v) = req_cons {
            self.ring.set_idx(REQ_CONS, v);
        }
    }

    /// Takes the next complete request and answers it with this type,
    /// request id (shifted by `id_delta`) and payload, whatever it asked;
    /// `false` if no request is waiting.
    pub fn answer_next(&mut self, kind: u32, id_delta: u32, payload: &[u8]) -> bool {
        let Ok(Some(m)) = read_message(&self.ring, REQ, REQ_CONS, REQ_PROD, &mut self.partial) else { return false };
        let m = Message { kind, req_id: m.req_id.wrapping_add(id_delta), tx_id: m.tx_id, payload: payload.to_vec() };
        self.inject(&m.encode());
        true
    }

    /// Answers every complete request waiting on the ring.
    pub fn serve(&mut self) {
        if self.paused {
            return;
        }
        while let Ok(Some(m)) = read_message(&self.ring, REQ, REQ_CONS, REQ_PROD, &mut self.partial) {
            let raw_first = m.payload.split(|b| *b == 0).next().unwrap_or(&[]);
            let first = String::from_utf8_lossy(raw_first).into_owned();
            let (kind, payload) = match m.kind {
                op::READ => match self.store.get(&first) {
                    Some(v) => (op::READ, v.clone().into_bytes()),
                    None => (op::ERROR, b"ENOENT\0".to_vec()),
                },
                op::WRITE => {
                    let value = m.payload.get(raw_first.len() + 1..).unwrap_or(&[]);
                    self.store.insert(first, String::from_utf8_lossy(value).into_owned());
                    (op::WRITE, b"OK\0".to_vec())
                }
                op::DIRECTORY => {
                    let prefix = alloc::format!("{first}/");
                    let mut names: Vec<String> = self
                        .store
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix).map(|r| r.split('/').next().unwrap_or("").to_string()))
                        .collect();
                    names.dedup();
                    let mut out = Vec::new();
                    for n in names {
                        out.extend(nul_terminated(&n));
                    }
                    (op::DIRECTORY, out)
                }
                op::TRANSACTION_START => (op::TRANSACTION_START, b"7\0".to_vec()),
                k => (k, b"OK\0".to_vec()),
            };
            let mut bytes = Message { kind, req_id: m.req_id, tx_id: m.tx_id, payload }.encode();
            if let Some(f) = self.sabotage.take() {
                f(&mut bytes);
            }
            let mut sent = 0;
            while sent < bytes.len() {
                match self.ring.produce(RSP, RSP_CONS, RSP_PROD, &bytes[sent..]) {
                    Ok(n) if n > 0 => sent += n,
                    _ => break, // the client does not read: the rest is lost
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use core::cell::RefCell;

    struct Loopback {
        daemon: Rc<RefCell<FakeDaemon>>,
        waits: u32,
    }

    impl Channel for Loopback {
        fn notify(&mut self) {
            self.daemon.borrow_mut().serve();
        }
        fn wait(&mut self) -> bool {
            self.waits += 1;
            self.daemon.borrow_mut().serve();
            self.waits < 50
        }
        fn register(&mut self, _waker: &Waker) {}
    }

    fn client() -> (Client<Loopback>, Rc<RefCell<FakeDaemon>>) {
        let page = SharedPage::new();
        let daemon = Rc::new(RefCell::new(FakeDaemon::new(page)));
        (Client::new(page, Loopback { daemon: daemon.clone(), waits: 0 }), daemon)
    }

    #[test]
    fn read_write_directory_and_errors() {
        let (mut c, d) = client();
        d.borrow_mut().store.insert("device/vif/0/mac".into(), "00:16:3e:00:00:01".into());
        d.borrow_mut().store.insert("device/vif/0/backend".into(), "/local/domain/0/backend/vif/1/0".into());
        assert_eq!(c.read("device/vif/0/mac").unwrap(), "00:16:3e:00:00:01");
        assert_eq!(c.directory("device/vif").unwrap(), alloc::vec!["0".to_string()]);
        c.write(0, "device/vif/0/state", "4").unwrap();
        assert_eq!(d.borrow().store["device/vif/0/state"], "4");
        assert_eq!(c.read("nope"), Err(XsError::Daemon("ENOENT".into())));
        assert_eq!(c.transaction_start().unwrap(), 7);
        // Many requests: the 1 KiB rings wrap around many times.
        for i in 0..500 {
            c.write(0, "data/k", &alloc::format!("{i:0>200}")).unwrap();
        }
        assert_eq!(c.read("data/k").unwrap().len(), 200);
    }

    #[test]
    fn malformed_answers_are_errors() {
        let (mut c, d) = client();
        d.borrow_mut().store.insert("a".into(), "b".into());
        d.borrow_mut().sabotage = Some(|m| m[12..16].copy_from_slice(&100_000u32.to_le_bytes()));
        assert_eq!(c.read("a"), Err(XsError::Protocol("message longer than 4096 bytes")));
        let (mut c, d) = client();
        d.borrow_mut().store.insert("a".into(), "b".into());
        d.borrow_mut().sabotage = Some(|m| m[4..8].copy_from_slice(&999u32.to_le_bytes()));
        // An answer to another request is skipped; its own never comes.
        assert_eq!(c.read("a"), Err(XsError::TimedOut));
        let (mut c, d) = client();
        d.borrow_mut().ring.set_idx(RSP_PROD, 50_000);
        assert_eq!(c.read("a"), Err(XsError::Protocol("response ring indices out of range")));
    }

    #[test]
    fn late_answers_are_skipped() {
        let (mut c, d) = client();
        d.borrow_mut().store.insert("a".into(), "b".into());
        let stale = Message { kind: op::READ, req_id: 999, tx_id: 0, payload: b"stale\0".to_vec() }.encode();
        d.borrow().ring.produce(RSP, RSP_CONS, RSP_PROD, &stale).unwrap();
        assert_eq!(c.read("a").unwrap(), "b");
        assert_eq!(c.read("a").unwrap(), "b");
    }

    #[test]
    fn a_request_cut_off_mid_send_is_finished_later() {
        let (mut c, d) = client();
        // The daemon takes nothing: a message longer than the 1 KiB ring is
        // cut off, and the client gives up on it.
        d.borrow_mut().paused = true;
        let long = alloc::format!("{:0>2000}", 1);
        assert_eq!(c.write(0, "k", &long), Err(XsError::TimedOut));
        // Back: the rest of the cut-off message goes first, so the stream
        // stays framed; its late answer is skipped.
        d.borrow_mut().paused = false;
        c.channel().waits = 0;
        c.write(0, "k2", "short").unwrap();
        assert_eq!(d.borrow().store["k"], long);
        assert_eq!(c.read("k2").unwrap(), "short");
    }

    #[test]
    fn queued_requests_are_bounded() {
        let (mut c, d) = client();
        d.borrow_mut().paused = true;
        let mut refused = 0;
        for _ in 0..10 {
            if c.send(op::WRITE, 0, alloc::vec![b'x'; 4000]) == Err(XsError::TimedOut) {
                refused += 1;
            }
        }
        assert!(refused >= 7, "{refused} refused");
        assert!(c.outgoing.len() <= MAX_OUTGOING);
    }

    /// Polls `f` once with a waker that does nothing.
    fn poll_once<F: core::future::Future>(f: core::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn async_requests_wait_for_the_daemon_without_blocking() {
        struct Evented {
            registered: u32,
        }
        impl Channel for Evented {
            fn notify(&mut self) {}
            fn wait(&mut self) -> bool {
                panic!("an async request must not wait synchronously")
            }
            fn register(&mut self, _waker: &Waker) {
                self.registered += 1;
            }
        }
        let page = SharedPage::new();
        let daemon = Rc::new(RefCell::new(FakeDaemon::new(page)));
        daemon.borrow_mut().store.insert("control/shutdown".into(), "poweroff".into());
        let mut c = Client::new(page, Evented { registered: 0 });
        {
            let mut read = core::pin::pin!(c.read_async("control/shutdown"));
            assert!(poll_once(read.as_mut()).is_pending());
            assert!(poll_once(read.as_mut()).is_pending());
            daemon.borrow_mut().serve();
            assert_eq!(poll_once(read.as_mut()), Poll::Ready(Ok("poweroff".to_string())));
        }
        assert!(c.channel().registered >= 2);
        // A request given up on: its answer is skipped by the next one.
        {
            let mut gone = core::pin::pin!(c.read_async("control/shutdown"));
            assert!(poll_once(gone.as_mut()).is_pending());
        }
        let mut write = core::pin::pin!(c.write_async(0, "control/shutdown", ""));
        assert!(poll_once(write.as_mut()).is_pending());
        daemon.borrow_mut().serve();
        assert_eq!(poll_once(write.as_mut()), Poll::Ready(Ok(())));
        assert_eq!(daemon.borrow().store["control/shutdown"], "");
    }

    #[test]
    fn watch_events_wake_the_watcher() {
        let (mut c, d) = client();
        let event =
            Message { kind: op::WATCH_EVENT, req_id: 0, tx_id: 0, payload: b"control/shutdown\0shutdown\0".to_vec() };
        let mut cx = Context::from_waker(Waker::noop());
        assert!(c.poll_watch(&mut cx).is_pending());
        d.borrow().ring.produce(RSP, RSP_CONS, RSP_PROD, &event.encode()).unwrap();
        assert_eq!(c.poll_watch(&mut cx), Poll::Ready(Ok(("control/shutdown".to_string(), "shutdown".to_string()))));
        // An event that arrives during a request is kept for the watcher.
        d.borrow_mut().store.insert("a".into(), "b".into());
        d.borrow().ring.produce(RSP, RSP_CONS, RSP_PROD, &event.encode()).unwrap();
        assert_eq!(c.read("a").unwrap(), "b");
        assert!(c.poll_watch(&mut cx).is_ready());
    }

    #[test]
    fn a_flooding_daemon_is_a_protocol_error_and_events_are_bounded() {
        let page = SharedPage::new();
        // Every wait brings ten watch events and never the answer.
        struct Flood(FakeDaemon, u32);
        impl Channel for Flood {
            fn notify(&mut self) {}
            fn register(&mut self, _waker: &Waker) {}
            fn wait(&mut self) -> bool {
                self.1 += 1;
                for _ in 0..10 {
                    let ev = Message { kind: op::WATCH_EVENT, req_id: 0, tx_id: 0, payload: b"p\0t\0".to_vec() };
                    self.0.inject(&ev.encode());
                }
                self.1 < 1000
            }
        }
        let mut c = Client::new(page, Flood(FakeDaemon::new(page), 0));
        assert!(matches!(c.read("x"), Err(XsError::Protocol(_))));
        assert!(c.channel().1 < 30, "gave up after {} waits", c.channel().1);
        assert_eq!(c.events.len(), MAX_EVENTS);
        let mut n = 0;
        while let Ok(Some(_)) = c.poll_event() {
            n += 1;
        }
        assert_eq!(n, MAX_EVENTS);
    }

    #[test]
    fn silence_times_out() {
        let page = SharedPage::new();
        struct Deaf(u32);
        impl Channel for Deaf {
            fn notify(&mut self) {}
            fn wait(&mut self) -> bool {
                self.0 += 1;
                self.0 < 10
            }
            fn register(&mut self, _waker: &Waker) {}
        }
        let mut c = Client::new(page, Deaf(0));
        assert_eq!(c.read("x"), Err(XsError::TimedOut));
    }
}
