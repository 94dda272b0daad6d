//! The guard: an nftables table that keeps cleartext of the protected traffic off the
//! outside interface, in both directions, whether espo is running or not.
//!
//! espo's own sockets only take ESP, AH and UDP-encapsulated ESP; everything else arriving
//! on the outside interface is the kernel's to forward or deliver, and when espo dies its
//! TUN device and routes go with it and the kernel sends the inside's traffic out by
//! whatever route is left — in clear. The guard closes both holes with one table per espo
//! instance, `inet espo-<tun>`, installed before the TUN device exists:
//!
//! - **inbound** (`cleartext-in`, prerouting, on `iifname` = `[gateway] port`): a packet
//!   an inbound `protect` or `discard` policy covers is dropped before the kernel routes
//!   it, unless it is a tunnel packet to one of espo's endpoints;
//! - **outbound** (`guard-forward` and `guard-output`, on `oifname` = the port, both
//!   jumping to `guard-out`): a packet an outbound `protect` or `discard` policy covers
//!   is dropped unless it is a tunnel packet between the configured endpoints.
//!
//! The policies of each direction become rules in configuration order, so that the first
//! match decides as in the SPD: `bypass` accepts, `protect` and `discard` drop and count
//! (one named counter per policy, read by `espo status` and `espo guard status`). Before
//! them come the tunnel packets — ESP or AH between the endpoints of each SA, its RFC 3948
//! UDP ports, IKE (UDP 500 and 4500) between local endpoints and peers — and IPv6
//! neighbour discovery and MLD, which must cross the link for the tunnel to work, even in
//! a server-to-server tunnel whose outer addresses are also its selectors.
//!
//! Non-first fragments carry no ports: like the SPD (RFC 4301's OPAQUE), a port selector
//! never matches them. Outbound, where such fragments of a protected flow would carry its
//! data out in clear, a `protect`/`discard` policy with a port selector also drops the
//! non-first fragments between its addresses with its protocol.
//!
//! The table outlives the process on purpose: a clean stop (SIGINT/SIGTERM) removes it,
//! `espo guard off` removes it by hand, and a restarted espo replaces it in one nft
//! transaction (no moment without a guard). [`nft`] runs the `nft` command.

pub mod nft;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use espo_config::{Config, GatewayConfig};
use espo_ipsec::selector::{Cidr, ProtocolSelector};
use espo_ipsec::spec::{Direction, PolicyAction, PolicySpec, SaSpec};

pub use nft::{Guard, GuardState};

use super::{GatewayError, Report};

/// IKE's UDP ports (RFC 7296 §2, §2.23): 500, and 4500 once NAT is detected.
pub const IKE_PORTS: [u16; 2] = [500, 4500];

/// Why the guard could not be installed, read or removed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(
        "the `nft` command is not installed: espo needs it for its guard, the nftables rules \
         that keep cleartext of the protected traffic off the outside interface (Debian/Ubuntu: \
         apt-get install nftables)"
    )]
    NftMissing,
    #[error("running `nft` to {action} failed")]
    Spawn {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nft could not {action}: {message}")]
    Nft { action: String, message: String },
    #[error("nft answered {action} with output espo cannot read: {message}")]
    Answer { action: String, message: String },
    #[error(
        "[gateway] {field}: `{name}` cannot be named in an nftables rule (use letters, digits, \
         `.`, `_` and `-`)"
    )]
    Name { field: &'static str, name: String },
}

/// The guard table of the espo instance whose TUN device is `tun`: `espo-<tun>`, so that
/// gateways with different TUN devices never touch each other's table (tables are per
/// network namespace, so gateways in different namespaces never meet at all).
pub fn table_name(tun: &str) -> String {
    format!("espo-{tun}")
}

/// The table's full name as nft spells it: `inet espo-espo0`.
pub fn table_spec(table: &str) -> String {
    format!("inet {table}")
}

/// The named counter of the policy at `index` of `[[policy]]`.
fn counter_name(dir: Direction, index: usize) -> String {
    match dir {
        Direction::In => format!("in-{index}"),
        Direction::Out => format!("out-{index}"),
    }
}

