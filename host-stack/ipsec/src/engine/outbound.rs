//! Outbound processing: policy lookup and tunnel-mode encapsulation (ESP, AH, ESP+AH).
//!
//! The tunnel packet is built around the inner packet where it lies: headers go into the
//! headroom in front of it, the ESP trailer and ICV into the tailroom behind it, and the
//! payload is sealed in place — so a packet received into a buffer with [`HEADROOM`] and
//! [`TAILROOM`] is encapsulated without a copy ([`Outbound::encapsulate_in_place`]).
//! [`Outbound::encapsulate`] copies the inner packet into an output buffer once first.
//! Nothing is allocated per packet.
//!
//! Header rules (shared with the card, fpga/README.md "Outer header"): outer TTL / hop
//! limit from the SA; DSCP and ECN copied from the inner packet (RFC 6040 normal mode);
//! IPv4 DF per the SA's `df` mode; IPv4 identification = low 16 bits of the tunnel SA's
//! sequence number; IPv6 flow label 0; UDP checksum 0 over IPv4, computed over IPv6; ESP
//! payload padded with 1, 2, 3, ... to a multiple of 16 bytes (4 for NULL encryption).

use std::net::IpAddr;
use std::ops::Range;

use super::SaTable;
use crate::counters::DropReason;
use crate::crypto::Integrity;
use crate::ecn;
use crate::sa::{OutboundSa, Transform};
use crate::spd::{Action, Bundle, PolicyId, Spd};
use crate::spec::DfMode;
use crate::wire::flow::Flow;
use crate::wire::{ChecksumCaps, IpProtocol, ah, esp, ip, ipv4, ipv6, udp};

/// Room in front of an inner packet that any tunnel header fits in: IPv6 (40), AH with the
/// longest ICV (48), UDP (8), ESP header and the longest IV (24).
pub const HEADROOM: usize = 128;
/// Room behind an inner packet for the longest ESP padding, trailer and ICV.
pub const TAILROOM: usize = 64;

/// What happened to an outbound packet that was not dropped ([`Outbound::encapsulate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulated {
    /// The protected packet is the first `len` bytes of the output buffer.
    Protected { len: usize, spi: u32, seq: u64 },
    /// Policy says bypass: send the inner packet as it is.
    Bypass,
}

/// What happened to an outbound packet encapsulated in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncapsulatedInPlace {
    /// The protected packet is `range` of the buffer.
    Protected {
        range: Range<usize>,
        spi: u32,
        seq: u64,
    },
    /// Policy says bypass: the inner packet is unchanged.
    Bypass,
}

/// The outbound half of the software engine: outbound SAs and the outbound SPD.
#[derive(Debug, Default)]
pub struct Outbound {
    pub(crate) sas: SaTable<OutboundSa>,
    pub(crate) spd: Spd,
    /// Trap policies that matched a packet since the last [`Outbound::take_acquires`].
    pub(crate) acquires: Vec<PolicyId>,
    /// With SAs shared between workers ([`crate::sa::SendShare`]): the packets of the
    /// current batch, those already seen, and the SAs that took numbers in it.
    batch: BatchState,
    /// The last policy decision encapsulation made: under which version of the SPD, for
    /// which flow. The segments of a super-packet, and most packets of a batch, are one
    /// flow; the decision holds while the SPD's version is the same ([`Spd::version`]).
    last_decision: Option<(u64, Flow, Result<Action, DropReason>)>,
}

#[derive(Debug, Default)]
struct BatchState {
    packets: usize,
    seen: usize,
    touched: Vec<usize>,
}

/// Acquires kept between two [`Outbound::take_acquires`] (one per trap policy).
const MAX_ACQUIRES: usize = 16;

/// The tunnel an inner packet would take (see [`Outbound::tunnel_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    /// What protecting the packet adds to it, in bytes.
    pub overhead: usize,
    /// The SPI of the bundle's outermost SA.
    pub outer_spi: u32,
}

