//! A capture on one interface of a namespace (AF_PACKET, in the test itself), the check
//! that only tunnel packets cross it, and the replay of a captured packet.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{LinkAddr, recvfrom};
use socket2::{Domain, Protocol, Socket, Type};

use super::lab::Lab;

const ETH_P_ALL: u16 = 0x0003;
const ETH_HEADER: usize = 14;

/// A thread in namespace `ns` reading every frame on `iface` (both directions) with an
/// AF_PACKET socket into `buf_len` bytes, handing each to `each` with `state`, until the
/// flag is raised; it has started when this returns. The thread's result is the state.
fn watch<S: Send + 'static>(
    ns: &str,
    iface: &str,
    buf_len: usize,
    recv_buffer: Option<usize>,
    mut state: S,
    each: impl Fn(&mut S, &[u8]) + Send + 'static,
) -> (Arc<AtomicBool>, JoinHandle<S>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (path, iface, flag) = (
        format!("/run/netns/{ns}"),
        iface.to_owned(),
        Arc::clone(&stop),
    );
    let thread = std::thread::spawn(move || {
        let file = File::open(&path).expect("namespace");
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        let index = nix::net::if_::if_nametoindex(iface.as_str()).expect("interface") as usize;
        let sock = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )
        .expect("AF_PACKET socket");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if let Some(bytes) = recv_buffer {
            // As root, past the system's cap (`net.core.rmem_max`): a capture on a busy
            // machine (the suite runs tests side by side) must not drop frames.
            let forced =
                nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &bytes);
            if forced.is_err() {
                let _ = sock.set_recv_buffer_size(bytes);
            }
        }
        ready_tx.send(()).unwrap();
        let mut buf = vec![0u8; buf_len];
        while !flag.load(Ordering::SeqCst) {
            if let Ok((n, Some(addr))) = recvfrom::<LinkAddr>(sock.as_raw_fd(), &mut buf)
                && addr.ifindex() == index
            {
                each(&mut state, &buf[..n]);
            }
        }
        state
    });
    ready_rx
        .recv_timeout(Duration::from_secs(3))
        .expect("capture started");
    (stop, thread)
}

/// Frames seen on one interface, both directions.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Vec<u8>>>>,
}

impl Capture {
    pub fn start(ns: &str, iface: &str) -> Capture {
        // Every frame is kept: a large receive buffer, so that none is dropped while the
        // thread that keeps them waits for a core.
        let (stop, thread) = watch(
            ns,
            iface,
            65536,
            Some(32 << 20),
            Vec::new(),
            |frames, frame| frames.push(frame.to_vec()),
        );
        Capture {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the capture and returns its frames.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("capture thread"))
            .unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What crossed the link.
#[derive(Debug, Default)]
pub struct Tally {
    pub esp: usize,
    pub ah: usize,
    pub udp_encap: usize,
    pub arp: usize,
    /// ICMPv6 neighbour discovery and MLD on an IPv6 outside link.
    pub icmpv6: usize,
    /// Anything else: inner packets in clear, or unexpected traffic.
    pub other: Vec<String>,
}

/// Classifies every frame; the IPv4 packets of tunnel traffic are returned too.
pub fn tally(frames: &[Vec<u8>]) -> (Tally, Vec<Vec<u8>>) {
    let mut t = Tally::default();
    let mut tunnel = Vec::new();
    for f in frames {
        let ethertype = f.get(12..14).map(|b| u16::from_be_bytes([b[0], b[1]]));
        match ethertype {
            Some(0x0806) => t.arp += 1,
            Some(0x0800) => {
                let ip = &f[ETH_HEADER..];
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let dport = ip
                    .get(ihl + 2..ihl + 4)
                    .map(|b| u16::from_be_bytes([b[0], b[1]]));
                match ip[9] {
                    50 => t.esp += 1,
                    51 => t.ah += 1,
                    17 if dport == Some(4500) => t.udp_encap += 1,
                    p => {
                        t.other
                            .push(format!("IPv4 protocol {p}, {} bytes", ip.len()));
                        continue;
                    }
                }
                tunnel.push(ip.to_vec());
            }
            Some(0x86dd) => {
                let ip = &f[ETH_HEADER..];
                let dport = ip.get(42..44).map(|b| u16::from_be_bytes([b[0], b[1]]));
                match ip[6] {
                    50 => t.esp += 1,
                    51 => t.ah += 1,
                    17 if dport == Some(4500) => t.udp_encap += 1,
                    // Neighbour discovery, and MLD behind a hop-by-hop header.
                    58 if ip.get(40).is_some_and(|ty| (133..=143).contains(ty)) => {
                        t.icmpv6 += 1;
                        continue;
                    }
                    0 if ip.get(40) == Some(&58)
                        && ip.get(48).is_some_and(|ty| (130..=143).contains(ty)) =>
                    {
                        t.icmpv6 += 1;
                        continue;
                    }
                    p => {
                        t.other
                            .push(format!("IPv6 next header {p}, {} bytes", ip.len()));
                        continue;
                    }
                }
                tunnel.push(ip.to_vec());
            }
            other => t.other.push(format!("ethertype {other:04x?}")),
        }
    }
    (t, tunnel)
}

/// Sends a captured IP packet again from namespace `ns`, as it was.
pub fn replay(lab: &Lab, ns: &str, packet: &[u8]) {
    let dst: IpAddr = IpAddr::from(<[u8; 4]>::try_from(&packet[16..20]).unwrap());
    lab.run_in(ns, || {
        let s =
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255))).expect("raw socket");
        s.send_to(packet, &SocketAddr::new(dst, 0).into())
            .expect("replayed packet sent");
    });
}

