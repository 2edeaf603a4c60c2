//! Connection slots: a cap on a server's open connections that sheds
//! rather than refuses.
//!
//! A server caps its connections to bound the memory they take. If it
//! refused every newcomer at the cap, a few thousand clients that connect
//! and then say nothing (or a byte at a time) would lock real clients out.
//! So at the cap [`Slots::admit`] sheds the connection that has waited
//! longest for its peer to finish a request (an idle keep-alive, a request
//! head or TLS handshake trickling in, a silent client) and admits the
//! newcomer. A connection waits for its peer from its admission and again
//! after each write the server completes; while the server is writing it is
//! never shed.
//!
//! The same happens when memory is short: with a per-connection cost
//! ([`Slots::with_cost`]), a newcomer that `morgana_runtime::memory` cannot
//! spare that much for sheds the longest-waiting connection too and waits
//! for its memory to come back, so a flood of stalled connections runs
//! into the cap or the memory budget, whichever comes first, never into a
//! failed allocation.
//!
//! A [`Slot`] is attached to its [`TcpStream`](crate::TcpStream): the
//! stream's reads and writes keep it up to date, and once shed they fail
//! with [`Error::ConnectionReset`](crate::Error) and the connection is
//! reset, so the task serving it ends.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::task::{Poll, Waker};
use core::time::Duration;

use morgana_devices::Instant;
use morgana_runtime::metrics::{Counter, Encoder, Gauge};
use morgana_runtime::Handle;
use slab::Slab;

/// A server's connection counters, shared by all its [`Slots`] (one per
/// listener): a `static` given to [`Slots::with_metrics`].
#[derive(Debug, Default)]
pub struct SlotMetrics {
    /// Connections given a slot.
    pub admitted: Counter,
    /// Connections refused a slot (everyone busy, or memory did not come
    /// back in time).
    pub refused: Counter,
    /// Connections shed to make room.
    pub shed: Counter,
    /// Connections holding a slot now.
    pub open: Gauge,
}

impl SlotMetrics {
    /// All zero.
    pub const fn new() -> SlotMetrics {
        SlotMetrics { admitted: Counter::new(), refused: Counter::new(), shed: Counter::new(), open: Gauge::new() }
    }

    /// Writes `{prefix}_connections_open` and the `_admitted_total`,
    /// `_refused_total` and `_shed_total` counters; `what` names the
    /// connections in the help text ("DNS-over-TCP").
    pub fn write(&self, enc: &mut Encoder<'_>, prefix: &str, what: &str) {
        use alloc::format;
        enc.gauge(&format!("{prefix}_connections_open"), &format!("{what} connections open now."), self.open.get());
        let counters = [
            ("admitted", "given a slot", &self.admitted),
            ("refused", "refused at the cap (every connection busy, or memory short)", &self.refused),
            ("shed", "reset to make room for a newcomer (the one that waited longest for its client)", &self.shed),
        ];
        for (name, help, c) in counters {
            enc.counter(&format!("{prefix}_connections_{name}_total"), &format!("{what} connections {help}."), c.get());
        }
    }
}

struct Entry {
    waiting_since: Instant,
    writing: bool,
    shed: bool,
    waker: Option<Waker>,
}

struct Table {
    max: usize,
    cost: usize,
    entries: Slab<Entry>,
    shed: u64,
    metrics: Option<&'static SlotMetrics>,
    /// Newcomers waiting for a shed connection to let go.
    admitting: Vec<Waker>,
}

impl Table {
    /// Sheds the connection that has waited longest for its peer; false
    /// if every connection is being written to.
    fn shed_one(&mut self) -> bool {
        let Some((id, _)) =
            self.entries.iter().filter(|(_, e)| !e.shed && !e.writing).min_by_key(|(_, e)| e.waiting_since)
        else {
            return false;
        };
        let victim = &mut self.entries[id];
        victim.shed = true;
        if let Some(w) = victim.waker.take() {
            w.wake();
        }
        self.shed += 1;
        if let Some(m) = self.metrics {
            m.shed.inc();
        }
        true
    }
}

/// How long a newcomer waits for memory to come back from shed connections.
pub const ADMIT_WAIT: Duration = Duration::from_millis(500);

/// Up to `max` connection slots. Clones share them.
#[derive(Clone)]
pub struct Slots {
    table: Rc<RefCell<Table>>,
    rt: Handle,
}

