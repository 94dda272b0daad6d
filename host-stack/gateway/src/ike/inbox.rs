//! A bounded queue of IKE messages from the datapath threads to the key-management
//! daemon, with a wake-up socket for the daemon's poll.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

/// Messages waiting for the daemon, at most.
pub const INBOX_CAPACITY: usize = 256;

/// One IKE message as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeMessage {
    /// The IKE message (after the non-ESP marker, on port 4500).
    pub bytes: Vec<u8>,
    /// The peer's address and port.
    pub src: SocketAddr,
    /// This end's address and port.
    pub dst: SocketAddr,
}

/// The datapath's side: clonable, never blocks.
#[derive(Debug, Clone)]
pub struct IkeInbox {
    tx: SyncSender<IkeMessage>,
    wake: Arc<UnixStream>,
}

/// The daemon's side.
#[derive(Debug)]
pub struct IkeReceiver {
    rx: Receiver<IkeMessage>,
    wake: UnixStream,
}

/// An inbox holding at most `capacity` messages.
pub fn channel(capacity: usize) -> io::Result<(IkeInbox, IkeReceiver)> {
    let (wake_tx, wake_rx) = UnixStream::pair()?;
    wake_tx.set_nonblocking(true)?;
    wake_rx.set_nonblocking(true)?;
    let (tx, rx) = sync_channel(capacity);
    Ok((
        IkeInbox {
            tx,
            wake: Arc::new(wake_tx),
        },
        IkeReceiver { rx, wake: wake_rx },
    ))
}

impl IkeInbox {
    /// Queues a message for the daemon; `false` when the inbox is full or the daemon gone
    /// (the caller counts the drop).
    pub fn offer(&self, message: IkeMessage) -> bool {
        match self.tx.try_send(message) {
            Ok(()) => {
                // A full wake-up socket already has the daemon's attention.
                let _ = (&*self.wake).write(&[1]);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

impl IkeReceiver {
    /// The next waiting message, if any.
    pub fn try_recv(&self) -> Option<IkeMessage> {
        self.rx.try_recv().ok()
    }

    /// Empties the wake-up socket; call before draining with [`try_recv`](Self::try_recv),
    /// so that a message queued meanwhile wakes the next poll.
    pub fn clear_wake(&self) {
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }

    /// Readable when messages wait.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    fn msg(n: u8) -> IkeMessage {
        IkeMessage {
            bytes: vec![n; 28],
            src: "198.51.100.2:4500".parse().unwrap(),
            dst: "192.0.2.1:4500".parse().unwrap(),
        }
    }

    fn readable(r: &IkeReceiver) -> bool {
        let mut fds = [PollFd::new(r.wake_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn messages_wake_the_daemon_and_arrive_in_order() {
        let (inbox, rx) = channel(4).unwrap();
        assert!(!readable(&rx));
        assert!(inbox.offer(msg(1)));
        assert!(inbox.clone().offer(msg(2)));
        assert!(readable(&rx));
        rx.clear_wake();
        assert!(!readable(&rx));
        assert_eq!(rx.try_recv(), Some(msg(1)));
        assert_eq!(rx.try_recv(), Some(msg(2)));
        assert_eq!(rx.try_recv(), None);
    }

    #[test]
    fn a_full_inbox_refuses_without_waiting() {
        let (inbox, rx) = channel(2).unwrap();
        assert!(inbox.offer(msg(1)) && inbox.offer(msg(2)));
        assert!(!inbox.offer(msg(3)));
        assert_eq!(rx.try_recv(), Some(msg(1)));
        assert!(inbox.offer(msg(4)));
        drop(rx);
        assert!(!inbox.offer(msg(5)), "nobody to take it");
    }
}
