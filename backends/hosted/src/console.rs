//! Stdio as the console, and stderr as the log sink.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};

use morgana_devices::{Console, ConsoleError};
use morgana_runtime::logger::LogSink;

/// Log lines go to stderr, so stdout stays the app's.
#[derive(Debug, Default)]
pub struct StderrSink;

impl LogSink for StderrSink {
    fn write_str(&mut self, s: &str) {
        let _ = std::io::stderr().write_all(s.as_bytes());
    }
}

type SharedWaker = std::sync::Arc<std::sync::Mutex<Option<Waker>>>;

enum Input {
    Data(Vec<u8>),
    End,
}

/// Stdout for output; stdin for input, read by a helper thread so the
/// executor never blocks on it.
pub struct StdioConsole {
    notifier: std::sync::Arc<mio::Waker>,
    input: Option<(mpsc::Receiver<Input>, SharedWaker)>,
    pending: Vec<u8>,
    ended: bool,
}

impl StdioConsole {
    /// A console whose input thread interrupts `reactor`'s wait.
    pub fn new(reactor: &crate::Reactor) -> StdioConsole {
        StdioConsole { notifier: reactor.notifier(), input: None, pending: Vec::new(), ended: false }
    }

    /// Starts the thread that reads stdin (otherwise started by the first
    /// read).
    pub fn start_reader(&mut self) {
        if self.input.is_some() {
            return;
        }
        let notifier = self.notifier.clone();
        // Bounded: unread input waits in the pipe, not in memory.
        let (tx, rx) = mpsc::sync_channel(4);
        let waker: SharedWaker = Default::default();
        let w = waker.clone();
        // The spawner waits until the thread runs: a thread's start-up makes
        // system calls (rseq, sigaltstack) that the sandbox forbids.
        let (running_tx, running) = mpsc::sync_channel(1);
        std::thread::spawn(move || {
            let _ = running_tx.send(());
            let mut buf = [0u8; 4096];
            loop {
                let msg = match std::io::stdin().read(&mut buf) {
                    Ok(0) | Err(_) => Input::End,
                    Ok(n) => Input::Data(buf[..n].to_vec()),
                };
                let end = matches!(msg, Input::End);
                if tx.send(msg).is_err() {
                    break;
                }
                if let Some(w) = w.lock().ok().and_then(|mut g| g.take()) {
                    w.wake();
                }
                let _ = notifier.wake();
                if end {
                    break;
                }
            }
            // Never ends: a thread's exit makes system calls (rseq,
            // madvise, exit) that the sandbox forbids.
            loop {
                std::thread::park();
            }
        });
        let _ = running.recv();
        self.input = Some((rx, waker));
    }
}

impl Console for StdioConsole {
    fn write(&mut self, bytes: &[u8]) -> Result<(), ConsoleError> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|_| out.flush()).map_err(|_| ConsoleError::Closed)
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, ConsoleError>> {
        if self.pending.is_empty() && !self.ended {
            if self.input.is_none() {
                self.start_reader();
            }
            let (rx, waker) = self.input.as_ref().expect("reader started");
            // Store the waker before looking, so a message sent in between
            // still wakes us.
            *waker.lock().map_err(|_| ConsoleError::Device)? = Some(cx.waker().clone());
            match rx.try_recv() {
                Ok(Input::Data(d)) => self.pending = d,
                Ok(Input::End) | Err(mpsc::TryRecvError::Disconnected) => self.ended = true,
                Err(mpsc::TryRecvError::Empty) => return Poll::Pending,
            }
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Poll::Ready(Ok(n))
    }
}
