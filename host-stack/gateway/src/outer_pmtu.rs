//! The outer path MTU of each outbound SA (RFC 4301 §8.2, RFC 1191, RFC 8201), learnt from
//! ICMP "fragmentation needed" and ICMPv6 "packet too big" errors about espo's own tunnel
//! packets, and reflected to the inside by the outbound thread's PMTU check exactly as the
//! outside interface's MTU is ([`super::pmtu`]): an inner packet that no longer fits is
//! answered with an ICMP error naming the reduced inner MTU, or fragmented before
//! encapsulation (IPv4 without DF).
//!
//! Where the errors are read: on the card model, by the port thread, off the card's port
//! (they are addressed to a tunnel endpoint, which only espo answers for there); with the
//! software engine, by the inbound thread, from raw ICMP and ICMPv6 sockets on the outside
//! interface ([`sockets::IcmpRx`]). [`engine`] holds the seams that connect the table to
//! the datapath threads.
//!
//! An error is believed only about a packet espo could have sent (RFC 4301 §8.2.1 asks for
//! the SPI, and the sequence number where it can be had):
//!
//! - it is addressed to the quoted packet's source (where the receiving socket says);
//! - the quote holds enough of the packet to show its SPI and sequence number;
//! - source, destination, protocol (with ESP in UDP, the ports) and SPI are those of an
//!   outbound SA;
//! - the sequence number is one that SA has used, among its latest [`SEQ_WINDOW`] (the
//!   highest number of each SA is noted as its packets leave, [`PathMtus::note_sent`]);
//! - the MTU it announces is below the quoted packet's length (an announced 0, from a
//!   router older than RFC 1191, is taken as the plateau below that length, §7).
//!
//! Anything else is counted by reason and ignored. A believed error lowers the SA's path
//! MTU — never below the minimum of the outer family (68 or 1280 bytes) — when it is below
//! the current one; learnt values expire after [`EXPIRY`] (RFC 1191 §6.3, RFC 8201 §4) and
//! the SA goes back to the interface's MTU, probing for more the way RFC 1191 does.
//!
//! The table is shared without locks: one thread writes what it learns, the outbound
//! thread reads one atomic per packet of an SA.

pub mod engine;
pub mod sockets;

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use espo_ipsec::spec::{Direction, PolicySpec, SaProtocol, SaSpec};
use espo_ipsec::wire::icmp::{self as icmpv4, DstUnreachable};
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, icmpv6, ip, ipv6};

/// How long a learnt path MTU holds before the SA goes back to the interface's MTU.
pub const EXPIRY: Duration = Duration::from_secs(10 * 60);
/// How far below the highest number an SA has used a quoted sequence number may be: the
/// error was sent about a packet in flight a moment ago, and an off-path forger that
/// does not see the SA's packets has to guess within this window.
pub const SEQ_WINDOW: u64 = 1 << 20;
/// RFC 1191 §7: the MTU plateaus, for a router that announces none.
const PLATEAUS: [usize; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// What an SA's packets carry after the outer IP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Esp,
    EspInUdp { src_port: u16, dst_port: u16 },
    Ah,
}

impl Header {
    /// The SPI, the low 32 bits of the sequence number, and the UDP ports (ESP in UDP) of
    /// the packet whose upper-layer bytes start `payload`; `None` when it is too short.
    fn read(protocol: IpProtocol, payload: &[u8]) -> Option<(Header, u32, u32)> {
        let word = |at: usize| {
            payload
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
        };
        match protocol {
            IpProtocol::Esp => Some((Header::Esp, word(0)?, word(4)?)),
            IpProtocol::Ah => Some((Header::Ah, word(4)?, word(8)?)),
            IpProtocol::Udp => {
                let ports = word(0)?;
                let header = Header::EspInUdp {
                    src_port: (ports >> 16) as u16,
                    dst_port: ports as u16,
                };
                Some((header, word(8)?, word(12)?))
            }
            _ => None,
        }
    }
}

