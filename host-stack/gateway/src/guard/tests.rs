use std::path::Path;

use super::nft::{GuardState, parse_counters};
use super::*;

const KEY_20: &str = "12595b1aa441d9d8abf622c239b077f852f71c4c";
const KEY_20_B: &str = "766928faf5158673c22914d720b7ca47c1a76dd4";

fn parse(text: &str) -> Config {
    Config::parse(text, Path::new("gw.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn rules(config: &Config) -> String {
    let gw = config.gateway.as_ref().unwrap();
    ruleset(&GuardDb::of_config(config), gw, "eth1")
        .unwrap()
        .text
}

fn example(path: &str) -> Config {
    Config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples")
            .join(path),
    )
    .unwrap()
}

/// A gateway at 192.0.2.1 with one SA each way to 192.0.2.2 and the given policies.
fn gateway(sa_extra: &str, policies: &str) -> Config {
    parse(&format!(
        r#"
[gateway]
tun = "espo0"
port = "eth1"
local = "192.0.2.1"

[[sa]]
spi = 0x1001
protocol = "esp"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "{KEY_20}"
{sa_extra}

[[sa]]
spi = 0x2001
protocol = "esp"
src = "192.0.2.2"
dst = "192.0.2.1"
encryption = "aes-gcm-128"
key = "{KEY_20_B}"
{sa_extra}
{policies}
"#
    ))
}

fn policy(dir: &str, src: &str, dst: &str, action: &str, extra: &str) -> String {
    let sa = match (action, dir) {
        ("protect", "out") => "sa = [0x1001]\n",
        ("protect", _) => "sa = [0x2001]\n",
        _ => "",
    };
    format!(
        "[[policy]]\ndir = \"{dir}\"\nsrc = \"{src}\"\ndst = \"{dst}\"\naction = \"{action}\"\n{sa}{extra}\n"
    )
}

/// The lines of one chain of the generated text, without indentation.
fn chain<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("chain {name} {{");
    text.lines()
        .map(str::trim)
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| *l != "}")
        .collect()
}

fn position(lines: &[&str], needle: &str) -> usize {
    lines
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no `{needle}` in {lines:#?}"))
}

#[test]
fn gateway_to_gateway_rules_in_full() {
    let text = rules(&example("gw-gw/esp/gw-a.toml"));
    let expected = "\
table inet espo-espo0 {
\tcounter out-0 { }
\tcounter out-1 { }
\tcounter in-2 { }
\tcounter in-3 { }

\t# Inbound: cleartext the inbound policies protect, dropped before routing.
\tchain cleartext-in {
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tiifname != \"eth1\" return
\t\tip saddr 192.0.2.2 ip daddr 192.0.2.1 ip protocol 50 accept comment \"tunnel\"
\t\tip saddr 192.0.2.2 ip daddr 192.0.2.1 udp dport { 500, 4500 } accept comment \"IKE\"
\t\ticmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept comment \"neighbour discovery\"
\t\tip6 saddr fe80::/10 icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } accept comment \"MLD\"
\t\tip saddr 10.2.0.0/16 ip daddr 10.1.0.0/16 counter name \"in-2\" drop comment \"policy[2] protect\"
\t\tip6 saddr fd00:2::/48 ip6 daddr fd00:1::/48 counter name \"in-3\" drop comment \"policy[3] protect\"
\t}

\t# Outbound: cleartext the outbound policies protect never leaves by eth1.
\tchain guard-forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\toifname \"eth1\" jump guard-out
\t}
\tchain guard-output {
\t\ttype filter hook output priority filter; policy accept;
\t\toifname \"eth1\" jump guard-out
\t}
\tchain guard-out {
\t\tip saddr 192.0.2.1 ip daddr 192.0.2.2 ip protocol 50 accept comment \"tunnel\"
\t\tip saddr 192.0.2.1 ip daddr 192.0.2.2 udp sport { 500, 4500 } accept comment \"IKE\"
\t\ticmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } ip6 hoplimit 255 accept comment \"neighbour discovery\"
\t\tip6 saddr fe80::/10 icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report } accept comment \"MLD\"
\t\tip saddr 10.1.0.0/16 ip daddr 10.2.0.0/16 counter name \"out-0\" drop comment \"policy[0] protect\"
\t\tip6 saddr fd00:1::/48 ip6 daddr fd00:2::/48 counter name \"out-1\" drop comment \"policy[1] protect\"
\t}
}
";
    let body = text.split_once('\n').unwrap().1;
    assert!(text.starts_with("# espo's guard for [gateway] tun espo0 on outside interface eth1"));
    assert_eq!(body, expected, "{text}");
}

