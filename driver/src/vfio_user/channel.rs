//! One end of a vfio-user connection: whole messages over a `SOCK_STREAM` unix socket, file
//! descriptors as `SCM_RIGHTS` with the first byte of a message, and every receive bounded
//! by a deadline.
//!
//! A message's size is checked against [`MAX_MESSAGE_BYTES`] as soon as its header is in,
//! before its payload is read; more than [`MAX_MESSAGE_FDS`] descriptors (or truncated
//! ancillary data) are refused. After any receive error the stream cannot be re-synchronised:
//! callers drop the connection.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use nix::sys::time::TimeSpec;

use super::proto::{HEADER_BYTES, Header, MAX_MESSAGE_BYTES, MAX_MESSAGE_FDS, ProtoError};

/// Why a message could not be received.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The peer closed the connection (at a message boundary or inside one).
    #[error("the peer closed the connection")]
    Closed,
    /// Nothing (or not all of a message) arrived before the deadline.
    #[error("no complete message within {0:?}")]
    TimedOut(Duration),
    /// The header is invalid (size beyond the limit, unknown type).
    #[error("malformed message header")]
    Malformed(#[source] ProtoError),
    /// More descriptors than accepted, or the kernel truncated them.
    #[error("a message carried more than {MAX_MESSAGE_FDS} file descriptors")]
    TooManyFds,
    /// The socket failed.
    #[error("socket error")]
    Io(#[source] io::Error),
}

/// A received message.
#[derive(Debug)]
pub struct Message {
    /// Its header.
    pub header: Header,
    /// The payload after the header.
    pub payload: Vec<u8>,
    /// Descriptors that came with it.
    pub fds: Vec<OwnedFd>,
}

/// `poll` with a timeout to the microsecond (`ppoll`); the number of ready descriptors.
pub(crate) fn poll_for(fds: &mut [PollFd<'_>], timeout: Duration) -> io::Result<usize> {
    let timeout = TimeSpec::from_duration(timeout.min(Duration::from_secs(3600)));
    loop {
        match ppoll(fds, Some(timeout), None) {
            Ok(n) => return Ok(usize::try_from(n).unwrap_or(0)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until `fd` is readable or `deadline`; false on timeout.
fn wait_readable(fd: BorrowedFd<'_>, deadline: Instant) -> io::Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    Ok(poll_for(&mut fds, left)? > 0)
}

/// Sends one message (header + payload) with `fds` attached to its first byte. Writes never
/// block longer than the socket's write timeout.
pub fn send(
    stream: &UnixStream,
    header: &Header,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let head = header.emit();
    let raw: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    let iov = [IoSlice::new(&head), IoSlice::new(payload)];
    let total = head.len() + payload.len();
    let sent = loop {
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if sent < total {
        // The descriptors went with the first bytes; the rest is plain stream data.
        let mut rest = Vec::with_capacity(total - sent);
        rest.extend_from_slice(&head);
        rest.extend_from_slice(payload);
        (&*stream).write_all(&rest[sent..])?;
    }
    Ok(())
}

/// Receives one message, waiting at most until `deadline`.
pub fn recv(stream: &UnixStream, deadline: Instant) -> Result<Message, RecvError> {
    let fd = stream.as_fd();
    let mut head = [0u8; HEADER_BYTES];
    let mut got = 0;
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut truncated = false;
    while got < HEADER_BYTES {
        if !wait_readable(fd, deadline).map_err(RecvError::Io)? {
            return Err(RecvError::TimedOut(
                deadline.saturating_duration_since(Instant::now()),
            ));
        }
        let mut space = nix::cmsg_space!([i32; MAX_MESSAGE_FDS]);
        let mut iov = [IoSliceMut::new(&mut head[got..])];
        let msg = match recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => return Err(RecvError::Io(e.into())),
        };
        let n = msg.bytes;
        truncated |= msg.flags.contains(MsgFlags::MSG_CTRUNC);
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    for r in raw {
                        // SAFETY: the kernel just installed `r` in this process for this
                        // message (SCM_RIGHTS); nothing else owns it, so it is ours to close.
                        fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                    }
                }
            }
        }
        if n == 0 {
            return Err(RecvError::Closed);
        }
        got += n;
    }
    if truncated || fds.len() > MAX_MESSAGE_FDS {
        return Err(RecvError::TooManyFds);
    }
    let header = Header::parse(&head, MAX_MESSAGE_BYTES).map_err(RecvError::Malformed)?;
    let mut payload = vec![0u8; header.payload_len()];
    let mut filled = 0;
    while filled < payload.len() {
        if !wait_readable(fd, deadline).map_err(RecvError::Io)? {
            return Err(RecvError::TimedOut(
                deadline.saturating_duration_since(Instant::now()),
            ));
        }
        match (&*stream).read(&mut payload[filled..]) {
            Ok(0) => return Err(RecvError::Closed),
            Ok(n) => filled += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return Err(RecvError::Io(e)),
        }
    }
    Ok(Message {
        header,
        payload,
        fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfio_user::proto::Command;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(200)
    }

    #[test]
    fn messages_and_descriptors_arrive_whole() {
        let (a, b) = pair();
        let file = tempfile_fd();
        let h = Header::command(3, Command::DmaMap, 5, false);
        send(&a, &h, b"hello", &[file.as_fd()]).unwrap();
        let m = recv(&b, soon()).unwrap();
        assert_eq!(
            (m.header, m.payload.as_slice(), m.fds.len()),
            (h, &b"hello"[..], 1)
        );
    }

    #[test]
    fn oversized_silent_and_closed_peers_are_errors_not_hangs() {
        let (a, b) = pair();
        let mut h = Header::command(1, Command::RegionRead, 0, false);
        h.size = MAX_MESSAGE_BYTES + 1;
        (&a).write_all(&h.emit()).unwrap();
        assert!(matches!(
            recv(&b, soon()),
            Err(RecvError::Malformed(ProtoError::BadSize { .. }))
        ));

        let (a, b) = pair();
        let started = Instant::now();
        assert!(matches!(
            recv(&b, Instant::now() + Duration::from_millis(30)),
            Err(RecvError::TimedOut(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        // Half a message, then silence: still bounded.
        (&a).write_all(&Header::command(1, Command::RegionRead, 8, false).emit())
            .unwrap();
        assert!(matches!(
            recv(&b, Instant::now() + Duration::from_millis(30)),
            Err(RecvError::TimedOut(_))
        ));
        drop(a);
        assert!(matches!(recv(&b, soon()), Err(RecvError::Closed)));
    }

    fn tempfile_fd() -> OwnedFd {
        let (x, _y) = UnixStream::pair().unwrap();
        x.into()
    }
}
