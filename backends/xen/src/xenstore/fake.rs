//! A simulated daemon for tests and fuzzing.

use super::*;

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
