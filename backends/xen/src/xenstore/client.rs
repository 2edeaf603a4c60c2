//! The client: synchronous requests at boot, asynchronous ones after.

use super::*;

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

pub(super) fn nul_terminated(s: &str) -> Vec<u8> {
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

#[cfg(test)]
mod tests;
