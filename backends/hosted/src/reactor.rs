//! The hosted executor platform: mio (epoll) readiness plus wakers.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::{event::Source, Events, Interest, Poll as MioPoll, Token};
use morgana_devices::Instant;
use morgana_runtime::Platform;
use slab::Slab;

#[derive(Default)]
struct Waiters {
    read: Option<Waker>,
    write: Option<Waker>,
    /// Work to do once the descriptor is next writable.
    on_writable: Option<Rc<dyn Deferred>>,
}

/// Work a socket has deferred (queued datagrams) and that must be done
/// before the executor sleeps.
pub trait Deferred {
    /// Does it now.
    fn flush(&self);
}

/// Owns the epoll instance and the wakers of tasks waiting on descriptors.
pub struct Reactor {
    poll: RefCell<MioPoll>,
    events: RefCell<Events>,
    waiters: RefCell<Slab<Waiters>>,
    notifier: std::sync::Arc<mio::Waker>,
    deferred: RefCell<Vec<Rc<dyn Deferred>>>,
}

const NOTIFY: Token = Token(usize::MAX);

/// Which readiness an operation waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Readable (or accept-able).
    Read,
    /// Writable (or connected).
    Write,
}

impl Reactor {
    /// A new reactor; fails only if the kernel refuses an epoll instance.
    pub fn new() -> io::Result<Rc<Reactor>> {
        let poll = MioPoll::new()?;
        let notifier = std::sync::Arc::new(mio::Waker::new(poll.registry(), NOTIFY)?);
        Ok(Rc::new(Reactor {
            notifier,
            poll: RefCell::new(poll),
            events: RefCell::new(Events::with_capacity(256)),
            waiters: RefCell::new(Slab::new()),
            deferred: RefCell::new(Vec::new()),
        }))
    }

    /// Runs `work.flush()` before the next wait for events.
    pub fn defer(&self, work: Rc<dyn Deferred>) {
        self.deferred.borrow_mut().push(work);
    }

    fn flush_when_writable(&self, token: usize, work: Rc<dyn Deferred>) {
        if let Some(w) = self.waiters.borrow_mut().get_mut(token) {
            w.on_writable = Some(work);
        }
    }

    /// Interrupts a `wait` from another thread (after waking a task there).
    pub fn notifier(&self) -> std::sync::Arc<mio::Waker> {
        self.notifier.clone()
    }

    /// Registers `source` for read and write readiness.
    pub fn register(self: &Rc<Self>, source: &mut impl Source) -> io::Result<Registration> {
        let token = self.waiters.borrow_mut().insert(Waiters::default());
        let res = self.poll.borrow().registry().register(source, Token(token), Interest::READABLE | Interest::WRITABLE);
        if let Err(e) = res {
            self.waiters.borrow_mut().remove(token);
            return Err(e);
        }
        Ok(Registration { reactor: self.clone(), token })
    }
}

impl Platform for Reactor {
    fn now(&self) -> Instant {
        crate::monotonic()
    }

    fn wait(&self, deadline: Option<Instant>) {
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        for work in deferred {
            work.flush();
        }
        let timeout = deadline.map(|d| {
            let left = d.saturating_since(self.now());
            // Round up so a timer is not missed by a fraction of a millisecond.
            if left.is_zero() {
                Duration::ZERO
            } else {
                left + Duration::from_micros(999)
            }
        });
        let mut events = self.events.borrow_mut();
        match self.poll.borrow_mut().poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => panic!("epoll_wait failed: {e}"),
        }
        let mut writable = Vec::new();
        let mut waiters = self.waiters.borrow_mut();
        for ev in events.iter() {
            let Some(w) = waiters.get_mut(ev.token().0) else { continue };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                if let Some(w) = w.read.take() {
                    w.wake();
                }
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                if let Some(w) = w.write.take() {
                    w.wake();
                }
                writable.extend(w.on_writable.take());
            }
        }
        drop(waiters);
        drop(events);
        for work in writable {
            work.flush();
        }
    }
}

/// Asks the reactor to run work when a registered descriptor becomes
/// writable. Does nothing once the registration is gone; its owner stops
/// using it before dropping the registration (tokens are reused).
#[derive(Clone)]
pub struct WritableHook {
    reactor: std::rc::Weak<Reactor>,
    token: usize,
}

impl WritableHook {
    /// Runs `work.flush()` once, from the reactor, the next time the
    /// descriptor becomes writable (replacing an earlier request).
    pub fn flush_when_writable(&self, work: Rc<dyn Deferred>) {
        if let Some(r) = self.reactor.upgrade() {
            r.flush_when_writable(self.token, work);
        }
    }
}

/// A descriptor registered with the [`Reactor`]. Deregisters on drop (the
/// owner must drop it before closing the descriptor).
pub struct Registration {
    reactor: Rc<Reactor>,
    token: usize,
}

impl Registration {
    /// Runs the non-blocking `op`; on `WouldBlock` stores the task's waker for
    /// `dir` and returns `Pending`. Edge-triggered readiness is safe here
    /// because the task always retries the operation before sleeping again.
    pub fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        dir: Direction,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.set_waker(cx, dir);
                    return Poll::Pending;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    /// Stores the task's waker for `dir`.
    pub fn set_waker(&self, cx: &mut Context<'_>, dir: Direction) {
        let mut waiters = self.reactor.waiters.borrow_mut();
        let w = &mut waiters[self.token];
        let slot = match dir {
            Direction::Read => &mut w.read,
            Direction::Write => &mut w.write,
        };
        match slot {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    /// A handle for running work when the descriptor becomes writable.
    pub fn writable_hook(&self) -> WritableHook {
        WritableHook { reactor: Rc::downgrade(&self.reactor), token: self.token }
    }

    /// Deregisters `source` (call before dropping it).
    pub fn deregister(&self, source: &mut impl Source) {
        let _ = self.reactor.poll.borrow().registry().deregister(source);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut w) = self.reactor.waiters.try_borrow_mut() {
            w.try_remove(self.token);
        }
    }
}