#[test]
fn the_replacement_is_one_transaction_that_also_creates() {
    let c = example("gw-gw/esp/gw-a.toml");
    let r = ruleset(&GuardDb::of_config(&c), c.gateway.as_ref().unwrap(), "eth1").unwrap();
    let t = r.replace_transaction();
    assert!(
        t.starts_with("table inet espo-espo0 { }\ndelete table inet espo-espo0\n# espo's guard"),
        "{t}"
    );
    assert_eq!(t.matches("table inet espo-espo0 {\n").count(), 1);
}

#[test]
fn policies_keep_their_order_so_an_earlier_bypass_still_passes() {
    let policies = [
        policy(
            "in",
            "10.2.0.0/16",
            "10.1.0.0/16",
            "bypass",
            "protocol = \"udp\"\ndst_port = 53",
        ),
        policy("in", "10.2.0.0/16", "10.1.0.0/16", "protect", ""),
        policy("in", "10.2.9.0/24", "10.1.0.0/16", "bypass", ""),
        policy(
            "out",
            "10.1.0.0/16",
            "10.2.0.0/16",
            "discard",
            "protocol = \"tcp\"\ndst_port = 23",
        ),
        policy(
            "out",
            "10.1.0.0/16",
            "10.2.0.0/16",
            "bypass",
            "protocol = \"icmp\"",
        ),
        policy("out", "10.1.0.0/16", "10.2.0.0/16", "protect", ""),
    ]
    .concat();
    let text = rules(&gateway("", &policies));
    let inbound = chain(&text, "cleartext-in");
    let bypass = position(&inbound, "policy[0] bypass");
    assert_eq!(
        inbound[bypass],
        "ip saddr 10.2.0.0/16 ip daddr 10.1.0.0/16 meta l4proto 17 th dport 53 accept comment \"policy[0] bypass\""
    );
    assert!(bypass < position(&inbound, "policy[1] protect"));
    // A bypass behind a protect policy that covers it stays behind it, as in the SPD.
    assert!(position(&inbound, "policy[1] protect") < position(&inbound, "policy[2] bypass"));
    assert!(!text.contains("counter in-0") && !text.contains("counter in-2"));

    let outbound = chain(&text, "guard-out");
    let discard = position(&outbound, "policy[3] discard\"");
    assert_eq!(
        outbound[discard],
        "ip saddr 10.1.0.0/16 ip daddr 10.2.0.0/16 meta l4proto 6 th dport 23 counter name \"out-3\" drop comment \"policy[3] discard\""
    );
    assert!(discard < position(&outbound, "policy[4] bypass"));
    assert!(position(&outbound, "policy[4] bypass") < position(&outbound, "policy[5] protect"));
    // Only the outbound policies in the outbound chain, and the other way round.
    assert!(!outbound.iter().any(|l| l.contains("policy[0]")));
    assert!(!inbound.iter().any(|l| l.contains("policy[5]")));
}

