//! Renewals under traffic: CHILD_SAs rekeyed every 5 s (and IKE SAs every 30 s) by either
//! end, with and without PFS, in software and on the card model, against strongSwan and
//! between two espo gateways, while numbered UDP datagrams cross the tunnel both ways and a
//! TCP stream crosses it, each checked at the receiver. Nothing may be lost, duplicated or
//! corrupted, and espo's counters of the drops a renewal can cause stay at zero.
//!
//! Each test runs `ESPO_REKEY_SECS` seconds (120 by default, as many renewals as fit).
//! The soaks (ignored by default; `tests/soak.sh` runs them, `ESPO_SOAK_SECS` long, 600 by
//! default) also watch the outside for an (SPI, sequence number) pair seen twice and
//! espo's memory.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::ike::{
    Pair, Swan, child_installed, espo_config, mirror_for_b, pair, psk_connection, swan_or_skip,
    swan_psk_conf, wait_for,
};
use super::lab::{self, Gateway, Lab, lab_or_skip};
use super::{drops, ip, traffic};

/// How long each test keeps its traffic and renewals going.
fn rekey_secs() -> u64 {
    std::env::var("ESPO_REKEY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120)
}

/// What crossed the tunnel while it was renewed.
struct Delivered {
    udp_ab: traffic::Stream,
    udp_ba: traffic::Stream,
    tcp: traffic::TcpStreamed,
}

/// For a soak: the outside interface to watch for (SPI, sequence number) pairs seen twice,
/// and the espo process whose memory is sampled.
struct Watch<'a> {
    ns: &'a str,
    iface: &'a str,
    pid: u32,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Numbered UDP datagrams both ways (400 bytes every 2 ms each way) and a TCP stream from a
/// to b (1 MB/s) for `secs` seconds; then every datagram must have arrived once and intact,
/// and TCP every byte in order. With a `watch`: no (SPI, sequence number) pair twice on
/// the outside, and espo's memory flat (sampled every 10 s; after the first minute it may
/// not grow by more than 4 MiB).
fn under_traffic(
    lab: &Lab,
    a: (&str, IpAddr),
    b: (&str, IpAddr),
    secs: u64,
    watch: Option<Watch<'_>>,
    context: &dyn Fn() -> String,
) -> Delivered {
    let stop = AtomicBool::new(false);
    let gap = Duration::from_millis(2);
    let seen = watch
        .as_ref()
        .map(|w| super::capture::EspSeen::start(w.ns, w.iface));
    let mut rss = Vec::new();
    let d = std::thread::scope(|s| {
        let ab = s.spawn(|| {
            traffic::udp_stream_from(lab, a.0, Some(a.1), b.0, b.1, 7011, 400, gap, &stop)
        });
        let ba = s.spawn(|| {
            traffic::udp_stream_from(lab, b.0, Some(b.1), a.0, a.1, 7012, 400, gap, &stop)
        });
        let tcp =
            s.spawn(|| traffic::tcp_stream(lab, a.0, Some(a.1), b.0, b.1, 7013, 1_000_000, &stop));
        let start = std::time::Instant::now();
        let end = Duration::from_secs(secs);
        while start.elapsed() < end {
            std::thread::sleep(Duration::from_secs(10).min(end.saturating_sub(start.elapsed())));
            if let Some(w) = &watch {
                rss.push(rss_kib(w.pid));
                eprintln!(
                    "{:4} s: espo RSS {} KiB",
                    start.elapsed().as_secs(),
                    rss[rss.len() - 1]
                );
            }
        }
        stop.store(true, Ordering::SeqCst);
        Delivered {
            udp_ab: ab.join().expect("udp a to b"),
            udp_ba: ba.join().expect("udp b to a"),
            tcp: tcp.join().expect("tcp a to b"),
        }
    });
    let intact = |st: &traffic::Stream| {
        st.corrupted == 0 && st.duplicated().is_empty() && st.lost().is_empty()
    };
    if !intact(&d.udp_ab) || !intact(&d.udp_ba) || !d.tcp.intact || d.tcp.sent != d.tcp.received {
        // What the gateways and the kernels saw, before the assertion says what went wrong.
        eprintln!("{}", context());
        for (name, ns) in [("a", a.0), ("b", b.0)] {
            eprintln!("{name}'s kernel, UDP: {}", traffic::udp_errors(lab, ns));
            eprintln!("{name}'s interfaces:\n{}", lab.ip(ns, &["-s", "link"]));
        }
    }
    for (name, st) in [("a to b", &d.udp_ab), ("b to a", &d.udp_ba)] {
        eprintln!(
            "udp {name}: {} sent, {} received, {} lost, {} duplicated, {} corrupted",
            st.sent,
            st.received.len(),
            st.lost().len(),
            st.duplicated().len(),
            st.corrupted
        );
        assert!(st.sent > secs * 300, "udp {name}: only {} sent", st.sent);
        assert_eq!(st.corrupted, 0, "udp {name}: corrupted");
        assert!(
            st.duplicated().is_empty(),
            "udp {name}: {:?}",
            st.duplicated()
        );
        assert!(st.lost().is_empty(), "udp {name}: lost {:?}", st.lost());
    }
    eprintln!(
        "tcp a to b: {} sent, {} received, intact {}",
        d.tcp.sent, d.tcp.received, d.tcp.intact
    );
    assert!(d.tcp.intact, "tcp content");
    assert_eq!(d.tcp.sent, d.tcp.received, "tcp bytes");
    assert!(d.tcp.sent > secs * 500_000, "tcp: only {} sent", d.tcp.sent);
    if let Some(seen) = seen {
        let (packets, twice) = seen.finish();
        eprintln!(
            "outside: {packets} ESP packets, {} (SPI, sequence number) pairs seen twice",
            twice.len()
        );
        assert!(packets > secs * 500, "only {packets} ESP packets seen");
        assert!(
            twice.is_empty(),
            "seen twice: {:x?}",
            &twice[..twice.len().min(20)]
        );
        // Memory after the first minute (or the first sample) against the end.
        let base = rss.get(6).or(rss.first()).copied().unwrap_or(0);
        let last = rss.last().copied().unwrap_or(0);
        assert!(
            last <= base + 4096,
            "espo's RSS grew from {base} to {last} KiB: {rss:?}"
        );
    }
    d
}

/// espo lost nothing to its renewals: no drop for a reason a renewal can cause, at least
/// `renewals` renewals of `connection`, and none of them dropped a packet.
fn espo_lost_nothing(lab: &Lab, gw: &Gateway, connection: &str, renewals: u64) -> String {
    let status = lab.status(gw);
    for reason in ["unknown-spi", "expired", "policy-mismatch"] {
        assert_eq!(drops(&status, reason), 0, "{reason}: {status}");
    }
    let line = status
        .lines()
        .find(|l| l.contains(&format!("rekeys of {connection}:")))
        .unwrap_or_else(|| panic!("no rekey line: {status}"));
    let count: u64 = line
        .split(": ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        count >= renewals,
        "{count} renewals, {renewals} expected: {line}"
    );
    assert!(line.ends_with(", 0 packets dropped during them"), "{line}");
    if let Some(summary) = status
        .lines()
        .find(|l| l.contains("requests retransmitted"))
    {
        eprintln!("espo pid {}: {}", gw.pid, summary.trim());
    }
    status
}

/// Every SA of a gateway on the card model runs on the card (a renewal's retiring inbound
/// SA included), once a fresh one has been placed.
fn every_sa_on_the_card(lab: &Lab, gw: &Gateway, status: &str) {
    let all_on_card = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("card: ESPO-1 model, mode offload, "))
            .map(|l| l.split_whitespace().collect::<Vec<&str>>())
            .is_some_and(|w| w.len() > 3 && w[0] == w[2] && w[0] != "0")
    };
    if !all_on_card(status) {
        let status = lab.status_until(gw, all_on_card);
        assert!(all_on_card(&status), "{status}");
    }
}