/// What encapsulation needs to know of the inner packet, from one parse.
struct Inner {
    /// The IP datagram's own length (link padding after it is not carried).
    len: usize,
    tos: u8,
    dont_frag: bool,
    next_header: IpProtocol,
    flow: Flow,
}

#[inline(always)]
fn parse_inner(pkt: &[u8]) -> Result<Inner, DropReason> {
    let packet = ip::Packet::new_checked(pkt).map_err(|_| DropReason::Malformed)?;
    let flow = match &packet {
        ip::Packet::Ipv4(p) => Flow::from_ipv4(p),
        ip::Packet::Ipv6(p) => Flow::from_ipv6(p),
    };
    Ok(Inner {
        len: packet.total_len(),
        tos: packet.traffic_class(),
        // IPv6 packets are never fragmented on the way: their outer header says so too.
        dont_frag: match &packet {
            ip::Packet::Ipv4(p) => p.dont_frag(),
            ip::Packet::Ipv6(_) => true,
        },
        next_header: packet.version().protocol(),
        flow: flow.map_err(|_| DropReason::Malformed)?,
    })
}

/// The length of the datagram an IP header at the start of `head` declares (IPv4's total
/// length, IPv6's fixed header plus payload length); `None` when `head` holds no header of
/// either version.
fn declared_len(head: &[u8]) -> Option<usize> {
    match ip::Version::of(head)? {
        ip::Version::Ipv4 if head.len() >= ipv4::HEADER_LEN => {
            Some(usize::from(ipv4::Packet::new_unchecked(head).total_len()))
        }
        ip::Version::Ipv6 if head.len() >= ipv6::HEADER_LEN => {
            Some(ipv6::Packet::new_unchecked(head).total_len())
        }
        _ => None,
    }
}

/// Where each part of the tunnel packet goes, relative to the inner packet.
#[derive(Debug, Clone, Copy)]
struct Layout {
    v6: bool,
    ip_len: usize,
    ah_len: usize,
    udp_len: usize,
    /// ESP header and IV (0 for an AH tunnel).
    esp_head: usize,
    pad_len: usize,
    /// Padding, trailer and ICV after the inner packet (0 for an AH tunnel).
    tail: usize,
}

impl Layout {
    fn head(&self) -> usize {
        self.ip_len + self.ah_len + self.udp_len + self.esp_head
    }
}

impl Outbound {
    pub fn sas(&self) -> &SaTable<OutboundSa> {
        &self.sas
    }

    pub fn sas_mut(&mut self) -> &mut SaTable<OutboundSa> {
        &mut self.sas
    }

    pub fn spd(&self) -> &Spd {
        &self.spd
    }

    /// Index of the outbound SA with this SPI.
    pub fn sa_index(&self, spi: u32) -> Option<usize> {
        self.sas.position(|s| s.params.spi == spi)
    }

    #[inline(always)]
    fn decide(&self, flow: &Flow) -> Result<Action, DropReason> {
        match self.spd.lookup(flow) {
            None => Err(DropReason::NoPolicy),
            Some(p) => match p.action {
                Action::Discard => Err(DropReason::PolicyDiscard),
                Action::Trap => Err(DropReason::Trapped),
                a => Ok(a),
            },
        }
    }

    /// [`decide`](Self::decide), answered from the last decision when it was for the
    /// same flow under the same SPD.
    #[inline(always)]
    fn decide_again(&mut self, flow: &Flow) -> Result<Action, DropReason> {
        let version = self.spd.version();
        if let Some((v, f, decided)) = &self.last_decision
            && *v == version
            && f == flow
        {
            return *decided;
        }
        let decided = self.decide(flow);
        self.last_decision = Some((version, *flow, decided));
        decided
    }