#[test]
fn tunnel_packets_come_before_the_drops_even_when_outer_is_inner() {
    let c = example("server-server/esp/server-a.toml");
    let text = rules(&c);
    let inbound = chain(&text, "cleartext-in");
    let tunnel = position(&inbound, "ip protocol 50 accept");
    let drop = position(&inbound, "policy[1] protect");
    assert!(tunnel < drop && position(&inbound, "IKE") < drop);
    assert_eq!(
        inbound[drop],
        "ip saddr 192.0.2.2 ip daddr 192.0.2.1 counter name \"in-1\" drop comment \"policy[1] protect\""
    );
    let outbound = chain(&text, "guard-out");
    assert!(
        position(
            &outbound,
            "ip saddr 192.0.2.1 ip daddr 192.0.2.2 ip protocol 50 accept"
        ) < position(&outbound, "policy[0] protect")
    );
}

#[test]
fn bundles_pass_both_protocols_and_ipv6_ah_is_matched_by_next_header() {
    let text = rules(&example("server-server/esp-ah/server-a.toml"));
    let outbound = chain(&text, "guard-out");
    // Two flows of one kind: one rule, through a set.
    let tunnel: Vec<_> = outbound
        .iter()
        .filter(|l| l.ends_with("accept comment \"tunnel\""))
        .collect();
    assert_eq!(tunnel.len(), 1, "{outbound:#?}");
    assert!(
        tunnel[0].starts_with("ip saddr . ip daddr . ip protocol { ")
            && tunnel[0].contains("192.0.2.1 . 192.0.2.2 . 51")
            && tunnel[0].contains("192.0.2.1 . 192.0.2.2 . 50"),
        "{}",
        tunnel[0]
    );
    let v6 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/server-server/ah/server-a.toml"),
    )
    .unwrap()
    .replace("192.0.2.1/32", "2001:db8::1/128")
    .replace("192.0.2.2/32", "2001:db8::2/128")
    .replace("192.0.2.1", "2001:db8::1")
    .replace("192.0.2.2", "2001:db8::2");
    let text = rules(&parse(&v6));
    assert!(
        text.contains("ip6 saddr 2001:db8::2 ip6 daddr 2001:db8::1 ip6 nexthdr 51 accept"),
        "{text}"
    );
    assert!(
        text.contains("ip6 saddr 2001:db8::1 ip6 daddr 2001:db8::2 counter name \"out-0\" drop")
    );
}

#[test]
fn udp_encapsulation_passes_by_its_ports() {
    let c = gateway(
        "udp_encap = { src_port = 4501, dst_port = 4500 }",
        &[
            policy("out", "10.1.0.0/16", "10.2.0.0/16", "protect", ""),
            policy("in", "10.2.0.0/16", "10.1.0.0/16", "protect", ""),
        ]
        .concat(),
    );
    let text = rules(&c);
    // What espo sends leaves from its own port; what arrives may come from any (NAT).
    assert!(chain(&text, "guard-out").contains(
        &"ip saddr 192.0.2.1 ip daddr 192.0.2.2 udp sport 4501 udp dport 4500 accept comment \"tunnel\""
    ));
    assert!(chain(&text, "cleartext-in").contains(
        &"ip saddr 192.0.2.2 ip daddr 192.0.2.1 udp dport 4500 accept comment \"tunnel\""
    ));
    assert!(!text.contains("ip protocol 50"));
}

