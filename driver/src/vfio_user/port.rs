//! The served card's Ethernet port on a unix datagram socket, one frame per datagram: how
//! tests and `espo validate` reach the port of a card in another process.
//!
//! The server binds the port's path ([`DatagramPort`]); the peer binds a path of its own,
//! connects, and announces itself with an empty datagram ([`PortPeer`]). Frames go to the
//! peer that spoke last; before any peer spoke, frames the card sends are dropped (an
//! unplugged cable). Frames longer than [`MAX_FRAME_BYTES`] are dropped.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Largest frame carried (the card's largest is 9216 bytes).
pub const MAX_FRAME_BYTES: usize = 16384;

/// The server's end of the port.
#[derive(Debug)]
pub struct DatagramPort {
    socket: UnixDatagram,
    peer: Option<PathBuf>,
    buf: Vec<u8>,
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

    /// The next frame from the peer (empty datagrams only announce the peer).
    pub fn recv_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            let (n, from) = self.socket.recv_from(&mut self.buf).ok()?;
            if let Some(path) = from.as_pathname() {
                self.peer = Some(path.to_path_buf());
            }
            if n == 0 || n > MAX_FRAME_BYTES {
                continue;
            }
            return self.buf.get(..n).map(<[u8]>::to_vec);
        }
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

    /// Sends a frame to the card; false if it could not be sent (buffer full, no server).
    pub fn send(&self, frame: &[u8]) -> bool {
        !frame.is_empty() && frame.len() <= MAX_FRAME_BYTES && self.socket.send(frame).is_ok()
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
        assert!(peer.send(b"to card"));
        assert_eq!(port.recv_frame().as_deref(), Some(&b"to card"[..]));
        port.send_frame(b"from card");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(peer.recv().as_deref(), Some(&b"from card"[..]));
        assert!(!peer.send(&[0; MAX_FRAME_BYTES + 1]));
    }
}