/// The SPIs (in, out) of the one CHILD_SA espo holds beside its one IKE SA, when no
/// renewal is under way.
fn one_pair(lab: &Lab, gw: &Gateway) -> Option<(String, String)> {
    let (_, list, _) = lab.espo(gw, &["ike", "list"]);
    let children: Vec<&str> = list
        .lines()
        .filter(|l| l.contains("CHILD_SA net"))
        .collect();
    let ikes = list.lines().filter(|l| l.contains("IKE_SA ")).count();
    if children.len() != 1 || ikes != 1 || list.contains("going") {
        return None;
    }
    let w: Vec<&str> = children[0].split_whitespace().collect();
    Some((w[3].to_string(), w[5].trim_end_matches(',').to_string()))
}

/// One CHILD_SA left at espo once a renewal under way is over.
fn one_pair_left(lab: &Lab, gw: &Gateway) {
    wait_for("one CHILD_SA left", Duration::from_secs(10), || {
        one_pair(lab, gw).map(|(i, o)| format!("{i} {o}"))
    });
}

/// espo and strongSwan, with espo's (`espo_child`, `espo_ike`) and strongSwan's
/// (`swan_child`, `swan_ike`) extra settings; `espo_starts`: espo initiates the tunnel.
struct SwanRun {
    espo_child: &'static str,
    espo_ike: &'static str,
    swan_child: &'static str,
    swan_ike: &'static str,
    esp_proposal: &'static str,
    espo_starts: bool,
    /// Seconds between CHILD_SA renewals and between IKE SA renewals.
    child_every: u64,
    ike_every: u64,
    /// How long; with a watch on the outside and espo's memory (a soak).
    secs: u64,
    soak: bool,
    /// espo's engine: `software` or `model` (the card's port then owns espo's side of the
    /// link).
    engine: &'static str,
}

