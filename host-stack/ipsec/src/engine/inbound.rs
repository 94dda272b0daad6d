//! Inbound processing: SA lookup, ICV verification, anti-replay, decapsulation and the
//! RFC 4301 §5.2 policy check of the inner packet.
//!
//! Order of trust, per packet: the outer header and the ESP/AH header are parsed; the SA is
//! found by SPI and destination; the replay window is consulted without moving (a cheap
//! reject, and the source of the ESN high bits); the ICV is verified; only then does the
//! replay window move, is the payload decrypted and its padding read, and the inner packet
//! parsed and checked against the inbound policy. Decapsulation happens in place in the
//! caller's buffer.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use super::SaTable;
use crate::counters::DropReason;
use crate::crypto::CryptoError;
use crate::ecn::{self, Ecn};
use crate::replay::ReplayError;
use crate::sa::{InboundSa, Transform};
use crate::spd::{Action, Spd};
use crate::wire::flow::Flow;
use crate::wire::{IpProtocol, Version, ah, esp, ip, ipv6, udp, udp_encap};

/// What happened to an inbound packet that was not dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decapsulated {
    /// The inner packet is `range` of the buffer; `spi` names the innermost SA removed.
    Inner {
        range: Range<usize>,
        spi: u32,
        seq: u64,
    },
    /// An unprotected packet that inbound policy lets through as it is.
    Bypass,
    /// A NAT keepalive (RFC 3948): consumed, nothing to deliver.
    Keepalive,
    /// An IKE message behind the non-ESP marker on an encapsulation port (RFC 3948 §2.2),
    /// for the key-management daemon: the message is `range` of the buffer. Only when
    /// [`Inbound::set_ike`] asked for it; otherwise such a datagram takes the bypass check.
    Ike {
        range: Range<usize>,
        src: SocketAddr,
        dst: SocketAddr,
    },
}

/// The inbound half of the software engine: inbound SAs and the inbound SPD.
#[derive(Debug, Default)]
pub struct Inbound {
    pub(crate) sas: SaTable<InboundSa>,
    pub(crate) by_spi: super::fast_hash::FastMap<(u32, IpAddr), usize>,
    pub(crate) spd: Spd,
    /// UDP destination ports that carry RFC 3948 encapsulated ESP.
    pub(crate) encap_ports: Vec<u16>,
    /// The ports [`Inbound::add_encap_port`] asked for: kept when the last SA using one
    /// goes (key management needs port 4500 with or without a CHILD_SA).
    pub(crate) kept_ports: Vec<u16>,
    /// IKE messages on the encapsulation ports go to the key-management daemon.
    pub(crate) ike: bool,
    /// The last inner packet the policies admitted: the SPD's version, its flow and the
    /// policy keys of the SAs removed. The next packet of the same flow through the same
    /// SAs under the same SPD is admitted without a lookup.
    last_admitted: Option<(u64, Flow, [usize; 2])>,
}

/// Largest outer header (IPv6 with extension headers) copied for the AH ICV.
const MAX_AH_HEADER: usize = 512;

/// The outer header, as far as decapsulation needs it.
struct Outer {
    dst: IpAddr,
    ecn: Ecn,
    /// Offset of the first header after the IP header (and IPv6 extension headers).
    next_offset: usize,
    next_header: IpProtocol,
    /// End of the IP packet (link padding excluded).
    end: usize,
    v6: bool,
}

fn parse_outer(pkt: &[u8]) -> Result<Outer, DropReason> {
    match ip::Packet::new_checked(pkt).map_err(|_| DropReason::Malformed)? {
        ip::Packet::Ipv4(p) => {
            if !p.verify_checksum() {
                return Err(DropReason::Malformed);
            }
            if p.more_frags() || p.frag_offset() != 0 {
                return Err(DropReason::Fragment);
            }
            Ok(Outer {
                dst: IpAddr::V4(p.dst_addr()),
                ecn: Ecn::from_bits(p.ecn()),
                next_offset: p.header_len(),
                next_header: p.next_header(),
                end: usize::from(p.total_len()),
                v6: false,
            })
        }
        ip::Packet::Ipv6(p) => {
            let walk = ipv6::walk_extension_headers(&p).map_err(|_| DropReason::Malformed)?;
            if walk.is_fragment {
                return Err(DropReason::Fragment);
            }
            Ok(Outer {
                dst: IpAddr::V6(p.dst_addr()),
                ecn: Ecn::from_bits(p.ecn()),
                next_offset: walk.offset,
                next_header: walk.protocol,
                end: ipv6::HEADER_LEN + usize::from(p.payload_len()),
                v6: true,
            })
        }
    }
}

