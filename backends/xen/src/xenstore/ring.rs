//! The shared ring page and message framing.

use super::*;

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

    pub(super) fn idx(&self, off: usize) -> u32 {
        // SAFETY: `off` is one of the four index offsets, within the page
        // and 4-byte aligned; the other side writes them concurrently.
        unsafe { self.page.ptr().add(off).cast::<u32>().read_volatile() }
    }

    pub(super) fn set_idx(&self, off: usize, v: u32) {
        // SAFETY: as for `idx`.
        unsafe { self.page.ptr().add(off).cast::<u32>().write_volatile(v) }
    }

    pub(super) fn byte(&self, base: usize, i: u32) -> u8 {
        // SAFETY: base is REQ or RSP and `i % RING` < 1024: inside the page.
        unsafe { self.page.ptr().add(base + (i % RING) as usize).read_volatile() }
    }

    pub(super) fn set_byte(&self, base: usize, i: u32, b: u8) {
        // SAFETY: as for `byte`.
        unsafe { self.page.ptr().add(base + (i % RING) as usize).write_volatile(b) }
    }

    /// Appends as much of `data` to the stream at `base` as fits; returns
    /// how much (producer side).
    pub(super) fn produce(&self, base: usize, cons_off: usize, prod_off: usize, data: &[u8]) -> Result<usize, XsError> {
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
    pub(super) fn available(&self, cons_off: usize, prod_off: usize) -> Result<u32, XsError> {
        let avail = self.idx(prod_off).wrapping_sub(self.idx(cons_off));
        fence(Ordering::Acquire);
        if avail > RING {
            return Err(XsError::Protocol("response ring indices out of range"));
        }
        Ok(avail)
    }

    pub(super) fn peek(&self, base: usize, cons_off: usize, out: &mut [u8]) {
        let cons = self.idx(cons_off);
        for (k, b) in out.iter_mut().enumerate() {
            *b = self.byte(base, cons.wrapping_add(k as u32));
        }
    }

    pub(super) fn consume(&self, cons_off: usize, n: u32) {
        fence(Ordering::Release);
        self.set_idx(cons_off, self.idx(cons_off).wrapping_add(n));
    }
}

/// Reads one whole message from the stream at `base`, if one is there.
pub(super) fn read_message(
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
