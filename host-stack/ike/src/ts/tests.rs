use super::*;
use proptest::prelude::*;

fn r(s: &str) -> TsRange {
    match s.parse::<TsSpec>().unwrap() {
        TsSpec::Range(r) => r,
        TsSpec::Dynamic { .. } => panic!("dynamic"),
    }
}

#[test]
fn strongswan_syntax() {
    let t = r("10.1.0.0/16[tcp/443]");
    assert_eq!(t.start, "10.1.0.0".parse::<IpAddr>().unwrap());
    assert_eq!(t.end, "10.1.255.255".parse::<IpAddr>().unwrap());
    assert_eq!((t.protocol, t.start_port, t.end_port), (6, 443, 443));
    assert_eq!(r("10.0.0.1").prefixes().len(), 1);
    assert_eq!(r("2001:db8::/32[udp/1024-65535]").end_port, 65535);
    assert_eq!(r("0.0.0.0/0[17/%any]").protocol, 17);
    assert_eq!(r("10.0.0.0/8[icmp]").protocol, 1);
    assert_eq!(r("10.0.0.0/8[udp/domain]").start_port, 53);
    assert_eq!(
        "dynamic[tcp/22]".parse::<TsSpec>().unwrap(),
        TsSpec::Dynamic {
            protocol: 6,
            start_port: 22,
            end_port: 22
        }
    );
    let range = r("10.0.0.1-10.0.0.9");
    assert_eq!(range.prefixes().len(), 4); // .1/32 .2/31 .4/30 .8/31
}

#[test]
fn bad_selectors_say_what_is_wrong() {
    for (bad, says) in [
        ("10.1.0.1/16", "host bits"),
        ("10.0.0.9-10.0.0.1", "lower to a higher"),
        ("10.0.0.1-2001:db8::1", "one family"),
        ("10.0.0.0/8[tcp/99999]", "not a port"),
        ("10.0.0.0/8[bogus]", "unknown protocol"),
        ("10.0.0.0/8[tcp/80", "closing"),
        ("10.0.0.0/8[/80]", "need a protocol"),
        ("10.0.0.0/8[tcp/90-80]", "backwards"),
        ("gateway", "not a prefix"),
    ] {
        let e = bad.parse::<TsSpec>().unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn display_round_trips() {
    for s in [
        "10.1.0.0/16",
        "10.1.0.0/16[tcp/443]",
        "10.0.0.1-10.0.0.9[udp/1000-2000]",
        "2001:db8::/32[icmpv6]",
        "dynamic",
        "dynamic[tcp/22]",
    ] {
        let t: TsSpec = s.parse().unwrap();
        assert_eq!(t.to_string(), s);
        assert_eq!(t.to_string().parse::<TsSpec>().unwrap(), t);
    }
}

#[test]
fn narrowing_follows_rfc7296_2_9() {
    // The responder allows 10.2.0.0/16; the initiator asks for 10.0.0.0/8: it gets /16.
    let configured = [r("10.2.0.0/16")];
    let got = narrow(&configured, &[r("10.0.0.0/8")]);
    assert_eq!(got, vec![r("10.2.0.0/16")]);
    // A more specific first selector (the packet that triggered it) narrows to it.
    let got = narrow(&configured, &[r("10.2.3.4[tcp/80]"), r("10.0.0.0/8")]);
    assert_eq!(got, vec![r("10.2.3.4[tcp/80]"), r("10.2.0.0/16")]);
    // Nothing in common: TS_UNACCEPTABLE.
    assert!(narrow(&configured, &[r("192.168.0.0/16")]).is_empty());
    assert!(narrow(&configured, &[r("2001:db8::/32")]).is_empty());
    assert!(narrow(&[r("10.0.0.0/8[tcp]")], &[r("10.0.0.0/8[udp]")]).is_empty());
    // The initiator accepts narrowing, not widening.
    assert!(within(&[r("10.0.0.0/8")], &[r("10.2.0.0/16")]));
    assert!(!within(&[r("10.2.0.0/16")], &[r("10.0.0.0/8")]));
    assert!(!within(&[r("10.2.0.0/16")], &[]));
}

#[test]
fn dynamic_resolves_to_the_ike_address() {
    let d: TsSpec = "dynamic".parse().unwrap();
    let own: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(d.resolve(own), TsRange::host(own));
}

fn arb_range() -> impl Strategy<Value = TsRange> {
    (
        any::<u32>(),
        any::<u32>(),
        0u8..3,
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|(a, b, p, x, y)| {
            let (lo, hi) = (a.min(b), a.max(b));
            let protocol = [0, 6, 17][p as usize];
            let (sp, ep) = if protocol == 0 {
                (0, u16::MAX)
            } else {
                (x.min(y), x.max(y))
            };
            TsRange {
                protocol,
                start_port: sp,
                end_port: ep,
                start: IpAddr::V4(Ipv4Addr::from(lo)),
                end: IpAddr::V4(Ipv4Addr::from(hi)),
            }
        })
}

proptest! {
    #[test]
    fn prefixes_cover_exactly(a in any::<u128>(), b in any::<u128>(), v4 in any::<bool>()) {
        let (lo, hi) = if v4 { ((a as u32).min(b as u32) as u128, (a as u32).max(b as u32) as u128) } else { (a.min(b), a.max(b)) };
        let t = TsRange { start: from_int(v4, lo), end: from_int(v4, hi), ..TsRange::any(v4) };
        let p = t.prefixes();
        let most = if v4 { 62 } else { 254 };
        prop_assert!(p.len() <= most);
        // Contiguous, in order, from start to end.
        let mut next = lo;
        for c in &p {
            let r = TsRange::from_cidr(*c);
            prop_assert_eq!(to_int(r.start), next);
            next = to_int(r.end).wrapping_add(1);
            if to_int(r.end) == hi { break; }
        }
        prop_assert_eq!(to_int(TsRange::from_cidr(*p.last().unwrap()).end), hi);
    }

    #[test]
    fn intersection_is_within_both(a in arb_range(), b in arb_range()) {
        match a.intersect(&b) {
            Some(i) => {
                prop_assert!(i.is_valid());
                prop_assert!(a.contains(&i) && b.contains(&i));
                prop_assert_eq!(b.intersect(&a), Some(i));
            }
            None => {
                // No address or no port or protocol in common.
                let addr = to_int(a.start).max(to_int(b.start)) <= to_int(a.end).min(to_int(b.end));
                let port = a.start_port.max(b.start_port) <= a.end_port.min(b.end_port);
                let proto = a.protocol == 0 || b.protocol == 0 || a.protocol == b.protocol;
                prop_assert!(!(addr && port && proto));
            }
        }
    }

    #[test]
    fn narrowed_selectors_are_acceptable_to_the_initiator(
        c in proptest::collection::vec(arb_range(), 1..4),
        o in proptest::collection::vec(arb_range(), 1..4),
    ) {
        let n = narrow(&c, &o);
        if !n.is_empty() {
            prop_assert!(within(&o, &n));
            prop_assert!(within(&c, &n));
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(s in "\\PC{0,40}") {
        let _ = s.parse::<TsSpec>();
    }
}