fn replay_reason(e: ReplayError) -> DropReason {
    match e {
        ReplayError::Stale { .. } => DropReason::Stale,
        _ => DropReason::Replayed,
    }
}

fn crypto_reason(e: CryptoError) -> DropReason {
    match e {
        CryptoError::Authentication => DropReason::BadIcv,
        _ => DropReason::Malformed,
    }
}

impl Inbound {
    pub fn sas(&self) -> &SaTable<InboundSa> {
        &self.sas
    }

    pub fn sas_mut(&mut self) -> &mut SaTable<InboundSa> {
        &mut self.sas
    }

    /// The RFC 4301 §5.2 check of a decapsulated packet whose SAs (indices, outermost
    /// first) were `removed`: an SA replacing another during its grace period passes where
    /// the one it stands for does.
    pub fn admits(&self, flow: &Flow, removed: &[usize]) -> bool {
        self.policy_keys(removed)
            .is_some_and(|keys| self.spd.admits_decapsulated(flow, &keys[..removed.len()]))
    }

    /// The policy keys ([`policy_key`](Self::policy_key)) of the SAs `removed`, the rest of
    /// the array `usize::MAX`; `None` for more SAs than a bundle has.
    fn policy_keys(&self, removed: &[usize]) -> Option<[usize; 2]> {
        let mut keys = [usize::MAX; 2];
        keys.get_mut(..removed.len())?
            .iter_mut()
            .zip(removed)
            .for_each(|(k, &i)| *k = self.policy_key(i));
        Some(keys)
    }

    /// [`admits`](Self::admits), answered from the last admitted packet when it was of the
    /// same flow through SAs the policies name alike, under the same SPD (every change to
    /// the policies gives it a new version): what `admits` answers depends on nothing else.
    #[inline(always)]
    fn admits_again(&mut self, flow: &Flow, removed: &[usize]) -> bool {
        let Some(keys) = self.policy_keys(removed) else {
            return false;
        };
        let version = self.spd.version();
        if let Some((v, f, k)) = &self.last_admitted
            && *v == version
            && *k == keys
            && f == flow
        {
            return true;
        }
        let admitted = self.spd.admits_decapsulated(flow, &keys[..removed.len()]);
        if admitted {
            self.last_admitted = Some((version, *flow, keys));
        }
        admitted
    }

    /// The SA index the policies name for SA `index`: its own, or the one it stands for
    /// (a rekeyed SA). [`admits`](Self::admits) of one SA depends only on it, the flow and
    /// the policies.
    pub fn policy_key(&self, index: usize) -> usize {
        self.sas
            .get(index)
            .and_then(|s| s.stands_for)
            .unwrap_or(index)
    }

    pub fn spd(&self) -> &Spd {
        &self.spd
    }

    /// Hands IKE messages that arrive on an encapsulation port (behind the non-ESP marker)
    /// out as [`Decapsulated::Ike`]: the daemon negotiating SAs shares the port with ESP in
    /// UDP. Off by default.
    pub fn set_ike(&mut self, on: bool) {
        self.ike = on;
    }

    /// Also receive ESP in UDP (and IKE) on this port.
    pub fn add_encap_port(&mut self, port: u16) {
        if !self.encap_ports.contains(&port) {
            self.encap_ports.push(port);
        }
        if !self.kept_ports.contains(&port) {
            self.kept_ports.push(port);
        }
    }

    /// Index of the inbound SA for this SPI and destination.
    pub fn sa_index(&self, spi: u32, dst: IpAddr) -> Option<usize> {
        self.by_spi.get(&(spi, dst)).copied()
    }