impl Slots {
    /// `max` slots (at least one).
    pub fn new(max: usize, rt: Handle) -> Slots {
        Slots {
            table: Rc::new(RefCell::new(Table {
                max: max.max(1),
                cost: 0,
                entries: Slab::new(),
                shed: 0,
                metrics: None,
                admitting: Vec::new(),
            })),
            rt,
        }
    }

    /// Each connection is expected to need about `bytes` of heap: a
    /// newcomer memory cannot spare that for makes room too.
    pub fn with_cost(self, bytes: usize) -> Slots {
        self.table.borrow_mut().cost = bytes;
        self
    }

    /// Counts admissions, refusals, sheds and open connections in
    /// `metrics`.
    pub fn with_metrics(self, metrics: &'static SlotMetrics) -> Slots {
        self.table.borrow_mut().metrics = Some(metrics);
        self
    }

    /// A slot for a new connection. At the cap, the connection that has
    /// waited longest for its peer is shed to make room. When memory cannot
    /// spare the connection's cost, the longest-waiting connection is shed
    /// too and the newcomer waits until a shed connection's task has ended
    /// and given its memory back (at most [`ADMIT_WAIT`]), then tries
    /// again. `None` if nobody can be shed (every connection is being
    /// written to) or memory did not come back in time.
    pub async fn admit(&self) -> Option<Slot> {
        let admitting = core::future::poll_fn(|cx| {
            let mut t = self.table.borrow_mut();
            let live = t.entries.iter().filter(|(_, e)| !e.shed).count();
            if live >= t.max && !t.shed_one() {
                return Poll::Ready(None);
            }
            if !morgana_runtime::memory::can_spare(t.cost) {
                // Wait for a shed task to let go; shed one if none is pending.
                let pending = t.entries.iter().any(|(_, e)| e.shed);
                if !pending && !t.shed_one() {
                    return Poll::Ready(None);
                }
                if !t.admitting.iter().any(|w| w.will_wake(cx.waker())) {
                    t.admitting.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            let now = self.rt.now();
            let id = t.entries.insert(Entry { waiting_since: now, writing: false, shed: false, waker: None });
            Poll::Ready(Some(Slot { table: self.table.clone(), id, rt: self.rt.clone() }))
        });
        let slot = self.rt.timeout(ADMIT_WAIT, admitting).await.ok().flatten();
        if let Some(m) = self.table.borrow().metrics {
            match slot {
                Some(_) => {
                    m.admitted.inc();
                    m.open.inc();
                }
                None => m.refused.inc(),
            }
        }
        slot
    }

    /// Connections holding a slot (shed ones until their task lets go).
    pub fn open(&self) -> usize {
        self.table.borrow().entries.len()
    }

    /// Connections shed so far.
    pub fn shed_count(&self) -> u64 {
        self.table.borrow().shed
    }
}

/// One connection's slot; freed when dropped.
pub struct Slot {
    table: Rc<RefCell<Table>>,
    id: usize,
    rt: Handle,
}

impl Slot {
    /// Whether this connection was shed.
    pub fn is_shed(&self) -> bool {
        self.table.borrow().entries[self.id].shed
    }

    /// The connection waits for its peer; `waker` is woken if it is shed.
    pub(crate) fn waiting(&self, waker: &Waker) {
        let mut t = self.table.borrow_mut();
        let e = &mut t.entries[self.id];
        if !e.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            e.waker = Some(waker.clone());
        }
    }

    /// The server writes until the guard is dropped; then the connection
    /// waits for its peer again.
    pub(crate) fn writing(&self) -> Writing<'_> {
        self.table.borrow_mut().entries[self.id].writing = true;
        Writing(self)
    }
}

