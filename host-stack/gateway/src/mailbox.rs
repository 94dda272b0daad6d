//! Changes for a datapath thread's half of the engine, run by that thread between two
//! batches.
//!
//! Each datapath thread owns its half of the software engine outright (no lock on the
//! packet path). A change — add an SA, switch a policy to a new one — is a job posted into
//! the half's [`Mailbox`]; the owner looks at one atomic flag per batch and, when it is set,
//! runs the waiting jobs before it takes the next batch. So a batch sees the database as
//! it was before a change or as it is after it, never half of it, and the packet path pays
//! one relaxed load per batch. The mailbox's wake-up socket is in the owner's idle poll, so
//! an idle thread runs a job at once.
//!
//! [`Mailbox::call`] waits for the job's result. A job the owner has not started when the
//! caller gives up (the gateway stopping) is cancelled and never runs; one it has started
//! is waited for: the caller always learns whether the change happened.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Job<H> = Box<dyn FnOnce(&mut H) + Send>;

const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

/// Jobs for the owner of an `H`.
pub struct Mailbox<H> {
    pending: AtomicBool,
    /// The owner has stopped: nothing runs jobs any more.
    closed: AtomicBool,
    jobs: Mutex<VecDeque<Job<H>>>,
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl<H> core::fmt::Debug for Mailbox<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mailbox")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Why a job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    #[error("the datapath did not take the change within {0:?} (the gateway is stopping)")]
    NotTaken(Duration),
    /// The owner stopped ([`Mailbox::close`]): nothing will run a change again.
    #[error("the datapath has stopped")]
    Closed,
}

impl<H> Mailbox<H> {
    pub fn new() -> io::Result<Mailbox<H>> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Mailbox {
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            jobs: Mutex::new(VecDeque::new()),
            wake_tx,
            wake_rx,
        })
    }

    /// Runs `change` on the halves of every mailbox of `boxes`, one after the other; stops at
    /// the first that refuses it (the inner error) or cannot be reached.
    pub fn call_each<E: Send + 'static>(
        boxes: &[Arc<Mailbox<H>>],
        change: impl Fn(&mut H) -> Result<(), E> + Clone + Send + 'static,
        timeout: Duration,
    ) -> Result<Result<(), E>, MailboxError> {
        for mailbox in boxes {
            let change = change.clone();
            if let Err(e) = mailbox.call(move |h| change(h), timeout)? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Runs `f` on the owner's `H` between two of its batches and returns what it returned;
    /// gives up after `timeout` if the owner has not started it (it then never runs), and at
    /// once when the owner has stopped ([`close`](Self::close)).
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut H) -> R + Send + 'static,
        timeout: Duration,
    ) -> Result<R, MailboxError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(MailboxError::Closed);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let state = Arc::new(AtomicU8::new(WAITING));
        let job_state = Arc::clone(&state);
        let job: Job<H> = Box::new(move |half| {
            if job_state
                .compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let _ = tx.send(f(half));
            }
        });
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(job);
        self.pending.store(true, Ordering::Release);
        let _ = (&self.wake_tx).write(&[1]);
        // The owner closes the box before it runs what waits for the last time: a job
        // queued after that run finds it closed here (the queue's lock orders the two).
        if self.closed.load(Ordering::SeqCst)
            && state
                .compare_exchange(WAITING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Err(MailboxError::Closed);
        }
        match rx.recv_timeout(timeout) {
            Ok(r) => Ok(r),
            Err(_) => {
                if state
                    .compare_exchange(WAITING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Err(MailboxError::NotTaken(timeout));
                }
                // Started: it finishes, and its result is what happened.
                rx.recv().map_err(|_| MailboxError::NotTaken(timeout))
            }
        }
    }

    /// The owner's side, when it stops for good (a datapath thread ending): runs what
    /// waits, and from then on a [`call`](Self::call) returns [`MailboxError::Closed`] at
    /// once instead of waiting for an owner that is gone.
    pub fn close(&self, half: &mut H) {
        self.closed.store(true, Ordering::SeqCst);
        self.pending.store(true, Ordering::Release);
        self.run_pending(half);
    }

    /// The owner's side: runs every waiting job on `half`; whether any did. One atomic
    /// load when none waits.
    #[inline]
    pub fn run_pending(&self, half: &mut H) -> bool {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return false;
        }
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
        let jobs: Vec<Job<H>> = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        let ran = !jobs.is_empty();
        for job in jobs {
            job(half);
        }
        ran
    }

    /// Readable while jobs wait: for the owner's idle poll.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_rx.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_on_the_owners_value_and_returns_its_result() {
        let mailbox = Arc::new(Mailbox::<Vec<u32>>::new().unwrap());
        let owner = {
            let mailbox = Arc::clone(&mailbox);
            std::thread::spawn(move || {
                let mut half = vec![1, 2];
                let mut fds = [nix::poll::PollFd::new(
                    mailbox.wake_fd(),
                    nix::poll::PollFlags::POLLIN,
                )];
                while half.len() < 4 {
                    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(1000u16));
                    mailbox.run_pending(&mut half);
                }
                half
            })
        };
        let r = mailbox.call(
            |h| {
                h.push(3);
                h.len()
            },
            Duration::from_secs(5),
        );
        assert_eq!(r, Ok(3));
        assert_eq!(mailbox.call(|h| h.push(4), Duration::from_secs(5)), Ok(()));
        assert_eq!(owner.join().unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn a_job_nobody_takes_is_cancelled_and_never_runs() {
        let mailbox = Mailbox::<Vec<u32>>::new().unwrap();
        let r = mailbox.call(|h| h.push(9), Duration::from_millis(20));
        assert_eq!(r, Err(MailboxError::NotTaken(Duration::from_millis(20))));
        let mut half = Vec::new();
        mailbox.run_pending(&mut half);
        assert!(half.is_empty(), "the cancelled job did not run");
        mailbox.run_pending(&mut half);
    }

    #[test]
    fn a_closed_box_answers_at_once_after_running_what_waited() {
        let mailbox = Arc::new(Mailbox::<Vec<u32>>::new().unwrap());
        // A change already waiting when the owner stops still runs, and its caller learns it.
        let caller = {
            let mailbox = Arc::clone(&mailbox);
            std::thread::spawn(move || mailbox.call(|h| h.push(7), Duration::from_secs(30)))
        };
        while !mailbox.pending.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut half = Vec::new();
        mailbox.close(&mut half);
        assert_eq!(caller.join().unwrap(), Ok(()));
        assert_eq!(half, [7]);
        // After it, a call does not wait out its timeout, and nothing runs it.
        let started = std::time::Instant::now();
        let r = mailbox.call(|h| h.push(8), Duration::from_secs(30));
        assert_eq!(r, Err(MailboxError::Closed));
        assert!(started.elapsed() < Duration::from_secs(5));
        mailbox.run_pending(&mut half);
        assert_eq!(half, [7]);
    }
}
