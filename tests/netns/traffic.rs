//! Traffic generators, run inside namespaces by the tests: a UDP echo and a TCP transfer
//! whose content the receiver checks. Every socket operation has a timeout, and every
//! server stops after its exchange, so a broken tunnel fails a test instead of hanging it.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use super::lab::Lab;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The byte at `i` of a transfer: a pattern a reordering or corruption cannot preserve.
fn pattern(i: usize) -> u8 {
    ((i * 31 + i / 251) % 253) as u8
}

fn wildcard(addr: IpAddr) -> IpAddr {
    if addr.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    }
}

/// Sends `count` datagrams of `size` bytes from `client_ns` to `server` (an address in
/// `server_ns`), each echoed back; returns how many came back intact. A lost datagram is
/// retried up to 3 times.
pub fn udp_echo(
    lab: &Lab,
    client_ns: &str,
    server_ns: &str,
    server: IpAddr,
    count: usize,
    size: usize,
) -> usize {
    let (tx, rx) = mpsc::channel();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            lab.run_in(server_ns, || {
                let sock =
                    UdpSocket::bind(SocketAddr::new(wildcard(server), 7001)).expect("udp bind");
                sock.set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                tx.send(()).unwrap();
                let mut buf = vec![0u8; 65536];
                // Serves until the client is done (30 s at most).
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    if let Ok((n, from)) = sock.recv_from(&mut buf) {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            })
        });
        rx.recv_timeout(TIMEOUT).expect("echo server up");
        lab.run_in(client_ns, || {
            let sock = UdpSocket::bind(SocketAddr::new(wildcard(server), 0)).expect("udp bind");
            sock.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut ok = 0;
            let mut buf = vec![0u8; 65536];
            for i in 0..count {
                let msg: Vec<u8> = (0..size).map(|j| pattern(i * 7919 + j)).collect();
                'attempts: for _attempt in 0..3 {
                    sock.send_to(&msg, (server, 7001)).expect("udp send");
                    // Late echoes of earlier datagrams are skipped.
                    while let Ok((n, _)) = sock.recv_from(&mut buf) {
                        if buf[..n] == msg[..] {
                            ok += 1;
                            break 'attempts;
                        }
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            ok
        })
    })
}

/// FNV-1a over a byte stream.
fn fnv(state: &mut u64, bytes: &[u8]) {
    for b in bytes {
        *state ^= u64::from(*b);
        *state = state.wrapping_mul(0x100_0000_01b3);
    }
}

/// Sends `len` bytes over TCP from `client_ns` to `server` in `server_ns` and checks that
/// the receiver got exactly them (length and hash reported back over the connection).
pub fn tcp_transfer(lab: &Lab, client_ns: &str, server_ns: &str, server: IpAddr, len: usize) {
    tcp_transfer_with(lab, client_ns, None, server_ns, server, len, 7002)
}

/// As [`tcp_transfer`], on TCP port `port` (transfers one after the other use a port each,
/// so that none waits for the last one's connection to leave TIME_WAIT).
pub fn tcp_transfer_on(
    lab: &Lab,
    client_ns: &str,
    server_ns: &str,
    server: IpAddr,
    len: usize,
    port: u16,
) {
    tcp_transfer_with(lab, client_ns, None, server_ns, server, len, port)
}

/// [`tcp_transfer`] from the client's address `from` (by default the one its route
/// chooses).
pub fn tcp_transfer_from(
    lab: &Lab,
    client_ns: &str,
    from: Option<IpAddr>,
    server_ns: &str,
    server: IpAddr,
    len: usize,
) {
    tcp_transfer_with(lab, client_ns, from, server_ns, server, len, 7002)
}