    /// Notes the trap policy a packet matched, once until taken.
    fn acquire(&mut self, flow: &Flow) {
        if let Some(p) = self.spd.lookup(flow)
            && matches!(p.action, Action::Trap)
            && !self.acquires.contains(&p.id)
            && self.acquires.len() < MAX_ACQUIRES
        {
            self.acquires.push(p.id);
        }
    }

    /// The trap policies packets matched since the last call (each once), for key
    /// management to negotiate their SAs.
    pub fn take_acquires(&mut self, out: &mut Vec<PolicyId>) {
        out.append(&mut self.acquires);
    }

    /// Looks up the outbound policy for an inner packet.
    pub fn classify(&self, inner: &[u8]) -> Result<Action, DropReason> {
        self.decide(&parse_inner(inner)?.flow)
    }

    /// [`classify`](Self::classify) for a packet whose selectors were read already
    /// ([`Flow::parse_head`](crate::wire::Flow::parse_head) of a packet held elsewhere).
    pub fn classify_flow(&self, flow: &Flow) -> Result<Action, DropReason> {
        self.decide(flow)
    }

    /// Applies outbound policy to an inner IP packet and, when it says protect, writes the
    /// tunnel packet into `out`.
    pub fn encapsulate(
        &mut self,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<Encapsulated, DropReason> {
        let info = parse_inner(inner)?;
        let bundle = match self.decide_again(&info.flow) {
            Ok(Action::Protect(b)) => b,
            Ok(_) => return Ok(Encapsulated::Bypass),
            Err(DropReason::Trapped) => {
                self.acquire(&info.flow);
                return Err(DropReason::Trapped);
            }
            Err(e) => return Err(e),
        };
        let layout = self.layout(bundle, &info)?;
        self.hold_numbers(bundle)?;
        let head = layout.head();
        let end = head + info.len + layout.tail;
        let dst = out.get_mut(head..end).ok_or(DropReason::TooBig)?;
        dst[..info.len].copy_from_slice(&inner[..info.len]);
        let (range, seq) = self.seal_bundle(bundle, &info, layout, out, head)?;
        Ok(Encapsulated::Protected {
            len: range.end,
            spi: self.sas[bundle.inner].params.spi,
            seq,
        })
    }

    /// Applies outbound policy to the inner packet at `buf[inner]` and, when it says
    /// protect, encapsulates it where it lies: the headers go in front of it (at most
    /// [`HEADROOM`] bytes), padding, trailer and ICV behind it (at most [`TAILROOM`]).
    pub fn encapsulate_in_place(
        &mut self,
        buf: &mut [u8],
        inner: Range<usize>,
    ) -> Result<EncapsulatedInPlace, DropReason> {
        let info = parse_inner(buf.get(inner.clone()).ok_or(DropReason::Malformed)?)?;
        let bundle = match self.decide_again(&info.flow) {
            Ok(Action::Protect(b)) => b,
            Ok(_) => return Ok(EncapsulatedInPlace::Bypass),
            Err(DropReason::Trapped) => {
                self.acquire(&info.flow);
                return Err(DropReason::Trapped);
            }
            Err(e) => return Err(e),
        };
        let layout = self.layout(bundle, &info)?;
        if inner.start < layout.head() || buf.len() < inner.start + info.len + layout.tail {
            return Err(DropReason::TooBig);
        }
        self.hold_numbers(bundle)?;
        let (range, seq) = self.seal_bundle(bundle, &info, layout, buf, inner.start)?;
        Ok(EncapsulatedInPlace::Protected {
            range,
            spi: self.sas[bundle.inner].params.spi,
            seq,
        })
    }

    /// Encapsulates an inner packet with a bundle, policy already decided.
    pub fn protect(
        &mut self,
        bundle: Bundle,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<Encapsulated, DropReason> {
        let info = parse_inner(inner)?;
        let layout = self.layout(bundle, &info)?;
        self.hold_numbers(bundle)?;
        let head = layout.head();
        let dst = out
            .get_mut(head..head + info.len + layout.tail)
            .ok_or(DropReason::TooBig)?;
        dst[..info.len].copy_from_slice(&inner[..info.len]);
        let (range, seq) = self.seal_bundle(bundle, &info, layout, out, head)?;
        Ok(Encapsulated::Protected {
            len: range.end,
            spi: self.sas[bundle.inner].params.spi,
            seq,
        })
    }

    /// Starts a batch of `packets` packets. With SAs shared between workers
    /// ([`crate::sa::SendShare`]), a block of numbers is sized by what is left of the batch;
    /// [`end_batch`](Self::end_batch) gives up what a block has left once the batch is
    /// encapsulated, and [`batch_sent`](Self::batch_sent) says its packets are sent. A
    /// packet refused `seq-busy` was left untouched: offer it again after `batch_sent`.
    /// Without shared SAs none of the three does anything that matters.
    pub fn begin_batch(&mut self, packets: usize) {
        self.batch_sent();
        self.batch.packets = packets;
        self.batch.seen = 0;
    }

    /// Ends the batch's encapsulation: every shared SA that took numbers in it gives up
    /// the rest of its block and adds its counts to the shared totals.
    pub fn end_batch(&mut self) {
        for &i in &self.batch.touched {
            if let Some(sa) = self.sas.get_mut(i) {
                sa.end_batch();
            }
        }
        self.batch.packets = 0;
        self.batch.seen = 0;
    }

    /// The batch's packets are sent (or dropped): the numbers they carried no longer hold
    /// other workers back.
    pub fn batch_sent(&mut self) {
        for i in self.batch.touched.drain(..) {
            if let Some(sa) = self.sas.get_mut(i) {
                sa.batch_sent();
            }
        }
    }

    /// With shared SAs: makes sure every SA of the bundle holds a number for this packet,
    /// taking a block as large as the rest of the batch where it must.
    #[inline(always)]
    fn hold_numbers(&mut self, bundle: Bundle) -> Result<(), DropReason> {
        let want = self.batch.packets.saturating_sub(self.batch.seen).max(1) as u64;
        self.batch.seen += 1;
        for i in core::iter::once(bundle.inner).chain(bundle.outer_ah) {
            let sa = self.sas.get_mut(i).ok_or(DropReason::NoPolicy)?;
            if sa.hold_numbers(want)? {
                self.batch.touched.push(i);
            }
        }
        Ok(())
    }

    /// Checks that every SA of the bundle may send and works out the packet's layout.
    #[inline(always)]
    fn layout(&self, bundle: Bundle, info: &Inner) -> Result<Layout, DropReason> {
        let tunnel = self.sas.get(bundle.inner).ok_or(DropReason::NoPolicy)?;
        tunnel.can_send()?;
        if let Some(a) = bundle.outer_ah {
            self.sas.get(a).ok_or(DropReason::NoPolicy)?.can_send()?;
        }
        let layout = self.shape(bundle, info.len)?;
        let ip_payload = layout.head() - layout.ip_len + info.len + layout.tail;
        if ip_payload + if layout.v6 { 0 } else { layout.ip_len } > usize::from(u16::MAX) {
            return Err(DropReason::TooBig);
        }
        Ok(layout)
    }

    /// The layout of a tunnel packet around an inner packet of `inner_len` bytes.
    #[inline(always)]
    fn shape(&self, bundle: Bundle, inner_len: usize) -> Result<Layout, DropReason> {
        let tunnel = self.sas.get(bundle.inner).ok_or(DropReason::NoPolicy)?;
        let v6 = tunnel.params.dst.is_ipv6();
        let ah_icv = match (&tunnel.params.transform, bundle.outer_ah) {
            (Transform::Ah(i), _) => Some(i.icv_len()),
            (Transform::Esp(_), Some(a)) => {
                let sa = self.sas.get(a).ok_or(DropReason::NoPolicy)?;
                match &sa.params.transform {
                    Transform::Ah(i) => Some(i.icv_len()),
                    Transform::Esp(_) => return Err(DropReason::NoPolicy),
                }
            }
            (Transform::Esp(_), None) => None,
        };
        let (esp_head, pad_len, tail) = match &tunnel.params.transform {
            Transform::Esp(t) => {
                let pad = esp::pad_len(inner_len, t.send_align());
                (
                    esp::HEADER_LEN + t.iv_len(),
                    pad,
                    pad + esp::TRAILER_LEN + t.icv_len(),
                )
            }
            Transform::Ah(_) => (0, 0, 0),
        };
        Ok(Layout {
            v6,
            ip_len: if v6 {
                ipv6::HEADER_LEN
            } else {
                ipv4::HEADER_LEN
            },
            ah_len: ah_icv.map_or(0, |icv| ah::header_len(icv, v6)),
            udp_len: if tunnel.params.udp_encap.is_some() {
                udp::HEADER_LEN
            } else {
                0
            },
            esp_head,
            pad_len,
            tail,
        })
    }

    /// What protecting this inner packet would add to it, in bytes (outer headers, ESP
    /// padding, trailer and ICV): `None` when outbound policy bypasses it. Nothing is sent
    /// and no sequence number is used; this is how the gateway checks a packet against the
    /// path MTU before it is encapsulated.
    pub fn tunnel_overhead(&self, inner: &[u8]) -> Result<Option<usize>, DropReason> {
        Ok(self.tunnel_for(inner)?.map(|t| t.overhead))
    }

    /// The tunnel this inner packet would leave through: [`tunnel_overhead`] and the SPI
    /// of the bundle's outermost SA, the one whose header follows the outer IP header (an
    /// ICMP error about the tunnel packet quotes that header). `None` when bypassed, or
    /// trapped (encapsulation then drops it and reports the acquire).
    ///
    /// [`tunnel_overhead`]: Outbound::tunnel_overhead
    pub fn tunnel_for(&self, inner: &[u8]) -> Result<Option<Tunnel>, DropReason> {
        let info = parse_inner(inner)?;
        self.tunnel_of(&info.flow, info.len)
    }

    /// [`tunnel_for`](Outbound::tunnel_for) for an inner packet of `len` bytes of which
    /// only `head`, its first bytes, is at hand (the rest lies in a card's buffer; at most
    /// [`HEAD_LEN`](crate::wire::flow::HEAD_LEN) are looked at): the same answer, or
    /// `Malformed` where the packet's selectors lie beyond `head`. As with the whole
    /// packet, the length is the one its IP header declares; bytes after it (link
    /// padding) are not encapsulated.
    pub fn tunnel_for_head(&self, head: &[u8], len: usize) -> Result<Option<Tunnel>, DropReason> {
        let flow = Flow::parse_head(head, len).map_err(|_| DropReason::Malformed)?;
        let declared = declared_len(head).ok_or(DropReason::Malformed)?;
        self.tunnel_of(&flow, declared)
    }

    fn tunnel_of(&self, flow: &Flow, len: usize) -> Result<Option<Tunnel>, DropReason> {
        let action = match self.decide(flow) {
            // Not a tunnel yet: encapsulation traps it (and reports the acquire).
            Err(DropReason::Trapped) => return Ok(None),
            decided => decided?,
        };
        match action {
            Action::Protect(bundle) => {
                let l = self.shape(bundle, len)?;
                let outermost = bundle.outer_ah.unwrap_or(bundle.inner);
                let spi = self
                    .sas
                    .get(outermost)
                    .ok_or(DropReason::NoPolicy)?
                    .params
                    .spi;
                Ok(Some(Tunnel {
                    overhead: l.head() + l.tail,
                    outer_spi: spi,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The largest overhead any outbound policy's bundle can add to a packet, padding at
    /// its worst: an inner packet of `outer_mtu - max_tunnel_overhead()` bytes always fits
    /// an outer MTU of `outer_mtu`.
    pub fn max_tunnel_overhead(&self) -> usize {
        self.spd
            .policies()
            .iter()
            .filter_map(|p| match p.action {
                Action::Protect(b) => self.shape(b, 0).ok().map(|l| {
                    let max_pad = match &self.sas[b.inner].params.transform {
                        Transform::Esp(t) => t.send_align().clamp(4, 256).next_power_of_two() - 1,
                        Transform::Ah(_) => 0,
                    };
                    l.head() + l.tail - l.pad_len + max_pad
                }),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Builds the tunnel packet around the inner packet at `buf[inner_at..]`; the layout
    /// has been checked against the buffer. Returns the packet's range and the tunnel SA's
    /// sequence number.
    fn seal_bundle(
        &mut self,
        bundle: Bundle,
        info: &Inner,
        l: Layout,
        buf: &mut [u8],
        inner_at: usize,
    ) -> Result<(Range<usize>, u64), DropReason> {
        let start = inner_at - l.head();
        let end = inner_at + info.len + l.tail;
        let pkt = buf.get_mut(start..end).ok_or(DropReason::TooBig)?;
        let total = pkt.len();
        let body = l.ip_len + l.ah_len;

        let seq = self.sas[bundle.inner].next_seq();
        let tunnel = &self.sas[bundle.inner];
        let p = &tunnel.params;
        if let Transform::Esp(t) = &p.transform {
            let esp_off = body + l.udp_len;
            let esp_buf = &mut pkt[esp_off..];
            {
                let mut hdr = esp::Packet::new_unchecked(&mut *esp_buf);
                hdr.set_spi(p.spi);
                hdr.set_sequence_number(seq as u32);
            }
            let trailer = l.esp_head + info.len;
            esp::emit_trailer(
                &mut esp_buf[trailer..trailer + l.pad_len + esp::TRAILER_LEN],
                l.pad_len,
                info.next_header,
            )
            .map_err(|_| DropReason::TooBig)?;
            t.seal(esp_buf, seq, p.esn)
                .map_err(|_| DropReason::TooBig)?;
            if let Some(encap) = p.udp_encap {
                let mut u = udp::Packet::new_unchecked(&mut pkt[body..]);
                u.set_src_port(encap.src_port);
                u.set_dst_port(encap.dst_port);
                u.set_len((total - body) as u16);
                u.set_checksum(0);
                if l.v6 {
                    u.fill_checksum(&p.src, &p.dst);
                }
            }
        }

        let first_next = if l.ah_len > 0 {
            IpProtocol::Ah
        } else if l.udp_len > 0 {
            IpProtocol::Udp
        } else {
            IpProtocol::Esp
        };
        let dont_frag = match p.df {
            DfMode::Copy => info.dont_frag,
            DfMode::Set => true,
            DfMode::Clear => false,
        };
        let outer = OuterHeader {
            src: p.src,
            dst: p.dst,
            next_header: first_next,
            payload_len: total - l.ip_len,
            ttl: p.ttl,
            tos: ecn::encap_tos(info.tos),
            dont_frag,
            ident: seq as u16,
        };
        outer.emit(&mut pkt[..l.ip_len]);

        // AH over everything: the AH tunnel SA itself, or the AH transport SA of a bundle.
        if l.ah_len > 0 {
            let (ah_index, ah_seq, ah_next) = match bundle.outer_ah {
                Some(i) => (i, self.sas[i].next_seq(), IpProtocol::Esp),
                None => (bundle.inner, seq, info.next_header),
            };
            let sa = &self.sas[ah_index];
            let Transform::Ah(integrity) = &sa.params.transform else {
                return Err(DropReason::NoPolicy);
            };
            let ah_hdr = AhHeader {
                spi: sa.params.spi,
                seq: ah_seq,
                esn: sa.params.esn,
                next_header: ah_next,
            };
            apply_ah(pkt, l, ah_hdr, integrity)?;
        }

        let bytes = info.len as u64;
        let tunnel = &mut self.sas[bundle.inner];
        tunnel.counters.packets += 1;
        tunnel.counters.bytes += bytes;
        if let Some(i) = bundle.outer_ah {
            let sa = &mut self.sas[i];
            sa.counters.packets += 1;
            sa.counters.bytes += bytes;
        }
        Ok((start..end, seq))
    }
}

/// The fields of the outer IP header.
struct OuterHeader {
    src: IpAddr,
    dst: IpAddr,
    next_header: IpProtocol,
    payload_len: usize,
    ttl: u8,
    tos: u8,
    dont_frag: bool,
    ident: u16,
}

impl OuterHeader {
    /// Writes the header, the IPv4 checksum included (AH computes its ICV over a copy with
    /// the mutable fields, the checksum among them, zeroed).
    fn emit(&self, buf: &mut [u8]) {
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let repr = ipv4::Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: self.next_header,
                    payload_len: self.payload_len,
                    hop_limit: self.ttl,
                    tos: self.tos,
                    dont_frag: self.dont_frag,
                    ident: self.ident,
                };
                // The checksum comes from the field values (`Repr::header_checksum`).
                let _ = repr.emit(
                    &mut ipv4::Packet::new_unchecked(buf),
                    &ChecksumCaps::default(),
                );
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let repr = ipv6::Repr {
                    src_addr: s,
                    dst_addr: d,
                    next_header: self.next_header,
                    payload_len: self.payload_len,
                    hop_limit: self.ttl,
                    traffic_class: self.tos,
                    flow_label: 0,
                };
                let _ = repr.emit(&mut ipv6::Packet::new_unchecked(buf));
            }
            // Configuration validation refuses SAs whose endpoints differ in family.
            _ => {}
        }
    }
}

/// The fields of an AH header being sent.
struct AhHeader {
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: IpProtocol,
}

/// Writes the AH header after the outer IP header and its ICV over the packet with mutable
/// fields zeroed (RFC 4302 §3.3.3); with ESN the high sequence bits are appended to the
/// ICV input. The outer header has no options or extension headers here.
fn apply_ah(
    pkt: &mut [u8],
    l: Layout,
    h: AhHeader,
    integrity: &Integrity,
) -> Result<(), DropReason> {
    let icv_len = integrity.icv_len();
    {
        let repr = ah::Repr {
            next_header: h.next_header,
            spi: h.spi,
            sequence_number: h.seq as u32,
            icv_len,
            ipv6: l.v6,
        };
        repr.emit(&mut ah::Packet::new_unchecked(
            &mut pkt[l.ip_len..l.ip_len + l.ah_len],
        ))
        .map_err(|_| DropReason::TooBig)?;
    }
    // The copy includes AH's fixed part, against which the IPv6 walk checks the chain.
    let mut scratch = [0u8; ipv6::HEADER_LEN + ah::FIXED_LEN];
    let scratch = &mut scratch[..l.ip_len + ah::FIXED_LEN];
    scratch.copy_from_slice(&pkt[..l.ip_len + ah::FIXED_LEN]);
    let zeroed = if l.v6 {
        ah::zero_mutable_ipv6(scratch, l.ip_len)
    } else {
        ah::zero_mutable_ipv4(scratch)
    };
    zeroed.map_err(|_| DropReason::Malformed)?;
    let hdr = &scratch[..l.ip_len];
    let seq_hi = ((h.seq >> 32) as u32).to_be_bytes();
    let mut icv = [0u8; 64];
    let icv = &mut icv[..icv_len];
    let rest = &pkt[l.ip_len..];
    if h.esn {
        integrity.compute(&[hdr, rest, &seq_hi], icv);
    } else {
        integrity.compute(&[hdr, rest], icv);
    }
    let at = l.ip_len + ah::FIXED_LEN;
    pkt[at..at + icv_len].copy_from_slice(icv);
    Ok(())
}

#[cfg(test)]
mod tests;