fn against_strongswan(tag: &str, run: SwanRun) {
    let mut lab = lab_or_skip!(tag);
    if !swan_or_skip() {
        return;
    }
    let secs = run.secs;
    let p: Pair = if run.engine == "model" {
        let e = lab.ns("e");
        let s = lab.ns("s");
        let (eo, so) = lab.link(&e, "eo", &s, "so");
        lab.sysctl(&e, &format!("net.ipv6.conf.{eo}.disable_ipv6"), "1");
        lab.addr(&s, &so, "192.0.2.2/24");
        lab.ip(&s, &["addr", "add", "10.2.0.1/32", "dev", "lo"]);
        for ns in [&e, &s] {
            lab.sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
        }
        Pair {
            espo_ns: e,
            swan_ns: s,
            espo_out: eo,
        }
    } else {
        pair(&mut lab)
    };
    let (espo_start, swan_start) = if run.espo_starts {
        ("start", "none")
    } else {
        ("none", "none")
    };
    let swan_conf = swan_psk_conf(swan_start)
        .replace(
            "    proposals = aes128gcm16-prfsha256-x25519",
            &format!(
                "    proposals = aes128gcm16-prfsha256-x25519\n{}",
                run.swan_ike
            ),
        )
        .replace(
            "        esp_proposals = aes128gcm16",
            &format!(
                "        esp_proposals = {}\n{}",
                run.esp_proposal, run.swan_child
            ),
        );
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_conf);
    let conf = espo_config(&p.espo_out, &lab.name("t"), &psk_connection(espo_start))
        .replace("psk = ", &format!("{}psk = ", run.espo_ike))
        .replace(
            "esp_proposals = [\"aes128gcm16\"]",
            &format!(
                "esp_proposals = [\"{}\"]\n{}",
                run.esp_proposal, run.espo_child
            ),
        )
        .replace(
            "engine = \"software\"",
            &format!("engine = \"{}\"", run.engine),
        );
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    if !run.espo_starts {
        let (ok, out) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "20"]);
        assert!(ok, "{out}");
    }
    wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    let watch = run.soak.then(|| Watch {
        ns: &p.espo_ns,
        iface: &p.espo_out,
        pid: gw.pid,
    });
    let context = || {
        format!(
            "espo's status:\n{}\nespo's log:\n{}\nstrongSwan's log:\n{}",
            lab.status(&gw),
            lab.log("espo"),
            swan.log()
        )
    };
    under_traffic(
        &lab,
        (&p.espo_ns, ip("10.1.0.1")),
        (&p.swan_ns, ip("10.2.0.1")),
        secs,
        watch,
        &context,
    );
    // All renewals but the first and the last one fit.
    let renewals = (secs / run.child_every).saturating_sub(2);
    let status = espo_lost_nothing(&lab, &gw, "swan", renewals);
    if run.engine == "model" {
        every_sa_on_the_card(&lab, &gw, &status);
    }
    let log = lab.log("espo");
    let ike_rekeys = log.matches("rekeyed: now").count() as u64;
    assert!(
        ike_rekeys + 1 >= secs / run.ike_every,
        "{ike_rekeys} IKE SA rekeys: {log}"
    );
    one_pair_left(&lab, &gw);
    let sas = swan.sas();
    assert_eq!(
        sas.matches("INSTALLED").count(),
        1,
        "strongSwan holds no stale SA: {sas}"
    );
}