    /// The inbound SA an ESP packet (plain, or in UDP on an encapsulation port) names, and
    /// its SPI and low sequence number; `None` for anything else or an SPI with no SA. Reads
    /// only: for a caller that must know whose packet it is before decapsulating it.
    pub fn esp_sa_of(&self, pkt: &[u8]) -> Option<(Option<usize>, u32, u32)> {
        let outer = parse_outer(pkt).ok()?;
        let pkt = pkt.get(..outer.end)?;
        let offset = match outer.next_header {
            IpProtocol::Esp => outer.next_offset,
            IpProtocol::Udp => match self.udp_payload(pkt, outer.next_offset).ok()? {
                UdpKind::Esp(at) => at,
                _ => return None,
            },
            _ => return None,
        };
        let e = esp::Packet::new_checked(pkt.get(offset..)?).ok()?;
        let (spi, seq_lo) = (e.spi(), e.sequence_number());
        Some((self.sa_index(spi, outer.dst), spi, seq_lo))
    }

    /// SPI and low sequence number of the outermost AH or ESP header (ESP plain or in UDP on
    /// an encapsulation port); `None` for anything else. Reads only.
    pub fn spi_seq_of(&self, pkt: &[u8]) -> Option<(u32, u32)> {
        let outer = parse_outer(pkt).ok()?;
        let pkt = pkt.get(..outer.end)?;
        if outer.next_header == IpProtocol::Ah {
            let a = ah::Packet::new_checked(pkt.get(outer.next_offset..)?).ok()?;
            return Some((a.spi(), a.sequence_number()));
        }
        self.esp_sa_of(pkt).map(|(_, spi, seq)| (spi, seq))
    }

    /// Processes one packet from the outside, in place.
    pub fn decapsulate(&mut self, pkt: &mut [u8]) -> Result<Decapsulated, DropReason> {
        let outer = parse_outer(pkt)?;
        let pkt = pkt.get_mut(..outer.end).ok_or(DropReason::Malformed)?;
        let mut removed = [usize::MAX; 2];
        let mut n_removed = 0;
        let mut offset = outer.next_offset;
        let mut next = outer.next_header;

        if next == IpProtocol::Ah {
            let (idx, after, ah_next, ah_seq) = self.verify_ah(pkt, &outer, offset)?;
            removed[n_removed] = idx;
            n_removed += 1;
            offset = after;
            next = ah_next;
            if matches!(next, IpProtocol::Ipv4 | IpProtocol::Ipv6) {
                // AH tunnel mode: the inner packet follows the AH header.
                if self.sas[idx].params.mode != crate::spec::SaMode::Tunnel {
                    return Err(DropReason::PolicyMismatch);
                }
                let inner = pkt.get(offset..).unwrap_or(&[]);
                if Version::of(inner) != Version::of_protocol(next) {
                    return Err(DropReason::Malformed);
                }
                return self.finish(
                    pkt,
                    &outer,
                    offset..pkt.len(),
                    &removed[..n_removed],
                    ah_seq,
                );
            }
        }
        if next == IpProtocol::Udp {
            match self.udp_payload(pkt, offset)? {
                UdpKind::Esp(esp_offset) => {
                    offset = esp_offset;
                    next = IpProtocol::Esp;
                }
                UdpKind::Keepalive if n_removed == 0 => return Ok(Decapsulated::Keepalive),
                UdpKind::Ike(at) if n_removed == 0 => return ike_message(pkt, &outer, offset, at),
                UdpKind::Other if n_removed == 0 => return self.bypass(pkt),
                _ => return Err(DropReason::Malformed),
            }
        }
        if next != IpProtocol::Esp {
            if n_removed > 0 {
                return Err(DropReason::UnsupportedInner);
            }
            return self.bypass(pkt);
        }
        let (idx, inner, seq) = self.open_esp(pkt, &outer, offset)?;
        removed[n_removed] = idx;
        n_removed += 1;
        self.finish(pkt, &outer, inner, &removed[..n_removed], seq)
    }

    /// An unprotected packet: delivered only if inbound policy says bypass.
    fn bypass(&self, pkt: &[u8]) -> Result<Decapsulated, DropReason> {
        let flow = Flow::parse(pkt).map_err(|_| DropReason::Malformed)?;
        match self.spd.lookup(&flow).map(|p| p.action) {
            Some(Action::Bypass) => Ok(Decapsulated::Bypass),
            Some(Action::Discard | Action::Trap) => Err(DropReason::PolicyDiscard),
            Some(Action::Protect(_)) => Err(DropReason::Unprotected),
            None => Err(DropReason::NoPolicy),
        }
    }

