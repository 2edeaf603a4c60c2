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