/// The direction and `[[policy]]` index a counter of the guard counts for.
pub fn counter_policy(name: &str) -> Option<(Direction, usize)> {
    let (dir, index) = name.split_once('-')?;
    let dir = match dir {
        "in" => Direction::In,
        "out" => Direction::Out,
        _ => return None,
    };
    Some((dir, index.parse().ok()?))
}

/// An interface (or table) name that nft reads back as exactly that name: no quotes,
/// escapes or the `*` wildcard.
fn check_name(field: &'static str, name: &str) -> Result<(), GuardError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(GuardError::Name {
            field,
            name: name.to_owned(),
        })
    }
}

/// What becomes of the guard when the gateway it was installed for returns: a clean stop
/// removes it; a gateway that stopped because its datapath failed (`report.failure`), or
/// failed after it was up (`started`), leaves it in place; a start that failed puts back
/// what was there before.
pub fn settle(
    guard: Guard,
    started: bool,
    result: Result<Report, GatewayError>,
) -> Result<Report, GatewayError> {
    match result {
        Ok(mut report) => {
            if report.failure.is_none()
                && let Err(e) = guard.remove()
            {
                report.failure = Some(format!("removing the guard failed: {e}"));
            }
            Ok(report)
        }
        Err(e) if started => Err(e),
        Err(e) => {
            // The start's own error is the one to report; should the undo fail too, the
            // guard stays, which errs on the closed side.
            let _ = guard.undo();
            Err(e)
        }
    }
}

/// What carries a tunnel packet between two endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Carrier {
    /// ESP (50) or AH (51) straight over IP.
    Ip(u8),
    /// RFC 3948 UDP; the source port is known only for what espo sends (a peer's may be
    /// rewritten by NAT).
    Udp {
        src_port: Option<u16>,
        dst_port: u16,
    },
}

/// Tunnel packets of one SA: outer source and destination and what carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TunnelFlow {
    src: IpAddr,
    dst: IpAddr,
    carrier: Carrier,
}

/// What the guard is built from: the gateway's SAs, and its policies in search order (each
/// direction's in its own order) with their ids — the configuration's at start, the live
/// database's after a change ([`Guard::update`]).
#[derive(Debug, Clone)]
pub struct GuardDb<'a> {
    /// Where the SAs and policies come from, for the table's header comment.
    pub origin: String,
    pub sas: Vec<&'a SaSpec>,
    pub policies: Vec<(u32, &'a PolicySpec)>,
}

impl<'a> GuardDb<'a> {
    /// A configuration's SAs and policies; policy ids are their indices.
    pub fn of_config(config: &'a Config) -> GuardDb<'a> {
        GuardDb {
            origin: config.path.display().to_string(),
            sas: config.sas.iter().collect(),
            policies: config
                .policies
                .iter()
                .enumerate()
                .map(|(i, p)| (i as u32, p))
                .collect(),
        }
    }
}

/// The SAs of the `protect` policies of one direction, each once, in configuration order.
fn protect_sas<'a>(config: &GuardDb<'a>, dir: Direction) -> Vec<&'a SaSpec> {
    let by_spi = crate::sas_by_spi(config.sas.iter().copied());
    let mut seen = HashSet::new();
    config
        .policies
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| p.dir == dir && p.action == PolicyAction::Protect)
        .flat_map(|p| p.sa.iter().filter_map(|spi| by_spi.get(spi).copied()))
        .filter(|sa| seen.insert(sa.spi))
        .collect()
}

/// The tunnel packets of one direction: every SA of its bundles, each with its carrier
/// (an ESP+AH bundle's packets are AH outside, but ESP between the same endpoints is no
/// cleartext either).
fn tunnel_flows(config: &GuardDb, dir: Direction) -> Vec<TunnelFlow> {
    let mut seen = HashSet::new();
    protect_sas(config, dir)
        .into_iter()
        .map(|sa| {
            let carrier = match sa.udp_encap {
                Some(u) => Carrier::Udp {
                    src_port: (dir == Direction::Out).then_some(u.src_port),
                    dst_port: u.dst_port,
                },
                None => Carrier::Ip(sa.protocol.ip_protocol()),
            };
            TunnelFlow {
                src: sa.src,
                dst: sa.dst,
                carrier,
            }
        })
        .filter(|f| seen.insert(*f))
        .collect()
}

