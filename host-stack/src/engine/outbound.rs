//! Outbound processing: policy lookup and tunnel-mode encapsulation (ESP, AH, ESP+AH).
//!
//! The encapsulated packet is written straight into the caller's buffer, layer by layer
//! from the inside out — inner packet and ESP trailer, ESP seal, UDP header, outer IP
//! header, then AH over the whole — so nothing is allocated and nothing copied twice.
//! Header rules (shared with the card, fpga/README.md "Outer header"): outer TTL / hop
//! limit from the SA; DSCP and ECN copied from the inner packet (RFC 6040 normal mode);
//! IPv4 DF per the SA's `df` mode; IPv4 identification = low 16 bits of the tunnel SA's
//! sequence number; IPv6 flow label 0; UDP checksum 0 over IPv4, computed over IPv6.

use std::net::IpAddr;

use crate::config::DfMode;
use crate::counters::DropReason;
use crate::ecn;
use crate::sa::{OutboundSa, Transform};
use crate::spd::{Action, Bundle, Spd};
use crate::wire::flow::Flow;
use crate::wire::{IpProtocol, ah, esp, ipv4, ipv6, udp};

/// What happened to an outbound packet that was not dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encapsulated {
    /// The protected packet is the first `len` bytes of the output buffer.
    Protected { len: usize, spi: u32, seq: u64 },
    /// Policy says bypass: send the inner packet as it is.
    Bypass,
}

/// The outbound half of the software engine: outbound SAs and the outbound SPD.
#[derive(Debug, Default)]
pub struct Outbound {
    pub(crate) sas: Vec<OutboundSa>,
    pub(crate) spd: Spd,
}

/// The inner packet's TOS / traffic class and whether it forbids fragmentation.
struct InnerInfo {
    tos: u8,
    dont_frag: bool,
    next_header: IpProtocol,
}

fn inner_info(inner: &[u8]) -> Result<InnerInfo, DropReason> {
    match inner.first().map(|b| b >> 4) {
        Some(4) => {
            let p = ipv4::Packet::new_checked(inner).map_err(|_| DropReason::Malformed)?;
            Ok(InnerInfo {
                tos: p.tos(),
                dont_frag: p.dont_frag(),
                next_header: IpProtocol::Ipv4,
            })
        }
        Some(6) => {
            let p = ipv6::Packet::new_checked(inner).map_err(|_| DropReason::Malformed)?;
            Ok(InnerInfo {
                tos: p.traffic_class(),
                dont_frag: true,
                next_header: IpProtocol::Ipv6,
            })
        }
        _ => Err(DropReason::Malformed),
    }
}

impl Outbound {
    pub fn sas(&self) -> &[OutboundSa] {
        &self.sas
    }

    pub fn sas_mut(&mut self) -> &mut [OutboundSa] {
        &mut self.sas
    }

    pub fn spd(&self) -> &Spd {
        &self.spd
    }

    /// Index of the outbound SA with this SPI.
    pub fn sa_index(&self, spi: u32) -> Option<usize> {
        self.sas.iter().position(|s| s.params.spi == spi)
    }

    /// Looks up the policy for an inner packet.
    pub fn classify(&self, inner: &[u8]) -> Result<Action, DropReason> {
        let flow = Flow::parse(inner).map_err(|_| DropReason::Malformed)?;
        match self.spd.lookup(&flow) {
            None => Err(DropReason::NoPolicy),
            Some(p) => match p.action {
                Action::Discard => Err(DropReason::PolicyDiscard),
                a => Ok(a),
            },
        }
    }

