//! A negotiated CHILD_SA as what the live database installs: two ESP SAs in tunnel mode
//! (inbound and outbound) and the policies between the narrowed traffic selectors — the
//! outbound ones protecting with the outbound SA, the inbound ones requiring the inbound SA.
//!
//! espo's policies select by prefix, so a selector that is an arbitrary address range is
//! covered exactly by several prefixes ([`TsRange::prefixes`]), each pair a policy.

use std::net::IpAddr;

use espo_ipsec::crypto::{EncryptionAlgorithm, IntegrityAlgorithm, SecretKey};
use espo_ipsec::spec::{
    DEFAULT_TTL, DfMode, Direction, Lifetime, PolicyAction, PolicySpec, SaMode, SaProtocol, SaSpec,
    UdpEncap,
};

use crate::ts::TsRange;

/// The keys of one direction, in espo-ipsec's format (an AEAD key ends with its salt).
#[derive(Debug, Clone)]
pub struct DirectionKeys {
    pub key: SecretKey,
    pub integrity_key: Option<SecretKey>,
}

/// What a CHILD_SA exchange settled.
#[derive(Debug, Clone)]
pub struct NegotiatedChild {
    /// The SPI this end chose: the peer sends with it.
    pub spi_in: u32,
    /// The SPI the peer chose: this end sends with it.
    pub spi_out: u32,
    pub encryption: EncryptionAlgorithm,
    pub integrity: Option<IntegrityAlgorithm>,
    pub esn: bool,
    pub keys_in: DirectionKeys,
    pub keys_out: DirectionKeys,
    /// The IKE SA's addresses: this end's and the peer's (the tunnel endpoints).
    pub local: IpAddr,
    pub remote: IpAddr,
    /// ESP in UDP (a NAT between the ends, or forced): this end's port and the peer's.
    pub encap: Option<(u16, u16)>,
    pub local_ts: Vec<TsRange>,
    pub remote_ts: Vec<TsRange>,
    pub replay_window: u32,
    /// Soft limits (renewal) and hard limits (the end) of each SA.
    pub lifetime: Lifetime,
}

/// Why a negotiated CHILD_SA cannot become SAs and policies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChildError {
    #[error(
        "the traffic selectors are of another address family than the tunnel's inner packets can be"
    )]
    NoSelectorPair,
    #[error("the tunnel's endpoints are of two address families")]
    MixedEndpoints,
    #[error("{0} needs an integrity algorithm")]
    MissingIntegrity(EncryptionAlgorithm),
}

impl NegotiatedChild {
    /// The inbound and outbound SA.
    pub fn sa_specs(&self) -> Result<[SaSpec; 2], ChildError> {
        if self.local.is_ipv4() != self.remote.is_ipv4() {
            return Err(ChildError::MixedEndpoints);
        }
        if !self.encryption.is_aead() && self.integrity.is_none() {
            return Err(ChildError::MissingIntegrity(self.encryption));
        }
        let sa = |dir: Direction, spi: u32, keys: &DirectionKeys| {
            let (src, dst) = match dir {
                Direction::Out => (self.local, self.remote),
                Direction::In => (self.remote, self.local),
            };
            SaSpec {
                spi,
                dir: Some(dir),
                protocol: SaProtocol::Esp,
                mode: SaMode::Tunnel,
                src,
                dst,
                encryption: Some(self.encryption),
                key: Some(keys.key.clone()),
                integrity: self.integrity,
                integrity_key: keys.integrity_key.clone(),
                esn: self.esn,
                seq: 0,
                replay_window: match dir {
                    Direction::In => self.replay_window,
                    Direction::Out => 0,
                },
                udp_encap: self.encap.map(|(here, there)| match dir {
                    Direction::Out => UdpEncap {
                        src_port: here,
                        dst_port: there,
                    },
                    Direction::In => UdpEncap {
                        src_port: there,
                        dst_port: here,
                    },
                }),
                ttl: DEFAULT_TTL,
                df: DfMode::Copy,
                lifetime: self.lifetime,
            }
        };
        Ok([
            sa(Direction::In, self.spi_in, &self.keys_in),
            sa(Direction::Out, self.spi_out, &self.keys_out),
        ])
    }

    /// The policies: for every pair of a local and a remote selector of one family, an
    /// outbound policy (local → remote, protected by the outbound SA) and an inbound one
    /// (remote → local, requiring the inbound SA); outbound first.
    pub fn policy_specs(&self) -> Result<Vec<PolicySpec>, ChildError> {
        let mut out = Vec::new();
        let mut inbound = Vec::new();
        for (l, r, lp, rp) in prefix_pairs(&self.local_ts, &self.remote_ts) {
            out.push(PolicySpec {
                dir: Direction::Out,
                src: lp,
                dst: rp,
                protocol: l.protocol_selector(),
                src_port: l.port_range(),
                dst_port: r.port_range(),
                action: PolicyAction::Protect,
                sa: vec![self.spi_out],
            });
            inbound.push(PolicySpec {
                dir: Direction::In,
                src: rp,
                dst: lp,
                protocol: l.protocol_selector(),
                src_port: r.port_range(),
                dst_port: l.port_range(),
                action: PolicyAction::Protect,
                sa: vec![self.spi_in],
            });
        }
        if out.is_empty() {
            return Err(ChildError::NoSelectorPair);
        }
        out.extend(inbound);
        Ok(out)
    }
}

