//! A platform with virtual time, for running in-process stacks: waiting for
//! a deadline jumps the clock to it, so retransmission timeouts cost nothing
//! and runs are repeatable.

use std::cell::Cell;

use morgana_devices::Instant;
use morgana_runtime::Platform;

/// Virtual time starting at zero.
#[derive(Default)]
pub struct VirtualTime {
    now: Cell<u64>,
    waits: Cell<u64>,
}

impl VirtualTime {
    /// How many times the executor has waited (once per wakeup).
    pub fn waits(&self) -> u64 {
        self.waits.get()
    }
}

impl Platform for VirtualTime {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.now.get())
    }

    fn wait(&self, deadline: Option<Instant>) {
        self.waits.set(self.waits.get() + 1);
        match deadline {
            Some(d) => self.now.set(self.now.get().max(d.as_nanos())),
            None => panic!("deadlock: no task is ready and no timer is pending"),
        }
    }
}