#[test]
fn espo_renews_every_5_s_against_strongswan_and_nothing_is_lost() {
    against_strongswan(
        "kx1",
        SwanRun {
            espo_child: "rekey_time = 5\nlife_time = 15\nrand_time = 0",
            espo_ike: "rekey_time = 30\nover_time = 30\nrand_time = 0\n",
            swan_child: "",
            swan_ike: "",
            esp_proposal: "aes128gcm16",
            espo_starts: true,
            child_every: 5,
            ike_every: 30,
            secs: rekey_secs(),
            soak: false,
            engine: "software",
        },
    );
}

#[test]
fn strongswan_renews_every_5_s_with_pfs_and_espo_loses_nothing() {
    against_strongswan(
        "kx2",
        SwanRun {
            espo_child: "",
            espo_ike: "",
            swan_child: "        rekey_time = 5s\n        life_time = 30s\n        rand_time = 0s",
            swan_ike: "    rekey_time = 30s\n    over_time = 30s\n    rand_time = 0s",
            esp_proposal: "aes128gcm16-x25519",
            espo_starts: false,
            child_every: 5,
            ike_every: 30,
            secs: rekey_secs(),
            soak: false,
            engine: "software",
        },
    );
}

#[test]
fn espo_on_the_card_model_renews_every_5_s_against_strongswan_and_nothing_is_lost() {
    against_strongswan(
        "kx6",
        SwanRun {
            espo_child: "rekey_time = 5\nlife_time = 15\nrand_time = 0",
            espo_ike: "",
            swan_child: "",
            swan_ike: "",
            esp_proposal: "aes128gcm16",
            espo_starts: true,
            child_every: 5,
            ike_every: 100_000,
            secs: rekey_secs(),
            soak: false,
            engine: "model",
        },
    );
}

/// Two espo gateways, b on `b_engine`, with extra settings for a's and b's CHILD_SA.
/// Two espo gateways, b on `b_engine`, with extra settings for a's connection (`a_conn`)
/// and a's and b's CHILD_SA (`a_child`, `b_child`), renewals every `every` seconds, for
/// `secs` seconds (a soak: with a watch on a's outside and memory). Returns the renewals
/// expected and the collisions seen.
#[allow(clippy::too_many_arguments)]
fn between_espo_gateways_for(
    tag: &str,
    b_engine: &str,
    a_conn: &str,
    a_child: &str,
    b_child: &str,
    esp_proposal: &str,
    every: u64,
    secs: u64,
    soak: bool,
) -> (u64, u64) {
    let mut lab = match lab::skip_reason() {
        Some(why) => {
            eprintln!("skipped: {why}");
            return (0, 0);
        }
        None => Lab::new(tag),
    };
    let a = lab.ns("a");
    let b = lab.ns("b");
    let (ao, bo) = lab.link(&a, "ao", &b, "bo");
    lab.addr(&a, &ao, "192.0.2.1/24");
    if b_engine == "model" {
        lab.sysctl(&b, &format!("net.ipv6.conf.{bo}.disable_ipv6"), "1");
    } else {
        lab.addr(&b, &bo, "192.0.2.2/24");
    }
    let child = |c: String, extra: &str| {
        c.replace(
            "esp_proposals = [\"aes128gcm16\"]",
            &format!("esp_proposals = [\"{esp_proposal}\"]\n{extra}"),
        )
    };
    let gw_a = lab.espo_run(
        &a,
        "a",
        &espo_config(
            &ao,
            &lab.name("ta"),
            &child(psk_connection("start"), a_child),
        )
        .replace("psk = ", &format!("{a_conn}psk = ")),
    );
    let b_conf = mirror_for_b(espo_config(
        &bo,
        &lab.name("tb"),
        &child(psk_connection("none"), b_child),
    ))
    .replace("engine = \"software\"", &format!("engine = \"{b_engine}\""));
    let gw_b = lab.espo_run(&b, "b", &b_conf);
    wait_for("a's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw_a)
    });
    wait_for("b's CHILD_SA", Duration::from_secs(5), || {
        child_installed(&lab, &gw_b)
    });
    let watch = soak.then(|| Watch {
        ns: &a,
        iface: &ao,
        pid: gw_a.pid,
    });
    let context = || {
        format!(
            "a's status:\n{}\nb's status:\n{}\na's log:\n{}\nb's log:\n{}",
            lab.status(&gw_a),
            lab.status(&gw_b),
            lab.log("a"),
            lab.log("b")
        )
    };
    under_traffic(
        &lab,
        (&a, ip("10.1.0.1")),
        (&b, ip("10.2.0.1")),
        secs,
        watch,
        &context,
    );
    let renewals = (secs / every).saturating_sub(2);
    espo_lost_nothing(&lab, &gw_a, "swan", renewals);
    let status_b = espo_lost_nothing(&lab, &gw_b, "swan", renewals);
    if b_engine == "model" {
        every_sa_on_the_card(&lab, &gw_b, &status_b);
    }
    // Renewals go on: the same pair on both ends between two of them.
    wait_for(
        "one and the same pair on both ends",
        Duration::from_secs(15),
        || {
            let (a_in, a_out) = one_pair(&lab, &gw_a)?;
            let (b_in, b_out) = one_pair(&lab, &gw_b)?;
            (a_in == b_out && a_out == b_in).then_some(a_in)
        },
    );
    let collisions = lab.log("a").matches("rekey collision").count()
        + lab.log("b").matches("rekey collision").count();
    if a_conn.contains("rekey_time") {
        let ike_rekeys = lab.log("a").matches("rekeyed: now").count() as u64;
        assert!(ike_rekeys + 1 >= secs / 60, "{ike_rekeys} IKE SA rekeys");
    }
    if a_conn.contains("reauth_time") {
        let reauths = lab.log("a").matches("reauthenticated: now").count() as u64;
        assert!(reauths + 2 >= secs / every, "{reauths} reauthentications");
    }
    (renewals, collisions as u64)
}