/// One outbound SA and what is known of its path.
#[derive(Debug)]
struct Entry {
    spi: u32,
    local: IpAddr,
    peer: IpAddr,
    header: Header,
    esn: bool,
    /// The learnt path MTU and when it was learnt, as `seconds since the table's epoch
    /// << 32 | MTU`; 0 when none is.
    learnt: AtomicU64,
    /// The highest sequence number seen leaving on this SA (with ESN, its high half
    /// inferred from the low halves on the wire).
    sent: AtomicU64,
}

/// Why an ICMP error about a packet too big was not believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The error or its quote is broken (bad checksum, a quote that is no IP header).
    Malformed,
    /// Not about a packet of any outbound SA (source, destination, protocol, ports or SPI
    /// differ), or about a fragment.
    NotOurs,
    /// The quote ends before the SPI and sequence number.
    ShortQuote,
    /// About an SA's packet, but not one espo sent: addressed elsewhere than its source, a
    /// sequence number the SA has not used (or not lately), or an MTU the packet would have
    /// fitted.
    Forged,
}

/// What became of an ICMP error about a packet too big.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The SA's path MTU is now `mtu`.
    Learnt { spi: u32, mtu: usize },
    /// Believed, but the SA's path MTU is already that low or lower.
    NotLower { spi: u32 },
    /// Not believed.
    Ignored(Ignored),
}

/// The table's counters.
#[derive(Debug, Default)]
struct Counters {
    learnt: AtomicU64,
    not_lower: AtomicU64,
    malformed: AtomicU64,
    not_ours: AtomicU64,
    short_quote: AtomicU64,
    forged: AtomicU64,
}

/// A snapshot of the counters, for `espo status` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathMtuCounters {
    pub learnt: u64,
    pub not_lower: u64,
    pub malformed: u64,
    pub not_ours: u64,
    pub short_quote: u64,
    pub forged: u64,
}

/// An ICMP error saying a packet was too big, as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig<'a> {
    /// The error's destination, where the receiving socket says.
    pub to: Option<IpAddr>,
    /// The MTU it announces (0: a router older than RFC 1191 said none).
    pub mtu: u32,
    /// The start of the packet it is about.
    pub quote: &'a [u8],
}

/// What an IP packet from the outside is to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// A "fragmentation needed" or "packet too big".
    TooBig(TooBig<'a>),
    /// One that does not parse (its checksum, its lengths).
    Malformed,
    /// Anything else.
    Other,
}

/// Reads a whole IP packet: an ICMP "fragmentation needed" (type 3 code 4) or ICMPv6
/// "packet too big" with a valid checksum is [`Heard::TooBig`].
pub fn hear(bytes: &[u8]) -> Heard<'_> {
    let Ok(packet) = ip::Packet::new_checked(bytes) else {
        return Heard::Other;
    };
    // The upper layer, sliced from `bytes` itself: what is heard borrows from them.
    let upper_layer = |from: usize| bytes.get(from..packet.total_len()).unwrap_or(&[]);
    let caps = ChecksumCaps::default();
    match &packet {
        ip::Packet::Ipv4(p) => {
            if p.next_header() != IpProtocol::Icmp || p.is_fragment() {
                return Heard::Other;
            }
            let Ok(message) = icmpv4::Packet::new_checked(upper_layer(p.header_len())) else {
                return Heard::Other;
            };
            if message.msg_type() != icmpv4::Message::DstUnreachable
                || DstUnreachable::from(message.msg_code()) != DstUnreachable::FragRequired
            {
                return Heard::Other;
            }
            match icmpv4::Repr::parse(&message, &caps) {
                Ok(icmpv4::Repr::DstUnreachable {
                    next_hop_mtu,
                    quote,
                    ..
                }) => Heard::TooBig(TooBig {
                    to: Some(IpAddr::V4(p.dst_addr())),
                    mtu: u32::from(next_hop_mtu),
                    quote,
                }),
                _ => Heard::Malformed,
            }
        }
        ip::Packet::Ipv6(p) => {
            let Ok(upper) = ipv6::walk_extension_headers(p) else {
                return Heard::Other;
            };
            if upper.protocol != IpProtocol::Icmpv6 || upper.is_fragment {
                return Heard::Other;
            }
            hear_icmpv6(p.src_addr(), Some(p.dst_addr()), upper_layer(upper.offset))
        }
    }
}