/// For every pair of a local and a remote selector of one family whose protocols agree,
/// every pair of prefixes covering them: (local, remote, local prefix, remote prefix), the
/// selectors carrying the pair's protocol.
fn prefix_pairs(
    local_ts: &[TsRange],
    remote_ts: &[TsRange],
) -> Vec<(
    TsRange,
    TsRange,
    espo_ipsec::selector::Cidr,
    espo_ipsec::selector::Cidr,
)> {
    let mut out = Vec::new();
    for l in local_ts {
        for r in remote_ts {
            if l.is_ipv4() != r.is_ipv4() {
                continue;
            }
            // One IP protocol per pair: both sides' protocols must agree (0: any).
            let protocol = match (l.protocol, r.protocol) {
                (0, p) | (p, 0) => p,
                (a, b) if a == b => a,
                _ => continue,
            };
            let (l, r) = (
                l.with_ports(protocol, l.start_port, l.end_port),
                r.with_ports(protocol, r.start_port, r.end_port),
            );
            for lp in l.prefixes() {
                for rp in r.prefixes() {
                    out.push((l, r, lp, rp));
                }
            }
        }
    }
    out
}

/// The outbound trap policies of a child whose `start_action` is `trap`: a packet from its
/// local selectors to its remote ones asks for the CHILD_SA.
pub fn trap_policies(local_ts: &[TsRange], remote_ts: &[TsRange]) -> Vec<PolicySpec> {
    placeholder_policies(local_ts, remote_ts, PolicyAction::Trap)
}

/// The outbound policies that stand behind a child's CHILD_SA (after every other policy)
/// so that its traffic never leaves in clear while it has none: `Trap` (a packet asks for
/// the CHILD_SA) or `Discard`.
pub fn placeholder_policies(
    local_ts: &[TsRange],
    remote_ts: &[TsRange],
    action: PolicyAction,
) -> Vec<PolicySpec> {
    prefix_pairs(local_ts, remote_ts)
        .into_iter()
        .map(|(l, r, lp, rp)| PolicySpec {
            dir: Direction::Out,
            src: lp,
            dst: rp,
            protocol: l.protocol_selector(),
            src_port: l.port_range(),
            dst_port: r.port_range(),
            action,
            sa: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::TsSpec;

    fn ts(s: &str) -> TsRange {
        match s.parse::<TsSpec>().unwrap() {
            TsSpec::Range(r) => r,
            TsSpec::Dynamic { .. } => unreachable!(),
        }
    }

    fn key(fill: u8, len: usize) -> SecretKey {
        SecretKey::from_hex(&format!("{fill:02x}").repeat(len)).unwrap()
    }

    fn child() -> NegotiatedChild {
        NegotiatedChild {
            spi_in: 0xc000_0001,
            spi_out: 0xd000_0002,
            encryption: EncryptionAlgorithm::AesGcm128,
            integrity: None,
            esn: false,
            keys_in: DirectionKeys {
                key: key(1, 20),
                integrity_key: None,
            },
            keys_out: DirectionKeys {
                key: key(2, 20),
                integrity_key: None,
            },
            local: "192.0.2.1".parse().unwrap(),
            remote: "198.51.100.2".parse().unwrap(),
            encap: Some((4500, 31000)),
            local_ts: vec![ts("10.1.0.0/16")],
            remote_ts: vec![ts("10.2.0.0/16"), ts("10.3.0.1-10.3.0.2[tcp/443]")],
            replay_window: 128,
            lifetime: Lifetime::default(),
        }
    }

    #[test]
    fn one_sa_each_way_between_the_ike_addresses() {
        let [i, o] = child().sa_specs().unwrap();
        assert_eq!(
            (i.spi, i.dir, o.spi, o.dir),
            (
                0xc000_0001,
                Some(Direction::In),
                0xd000_0002,
                Some(Direction::Out)
            )
        );
        assert_eq!((o.src, o.dst), (i.dst, i.src));
        assert_eq!(o.src, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(o.udp_encap.unwrap().dst_port, 31000);
        assert_eq!(i.udp_encap.unwrap().dst_port, 4500);
        assert_eq!((i.replay_window, o.replay_window), (128, 0));
        assert_ne!(
            i.key.as_ref().unwrap().as_bytes(),
            o.key.as_ref().unwrap().as_bytes()
        );
    }

    #[test]
    fn policies_cover_every_selector_pair_both_ways() {
        let p = child().policy_specs().unwrap();
        // 10.2.0.0/16 is one prefix, 10.3.0.1-10.3.0.2 two: three pairs each way.
        assert_eq!(p.len(), 6);
        assert!(
            p[..3]
                .iter()
                .all(|p| p.dir == Direction::Out && p.sa == vec![0xd000_0002])
        );
        assert!(
            p[3..]
                .iter()
                .all(|p| p.dir == Direction::In && p.sa == vec![0xc000_0001])
        );
        let tcp: Vec<_> = p
            .iter()
            .filter(|p| p.dst_port.low == 443 || p.src_port.low == 443)
            .collect();
        assert_eq!(tcp.len(), 4);
        assert_eq!(p[4].src.to_string(), "10.3.0.1/32");
        assert_eq!(p[4].dst.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn what_cannot_be_installed_is_refused() {
        let mut c = child();
        c.remote_ts = vec![ts("2001:db8::/32")];
        assert_eq!(c.policy_specs().unwrap_err(), ChildError::NoSelectorPair);
        let mut c = child();
        c.remote = "2001:db8::1".parse().unwrap();
        assert_eq!(c.sa_specs().unwrap_err(), ChildError::MixedEndpoints);
        let mut c = child();
        c.encryption = EncryptionAlgorithm::AesCbc128;
        assert!(c.sa_specs().is_err());
    }
}
