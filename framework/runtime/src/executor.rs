//! The single-threaded executor.
//!
//! Tasks are boxed futures in a slab. A task's waker pushes its id onto a
//! ready queue; the executor polls ready tasks, fires expired timers and,
//! when nothing is ready, asks the [`Platform`] to wait for the next event or
//! timer deadline: `epoll_wait` on Linux, `hlt` on a VM.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana_devices::Instant;
use slab::Slab;

use crate::time::{Sleep, Timeout};

/// What a backend supplies to the executor.
pub trait Platform {
    /// Monotonic time.
    fn now(&self) -> Instant;

    /// Waits until an external event (I/O readiness, a device interrupt) or
    /// until `deadline`, whichever is first, and wakes the wakers registered
    /// for the events that occurred. `None` means no deadline. A deadline in
    /// the past means: collect pending events without waiting.
    fn wait(&self, deadline: Option<Instant>);
}

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

struct Task {
    future: Option<TaskFuture>,
    waker: Waker,
}

/// Wakes a task by queueing its id. Thread-safe (as `Waker` requires), but
/// Morgana only ever wakes from the executor's own thread.
struct TaskWaker {
    id: usize,
    queued: AtomicBool,
    ready: Arc<spin::Mutex<VecDeque<usize>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.ready.lock().push_back(self.id);
        }
    }
}

pub(crate) struct Shared {
    platform: Rc<dyn Platform>,
    tasks: RefCell<Slab<Task>>,
    wakers: RefCell<Slab<Arc<TaskWaker>>>,
    ready: Arc<spin::Mutex<VecDeque<usize>>>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_timer: Cell<u64>,
}

/// The executor. Create one per unikernel; run it with [`Executor::block_on`].
pub struct Executor {
    shared: Rc<Shared>,
}

/// A cheap, cloneable handle to the executor: spawn tasks, read the clock,
/// sleep. Apps get one through the framework's `Env`.
#[derive(Clone)]
pub struct Handle {
    shared: Rc<Shared>,
}

impl core::fmt::Debug for Handle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor that waits for events through `platform`.
    pub fn new(platform: Rc<dyn Platform>) -> Executor {
        Executor {
            shared: Rc::new(Shared {
                platform,
                tasks: RefCell::new(Slab::new()),
                wakers: RefCell::new(Slab::new()),
                ready: Arc::new(spin::Mutex::new(VecDeque::new())),
                timers: RefCell::new(BTreeMap::new()),
                next_timer: Cell::new(0),
            }),
        }
    }

    /// A handle for spawning tasks and using timers.
    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }

    /// Runs `future` and every spawned task until `future` completes; returns
    /// its output. Tasks still pending then are dropped with the executor.
    pub fn block_on<F: Future + 'static>(&self, future: F) -> F::Output {
        let join = self.handle().spawn(future);
        let output = Rc::new(RefCell::new(None));
        let slot = output.clone();
        self.handle().spawn(async move {
            *slot.borrow_mut() = Some(join.await);
        });
        loop {
            self.run_ready();
            if let Some(out) = output.borrow_mut().take() {
                return out;
            }
            let now = self.shared.platform.now();
            let fired = self.shared.fire_timers(now);
            let idle = !fired && self.shared.ready.lock().is_empty();
            let deadline = if idle { self.shared.next_deadline() } else { Some(Instant::ZERO) };
            self.shared.platform.wait(deadline);
        }
    }

    /// Polls every task that was ready when the call started.
    fn run_ready(&self) {
        let batch = self.shared.ready.lock().len();
        for _ in 0..batch {
            let Some(id) = self.shared.ready.lock().pop_front() else { break };
            self.poll_task(id);
        }
    }

    fn poll_task(&self, id: usize) {
        let (mut future, waker) = {
            let mut tasks = self.shared.tasks.borrow_mut();
            let Some(task) = tasks.get_mut(id) else { return };
            let Some(future) = task.future.take() else { return };
            (future, task.waker.clone())
        };
        if let Some(w) = self.shared.wakers.borrow().get(id) {
            w.queued.store(false, Ordering::Release);
        }
        let mut cx = Context::from_waker(&waker);
        let done = future.as_mut().poll(&mut cx).is_ready();
        let mut tasks = self.shared.tasks.borrow_mut();
        if done {
            tasks.remove(id);
            self.shared.wakers.borrow_mut().remove(id);
        } else if let Some(task) = tasks.get_mut(id) {
            task.future = Some(future);
        }
    }
}