/// Reads an ICMPv6 message from `src` to `dst` (a raw ICMPv6 socket delivers the message
/// alone; without `dst` the checksum, which the kernel verified, is not checked again).
pub fn hear_icmpv6(src: Ipv6Addr, dst: Option<Ipv6Addr>, message: &[u8]) -> Heard<'_> {
    let Ok(packet) = icmpv6::Packet::new_checked(message) else {
        return Heard::Other;
    };
    if packet.msg_type() != icmpv6::Message::PktTooBig {
        return Heard::Other;
    }
    let caps = match dst {
        Some(_) => ChecksumCaps::default(),
        None => ChecksumCaps::offloaded(),
    };
    let to = dst.unwrap_or(Ipv6Addr::UNSPECIFIED);
    match icmpv6::Repr::parse(&src, &to, &packet, &caps) {
        Ok(icmpv6::Repr::PktTooBig { mtu, quote }) => Heard::TooBig(TooBig {
            to: dst.map(IpAddr::V6),
            mtu,
            quote,
        }),
        _ => Heard::Malformed,
    }
}

/// The outer path MTU of every outbound SA. See the module documentation.
#[derive(Debug)]
pub struct PathMtus {
    /// Sorted by SPI.
    entries: Vec<Entry>,
    interface_mtu: usize,
    epoch: Instant,
    counters: Counters,
    /// When the latest learnt path MTU expires, in seconds since `epoch` (0: none learnt).
    learnt_until: AtomicU64,
}

impl PathMtus {
    /// The table for the outbound SAs among `sas` (those `policies` name in `out` bundles,
    /// or that say they send), whose packets leave through an interface of
    /// `interface_mtu` bytes.
    pub fn new(sas: &[SaSpec], policies: &[PolicySpec], interface_mtu: usize) -> PathMtus {
        let outbound = |sa: &SaSpec| {
            sa.dir == Some(Direction::Out)
                || policies
                    .iter()
                    .any(|p| p.dir == Direction::Out && p.sa.contains(&sa.spi))
        };
        let mut entries: Vec<Entry> = sas
            .iter()
            .filter(|sa| outbound(sa))
            .map(|sa| Entry {
                spi: sa.spi,
                local: sa.src,
                peer: sa.dst,
                header: match (sa.protocol, sa.udp_encap) {
                    (SaProtocol::Ah, _) => Header::Ah,
                    (SaProtocol::Esp, None) => Header::Esp,
                    (SaProtocol::Esp, Some(u)) => Header::EspInUdp {
                        src_port: u.src_port,
                        dst_port: u.dst_port,
                    },
                },
                esn: sa.esn,
                learnt: AtomicU64::new(0),
                sent: AtomicU64::new(sa.seq),
            })
            .collect();
        entries.sort_by_key(|e| e.spi);
        PathMtus {
            entries,
            interface_mtu,
            epoch: Instant::now(),
            counters: Counters::default(),
            learnt_until: AtomicU64::new(0),
        }
    }

    /// Whether the outbound SAs use IPv4 and IPv6 outer headers.
    pub fn families(&self) -> (bool, bool) {
        let v4 = self.entries.iter().any(|e| e.local.is_ipv4());
        let v6 = self.entries.iter().any(|e| e.local.is_ipv6());
        (v4, v6)
    }

    /// The MTU of the outside interface.
    pub fn interface_mtu(&self) -> usize {
        self.interface_mtu
    }

    fn with_spi(&self, spi: u32) -> &[Entry] {
        let start = self.entries.partition_point(|e| e.spi < spi);
        let end = self.entries.partition_point(|e| e.spi <= spi);
        self.entries.get(start..end).unwrap_or(&[])
    }

    fn secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// The path MTU of `learnt` at `now`: `None` when nothing is learnt or it expired.
    fn current(&self, learnt: u64, now: Instant) -> Option<usize> {
        if learnt == 0 {
            return None;
        }
        let at = learnt >> 32;
        if self.secs(now).saturating_sub(at) >= EXPIRY.as_secs() {
            return None;
        }
        Some((learnt & 0xffff_ffff) as usize)
    }