    /// Classifies a UDP datagram: RFC 3948 encapsulated ESP on an encapsulation port, a NAT
    /// keepalive, or anything else (IKE included), which goes to the bypass check.
    fn udp_payload(&self, pkt: &[u8], offset: usize) -> Result<UdpKind, DropReason> {
        let seg = pkt.get(offset..).ok_or(DropReason::Malformed)?;
        let u = udp::Packet::new_checked(seg).map_err(|_| DropReason::Malformed)?;
        if !self.encap_ports.contains(&u.dst_port()) {
            return Ok(UdpKind::Other);
        }
        Ok(match udp_encap::classify(u.payload()) {
            Ok(udp_encap::Payload::Esp(_)) => UdpKind::Esp(offset + udp::HEADER_LEN),
            Ok(udp_encap::Payload::Keepalive) => UdpKind::Keepalive,
            Ok(udp_encap::Payload::Ike(_)) if self.ike => {
                UdpKind::Ike(offset + udp::HEADER_LEN + udp_encap::NON_ESP_MARKER_LEN)
            }
            Ok(udp_encap::Payload::Ike(_)) => UdpKind::Other,
            Err(_) => return Err(DropReason::Malformed),
        })
    }

    /// Verifies an AH header at `offset`: SA lookup, replay pre-check, ICV over the packet
    /// with mutable fields zeroed, then the replay window moves. Returns the SA index, the
    /// offset after AH and AH's next header.
    fn verify_ah(
        &mut self,
        pkt: &[u8],
        outer: &Outer,
        offset: usize,
    ) -> Result<(usize, usize, IpProtocol, u64), DropReason> {
        let seg = pkt.get(offset..).ok_or(DropReason::Malformed)?;
        let ah_pkt = ah::Packet::new_checked(seg).map_err(|_| DropReason::Malformed)?;
        let spi = ah_pkt.spi();
        let seq_lo = ah_pkt.sequence_number();
        let ah_len = ah_pkt.header_len();
        let ah_next = ah_pkt.next_header();
        let idx = self
            .sa_index(spi, outer.dst)
            .ok_or(DropReason::UnknownSpi)?;
        let sa = &mut self.sas[idx];
        let Transform::Ah(integrity) = &sa.params.transform else {
            return Err(DropReason::UnknownSpi);
        };
        if sa.hard_expired() {
            return Err(DropReason::Expired);
        }
        let icv_len = integrity.icv_len();
        if ah_len < ah::FIXED_LEN + icv_len {
            return Err(DropReason::Malformed);
        }
        let seq = sa.replay.check(seq_lo).map_err(replay_reason)?;

        // The headers before AH with mutable fields zeroed, and AH with its ICV zeroed.
        if offset > MAX_AH_HEADER {
            return Err(DropReason::Malformed);
        }
        let mut scratch = [0u8; MAX_AH_HEADER + ah::FIXED_LEN];
        let scratch = &mut scratch[..offset + ah::FIXED_LEN];
        scratch.copy_from_slice(&pkt[..offset + ah::FIXED_LEN]);
        let zeroed = if outer.v6 {
            ah::zero_mutable_ipv6(scratch, offset)
        } else {
            ah::zero_mutable_ipv4(scratch)
        };
        zeroed.map_err(|_| DropReason::Malformed)?;
        let hdr = &scratch[..offset];
        let mut ah_copy = [0u8; 12 + 64];
        let ah_copy = ah_copy.get_mut(..ah_len).ok_or(DropReason::Malformed)?;
        ah_copy.copy_from_slice(&pkt[offset..offset + ah_len]);
        let received_icv = &pkt[offset + ah::FIXED_LEN..offset + ah::FIXED_LEN + icv_len];
        ah_copy[ah::FIXED_LEN..].fill(0);
        let rest = &pkt[offset + ah_len..];
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();
        let ok = if sa.params.esn {
            integrity.verify(&[hdr, ah_copy, rest, &seq_hi], received_icv)
        } else {
            integrity.verify(&[hdr, ah_copy, rest], received_icv)
        };
        if !ok {
            return Err(DropReason::BadIcv);
        }
        sa.replay.accept(seq).map_err(replay_reason)?;
        Ok((idx, offset + ah_len, ah_next, seq))
    }

