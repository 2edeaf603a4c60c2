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
/// and a way to wait for it.
pub trait Channel {
    /// Notifies the daemon (event channel).
    fn notify(&mut self);
    /// Waits a little for the daemon (an event, or a short timeout);
    /// `false` once the overall time allowed has run out.
    fn wait(&mut self) -> bool;
}

/// A synchronous xenstore client.
pub struct Client<C: Channel> {
    ring: RingPage,
    channel: C,
    next_id: u32,
    partial: Vec<u8>,
    events: VecDeque<(String, String)>,
    desynced: bool,
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
            desynced: false,
        }
    }

    /// The channel.
    pub fn channel(&mut self) -> &mut C {
        &mut self.channel
    }

    /// Sends a request and waits for its answer (queueing watch events
    /// that arrive meanwhile).
    pub fn request(&mut self, kind: u32, tx_id: u32, payload: Vec<u8>) -> Result<Vec<u8>, XsError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(XsError::Protocol("request too long"));
        }
        let req_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        if self.desynced {
            return Err(XsError::Protocol("a request was cut off earlier; the ring is out of step"));
        }
        let bytes = Message { kind, req_id, tx_id, payload }.encode();
        let mut sent = 0;
        while sent < bytes.len() {
            sent += self.ring.produce(REQ, REQ_CONS, REQ_PROD, &bytes[sent..])?;
            self.channel.notify();
            if sent < bytes.len() && !self.channel.wait() {
                // Half a message is in the ring: nothing after it can be
                // framed correctly.
                self.desynced = sent > 0;
                return Err(XsError::TimedOut);
            }
        }
        let mut unrelated = 0;
        loop {
            let m = read_message(&self.ring, RSP, RSP_CONS, RSP_PROD, &mut self.partial)?;
            if m.as_ref().is_some_and(|m| m.kind == op::WATCH_EVENT || m.req_id != req_id) {
                unrelated += 1;
                if unrelated > MAX_UNRELATED {
                    return Err(XsError::Protocol("flooded with messages that are not the answer"));
                }
            }
            match m {
                Some(m) if m.kind == op::WATCH_EVENT => self.queue_event(&m),
                // The late answer to a request that timed out: skip it.
                Some(m) if m.req_id != req_id => {}
                Some(m) if m.kind == op::ERROR => {
                    let text = String::from_utf8_lossy(&m.payload).trim_end_matches('\0').to_string();
                    return Err(XsError::Daemon(text));
                }
                Some(m) if m.kind != kind => return Err(XsError::Protocol("answer of another type")),
                Some(m) => {
                    self.channel.notify(); // we consumed: the daemon may continue
                    return Ok(m.payload);
                }
                None => {
                    self.channel.notify();
                    if !self.channel.wait() {
                        return Err(XsError::TimedOut);
                    }
                }
            }
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
        for _ in 0..MAX_EVENTS {
            match read_message(&self.ring, RSP, RSP_CONS, RSP_PROD, &mut self.partial)? {
                Some(m) if m.kind == op::WATCH_EVENT => self.queue_event(&m),
                Some(_) => {}
                None => break,
            }
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
}

#[cfg(any(test, feature = "sim"))]
impl FakeDaemon {
    /// A daemon on `page`.
    pub fn new(page: SharedPage) -> FakeDaemon {
        FakeDaemon { ring: RingPage::new(page), store: Default::default(), partial: Vec::new(), sabotage: None }
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
    fn a_request_cut_off_mid_send_stops_the_client() {
        let page = SharedPage::new();
        // Nobody consumes requests: a message longer than the 1 KiB ring
        // cannot be sent whole.
        struct Stuck(u32);
        impl Channel for Stuck {
            fn notify(&mut self) {}
            fn wait(&mut self) -> bool {
                self.0 += 1;
                self.0 < 3
            }
        }
        let mut c = Client::new(page, Stuck(0));
        let long = alloc::format!("{:0>2000}", 1);
        assert_eq!(c.write(0, "k", &long), Err(XsError::TimedOut));
        assert!(matches!(c.read("k"), Err(XsError::Protocol(_))));
    }

    #[test]
    fn a_flooding_daemon_is_a_protocol_error_and_events_are_bounded() {
        let page = SharedPage::new();
        // Every wait brings ten watch events and never the answer.
        struct Flood(FakeDaemon, u32);
        impl Channel for Flood {
            fn notify(&mut self) {}
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
        }
        let mut c = Client::new(page, Deaf(0));
        assert_eq!(c.read("x"), Err(XsError::TimedOut));
    }
}