#[test]
fn port_selectors_drop_non_first_fragments_outbound_only() {
    let c = gateway(
        "",
        &[
            policy(
                "out",
                "10.1.0.0/16",
                "10.2.0.0/16",
                "protect",
                "protocol = \"udp\"\nsrc_port = \"1024-65535\"\ndst_port = 5000",
            ),
            policy(
                "out",
                "fd00:1::/48",
                "fd00:2::/48",
                "protect",
                "protocol = \"udp\"\ndst_port = 5000",
            ),
            policy(
                "out",
                "10.1.0.0/16",
                "10.2.0.0/16",
                "protect",
                "protocol = \"tcp\"",
            ),
            policy(
                "in",
                "10.2.0.0/16",
                "10.1.0.0/16",
                "protect",
                "protocol = \"udp\"\ndst_port = 5000",
            ),
        ]
        .concat(),
    );
    let text = rules(&c);
    let outbound = chain(&text, "guard-out");
    let first = position(&outbound, "policy[0] protect\"");
    assert_eq!(
        outbound[first],
        "ip saddr 10.1.0.0/16 ip daddr 10.2.0.0/16 meta l4proto 17 th sport 1024-65535 th dport 5000 counter name \"out-0\" drop comment \"policy[0] protect\""
    );
    assert_eq!(
        outbound[first + 1],
        "ip saddr 10.1.0.0/16 ip daddr 10.2.0.0/16 meta l4proto 17 ip frag-off & 0x1fff != 0 counter name \"out-0\" drop comment \"policy[0] protect: non-first fragments\""
    );
    assert!(outbound.contains(
        &"ip6 saddr fd00:1::/48 ip6 daddr fd00:2::/48 meta l4proto 17 frag frag-off != 0 counter name \"out-1\" drop comment \"policy[1] protect: non-first fragments\""
    ));
    // Without ports the policy's own rule already matches every fragment.
    assert!(
        !outbound
            .iter()
            .any(|l| l.contains("policy[2] protect: non-first"))
    );
    assert!(!text.contains("policy[3] protect: non-first"));
}

#[test]
fn any_address_leaves_only_the_family() {
    let c = gateway(
        "",
        &[
            policy("out", "0.0.0.0/0", "0.0.0.0/0", "protect", ""),
            policy("out", "::/0", "fd00:2::/48", "protect", ""),
            policy("in", "0.0.0.0/0", "10.1.0.0/16", "discard", ""),
        ]
        .concat(),
    );
    let text = rules(&c);
    assert!(text.contains("\t\tmeta nfproto ipv4 counter name \"out-0\" drop"));
    assert!(text.contains("\t\tip6 daddr fd00:2::/48 counter name \"out-1\" drop"));
    assert!(text.contains(
        "\t\tip daddr 10.1.0.0/16 counter name \"in-2\" drop comment \"policy[2] discard\""
    ));
}

#[test]
fn names_nft_could_misread_are_refused_naming_the_field() {
    let mut c = example("gw-gw/esp/gw-a.toml");
    let gw = c.gateway.clone().unwrap();
    let e = ruleset(&GuardDb::of_config(&c), &gw, "eth1\" accept")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("[gateway] port: `eth1\" accept`"), "{e}");
    assert!(ruleset(&GuardDb::of_config(&c), &gw, "eth*").is_err());
    let gw = c.gateway.as_mut().unwrap();
    gw.tun = "tun 0".into();
    let gw = gw.clone();
    let e = ruleset(&GuardDb::of_config(&c), &gw, "eth1")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("[gateway] tun:"), "{e}");
    let mut ok = gw.clone();
    ok.tun = "espo-a.1_b".into();
    assert_eq!(
        ruleset(&GuardDb::of_config(&c), &ok, "eth1.100")
            .unwrap()
            .table,
        "espo-espo-a.1_b"
    );
}

#[test]
fn a_configuration_path_cannot_end_the_header_comment() {
    let mut c = example("gw-gw/esp/gw-a.toml");
    c.path = "/etc/espo/a\ntable inet evil { }\r.toml".into();
    let text = rules(&c);
    assert!(
        text.lines()
            .next()
            .unwrap()
            .ends_with("(from /etc/espo/a?table inet evil { }?.toml)")
    );
    assert!(!text.lines().any(|l| l.starts_with("table inet evil")));
}

#[test]
fn the_rules_hold_no_key_material() {
    for path in ["gw-gw/esp-ah/gw-a.toml", "server-gw/esp/server.toml"] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples")
                .join(path),
        )
        .unwrap();
        let rules = rules(&example(path));
        for key in text.lines().filter(|l| l.contains("key = ")) {
            let hex = key.split('"').nth(1).unwrap();
            assert!(!rules.contains(&hex[..16]), "{path}: a key in the rules");
        }
    }
}