/// A TCP transfer from `client_ns` (from address `from`, or its route's) to `server:port`
/// in `server_ns`, content checked.
fn tcp_transfer_with(
    lab: &Lab,
    client_ns: &str,
    from: Option<IpAddr>,
    server_ns: &str,
    server: IpAddr,
    len: usize,
    port: u16,
) {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            lab.run_in(server_ns, || {
                let l =
                    TcpListener::bind(SocketAddr::new(wildcard(server), port)).expect("tcp bind");
                l.set_nonblocking(true).unwrap();
                tx.send(()).unwrap();
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                let mut conn = loop {
                    match l.accept() {
                        Ok((c, _)) => break c,
                        Err(_) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => panic!("no connection: {e}"),
                    }
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(TIMEOUT)).unwrap();
                let (mut n, mut h) = (0u64, 0xcbf2_9ce4_8422_2325u64);
                let mut buf = vec![0u8; 65536];
                loop {
                    let k = conn.read(&mut buf).expect("tcp read");
                    if k == 0 {
                        break;
                    }
                    fnv(&mut h, &buf[..k]);
                    n += k as u64;
                }
                conn.write_all(&n.to_be_bytes()).unwrap();
                conn.write_all(&h.to_be_bytes()).unwrap();
            })
        });
        rx.recv_timeout(TIMEOUT).expect("tcp server up");
        lab.run_in(client_ns, || {
            let data: Vec<u8> = (0..len).map(pattern).collect();
            let to = SocketAddr::new(server, port);
            let mut c = match from {
                None => TcpStream::connect_timeout(&to, TIMEOUT).expect("tcp connect"),
                Some(from) => {
                    let s = socket2::Socket::new(
                        socket2::Domain::for_address(to),
                        socket2::Type::STREAM,
                        None,
                    )
                    .expect("tcp socket");
                    s.bind(&SocketAddr::new(from, 0).into()).expect("tcp bind");
                    s.connect_timeout(&to.into(), TIMEOUT).expect("tcp connect");
                    TcpStream::from(s)
                }
            };
            c.set_write_timeout(Some(TIMEOUT)).unwrap();
            c.set_read_timeout(Some(TIMEOUT)).unwrap();
            c.write_all(&data).expect("tcp write");
            c.shutdown(Shutdown::Write).unwrap();
            let mut answer = [0u8; 16];
            c.read_exact(&mut answer).expect("receiver's summary");
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            fnv(&mut h, &data);
            assert_eq!(
                u64::from_be_bytes(answer[..8].try_into().unwrap()),
                len as u64,
                "bytes received"
            );
            assert_eq!(
                u64::from_be_bytes(answer[8..].try_into().unwrap()),
                h,
                "content received"
            );
        });
    });
}

/// What a [`udp_stream`] delivered.
#[derive(Debug)]
pub struct Stream {
    pub sent: u64,
    /// Sequence numbers received intact, in arrival order.
    pub received: Vec<u64>,
    /// Datagrams whose content did not match their sequence number.
    pub corrupted: u64,
}

impl Stream {
    /// Sequence numbers sent but never received.
    pub fn lost(&self) -> Vec<u64> {
        let got: std::collections::BTreeSet<u64> = self.received.iter().copied().collect();
        (0..self.sent).filter(|s| !got.contains(s)).collect()
    }

    /// Sequence numbers received more than once.
    pub fn duplicated(&self) -> Vec<u64> {
        let mut seen = std::collections::BTreeSet::new();
        self.received
            .iter()
            .copied()
            .filter(|s| !seen.insert(*s))
            .collect()
    }
}

/// Sends numbered UDP datagrams of `size` bytes (at least 8) from `client_ns` to `server`
/// in `server_ns`, one every `gap`, until `stop` is set; the receiver checks each one's
/// content against its number. Returns what was sent and what arrived (after a grace
/// period for datagrams still in flight).
pub fn udp_stream(
    lab: &Lab,
    client_ns: &str,
    server_ns: &str,
    server: IpAddr,
    size: usize,
    gap: Duration,
    stop: &AtomicBool,
) -> Stream {
    udp_stream_from(
        lab, client_ns, None, server_ns, server, 7003, size, gap, stop,
    )
}