/// (local endpoint, peer) of every SA, outbound and inbound: where IKE runs.
fn endpoint_pairs(config: &GuardDb) -> Vec<(IpAddr, IpAddr)> {
    let out = protect_sas(config, Direction::Out)
        .into_iter()
        .map(|s| (s.src, s.dst));
    let inn = protect_sas(config, Direction::In)
        .into_iter()
        .map(|s| (s.dst, s.src));
    let mut seen = HashSet::new();
    out.chain(inn).filter(|pair| seen.insert(*pair)).collect()
}

fn host(ip: IpAddr) -> Cidr {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    Cidr::new(ip, len).expect("a host prefix has no host bits")
}

/// A prefix as nft writes it: a bare address for a host.
fn prefix(c: Cidr) -> String {
    let host_len = if c.is_ipv4() { 32 } else { 128 };
    if c.prefix_len() == host_len {
        c.addr().to_string()
    } else {
        c.to_string()
    }
}

/// The address part of a rule: `ip saddr S ip daddr D`, leaving out a `/0` side, or just
/// the family when both sides are `/0`.
fn addresses(src: Cidr, dst: Cidr) -> String {
    let (family, nfproto) = if src.is_ipv4() {
        ("ip", "ipv4")
    } else {
        ("ip6", "ipv6")
    };
    let mut parts = Vec::new();
    if src.prefix_len() > 0 {
        parts.push(format!("{family} saddr {}", prefix(src)));
    }
    if dst.prefix_len() > 0 {
        parts.push(format!("{family} daddr {}", prefix(dst)));
    }
    if parts.is_empty() {
        parts.push(format!("meta nfproto {nfproto}"));
    }
    parts.join(" ")
}

/// The protocol and port part of a policy's rule (empty for `any`).
fn next_layer(p: &PolicySpec) -> String {
    let mut s = String::new();
    if let ProtocolSelector::Number(n) = p.protocol {
        let _ = write!(s, " meta l4proto {n}");
    }
    if !p.src_port.is_any() {
        let _ = write!(s, " th sport {}", p.src_port);
    }
    if !p.dst_port.is_any() {
        let _ = write!(s, " th dport {}", p.dst_port);
    }
    s
}

/// What a tunnel flow's packets are matched on, selector and value, in rule order:
/// `ip saddr` `192.0.2.1`, `ip daddr` `192.0.2.2`, `ip protocol` `50`.
fn tunnel_match(f: &TunnelFlow) -> Vec<(String, String)> {
    let family = if f.src.is_ipv4() { "ip" } else { "ip6" };
    let mut m = vec![
        (format!("{family} saddr"), f.src.to_string()),
        (format!("{family} daddr"), f.dst.to_string()),
    ];
    match f.carrier {
        Carrier::Ip(proto) if f.src.is_ipv4() => m.push(("ip protocol".into(), proto.to_string())),
        // AH counts as an extension header to the kernel's `meta l4proto` over IPv6: match
        // the fixed header's next header (espo's outer headers carry no extensions).
        Carrier::Ip(proto) => m.push(("ip6 nexthdr".into(), proto.to_string())),
        Carrier::Udp { src_port, dst_port } => {
            if let Some(sp) = src_port {
                m.push(("udp sport".into(), sp.to_string()));
            }
            m.push(("udp dport".into(), dst_port.to_string()));
        }
    }
    m
}

/// The rule matching a tunnel flow on its own: `ip saddr A ip daddr B ip protocol 50`.
fn tunnel_rule(f: &TunnelFlow) -> String {
    let parts: Vec<String> = tunnel_match(f)
        .into_iter()
        .map(|(selector, value)| format!("{selector} {value}"))
        .collect();
    parts.join(" ")
}