#[test]
fn counters_name_their_policy() {
    assert_eq!(counter_policy("in-2"), Some((Direction::In, 2)));
    assert_eq!(counter_policy("out-10"), Some((Direction::Out, 10)));
    for bad in ["in", "in-", "up-1", "out-x", "", "-1"] {
        assert_eq!(counter_policy(bad), None, "{bad}");
    }
}

#[test]
fn counters_are_read_from_nft_json_and_bad_json_is_an_error() {
    let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "out-0", "table": "espo-espo0", "handle": 5, "packets": 7, "bytes": 420}}, {"counter": {"family": "inet", "name": "in-2", "table": "espo-espo0", "handle": 6, "packets": 3, "bytes": 252}}]}"#;
    let counters = parse_counters(json).unwrap();
    assert_eq!(counters, vec![("out-0".into(), 7), ("in-2".into(), 3)]);
    for bad in [
        "",
        "{",
        "[]",
        r#"{"nftables": 3}"#,
        r#"{"nftables": [{"counter": {"name": "in-1"}}]}"#,
        r#"{"nftables": [{"counter": {"name": 5, "packets": -1}}]}"#,
    ] {
        assert!(parse_counters(bad).is_err(), "{bad}");
    }
    let state = GuardState::Installed { counters };
    assert_eq!(state.dropped(Direction::In), 3);
    assert_eq!(
        state.render("espo-espo0"),
        "guard: table inet espo-espo0 installed (nftables)\n  \
         inbound cleartext dropped: 3 packets (policy[2] 3)\n  \
         outbound cleartext dropped: 7 packets (policy[0] 7)\n"
    );
    // A hub's long database: the policies that dropped anything, and how many did not.
    let many: Vec<(String, u64)> = (0..40)
        .map(|i| (format!("in-{i}"), if i == 7 { 5 } else { 0 }))
        .chain([("out-40".to_string(), 0)])
        .collect();
    assert_eq!(
        GuardState::Installed { counters: many }.render("espo-espo0"),
        "guard: table inet espo-espo0 installed (nftables)\n  \
         inbound cleartext dropped: 5 packets (policy[7] 5, 39 other policies 0)\n  \
         outbound cleartext dropped: 0 packets (policy[40] 0)\n"
    );
    assert!(
        GuardState::NotInstalled
            .render("espo-espo0")
            .starts_with("guard: table inet espo-espo0 is not installed")
    );
}

