//! Timer futures.

use alloc::rc::Rc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use morgana_devices::Instant;

use crate::executor::Shared;

/// Completes at a deadline; see [`crate::Handle::sleep`].
#[must_use = "a Sleep does nothing unless awaited"]
pub struct Sleep {
    shared: Rc<Shared>,
    deadline: Instant,
    registered: Option<u64>,
}

impl Sleep {
    pub(crate) fn new(shared: Rc<Shared>, deadline: Instant) -> Sleep {
        Sleep { shared, deadline, registered: None }
    }

    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline; the sleep is pending again if it moved later.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(seq) = self.registered.take() {
            self.shared.remove_timer(self.deadline, seq);
        }
        self.deadline = deadline;
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.now() >= self.deadline {
            if let Some(seq) = self.registered.take() {
                self.shared.remove_timer(self.deadline, seq);
            }
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        match self.registered {
            Some(seq) if self.shared.update_timer(deadline, seq, cx.waker()) => {}
            _ => {
                let seq = self.shared.add_timer(deadline, cx.waker().clone());
                self.registered = Some(seq);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(seq) = self.registered.take() {
            self.shared.remove_timer(self.deadline, seq);
        }
    }
}

/// The error of a [`Timeout`] whose time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timed out")
    }
}

impl core::error::Error for Elapsed {}

/// A future with a time limit; see [`crate::Handle::timeout`].
#[must_use = "a Timeout does nothing unless awaited"]
pub struct Timeout<F> {
    future: Pin<alloc::boxed::Box<F>>,
    sleep: Sleep,
}

impl<F: Future> Timeout<F> {
    pub(crate) fn new(future: F, sleep: Sleep) -> Self {
        Timeout { future: alloc::boxed::Box::pin(future), sleep }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}