/// The keys of a tunnel flow's rule when many flows share one set ([`tunnel_rules`]), and
/// the flow's element of that set: `ip saddr . ip daddr . ip protocol` and `A . B . 50`.
fn tunnel_key(f: &TunnelFlow) -> (String, String) {
    let (keys, values): (Vec<String>, Vec<String>) = tunnel_match(f).into_iter().unzip();
    (keys.join(" . "), values.join(" . "))
}

/// Accepts the tunnel packets of `flows`. A flow whose kind of rule no other flow shares
/// gets a rule of its own; flows that share one (same family and carrier, as a hub's SAs
/// to many peers do) are matched together through one set — one lookup per packet in the
/// kernel, not a walk through a rule per peer. Order among them does not matter: every
/// one accepts.
fn tunnel_rules(t: &mut String, flows: &[TunnelFlow]) {
    let mut groups: Vec<(String, Vec<&TunnelFlow>)> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for f in flows {
        let (keys, _) = tunnel_key(f);
        let i = *at.entry(keys.clone()).or_insert_with(|| {
            groups.push((keys, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(f);
    }
    for (keys, members) in groups {
        match members.as_slice() {
            [f] => {
                let _ = writeln!(t, "\t\t{} accept comment \"tunnel\"", tunnel_rule(f));
            }
            _ => {
                let elements: Vec<String> = members.iter().map(|f| tunnel_key(f).1).collect();
                let _ = writeln!(
                    t,
                    "\t\t{keys} {{ {} }} accept comment \"tunnel\"",
                    elements.join(", ")
                );
            }
        }
    }
}

/// Accepts IKE (UDP 500 and 4500, `port` being `sport` or `dport`) between each pair of
/// `pairs` (source, destination): a rule per pair where a family has one, one set of the
/// family's pairs where it has more.
fn ike_rules(t: &mut String, pairs: &[(IpAddr, IpAddr)], port: &str) {
    let ports = format!("udp {port} {{ {}, {} }}", IKE_PORTS[0], IKE_PORTS[1]);
    for v4 in [true, false] {
        let family: Vec<_> = pairs.iter().filter(|(s, _)| s.is_ipv4() == v4).collect();
        match family.as_slice() {
            [] => {}
            [(src, dst)] => {
                let _ = writeln!(
                    t,
                    "\t\t{} {ports} accept comment \"IKE\"",
                    addresses(host(*src), host(*dst))
                );
            }
            _ => {
                let f = if v4 { "ip" } else { "ip6" };
                let elements: Vec<String> =
                    family.iter().map(|(s, d)| format!("{s} . {d}")).collect();
                let _ = writeln!(
                    t,
                    "\t\t{f} saddr . {f} daddr {{ {} }} {ports} accept comment \"IKE\"",
                    elements.join(", ")
                );
            }
        }
    }
}

/// The nft text of the guard table and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// `espo-<tun>`, in family `inet`.
    pub table: String,
    /// `table inet espo-<tun> { ... }`, for `nft -f`.
    pub text: String,
}

impl Ruleset {
    /// One nft transaction that replaces the table if it is there and creates it if not:
    /// the kernel applies all of it or nothing, so there is no moment without a guard.
    pub fn replace_transaction(&self) -> String {
        let spec = table_spec(&self.table);
        format!("table {spec} {{ }}\ndelete table {spec}\n{}", self.text)
    }
}

/// Builds the guard's table for the SAs and policies of `config`, whose outside interface is
/// `port`.
pub fn ruleset(config: &GuardDb, gw: &GatewayConfig, port: &str) -> Result<Ruleset, GuardError> {
    check_name("tun", &gw.tun)?;
    check_name("port", port)?;
    let table = table_name(&gw.tun);
    let mut t = String::new();
    // A comment runs to the end of its line: no control character may end it early.
    let path: String = config
        .origin
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let _ = writeln!(
        t,
        "# espo's guard for [gateway] tun {} on outside interface {port} (from {path})",
        gw.tun
    );
    let _ = writeln!(t, "table {} {{", table_spec(&table));
    for &(index, p) in &config.policies {
        if p.action != PolicyAction::Bypass {
            let _ = writeln!(t, "\tcounter {} {{ }}", counter_name(p.dir, index as usize));
        }
    }

    let _ = writeln!(
        t,
        "\n\t# Inbound: cleartext the inbound policies protect, dropped before routing."
    );
    let _ = writeln!(t, "\tchain cleartext-in {{");
    let _ = writeln!(
        t,
        "\t\ttype filter hook prerouting priority raw; policy accept;"
    );
    let _ = writeln!(t, "\t\tiifname != \"{port}\" return");
    tunnel_rules(&mut t, &tunnel_flows(config, Direction::In));
    let pairs = endpoint_pairs(config);
    let from_peers: Vec<_> = pairs.iter().map(|&(local, peer)| (peer, local)).collect();
    ike_rules(&mut t, &from_peers, "dport");
    link_control(&mut t);
    policy_rules(&mut t, config, Direction::In);
    let _ = writeln!(t, "\t}}");

    let _ = writeln!(
        t,
        "\n\t# Outbound: cleartext the outbound policies protect never leaves by {port}."
    );
    for (chain, hook) in [("guard-forward", "forward"), ("guard-output", "output")] {
        let _ = writeln!(t, "\tchain {chain} {{");
        let _ = writeln!(
            t,
            "\t\ttype filter hook {hook} priority filter; policy accept;"
        );
        let _ = writeln!(t, "\t\toifname \"{port}\" jump guard-out");
        let _ = writeln!(t, "\t}}");
    }
    let _ = writeln!(t, "\tchain guard-out {{");
    tunnel_rules(&mut t, &tunnel_flows(config, Direction::Out));
    ike_rules(&mut t, &pairs, "sport");
    link_control(&mut t);
    policy_rules(&mut t, config, Direction::Out);
    let _ = writeln!(t, "\t}}");
    let _ = writeln!(t, "}}");
    Ok(Ruleset { table, text: t })
}

/// IPv6 neighbour discovery (hop limit 255, RFC 4861 §7.1) and MLD from link-local
/// addresses: the link's own control traffic, which the tunnel needs and which never
/// leaves the link.
fn link_control(t: &mut String) {
    let _ = writeln!(
        t,
        "\t\ticmpv6 type {{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, \
         nd-neighbor-advert, nd-redirect }} ip6 hoplimit 255 accept comment \"neighbour discovery\""
    );
    let _ = writeln!(
        t,
        "\t\tip6 saddr fe80::/10 icmpv6 type {{ mld-listener-query, mld-listener-report, \
         mld-listener-done, mld2-listener-report }} accept comment \"MLD\""
    );
}

/// The policies of one direction in configuration order: bypass accepts, protect and
/// discard drop and count.
fn policy_rules(t: &mut String, config: &GuardDb, dir: Direction) {
    for &(index, p) in &config.policies {
        if p.dir != dir {
            continue;
        }
        let matches = format!("{}{}", addresses(p.src, p.dst), next_layer(p));
        let action = match p.action {
            PolicyAction::Bypass => {
                let _ = writeln!(t, "\t\t{matches} accept comment \"policy[{index}] bypass\"");
                continue;
            }
            PolicyAction::Protect => "protect",
            PolicyAction::Discard => "discard",
            // Nothing of a trapped flow leaves espo until its SA is there.
            PolicyAction::Trap => "discard",
        };
        let counter = counter_name(dir, index as usize);
        let _ = writeln!(
            t,
            "\t\t{matches} counter name \"{counter}\" drop comment \"policy[{index}] {action}\""
        );
        let has_ports = !p.src_port.is_any() || !p.dst_port.is_any();
        if let (Direction::Out, true, ProtocolSelector::Number(n)) = (dir, has_ports, p.protocol) {
            let fragment = if p.src.is_ipv4() {
                "ip frag-off & 0x1fff != 0"
            } else {
                "frag frag-off != 0"
            };
            let _ = writeln!(
                t,
                "\t\t{} meta l4proto {n} {fragment} counter name \"{counter}\" drop comment \
                 \"policy[{index}] {action}: non-first fragments\"",
                addresses(p.src, p.dst)
            );
        }
    }
}