/// A hub: its SAs to many peers are matched through one set per kind of tunnel packet and
/// one per family for IKE, whatever their number — one lookup per packet in the kernel —
/// and every peer is in them.
#[test]
fn many_peers_share_one_rule_per_kind_of_tunnel_packet() {
    let mut text =
        String::from("[gateway]\ntun = \"espo0\"\nport = \"eth1\"\nlocal = \"192.0.2.1\"\n\n");
    let peers = 300;
    for i in 0..peers {
        let (v6, udp) = (i % 3 == 1, i % 3 == 2);
        let (local, peer) = if v6 {
            (
                "2001:db8::1".to_string(),
                format!("2001:db8:1::{:x}", i + 1),
            )
        } else {
            (
                "192.0.2.1".to_string(),
                format!("198.18.{}.{}", i / 256, i % 256),
            )
        };
        let encap = if udp {
            "udp_encap = { src_port = 4500, dst_port = 4500 }\n"
        } else {
            ""
        };
        let site = |n: usize| {
            if v6 {
                format!("fd00:{n:x}::/48")
            } else {
                format!("10.{}.{}.0/24", 128 + n / 256, n % 256)
            }
        };
        let local_site = if v6 { "fd00:ffff::/48" } else { "10.1.0.0/16" };
        let _ = write!(
            text,
            "[[sa]]\nspi = {}\nprotocol = \"esp\"\nsrc = \"{local}\"\ndst = \"{peer}\"\n\
             encryption = \"aes-gcm-128\"\nkey = \"{}{:08x}\"\n{encap}\n\
             [[sa]]\nspi = {}\nprotocol = \"esp\"\nsrc = \"{peer}\"\ndst = \"{local}\"\n\
             encryption = \"aes-gcm-128\"\nkey = \"{}{:08x}\"\n{encap}\n\
             [[policy]]\ndir = \"out\"\nsrc = \"{local_site}\"\ndst = \"{}\"\naction = \"protect\"\nsa = [{}]\n\n\
             [[policy]]\ndir = \"in\"\nsrc = \"{}\"\ndst = \"{local_site}\"\naction = \"protect\"\nsa = [{}]\n\n",
            0x30_0000 + i,
            &KEY_20[..32],
            2 * i,
            0x20_0000 + i,
            &KEY_20[..32],
            2 * i + 1,
            site(i),
            0x30_0000 + i,
            site(i),
            0x20_0000 + i,
        );
    }
    let text = rules(&parse(&text));
    let inbound = chain(&text, "cleartext-in");
    let outbound = chain(&text, "guard-out");
    for (name, lines) in [("cleartext-in", &inbound), ("guard-out", &outbound)] {
        let tunnel: Vec<_> = lines.iter().filter(|l| l.ends_with("\"tunnel\"")).collect();
        let ike: Vec<_> = lines.iter().filter(|l| l.ends_with("\"IKE\"")).collect();
        // ESP over IPv4, ESP over IPv6, ESP in UDP over IPv4; IKE over each family.
        assert_eq!(tunnel.len(), 3, "{name}: {tunnel:#?}");
        assert_eq!(ike.len(), 2, "{name}: {ike:#?}");
        assert!(
            tunnel.iter().chain(&ike).all(|l| l.contains(" { ")),
            "{name}"
        );
    }
    // Every peer, in the direction's own terms: what espo sends leaves from its port;
    // what arrives may come from any.
    assert!(outbound.iter().any(|l| l.starts_with(
        "ip saddr . ip daddr . udp sport . udp dport { 192.0.2.1 . 198.18.0.2 . 4500 . 4500, "
    )));
    assert!(inbound.iter().any(|l| {
        l.starts_with("ip saddr . ip daddr . udp dport { 198.18.0.2 . 192.0.2.1 . 4500, ")
    }));
    for i in (0..peers).step_by(3) {
        let peer = format!("198.18.{}.{}", i / 256, i % 256);
        let out = format!("192.0.2.1 . {peer} . 50");
        let inn = format!("{peer} . 192.0.2.1 . 50");
        assert!(
            outbound.iter().any(|l| l.contains(&format!("{{ {out}, "))
                || l.contains(&format!(" {out},"))
                || l.contains(&format!(" {out} }}"))),
            "{out}"
        );
        assert!(
            inbound.iter().any(|l| l.contains(&format!("{{ {inn}, "))
                || l.contains(&format!(" {inn},"))
                || l.contains(&format!(" {inn} }}"))),
            "{inn}"
        );
    }
    let v6_peer = "2001:db8:1::2";
    assert!(
        outbound
            .iter()
            .any(|l| l.starts_with("ip6 saddr . ip6 daddr . ip6 nexthdr {")
                && l.contains(&format!("2001:db8::1 . {v6_peer} . 50")))
    );
    assert!(
        inbound
            .iter()
            .any(|l| l.starts_with("ip6 saddr . ip6 daddr {")
                && l.contains(&format!("{v6_peer} . 2001:db8::1"))
                && l.contains("udp dport { 500, 4500 }"))
    );
    // The policies' own rules keep their order after the tunnel's.
    let first_policy = position(&outbound, "policy[0] protect");
    assert!(
        outbound[..first_policy]
            .iter()
            .filter(|l| l.ends_with("\"tunnel\""))
            .count()
            == 3
    );
}