/// A write in progress (see [`Slot::writing`]).
pub(crate) struct Writing<'a>(&'a Slot);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let now = self.0.rt.now();
        let mut t = self.0.table.borrow_mut();
        let e = &mut t.entries[self.0.id];
        e.writing = false;
        e.waiting_since = now;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.table.borrow_mut();
        t.entries.remove(self.id);
        if let Some(m) = t.metrics {
            m.open.dec();
        }
        for w in t.admitting.drain(..) {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use core::future::Future;
    use core::pin::pin;
    use core::task::Context;
    use morgana_runtime::{Executor, Platform};

    /// Time that moves only when told.
    #[derive(Default)]
    struct Manual(Cell<u64>);

    impl Platform for Manual {
        fn now(&self) -> Instant {
            Instant::from_nanos(self.0.get())
        }
        fn wait(&self, _: Option<Instant>) {}
    }

    fn poll<F: Future>(f: core::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Admission that must not wait.
    fn admit(slots: &Slots) -> Option<Slot> {
        match poll(pin!(slots.admit())) {
            Poll::Ready(s) => s,
            Poll::Pending => panic!("admission waited"),
        }
    }

    #[test]
    fn at_the_cap_the_longest_waiting_idle_connection_is_shed() {
        let clock = Rc::new(Manual::default());
        let exec = Executor::new(clock.clone());
        let slots = Slots::new(3, exec.handle());
        let tick = || clock.0.set(clock.0.get() + 1_000);
        let a = admit(&slots).unwrap();
        tick();
        let b = admit(&slots).unwrap();
        tick();
        let c = admit(&slots).unwrap();
        tick();
        // a answers a request: it waits for its peer again from now on.
        drop(a.writing());
        tick();
        let d = admit(&slots).unwrap();
        assert!(!a.is_shed() && b.is_shed() && !c.is_shed() && !d.is_shed(), "b waited longest");
        assert_eq!(slots.shed_count(), 1);
        drop(b); // its task ends
        tick();
        // Being written to protects c; a is next.
        let writing = c.writing();
        let e = admit(&slots).unwrap();
        assert!(a.is_shed() && !c.is_shed() && !e.is_shed());
        drop(a);
        // Everyone left is busy: the newcomer is refused.
        let (_d_busy, _e_busy) = (d.writing(), e.writing());
        assert!(admit(&slots).is_none());
        drop(writing);
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn metrics_count_admissions_refusals_sheds_and_open_slots() {
        static M: SlotMetrics = SlotMetrics::new();
        let clock = Rc::new(Manual::default());
        let exec = Executor::new(clock.clone());
        let slots = Slots::new(2, exec.handle()).with_metrics(&M);
        let a = admit(&slots).unwrap();
        clock.0.set(1_000);
        let b = admit(&slots).unwrap();
        let _busy = b.writing();
        let c = admit(&slots).unwrap(); // a is shed
        let _busy_c = c.writing();
        assert!(a.is_shed());
        drop(a);
        let _busy_b = b.writing();
        assert!(admit(&slots).is_none(), "both busy: refused");
        assert_eq!((M.admitted.get(), M.shed.get(), M.refused.get(), M.open.get()), (3, 1, 1, 2));
        let mut out = alloc::string::String::new();
        M.write(&mut Encoder::new(&mut out), "morgana_t", "Test");
        assert!(out.contains("\nmorgana_t_connections_open 2\n"), "{out}");
        assert!(out.contains("\nmorgana_t_connections_refused_total 1\n"), "{out}");
    }

    #[test]
    fn short_of_memory_the_newcomer_waits_for_a_shed_connection_to_let_go() {
        use morgana_runtime::memory;
        let clock = Rc::new(Manual::default());
        let exec = Executor::new(clock.clone());
        let tight = || memory::set_limit(memory::in_use() + 4 * memory::MIN_RESERVE);
        let plenty = || memory::set_limit(usize::MAX);
        // Nothing else in this test binary sets a limit.
        let slots = Slots::new(100, exec.handle()).with_cost(4 * memory::MIN_RESERVE);
        tight();
        assert!(admit(&slots).is_none(), "no memory and nobody to shed: refused");
        plenty();
        let a = admit(&slots).unwrap();
        clock.0.set(1_000);
        let b = admit(&slots).unwrap();

        tight();
        let mut c = pin!(slots.admit());
        assert!(poll(c.as_mut()).is_pending());
        assert!(a.is_shed() && !b.is_shed(), "well below the cap, a makes way");
        assert!(poll(c.as_mut()).is_pending());
        assert!(!b.is_shed(), "one shed connection at a time");
        drop(a); // a's task ends and its memory comes back
        plenty();
        clock.0.set(2_000);
        let c = match poll(c.as_mut()) {
            Poll::Ready(Some(c)) => c,
            other => panic!("not admitted: {:?}", other.map(|s| s.is_some())),
        };

        // Memory that does not come back: refused after ADMIT_WAIT.
        tight();
        let mut d = pin!(slots.admit());
        assert!(poll(d.as_mut()).is_pending());
        assert!(b.is_shed() && !c.is_shed());
        clock.0.set(clock.0.get() + ADMIT_WAIT.as_nanos() as u64);
        assert!(matches!(poll(d.as_mut()), Poll::Ready(None)));
        plenty();
    }
}