/// As [`udp_stream`], from address `from` (or the route's) to `server:port`.
#[allow(clippy::too_many_arguments)]
pub fn udp_stream_from(
    lab: &Lab,
    client_ns: &str,
    from: Option<IpAddr>,
    server_ns: &str,
    server: IpAddr,
    port: u16,
    size: usize,
    gap: Duration,
    stop: &AtomicBool,
) -> Stream {
    let size = size.max(8);
    let body = |n: u64| -> Vec<u8> {
        let mut m: Vec<u8> = (0..size).map(|j| pattern(n as usize * 7919 + j)).collect();
        m[..8].copy_from_slice(&n.to_be_bytes());
        m
    };
    let (ready_tx, ready_rx) = mpsc::channel();
    let sending_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let server_thread = s.spawn(|| {
            lab.run_in(server_ns, || {
                let sock =
                    UdpSocket::bind(SocketAddr::new(wildcard(server), port)).expect("udp bind");
                // Room for seconds of the stream: a receiver thread starved of CPU on a busy
                // machine must not be what loses datagrams.
                let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(8 << 20);
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                ready_tx.send(()).unwrap();
                let (mut received, mut corrupted) = (Vec::new(), 0);
                let mut buf = vec![0u8; 65536];
                let mut quiet_since: Option<std::time::Instant> = None;
                loop {
                    match sock.recv_from(&mut buf) {
                        Ok((n, _)) if n >= 8 => {
                            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                            if buf[..n] == body(seq)[..] {
                                received.push(seq);
                            } else {
                                corrupted += 1;
                            }
                            quiet_since = None;
                        }
                        Ok(_) => corrupted += 1,
                        Err(_) => {
                            if sending_done.load(Ordering::SeqCst) {
                                let since =
                                    *quiet_since.get_or_insert_with(std::time::Instant::now);
                                if since.elapsed() > Duration::from_millis(500) {
                                    break;
                                }
                            }
                        }
                    }
                }
                (received, corrupted)
            })
        });
        ready_rx.recv_timeout(TIMEOUT).expect("stream receiver up");
        let sent = lab.run_in(client_ns, || {
            let sock = UdpSocket::bind(SocketAddr::new(from.unwrap_or(wildcard(server)), 0))
                .expect("udp bind");
            let mut n = 0u64;
            let start = std::time::Instant::now();
            while !stop.load(Ordering::SeqCst) {
                // Sending errors (a route briefly missing while a gateway restarts) count
                // as sent: the datagram is lost, and the test decides whether that is fine.
                let _ = sock.send_to(&body(n), (server, port));
                n += 1;
                let due = start + gap * (n as u32);
                if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            n
        });
        sending_done.store(true, Ordering::SeqCst);
        let (received, corrupted) = server_thread.join().expect("stream receiver");
        Stream {
            sent,
            received,
            corrupted,
        }
    })
}

/// What a [`tcp_stream`] delivered: bytes written by the sender, and whether the receiver
/// got exactly them, in order.
#[derive(Debug)]
pub struct TcpStreamed {
    pub sent: u64,
    pub received: u64,
    pub intact: bool,
}

/// A TCP connection from `client_ns` (address `from`) to `server:port` in `server_ns`
/// that carries the pattern at about `rate` bytes per second until `stop`; the receiver
/// checks every byte against its offset.
#[allow(clippy::too_many_arguments)]
pub fn tcp_stream(
    lab: &Lab,
    client_ns: &str,
    from: Option<IpAddr>,
    server_ns: &str,
    server: IpAddr,
    port: u16,
    rate: u64,
    stop: &AtomicBool,
) -> TcpStreamed {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            lab.run_in(server_ns, || {
                let l =
                    TcpListener::bind(SocketAddr::new(wildcard(server), port)).expect("tcp bind");
                l.set_nonblocking(true).unwrap();
                tx.send(()).unwrap();
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                let mut conn = loop {
                    match l.accept() {
                        Ok((c, _)) => break c,
                        Err(_) if std::time::Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(10))
                        }
                        Err(e) => panic!("no connection: {e}"),
                    }
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                let (mut n, mut intact) = (0usize, true);
                let mut buf = vec![0u8; 65536];
                loop {
                    let k = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => k,
                    };
                    if intact {
                        intact = buf[..k]
                            .iter()
                            .enumerate()
                            .all(|(i, b)| *b == pattern(n + i));
                    }
                    n += k;
                }
                (n as u64, intact)
            })
        });
        rx.recv_timeout(TIMEOUT).expect("tcp server up");
        let sent = lab.run_in(client_ns, || {
            let to = SocketAddr::new(server, port);
            let s = socket2::Socket::new(
                socket2::Domain::for_address(to),
                socket2::Type::STREAM,
                None,
            )
            .expect("tcp socket");
            if let Some(from) = from {
                s.bind(&SocketAddr::new(from, 0).into()).expect("tcp bind");
            }
            s.connect_timeout(&to.into(), TIMEOUT).expect("tcp connect");
            let mut c = TcpStream::from(s);
            c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
            let chunk = (rate / 100).max(1024) as usize;
            let start = std::time::Instant::now();
            let mut sent = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let data: Vec<u8> = (sent..sent + chunk).map(pattern).collect();
                if c.write_all(&data).is_err() {
                    break;
                }
                sent += chunk;
                let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let _ = c.shutdown(Shutdown::Write);
            sent as u64
        });
        let (received, intact) = receiver.join().expect("tcp receiver");
        TcpStreamed {
            sent,
            received,
            intact,
        }
    })
}

/// The kernel's UDP counters of a namespace that tell a datagram lost before the receiving
/// program read it (`RcvbufErrors`, `InErrors`): `Udp: InErrors N RcvbufErrors M`.
pub fn udp_errors(lab: &Lab, ns: &str) -> String {
    lab.run_in(ns, || {
        let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
        let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
            return String::new();
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .filter(|(n, _)| matches!(*n, "InErrors" | "RcvbufErrors"))
            .map(|(n, v)| format!("{n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}