/// [`between_espo_gateways_for`] with renewals every 5 s for `ESPO_REKEY_SECS`.
fn between_espo_gateways(
    tag: &str,
    b_engine: &str,
    a_child: &str,
    b_child: &str,
    esp_proposal: &str,
) -> (u64, u64) {
    between_espo_gateways_for(
        tag,
        b_engine,
        "",
        a_child,
        b_child,
        esp_proposal,
        5,
        rekey_secs(),
        false,
    )
}

#[test]
fn the_card_end_renews_every_5_s_with_pfs_and_nothing_is_lost() {
    between_espo_gateways(
        "kx3",
        "model",
        "",
        "rekey_time = 5\nlife_time = 15\nrand_time = 0",
        "aes128gcm16-x25519",
    );
}

#[test]
fn both_ends_renewing_at_the_same_moments_lose_nothing_and_keep_one_pair() {
    let (renewals, collisions) = between_espo_gateways(
        "kx4",
        "software",
        "rekey_time = 5\nlife_time = 15\nrand_time = 0",
        "rekey_time = 5\nlife_time = 15\nrand_time = 0",
        "aes128gcm16",
    );
    if renewals > 0 {
        // Whether two requests cross depends on the two timers firing within a round trip
        // of each other (0 to 2 per run measured here); the in-memory tests provoke
        // collisions for certain. What is checked here holds either way: nothing lost, one
        // pair left.
        eprintln!("{collisions} rekey collisions resolved");
    }
}

#[test]
fn reauthentication_every_10_s_under_traffic_loses_nothing() {
    between_espo_gateways_for(
        "kx5",
        "model",
        "reauth_time = 10\n",
        "",
        "",
        "aes128gcm16",
        10,
        rekey_secs().min(60),
        false,
    );
}

/// How long a soak runs (`ESPO_SOAK_SECS`, 600 by default).
fn soak_secs() -> u64 {
    std::env::var("ESPO_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600)
}

/// The soak (tests/soak.sh): espo and strongSwan, espo renewing the CHILD_SA every 10 s and
/// the IKE SA every 60 s under traffic.
#[test]
#[ignore = "a 10-minute soak: tests/soak.sh"]
fn soak_espo_and_strongswan() {
    against_strongswan(
        "ks1",
        SwanRun {
            espo_child: "rekey_time = 10\nlife_time = 30\nrand_time = 0",
            espo_ike: "rekey_time = 60\nover_time = 60\nrand_time = 0\n",
            swan_child: "",
            swan_ike: "",
            esp_proposal: "aes128gcm16",
            espo_starts: true,
            child_every: 10,
            ike_every: 60,
            secs: soak_secs(),
            soak: true,
            engine: "software",
        },
    );
}

/// The soak between two espo gateways, b on the card model: a renews the CHILD_SA every
/// 10 s and the IKE SA every 60 s.
#[test]
#[ignore = "a 10-minute soak: tests/soak.sh"]
fn soak_two_espo_gateways_one_on_the_card() {
    between_espo_gateways_for(
        "ks2",
        "model",
        "rekey_time = 60\nover_time = 60\nrand_time = 0\n",
        "rekey_time = 10\nlife_time = 30\nrand_time = 0",
        "",
        "aes128gcm16",
        10,
        soak_secs(),
        true,
    );
}