    /// Applies outbound policy to an inner IP packet and, when it says protect, writes the
    /// tunnel packet into `out`.
    pub fn encapsulate(
        &mut self,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<Encapsulated, DropReason> {
        match self.classify(inner)? {
            Action::Bypass => Ok(Encapsulated::Bypass),
            Action::Discard => Err(DropReason::PolicyDiscard),
            Action::Protect(bundle) => self.protect(bundle, inner, out),
        }
    }

    /// Encapsulates an inner packet with a bundle, policy already decided.
    pub fn protect(
        &mut self,
        bundle: Bundle,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<Encapsulated, DropReason> {
        let info = inner_info(inner)?;
        let tunnel = self.sas.get(bundle.inner).ok_or(DropReason::NoPolicy)?;
        tunnel.can_send()?;
        let ah_sa = match bundle.outer_ah {
            Some(i) => {
                let sa = self.sas.get(i).ok_or(DropReason::NoPolicy)?;
                sa.can_send()?;
                Some(sa)
            }
            None => None,
        };
        let v6 = tunnel.params.dst.is_ipv6();
        let ip_len = if v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        };
        let ah_len = match (&tunnel.params.transform, ah_sa) {
            (Transform::Ah(i), _) => ah::header_len(i.icv_len(), v6),
            (_, Some(sa)) => match &sa.params.transform {
                Transform::Ah(i) => ah::header_len(i.icv_len(), v6),
                Transform::Esp(_) => return Err(DropReason::NoPolicy),
            },
            _ => 0,
        };
        let udp_len = if tunnel.params.udp_encap.is_some() {
            udp::HEADER_LEN
        } else {
            0
        };
        let (inner_proto_len, pad_len) = match &tunnel.params.transform {
            Transform::Esp(t) => {
                let pad = esp::pad_len(inner.len(), t.pad_align());
                (
                    esp::HEADER_LEN + t.iv_len() + inner.len() + pad + 2 + t.icv_len(),
                    pad,
                )
            }
            Transform::Ah(_) => (inner.len(), 0),
        };
        let total = ip_len + ah_len + udp_len + inner_proto_len;
        let ip_payload = total - ip_len;
        if total > out.len()
            || (!v6 && total > usize::from(u16::MAX))
            || ip_payload > usize::from(u16::MAX)
        {
            return Err(DropReason::TooBig);
        }

        let seq = self.sas[bundle.inner].next_seq();
        let tunnel = &self.sas[bundle.inner];
        let p = &tunnel.params;
        let body = ip_len + ah_len;

        // Innermost first: the ESP packet (or, for AH tunnel mode, the inner packet).
        match &p.transform {
            Transform::Esp(t) => {
                let esp_off = body + udp_len;
                let esp_buf = &mut out[esp_off..total];
                {
                    let mut hdr = esp::Packet::new_unchecked(&mut *esp_buf);
                    hdr.set_spi(p.spi);
                    hdr.set_sequence_number(seq as u32);
                }
                let data = esp::HEADER_LEN + t.iv_len();
                esp_buf[data..data + inner.len()].copy_from_slice(inner);
                let trailer = data + inner.len();
                esp::emit_trailer(
                    &mut esp_buf[trailer..trailer + pad_len + 2],
                    pad_len,
                    info.next_header,
                )
                .map_err(|_| DropReason::TooBig)?;
                t.seal(esp_buf, seq, p.esn)
                    .map_err(|_| DropReason::TooBig)?;
                if let Some(encap) = p.udp_encap {
                    let udp_buf = &mut out[body..total];
                    let mut u = udp::Packet::new_unchecked(udp_buf);
                    u.set_src_port(encap.src_port);
                    u.set_dst_port(encap.dst_port);
                    u.set_len((total - body) as u16);
                    u.set_checksum(0);
                    if let (IpAddr::V6(s), IpAddr::V6(d)) = (p.src, p.dst) {
                        u.fill_checksum(&IpAddr::V6(s), &IpAddr::V6(d));
                    }
                }
            }
            Transform::Ah(_) => out[body..total].copy_from_slice(inner),
        }

        // The outer IP header.
        let first_next = if ah_len > 0 {
            IpProtocol::Ah
        } else if udp_len > 0 {
            IpProtocol::Udp
        } else {
            IpProtocol::Esp
        };
        let dont_frag = match p.df {
            DfMode::Copy => info.dont_frag,
            DfMode::Set => true,
            DfMode::Clear => false,
        };
        emit_outer(
            &mut out[..ip_len],
            p.src,
            p.dst,
            first_next,
            ip_payload,
            p.ttl,
            ecn::encap_tos(info.tos),
            dont_frag,
            seq as u16,
        );

        // AH over everything: the AH tunnel SA itself, or the AH transport SA of a bundle.
        let (ah_index, ah_seq, ah_next) = match (&p.transform, bundle.outer_ah) {
            (Transform::Ah(_), _) => (bundle.inner, seq, info.next_header),
            (_, Some(i)) => {
                let s = self.sas[i].next_seq();
                let next = if udp_len > 0 {
                    IpProtocol::Udp
                } else {
                    IpProtocol::Esp
                };
                (i, s, next)
            }
            _ => (usize::MAX, 0, IpProtocol::Esp),
        };
        if ah_len > 0 {
            let sa = &self.sas[ah_index];
            let Transform::Ah(integrity) = &sa.params.transform else {
                return Err(DropReason::NoPolicy);
            };
            apply_ah(
                out,
                ip_len,
                ah_len,
                total,
                sa.params.spi,
                ah_seq,
                sa.params.esn,
                ah_next,
                integrity,
                v6,
            )?;
        }
        if !v6 {
            ipv4::Packet::new_unchecked(&mut out[..ip_len]).fill_checksum();
        }

        let tunnel = &mut self.sas[bundle.inner];
        tunnel.counters.packets += 1;
        tunnel.counters.bytes += inner.len() as u64;
        if let Some(i) = bundle.outer_ah {
            let sa = &mut self.sas[i];
            sa.counters.packets += 1;
            sa.counters.bytes += inner.len() as u64;
        }
        Ok(Encapsulated::Protected {
            len: total,
            spi: self.sas[bundle.inner].params.spi,
            seq,
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn emit_outer(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    next_header: IpProtocol,
    payload_len: usize,
    ttl: u8,
    tos: u8,
    dont_frag: bool,
    ident: u16,
) {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = ipv4::Repr {
                src_addr: s,
                dst_addr: d,
                next_header,
                payload_len,
                hop_limit: ttl,
                tos,
                dont_frag,
                ident,
            };
            let _ = repr.emit(
                &mut ipv4::Packet::new_unchecked(buf),
                &crate::wire::ChecksumCaps::default(),
            );
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = ipv6::Repr {
                src_addr: s,
                dst_addr: d,
                next_header,
                payload_len,
                hop_limit: ttl,
                traffic_class: tos,
                flow_label: 0,
            };
            let _ = repr.emit(&mut ipv6::Packet::new_unchecked(buf));
        }
        // Configuration validation refuses SAs whose endpoints differ in family.
        _ => {}
    }
}

/// Writes the AH header at `ip_len` and its ICV over the packet with mutable fields zeroed
/// (RFC 4302 §3.3.3). The outer header carries no options or extension headers here.
#[allow(clippy::too_many_arguments)]
fn apply_ah(
    out: &mut [u8],
    ip_len: usize,
    ah_len: usize,
    total: usize,
    spi: u32,
    seq: u64,
    esn: bool,
    next_header: IpProtocol,
    integrity: &crate::crypto::Integrity,
    v6: bool,
) -> Result<(), DropReason> {
    let icv_len = integrity.icv_len();
    {
        let repr = ah::Repr {
            next_header,
            spi,
            sequence_number: seq as u32,
            icv_len,
            ipv6: v6,
        };
        repr.emit(&mut ah::Packet::new_unchecked(
            &mut out[ip_len..ip_len + ah_len],
        ))
        .map_err(|_| DropReason::TooBig)?;
    }
    // The IP header with mutable fields zeroed; the copy includes AH's fixed part, which
    // the IPv6 walk checks the extension chain against.
    let mut scratch = [0u8; ipv6::HEADER_LEN + ah::FIXED_LEN];
    let scratch = &mut scratch[..ip_len + ah::FIXED_LEN];
    scratch.copy_from_slice(&out[..ip_len + ah::FIXED_LEN]);
    let zeroed = if v6 {
        ah::zero_mutable_ipv6(scratch, ip_len)
    } else {
        ah::zero_mutable_ipv4(scratch)
    };
    zeroed.map_err(|_| DropReason::Malformed)?;
    let hdr = &scratch[..ip_len];
    let seq_hi = ((seq >> 32) as u32).to_be_bytes();
    let mut icv = [0u8; 64];
    let icv = &mut icv[..icv_len];
    {
        let rest = &out[ip_len..total];
        if esn {
            integrity.compute(&[hdr, rest, &seq_hi], icv);
        } else {
            integrity.compute(&[hdr, rest], icv);
        }
    }
    out[ip_len + ah::FIXED_LEN..ip_len + ah::FIXED_LEN + icv_len].copy_from_slice(icv);
    Ok(())
}
