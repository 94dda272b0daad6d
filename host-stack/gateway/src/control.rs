//! The control socket: `espo status`, `espo sa ...` and `espo policy ...` talk to a running
//! gateway through the Unix socket of [`StatusSocket`] (mode 0600 in a directory only its
//! owner may write, so root only).
//!
//! A client connects, writes its request (espo-config's [`Request`] text: a command line,
//! and for the commands that add something, TOML entries), shuts its sending side and reads
//! the answer: `ok` or `error` on the first line, then text. The gateway reads at most
//! [`MAX_REQUEST_BYTES`] for at most [`READ_TIMEOUT`], answers only root or its own user
//! (checked on the socket's peer credentials as well as by the file mode), and wipes the
//! request — keys and all — once parsed. A client that sends nothing gets the status.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use espo_config::control::{MAX_REQUEST_BYTES, Request};
use zeroize::Zeroizing;

use crate::live::Reply;
use crate::status::StatusSocket;

/// How long the gateway waits for a client's request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Reads a whole request: up to EOF, at most one byte more than the limit.
fn read_request(stream: &mut UnixStream) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let n = stream.read(&mut chunk[..])?;
        if n == 0 {
            return Ok(buf);
        }
        let room = (MAX_REQUEST_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        if buf.len() > MAX_REQUEST_BYTES {
            return Ok(buf);
        }
    }
}

/// Whether the client is root or the gateway's own user.
fn peer_allowed(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(creds) => creds.uid() == 0 || creds.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    }
}

impl StatusSocket {
    /// Answers every waiting client with `answer(request)`.
    pub fn serve_requests(&self, mut answer: impl FnMut(Request) -> Reply) {
        while let Ok((mut stream, _)) = self.listener().accept() {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let reply = if !peer_allowed(&stream) {
                Reply {
                    ok: false,
                    text: "permission denied: espo's control socket answers root only\n".into(),
                }
            } else {
                match read_request(&mut stream) {
                    Ok(bytes) if bytes.is_empty() => answer(Request::Status),
                    Ok(bytes) => match Request::parse(&bytes) {
                        Ok(request) => answer(request),
                        Err(e) => Reply {
                            ok: false,
                            text: format!("{e}\n"),
                        },
                    },
                    Err(e) => Reply {
                        ok: false,
                        text: format!("reading the request failed: {e}\n"),
                    },
                }
            };
            let head = if reply.ok { "ok\n" } else { "error\n" };
            let mut text = reply.text;
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(text.as_bytes());
        }
    }
}

/// Sends `request` to the gateway listening at `path` and returns its answer.
pub fn request(path: &Path, request: &str) -> io::Result<Reply> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let (head, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    match head {
        "ok" => Ok(Reply {
            ok: true,
            text: rest.to_owned(),
        }),
        "error" => Ok(Reply {
            ok: false,
            text: rest.to_owned(),
        }),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the gateway's answer is not espo's (no ok/error line)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_answered_and_bad_ones_refused_with_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("espo.sock");
        let socket = StatusSocket::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while seen.len() < 3 && std::time::Instant::now() < deadline {
                socket.serve_requests(|r| {
                    seen.push(format!("{r:?}").chars().take(12).collect::<String>());
                    Reply {
                        ok: true,
                        text: "done".into(),
                    }
                });
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        let r = request(&path, "sa list\n").unwrap();
        assert_eq!((r.ok, r.text.as_str()), (true, "done\n"));
        let r = request(&path, "frobnicate\n").unwrap();
        assert!(!r.ok && r.text.contains("unknown command"), "{r:?}");
        let r = request(&path, "").unwrap();
        assert!(r.ok, "an empty request is a status request");
        let r = request(&path, &"x".repeat(MAX_REQUEST_BYTES + 10)).unwrap();
        assert!(!r.ok && r.text.contains("larger than"), "{r:?}");
        let r = request(&path, "policy list").unwrap();
        assert!(r.ok);
        let seen = server.join().unwrap();
        assert_eq!(
            seen.len(),
            3,
            "only valid requests reach the handler: {seen:?}"
        );
    }
}