impl Drop for Executor {
    /// Drops the tasks still pending. Most hold a [`Handle`], which would
    /// otherwise keep them and the executor alive (a leak per executor in
    /// tests and fuzzing).
    fn drop(&mut self) {
        loop {
            // Taken out first: a task's destructor may use the executor.
            let tasks = core::mem::take(&mut *self.shared.tasks.borrow_mut());
            if tasks.is_empty() {
                break;
            }
            drop(tasks);
        }
        self.shared.wakers.borrow_mut().clear();
        self.shared.timers.borrow_mut().clear();
    }
}

impl Shared {
    fn fire_timers(&self, now: Instant) -> bool {
        let mut fired = false;
        loop {
            let mut timers = self.timers.borrow_mut();
            let Some(entry) = timers.first_entry() else { break };
            if entry.key().0 > now {
                break;
            }
            let waker = entry.remove();
            drop(timers);
            waker.wake();
            fired = true;
        }
        fired
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.borrow().keys().next().map(|k| k.0)
    }

    pub(crate) fn add_timer(&self, at: Instant, waker: Waker) -> u64 {
        let seq = self.next_timer.get();
        self.next_timer.set(seq + 1);
        self.timers.borrow_mut().insert((at, seq), waker);
        seq
    }

    pub(crate) fn update_timer(&self, at: Instant, seq: u64, waker: &Waker) -> bool {
        match self.timers.borrow_mut().get_mut(&(at, seq)) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove_timer(&self, at: Instant, seq: u64) {
        self.timers.borrow_mut().remove(&(at, seq));
    }

    pub(crate) fn now(&self) -> Instant {
        self.platform.now()
    }
}

impl Handle {
    /// Starts `future` as a new task. It runs until it completes or the
    /// executor ends; await the returned handle for its output, or drop the
    /// handle to let the task run detached.
    pub fn spawn<F: Future + 'static>(&self, future: F) -> JoinHandle<F::Output> {
        let state = Rc::new(RefCell::new(JoinState { output: None, waker: None }));
        let done = state.clone();
        let task: TaskFuture = Box::pin(async move {
            let out = future.await;
            let mut s = done.borrow_mut();
            s.output = Some(out);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        let mut tasks = self.shared.tasks.borrow_mut();
        let mut wakers = self.shared.wakers.borrow_mut();
        let entry = tasks.vacant_entry();
        let id = entry.key();
        let task_waker = Arc::new(TaskWaker { id, queued: AtomicBool::new(false), ready: self.shared.ready.clone() });
        let waker = Waker::from(task_waker.clone());
        entry.insert(Task { future: Some(task), waker: waker.clone() });
        let wid = wakers.insert(task_waker);
        debug_assert_eq!(wid, id);
        waker.wake();
        JoinHandle { state }
    }

    /// Monotonic time now.
    pub fn now(&self) -> Instant {
        self.shared.now()
    }

    /// A future that completes `duration` from now.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(self.shared.clone(), self.now() + duration)
    }

    /// A future that completes at `deadline` (at once if it has passed).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep::new(self.shared.clone(), deadline)
    }

    /// Runs `future` for at most `duration`; fails with [`crate::Elapsed`]
    /// if it has not completed by then (the future is dropped).
    pub fn timeout<F: Future>(&self, duration: Duration, future: F) -> Timeout<F> {
        Timeout::new(future, self.sleep(duration))
    }

    /// Lets other ready tasks run before continuing.
    pub async fn yield_now(&self) {
        let mut yielded = false;
        core::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    /// Number of live tasks (for diagnostics and tests).
    pub fn task_count(&self) -> usize {
        self.shared.tasks.borrow().len()
    }
}

struct JoinState<T> {
    output: Option<T>,
    waker: Option<Waker>,
}

/// The output of a spawned task, as a future.
pub struct JoinHandle<T> {
    state: Rc<RefCell<JoinState<T>>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = self.state.borrow_mut();
        match s.output.take() {
            Some(out) => Poll::Ready(out),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> JoinHandle<T> {
    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().output.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Frozen;

    impl Platform for Frozen {
        fn now(&self) -> Instant {
            Instant::ZERO
        }
        fn wait(&self, _: Option<Instant>) {}
    }

    #[test]
    fn dropping_the_executor_frees_pending_tasks_that_hold_a_handle() {
        let token = Rc::new(());
        let exec = Executor::new(Rc::new(Frozen));
        let rt = exec.handle();
        let held = token.clone();
        let task_rt = rt.clone();
        rt.spawn(async move {
            let _keep = (held, task_rt.clone());
            task_rt.sleep(Duration::from_secs(1)).await;
        });
        exec.block_on(async {});
        assert_eq!(Rc::strong_count(&token), 2, "the task is pending");
        drop(exec);
        assert_eq!(Rc::strong_count(&token), 1, "the task was dropped with the executor");
        assert_eq!(rt.task_count(), 0);
    }
}