    /// Verifies and decrypts an ESP packet at `offset`; returns the SA index and the range
    /// of the inner packet.
    fn open_esp(
        &mut self,
        pkt: &mut [u8],
        outer: &Outer,
        offset: usize,
    ) -> Result<(usize, Range<usize>, u64), DropReason> {
        let seg = pkt.get_mut(offset..).ok_or(DropReason::Malformed)?;
        let (spi, seq_lo) = {
            let e = esp::Packet::new_checked(&*seg).map_err(|_| DropReason::Malformed)?;
            (e.spi(), e.sequence_number())
        };
        let idx = self
            .sa_index(spi, outer.dst)
            .ok_or(DropReason::UnknownSpi)?;
        let sa = &mut self.sas[idx];
        let Transform::Esp(t) = &sa.params.transform else {
            return Err(DropReason::UnknownSpi);
        };
        if sa.hard_expired() {
            return Err(DropReason::Expired);
        }
        let seq = sa.replay.check(seq_lo).map_err(replay_reason)?;
        let seq_hi = sa.params.esn.then_some((seq >> 32) as u32);
        let plain = t.open(seg, seq_hi).map_err(crypto_reason)?;
        sa.replay.accept(seq).map_err(replay_reason)?;
        let plaintext = seg.get(plain.clone()).ok_or(DropReason::Malformed)?;
        let trailer = esp::parse_trailer(plaintext).map_err(|_| DropReason::BadPadding)?;
        match trailer.next_header {
            IpProtocol::Ipv4 | IpProtocol::Ipv6 => {}
            IpProtocol::Ipv6NoNxt => return Err(DropReason::Dummy),
            _ => return Err(DropReason::UnsupportedInner),
        }
        // The inner header's version must be the one the trailer announces.
        if Version::of(plaintext) != Version::of_protocol(trailer.next_header) {
            return Err(DropReason::Malformed);
        }
        let start = offset + plain.start;
        Ok((idx, start..start + trailer.inner_len, seq))
    }

    /// The inner packet: parsed, TFC padding trimmed, ECN combined (RFC 6040), checked
    /// against inbound policy, counted.
    fn finish(
        &mut self,
        pkt: &mut [u8],
        outer: &Outer,
        inner: Range<usize>,
        removed: &[usize],
        seq: u64,
    ) -> Result<Decapsulated, DropReason> {
        let buf = pkt.get_mut(inner.clone()).ok_or(DropReason::Malformed)?;
        let mut p = ip::Packet::new_checked(&mut *buf).map_err(|_| DropReason::Malformed)?;
        let e = ecn::decap_ecn(Ecn::from_bits(p.ecn()), outer.ecn).ok_or(DropReason::EcnDrop)?;
        // Over IPv4 the header checksum follows the ECN bits when they change.
        p.set_ecn(e.bits());
        let inner_len = p.total_len();
        let inner = inner.start..inner.start + inner_len;
        let flow = Flow::parse(&pkt[inner.clone()]).map_err(|_| DropReason::Malformed)?;
        if !self.admits_again(&flow, removed) {
            return Err(DropReason::PolicyMismatch);
        }
        for &i in removed {
            let sa = &mut self.sas[i];
            sa.counters.packets += 1;
            sa.counters.bytes += inner_len as u64;
        }
        let innermost = removed.last().map(|&i| self.sas[i].params.spi).unwrap_or(0);
        Ok(Decapsulated::Inner {
            range: inner,
            spi: innermost,
            seq,
        })
    }
}

enum UdpKind {
    Esp(usize),
    Keepalive,
    /// An IKE message starting at this offset.
    Ike(usize),
    Other,
}

/// The IKE message at `at` of a UDP datagram at `udp_offset`, with its endpoints.
fn ike_message(
    pkt: &[u8],
    outer: &Outer,
    udp_offset: usize,
    at: usize,
) -> Result<Decapsulated, DropReason> {
    let u = udp::Packet::new_checked(pkt.get(udp_offset..).ok_or(DropReason::Malformed)?)
        .map_err(|_| DropReason::Malformed)?;
    let end = udp_offset + usize::from(u.len());
    if at > end || end > pkt.len() {
        return Err(DropReason::Malformed);
    }
    let src_ip = match ip::Packet::new_checked(pkt).map_err(|_| DropReason::Malformed)? {
        ip::Packet::Ipv4(p) => IpAddr::V4(p.src_addr()),
        ip::Packet::Ipv6(p) => IpAddr::V6(p.src_addr()),
    };
    Ok(Decapsulated::Ike {
        range: at..end,
        src: SocketAddr::new(src_ip, u.src_port()),
        dst: SocketAddr::new(outer.dst, u.dst_port()),
    })
}