    /// Whether an SA's path MTU learnt from an ICMP error may still hold: until one is
    /// learnt, and again once every learnt value has expired, every SA's path is the
    /// interface's. One atomic load until one is learnt; the clock is read only after.
    pub fn any_learnt(&self) -> bool {
        self.any_learnt_at(Instant::now())
    }

    /// [`any_learnt`](Self::any_learnt) at `now`.
    pub fn any_learnt_at(&self, now: Instant) -> bool {
        let until = self.learnt_until.load(Ordering::Relaxed);
        until > 0 && self.secs(now) < until
    }

    /// The learnt path MTU of the SA `spi`, when one is learnt and has not expired. One
    /// atomic load when none is; the clock is read only when one is.
    pub fn path_mtu(&self, spi: u32) -> Option<usize> {
        let entry = self.with_spi(spi).first()?;
        let learnt = entry.learnt.load(Ordering::Relaxed);
        if learnt == 0 {
            return None;
        }
        let current = self.current(learnt, Instant::now());
        if current.is_none() {
            // Expired: back to the interface's MTU (unless something newer came in).
            let _ = entry
                .learnt
                .compare_exchange(learnt, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        current
    }

    /// The SA a packet (or the quote of one) from `src` to `dst` with `protocol` and
    /// `payload` after the IP header belongs to, with the low half of its sequence number.
    fn owner(
        &self,
        src: IpAddr,
        dst: IpAddr,
        protocol: IpProtocol,
        payload: &[u8],
    ) -> Result<(&Entry, u32), Ignored> {
        let (header, spi, seq) = match Header::read(protocol, payload) {
            Some(read) => read,
            None if matches!(protocol, IpProtocol::Esp | IpProtocol::Ah | IpProtocol::Udp) => {
                return Err(Ignored::ShortQuote);
            }
            None => return Err(Ignored::NotOurs),
        };
        self.with_spi(spi)
            .iter()
            .find(|e| e.local == src && e.peer == dst && e.header == header)
            .map(|e| (e, seq))
            .ok_or(Ignored::NotOurs)
    }

    /// Notes a tunnel packet leaving (a whole outer IP packet): its SA has used its
    /// sequence number. Packets of no outbound SA are passed over. Called by one thread.
    pub fn note_sent(&self, packet: &[u8]) {
        if self.entries.is_empty() {
            return;
        }
        let Ok(quote) = ip::Quote::parse(packet) else {
            return;
        };
        let Ok((entry, low)) = self.owner(
            quote.src_addr,
            quote.dst_addr,
            quote.protocol,
            quote.payload,
        ) else {
            return;
        };
        let sent = entry.sent.load(Ordering::Relaxed);
        let seq = if entry.esn {
            // The high half is not on the wire: the number nearest the last one.
            let candidate = (sent & !0xffff_ffff) | u64::from(low);
            if candidate.saturating_add(1 << 31) < sent {
                candidate.saturating_add(1 << 32)
            } else {
                candidate
            }
        } else {
            u64::from(low)
        };
        // Several outbound workers note their packets at once, not in number order.
        if seq > sent {
            entry.sent.fetch_max(seq, Ordering::Relaxed);
        }
    }

    /// Notes that outbound SA `spi` has used sequence numbers up to `seq` (packets that left
    /// without passing [`note_sent`](Self::note_sent): the card's, where its port is its
    /// own, as its engine counts them).
    pub fn note_used(&self, spi: u32, seq: u64) {
        for entry in self.with_spi(spi) {
            entry.sent.fetch_max(seq, Ordering::Relaxed);
        }
    }

    /// The outbound SAs the table follows.
    pub fn spis(&self) -> Vec<u32> {
        let mut spis: Vec<u32> = self.entries.iter().map(|e| e.spi).collect();
        spis.dedup();
        spis
    }

    /// Whether `entry` has used the sequence number whose low half is `low`, lately.
    fn used(entry: &Entry, low: u32) -> bool {
        let sent = entry.sent.load(Ordering::Relaxed);
        let seq = if entry.esn {
            let candidate = (sent & !0xffff_ffff) | u64::from(low);
            match candidate.checked_sub(if candidate > sent { 1 << 32 } else { 0 }) {
                Some(seq) => seq,
                None => return false,
            }
        } else {
            u64::from(low)
        };
        seq >= 1 && seq <= sent && sent - seq < SEQ_WINDOW
    }

    fn count(&self, verdict: Verdict) -> Verdict {
        let c = &self.counters;
        let counter = match verdict {
            Verdict::Learnt { .. } => &c.learnt,
            Verdict::NotLower { .. } => &c.not_lower,
            Verdict::Ignored(Ignored::Malformed) => &c.malformed,
            Verdict::Ignored(Ignored::NotOurs) => &c.not_ours,
            Verdict::Ignored(Ignored::ShortQuote) => &c.short_quote,
            Verdict::Ignored(Ignored::Forged) => &c.forged,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        verdict
    }

    /// Counts an ICMP error that could not be read.
    pub fn count_malformed(&self) {
        self.count(Verdict::Ignored(Ignored::Malformed));
    }

    /// Checks an ICMP error about a packet too big against the outbound SAs and, when it is
    /// believed and lower, learns its MTU for the SA. See the module documentation.
    pub fn learn(&self, error: &TooBig<'_>, now: Instant) -> Verdict {
        let verdict = self.judge(error, now);
        self.count(verdict)
    }

    fn judge(&self, error: &TooBig<'_>, now: Instant) -> Verdict {
        let Ok(quote) = ip::Quote::parse(error.quote) else {
            return Verdict::Ignored(Ignored::Malformed);
        };
        if quote.non_first_fragment {
            return Verdict::Ignored(Ignored::NotOurs);
        }
        let (entry, low) = match self.owner(
            quote.src_addr,
            quote.dst_addr,
            quote.protocol,
            quote.payload,
        ) {
            Ok(owner) => owner,
            Err(why) => return Verdict::Ignored(why),
        };
        if error.to.is_some_and(|to| to != quote.src_addr) || !Self::used(entry, low) {
            return Verdict::Ignored(Ignored::Forged);
        }
        let announced = match usize::try_from(error.mtu) {
            Ok(0) => PLATEAUS
                .iter()
                .copied()
                .find(|&p| p < quote.total_len)
                .unwrap_or(0),
            Ok(mtu) => mtu,
            Err(_) => usize::MAX,
        };
        if announced >= quote.total_len {
            return Verdict::Ignored(Ignored::Forged);
        }
        let mtu = announced.max(quote.version.min_mtu());
        let learnt = entry.learnt.load(Ordering::Relaxed);
        let current = self
            .current(learnt, now)
            .unwrap_or(self.interface_mtu)
            .min(self.interface_mtu);
        if mtu >= current {
            return Verdict::NotLower { spi: entry.spi };
        }
        let value = (self.secs(now) << 32) | mtu as u64;
        entry.learnt.store(value, Ordering::Relaxed);
        self.learnt_until
            .fetch_max(self.secs(now) + EXPIRY.as_secs(), Ordering::Relaxed);
        Verdict::Learnt {
            spi: entry.spi,
            mtu,
        }
    }

    /// The counters.
    pub fn counters(&self) -> PathMtuCounters {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PathMtuCounters {
            learnt: load(&c.learnt),
            not_lower: load(&c.not_lower),
            malformed: load(&c.malformed),
            not_ours: load(&c.not_ours),
            short_quote: load(&c.short_quote),
            forged: load(&c.forged),
        }
    }

    /// What `espo status` shows: the counters, and every SA whose path MTU is below the
    /// interface's.
    pub fn render(&self, now: Instant) -> String {
        let c = self.counters();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "outer path mtu: icmp errors about tunnel packets: {} learnt, {} not lower; ignored: malformed {}, not ours {}, quote too short {}, forged {}",
            c.learnt, c.not_lower, c.malformed, c.not_ours, c.short_quote, c.forged
        );
        for e in &self.entries {
            let learnt = e.learnt.load(Ordering::Relaxed);
            if let Some(mtu) = self.current(learnt, now) {
                let age = self.secs(now).saturating_sub(learnt >> 32);
                let _ = writeln!(
                    out,
                    "  out {:#010x} to {}: path mtu {mtu} (learnt {age} s ago, expires in {} s)",
                    e.spi,
                    e.peer,
                    EXPIRY.as_secs().saturating_sub(age)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