/// Sends a whole Ethernet frame on interface `iface` of namespace `ns`.
pub fn inject(lab: &Lab, ns: &str, iface: &str, frame: &[u8]) {
    lab.run_in(ns, || {
        let link = nix::ifaddrs::getifaddrs()
            .expect("interfaces")
            .filter(|a| a.interface_name == iface)
            .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
            .expect("the interface's link address");
        let sock = Socket::new(
            Domain::PACKET,
            Type::RAW,
            Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )
        .expect("AF_PACKET socket");
        nix::sys::socket::bind(sock.as_raw_fd(), &link).expect("bound to the interface");
        nix::sys::socket::send(sock.as_raw_fd(), frame, nix::sys::socket::MsgFlags::empty())
            .expect("frame sent");
    });
}

/// Every ESP packet's (SPI, sequence number) on one interface of a namespace, both
/// directions (ESP in IP, and ESP in UDP 4500 without IKE and keepalives): the pairs seen
/// twice are a nonce reused or a packet replayed by the network.
pub struct EspSeen {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Watched>>,
}

/// What [`EspSeen`]'s thread keeps: the pairs seen, ESP packets, the pairs seen twice.
type Watched = (std::collections::HashSet<(u32, u32)>, u64, Vec<(u32, u32)>);

/// The SPI and sequence number of an Ethernet frame carrying ESP.
fn esp_of(frame: &[u8]) -> Option<(u32, u32)> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let (proto, rest) = match ethertype {
        0x0800 => {
            let ip = frame.get(ETH_HEADER..)?;
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            (*ip.get(9)?, ip.get(ihl..)?)
        }
        0x86dd => {
            let ip = frame.get(ETH_HEADER..)?;
            (*ip.get(6)?, ip.get(40..)?)
        }
        _ => return None,
    };
    let esp = match proto {
        50 => rest,
        17 if rest.get(2..4)? == 4500u16.to_be_bytes() => {
            let payload = rest.get(8..)?;
            if payload.len() < 8 || payload[..4] == [0, 0, 0, 0] {
                return None;
            }
            payload
        }
        _ => return None,
    };
    let spi = u32::from_be_bytes(esp.get(..4)?.try_into().ok()?);
    let seq = u32::from_be_bytes(esp.get(4..8)?.try_into().ok()?);
    Some((spi, seq))
}

impl EspSeen {
    pub fn start(ns: &str, iface: &str) -> EspSeen {
        // The headers are enough; a large receive buffer, as the soak's rates are high.
        let state = (std::collections::HashSet::new(), 0u64, Vec::new());
        let (stop, thread) = watch(
            ns,
            iface,
            128,
            Some(16 << 20),
            state,
            |(seen, packets, twice), frame| {
                if let Some(pair) = esp_of(frame) {
                    *packets += 1;
                    if !seen.insert(pair) {
                        twice.push(pair);
                    }
                }
            },
        );
        EspSeen {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops: the ESP packets seen and the (SPI, sequence number) pairs seen twice.
    pub fn finish(mut self) -> (u64, Vec<(u32, u32)>) {
        self.stop.store(true, Ordering::SeqCst);
        let (_, packets, twice) = self
            .thread
            .take()
            .expect("running")
            .join()
            .expect("capture thread");
        (packets, twice)
    }
}

impl Drop for EspSeen {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
