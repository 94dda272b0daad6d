//! Who is behind which gateway: one pair of simulated hosts per tunnel, taken from
//! gateway A's outbound policies.
//!
//! For every outbound `protect` policy of gateway A (in order) there is a tunnel: host
//! `host-aN` sits in the policy's source prefix, `host-bN` in its destination prefix (the
//! tenth address of each, or the address itself for a host prefix), and the two talk UDP
//! on ports the policy admits (its own port selectors where it has them, else 40000+N → 7).

use std::net::IpAddr;

use espo_config::Config;
use espo_ipsec::selector::Cidr;
use espo_ipsec::spec::{Direction, PolicyAction};

use super::DemoError;

/// UDP, the protocol the simulated hosts speak.
const UDP: u8 = 17;

/// One simulated host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub addr: IpAddr,
    pub port: u16,
}

/// Two hosts, one behind each gateway, and the tunnel between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    /// Behind gateway A.
    pub a: Host,
    /// Behind gateway B.
    pub b: Host,
    /// The SA that carries A's packets to B (the innermost of A's policy bundle).
    pub spi_a_to_b: u32,
}

/// The tunnels of gateway A's configuration. Fails when it has no outbound `protect`
/// policy, or one that cannot carry UDP between two addresses of the same family.
pub fn tunnels(a: &Config) -> Result<Vec<Tunnel>, DemoError> {
    let mut out = Vec::new();
    for p in a
        .policies
        .iter()
        .filter(|p| p.dir == Direction::Out && p.action == PolicyAction::Protect)
    {
        let n = out.len() + 1;
        if !p.protocol.matches(UDP) {
            return Err(DemoError::Topology(format!(
                "tunnel {n} ({} -> {}) does not carry UDP, which the demo's hosts speak",
                fmt_cidr(&p.src),
                fmt_cidr(&p.dst)
            )));
        }
        if p.src.is_ipv4() != p.dst.is_ipv4() {
            return Err(DemoError::Topology(format!(
                "tunnel {n} mixes IPv4 and IPv6 selectors"
            )));
        }
        let port = |range: espo_ipsec::selector::PortRange, default: u16| {
            if range.is_any() { default } else { range.low }
        };
        let Some(&spi) = p.sa.first() else {
            return Err(DemoError::Topology(format!("tunnel {n} names no SA")));
        };
        out.push(Tunnel {
            a: Host {
                name: format!("host-a{n}"),
                addr: host_in(&p.src),
                port: port(p.src_port, 40000 + n as u16),
            },
            b: Host {
                name: format!("host-b{n}"),
                addr: host_in(&p.dst),
                port: port(p.dst_port, 7),
            },
            spi_a_to_b: spi,
        });
    }
    if out.is_empty() {
        return Err(DemoError::Topology(
            "gateway A has no outbound protect policy: there is no tunnel to send through".into(),
        ));
    }
    Ok(out)
}

fn fmt_cidr(c: &Cidr) -> String {
    format!("{}/{}", c.addr(), c.prefix_len())
}

/// The tenth address of a prefix, or its only address when it is that small.
pub fn host_in(prefix: &Cidr) -> IpAddr {
    match prefix.addr() {
        IpAddr::V4(a) if prefix.prefix_len() <= 28 => IpAddr::V4((u32::from(a) + 10).into()),
        IpAddr::V6(a) if prefix.prefix_len() <= 124 => IpAddr::V6((u128::from(a) + 0x10).into()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("test.toml")).expect("config")
    }

    #[test]
    fn the_demo_configuration_has_four_tunnels_with_hosts_inside_their_prefixes() {
        let a = config(super::super::GATEWAY_A_TOML);
        let t = tunnels(&a).expect("tunnels");
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].a.name, "host-a1");
        assert_eq!(t[0].a.addr, "10.1.1.10".parse::<IpAddr>().unwrap());
        assert_eq!(t[0].b.addr, "10.2.1.10".parse::<IpAddr>().unwrap());
        assert_eq!(t[1].a.addr, "fd00:a:1::10".parse::<IpAddr>().unwrap());
        assert_eq!((t[0].a.port, t[0].b.port), (40001, 7));
        assert_eq!(t[2].spi_a_to_b, 0xa103);
        for tunnel in &t {
            let p = a
                .policies
                .iter()
                .find(|p| p.dir == Direction::Out && p.sa.first() == Some(&tunnel.spi_a_to_b))
                .expect("policy");
            assert!(p.src.contains(tunnel.a.addr) && p.dst.contains(tunnel.b.addr));
        }
    }

    #[test]
    fn a_policy_that_cannot_carry_udp_is_refused() {
        let text = "[[sa]]\nspi = 0x1001\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\n\
            encryption = \"aes-gcm-128\"\nkey = \"000102030405060708090a0b0c0d0e0f10111213\"\n\
            [[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\n\
            protocol = \"tcp\"\naction = \"protect\"\nsa = [0x1001]\n";
        let err = tunnels(&config(text)).expect_err("tcp only");
        assert!(err.to_string().contains("UDP"), "{err}");
        let none = "[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"bypass\"\n";
        assert!(tunnels(&config(none)).is_err());
    }

    #[test]
    fn host_prefixes_keep_their_address() {
        let c = Cidr::new("10.9.9.9".parse().unwrap(), 32).unwrap();
        assert_eq!(host_in(&c), "10.9.9.9".parse::<IpAddr>().unwrap());
    }
}
