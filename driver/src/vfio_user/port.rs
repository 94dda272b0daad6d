//! The served card's Ethernet port on a unix datagram socket, one frame per datagram: how
//! tests and `espo validate` reach the port of a card in another process.
//!
//! The server binds the port's path ([`DatagramPort`]); the peer binds a path of its own,
//! connects, and announces itself with an empty datagram ([`PortPeer`]). Frames go to the
//! peer that spoke last; before any peer spoke, frames the card sends are dropped (an
//! unplugged cable). Frames longer than [`MAX_FRAME_BYTES`] are dropped. The server takes
//! frames off the socket as soon as they arrive ([`DatagramPort::pull`]) into a queue of
//! at most [`MAX_QUEUED_FRAMES`] that the card drains at its own pace, so that a peer is
//! held up only by a card that stopped taking frames for long.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Largest frame carried (the card's largest is 9216 bytes).
pub const MAX_FRAME_BYTES: usize = 16384;
/// Frames the server holds for the card at most.
pub const MAX_QUEUED_FRAMES: usize = 16384;

/// The server's end of the port.
#[derive(Debug)]
pub struct DatagramPort {
    socket: UnixDatagram,
    peer: Option<PathBuf>,
    buf: Vec<u8>,
    queue: std::collections::VecDeque<Vec<u8>>,
    /// Frames the card sent that no peer took.
    pub dropped: u64,
}

impl DatagramPort {
    /// Binds `path` (an existing socket file there is replaced).
    pub fn bind(path: &Path) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            peer: None,
            buf: vec![0; MAX_FRAME_BYTES + 1],
            queue: std::collections::VecDeque::new(),
            dropped: 0,
        })
    }

    /// A descriptor that is readable when a frame waits (for the server's poll).
    pub fn wake_fd(&self) -> io::Result<OwnedFd> {
        Ok(self.socket.try_clone()?.into())
    }

    /// Sends a frame to the peer, if there is one.
    pub fn send_frame(&mut self, frame: &[u8]) {
        let sent = match &self.peer {
            Some(peer) => self.socket.send_to(frame, peer).is_ok(),
            None => false,
        };
        if !sent {
            self.dropped += 1;
        }
    }

    /// Takes every waiting frame off the socket into the queue (while it has room).
    pub fn pull(&mut self) {
        while self.queue.len() < MAX_QUEUED_FRAMES {
            let Ok((n, from)) = self.socket.recv_from(&mut self.buf) else {
                return;
            };
            if let Some(path) = from.as_pathname() {
                self.peer = Some(path.to_path_buf());
            }
            // Empty datagrams only announce the peer.
            if n == 0 || n > MAX_FRAME_BYTES {
                continue;
            }
            if let Some(frame) = self.buf.get(..n) {
                self.queue.push_back(frame.to_vec());
            }
        }
    }

    /// The next frame from the peer.
    pub fn recv_frame(&mut self) -> Option<Vec<u8>> {
        if self.queue.is_empty() {
            self.pull();
        }
        self.queue.pop_front()
    }
}

/// The far end of a served card's port.
#[derive(Debug)]
pub struct PortPeer {
    socket: UnixDatagram,
    own: PathBuf,
    buf: Vec<u8>,
}

impl PortPeer {
    /// Binds `own`, connects to the port at `port` and announces itself.
    pub fn connect(port: &Path, own: &Path) -> io::Result<Self> {
        let _ = std::fs::remove_file(own);
        let socket = UnixDatagram::bind(own)?;
        socket.connect(port)?;
        socket.set_nonblocking(true)?;
        socket.send(&[])?;
        Ok(Self {
            socket,
            own: own.to_path_buf(),
            buf: vec![0; MAX_FRAME_BYTES + 1],
        })
    }

    /// Sends a frame to the card. `WouldBlock`: the server's queue is full (try again);
    /// other errors: the server is gone, or the frame is empty or too long.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        if frame.is_empty() || frame.len() > MAX_FRAME_BYTES {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        self.socket.send(frame).map(|_| ())
    }

    /// The next frame the card sent, if one waits.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            let n = self.socket.recv(&mut self.buf).ok()?;
            if n == 0 || n > MAX_FRAME_BYTES {
                continue;
            }
            return self.buf.get(..n).map(<[u8]>::to_vec);
        }
    }
}

impl std::os::fd::AsFd for PortPeer {
    /// Readable when a frame from the card waits.
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Drop for PortPeer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.own);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_both_ways_once_the_peer_spoke() {
        let dir = tempfile::tempdir().unwrap();
        let mut port = DatagramPort::bind(&dir.path().join("port")).unwrap();
        port.send_frame(b"lost");
        assert_eq!(port.dropped, 1, "no peer yet");
        let mut peer = PortPeer::connect(&dir.path().join("port"), &dir.path().join("me")).unwrap();
        peer.send(b"to card").unwrap();
        assert_eq!(port.recv_frame().as_deref(), Some(&b"to card"[..]));
        port.send_frame(b"from card");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(peer.recv().as_deref(), Some(&b"from card"[..]));
        assert!(peer.send(&[0; MAX_FRAME_BYTES + 1]).is_err());
    }
}
