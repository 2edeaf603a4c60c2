//! The xenstore client against a hostile daemon: each time the client
//! notifies or waits, the simulated daemon does what the input says (answer
//! properly, answer with any type, request id and payload, write raw bytes,
//! or set the ring indices to anything). Every operation must end, with a
//! value or an error: no panic, no hang.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use morgana_xen::page::SharedPage;
use morgana_xen::xenstore::{Channel, Client, FakeDaemon};

/// The page is leaked (it is "shared with another domain"): one for the
/// whole run, its ring emptied for each input.
fn page() -> SharedPage {
    thread_local!(static P: SharedPage = SharedPage::new());
    P.with(|p| *p)
}

struct Script {
    data: Vec<u8>,
    pos: usize,
}

impl Script {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let end = (self.pos + n).min(self.data.len());
        let v = self.data[self.pos..end].to_vec();
        self.pos = end;
        v
    }
    fn u32(&mut self) -> u32 {
        let b = self.bytes(4);
        let mut a = [0u8; 4];
        a[..b.len()].copy_from_slice(&b);
        u32::from_le_bytes(a)
    }
}

struct Daemon {
    daemon: FakeDaemon,
    script: Rc<RefCell<Script>>,
    waits: u32,
}

impl Daemon {
    fn act(&mut self) {
        let mut s = self.script.borrow_mut();
        let Some(op) = s.byte() else {
            self.daemon.serve();
            return;
        };
        match op % 6 {
            0 | 1 => self.daemon.serve(),
            2 => {
                let (kind, delta) = (s.byte().unwrap_or(0) as u32 % 20, s.byte().unwrap_or(0) as u32);
                let n = s.byte().unwrap_or(0) as usize;
                let payload = s.bytes(n);
                self.daemon.answer_next(kind, delta.wrapping_sub(2), &payload);
            }
            3 => {
                let n = s.byte().unwrap_or(0) as usize * 5;
                let raw = s.bytes(n);
                self.daemon.inject(&raw);
            }
            4 => {
                let which = s.byte().unwrap_or(0);
                let v = s.u32();
                self.daemon.force_indices((which & 1 != 0).then_some(v), (which & 2 != 0).then_some(v));
            }
            _ => {}
        }
    }
}

impl Channel for Daemon {
    fn notify(&mut self) {
        self.act();
    }
    fn wait(&mut self) -> bool {
        self.act();
        self.waits += 1;
        self.waits < 32
    }
    fn register(&mut self, _waker: &core::task::Waker) {}
}

fuzz_target!(|data: &[u8]| {
    let page = page();
    let script = Rc::new(RefCell::new(Script { data: data.to_vec(), pos: 0 }));
    let mut daemon = FakeDaemon::new(page);
    daemon.reset();
    daemon.store.insert("device/vif/0/mac".into(), "00:16:3e:00:00:01".into());
    daemon.store.insert("device/vif/0/state".into(), "4".into());
    let mut c = Client::new(page, Daemon { daemon, script: script.clone(), waits: 0 });
    for _ in 0..16 {
        let Some(op) = script.borrow_mut().byte() else { break };
        c.channel().waits = 0;
        let _ = match op % 7 {
            0 => c.read("device/vif/0/mac").map(drop),
            1 => c.write(0, "device/vif/0/state", "4"),
            2 => c.directory("device/vif").map(drop),
            3 => c.transaction_start().map(drop),
            4 => c.transaction_end(7, op & 8 != 0),
            5 => c.watch("control/shutdown", "shutdown"),
            _ => c.poll_event().map(drop),
        };
    }
});
