//! `espo run` with the card model (`engine = "model"`) on one end: the card's port on an
//! interface without an address, ARP answered and the next hop resolved by espo, traffic
//! to a gateway on the software engine. The gateway-to-gateway test runs three times with
//! one body: with the model in-process, with the model served by `espo card serve` in its
//! own process (`engine = "vfio-user"`, its port bridged by espo), and served with its
//! port attached to the interface by the server — the card's port its own, as a card on
//! the bus has it (`engine = "vfio"`): espo opens no socket, ARP, neighbour discovery and
//! every frame pass through the card.

use super::lab::{self, lab_or_skip};
use super::{
    assert_spread_over_workers, capture, drops, ip, parallel_tcp_transfers, pmtu, stat, topology,
    traffic,
};

/// A counter in the port line of espo status (`arp answered 3`, `malformed arp 0`).
fn port_counter(status: &str, name: &str) -> u64 {
    status
        .lines()
        .filter(|l| l.starts_with("port ") || l.starts_with("  malformed"))
        .flat_map(|l| l.split([';', ',', ':']))
        .find_map(|part| part.trim().strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{name}` in {status}"))
}

/// A count espo status gives on a line of its own (`what: N`); 0 when it gives none.
fn count(status: &str, what: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix(what)?.strip_prefix(": "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Where an SA runs, from the SA table of espo status.
fn runs_on(status: &str, dir: &str, spi: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(dir) && l.contains(spi))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no {dir} SA {spi} in {status}"))
        .to_owned()
}

/// An ARP request broadcast from `mac`, its fields broken by `damage`.
fn arp_request(mac: [u8; 6], damage: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 2]);
    f.resize(60, 0);
    damage(&mut f);
    f
}

/// Where gw-b's card is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardAt {
    /// The model in espo's process.
    InProcess,
    /// The model served by `espo card serve`, reached over vfio-user.
    Served,
    /// The model served by `espo card serve --port IFACE`: the card's port is its own.
    ServedOwnPort,
}

#[test]
fn gateway_to_gateway_with_one_end_on_the_card_model() {
    let lab = lab_or_skip!("ggm");
    gateway_to_gateway_on_the_card(lab, CardAt::InProcess);
}

/// gw-b on the card model with a TUN device without offloads: no coalescer runs, so every
/// packet the card decapsulates — the TCP flow's segments too — is written to the TUN
/// device straight from the card's buffer, and every packet read arrives alone, straight
/// into one. The transfers are checked byte for byte at the far end.
#[test]
fn without_tun_offloads_the_card_gateway_copies_no_packet_in_or_out() {
    let mut lab = lab_or_skip!("ggn");
    let t = topology::gateway_to_gateway_card(&mut lab);
    let _a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out),
    );
    let gw_b = lab::set_gateway_field(
        &lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out),
        "tun_offload",
        "false",
    );
    let b = lab.espo_run(&t.right, "right", &gw_b);
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 20, 1000),
        20
    );
    traffic::tcp_transfer(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 1_000_000);
    traffic::tcp_transfer(&lab, &t.right_host, &t.left_host, ip("10.1.0.2"), 500_000);
    let status = lab.status(&b);
    let received = stat(&status, "inbound", "received");
    let written = count(&status, "packets written straight from the card's buffers");
    // All but a batch's packets the card gave to the software half, if any.
    assert!(written > 700 && written * 10 >= received * 9, "{status}");
    assert_eq!(stat(&status, "inbound", "dropped"), 0, "{status}");
    let read = count(&status, "packets read straight into the card's buffers");
    assert!(read > 300, "{status}");
    assert_eq!(
        count(&status, "segments written straight into the card's buffers"),
        0,
        "no super-packets without offloads: {status}"
    );
}

#[test]
fn gateway_to_gateway_with_one_end_on_a_card_served_over_vfio_user() {
    let lab = lab_or_skip!("ggv");
    gateway_to_gateway_on_the_card(lab, CardAt::Served);
}

#[test]
fn gateway_to_gateway_with_one_end_on_a_card_whose_port_is_its_own() {
    let lab = lab_or_skip!("ggo");
    gateway_to_gateway_on_the_card(lab, CardAt::ServedOwnPort);
}

/// gw-a on the software engine, gw-b on the card (in-process or served): UDP and TCP both
/// ways with content checked, only ESP on the wire, the card's replay window, malformed
/// ARP and ND, keys never shown, every packet accounted for at the end.
fn gateway_to_gateway_on_the_card(mut lab: lab::Lab, card: CardAt) {
    let t = topology::gateway_to_gateway_card(&mut lab);
    let a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out),
    );
    let (gw_b, engine, described) = match card {
        CardAt::InProcess => (
            lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out),
            "model",
            "ESPO-1 model",
        ),
        CardAt::Served => {
            let (socket, _) = lab.card_server("right");
            let gw_b = lab::example("gw-gw/esp-vfio-user/gw-b.toml", &t.right_out).replace(
                "socket = \"/run/espo-card.sock\"",
                &format!("socket = \"{}\"", socket.display()),
            );
            (gw_b, "vfio-user", "ESPO-1 served over vfio-user")
        }
        CardAt::ServedOwnPort => {
            let socket = lab.card_server_on(&t.right, "right", &t.right_out);
            let gw_b = lab::example("gw-gw/esp-vfio-user/gw-b.toml", &t.right_out)
                .replace(
                    "socket = \"/run/espo-card.sock\"",
                    &format!("socket = \"{}\"", socket.display()),
                )
                .replace(&format!("port = \"{}\"\n", t.right_out), "");
            assert!(!gw_b.contains("\nport = "), "{gw_b}");
            (gw_b, "vfio-user", "ESPO-1 served over vfio-user")
        }
    };
    // A served card signals through its MSI-X eventfd, which this test checks: gw-b's
    // threads sleep as soon as they find nothing (`busy_poll_us = 0`), so every completion
    // that comes while they wait must wake them. (Looking before sleeping, they find many
    // completions without an interrupt.)
    let gw_b = match card {
        CardAt::InProcess => gw_b,
        _ => lab::set_gateway_field(&gw_b, "busy_poll_us", "0"),
    };
    let b = lab.espo_run(&t.right, "right", &gw_b);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    // gw-a forgets whatever it learnt from gw-b's own ARP request (a card with its own
    // port resolves its next hop ahead of traffic): it must ask, and gw-b must answer.
    lab.ip(&t.left, &["neigh", "flush", "dev", &t.left_out]);

    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 20, 1000),
        20
    );
    traffic::tcp_transfer(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 2_000_000);
    traffic::tcp_transfer(&lab, &t.right_host, &t.left_host, ip("10.1.0.2"), 1_000_000);
    // IPv6 inner packets through the same IPv4 tunnel.
    assert_eq!(
        traffic::udp_echo(&lab, &t.right_host, &t.left_host, ip("fd00:1::2"), 10, 1200),
        10
    );

    let frames = cap.finish();
    let (tally, tunnel) = capture::tally(&frames);
    assert!(
        tally.other.is_empty(),
        "only ESP and ARP may cross the link: {:?}",
        tally.other
    );
    assert!(
        tally.esp > 1000 && tally.ah == 0 && tally.udp_encap == 0,
        "{tally:?}"
    );
    let marker: Vec<u8> = (0..32).map(|i| ((i * 31) % 253) as u8).collect();
    assert!(
        !tunnel.iter().any(|p| p.windows(32).any(|w| w == marker)),
        "plaintext on the wire"
    );

    // Both directions' SAs run on the card; the port answered gw-a's ARP for 192.0.2.2
    // and resolved 192.0.2.1 itself.
    let status = lab.status(&b);
    assert!(status.contains(&format!("engine {engine}")), "{status}");
    // gw-b's TUN reads brought site 2's TCP flow as super-packets (TUN offloads), whose
    // segments went from them straight into the card's buffers.
    assert!(
        count(&status, "segments written straight into the card's buffers") > 100,
        "{status}"
    );
    // Its single packets — the echoes' answers, the ACKs of site 1's flow — were read from
    // the TUN device straight into the card's buffers, and left from there.
    assert!(
        count(&status, "packets read straight into the card's buffers") > 30,
        "{status}"
    );
    // The echoes' requests and answers the card decapsulated (UDP: no flow the coalescer
    // holds) were written to the TUN device straight from the card's buffers.
    assert!(
        count(&status, "packets written straight from the card's buffers") >= 20,
        "{status}"
    );
    assert_eq!(runs_on(&status, "out", "0x00002001"), "card", "{status}");
    assert_eq!(runs_on(&status, "in", "0x00001001"), "card", "{status}");
    assert!(
        status.contains(&format!(
            "card: {described}, mode offload, 2 of 2 SAs on the card"
        )),
        "{status}"
    );
    if card == CardAt::ServedOwnPort {
        // No socket of espo's on the interface: the port is the card's.
        assert!(status.contains("port of the card ("), "{status}");
    }
    if card != CardAt::InProcess {
        // Completions woke the inbound thread through the card's MSI-X eventfd.
        let wakeups: u64 = status
            .lines()
            .find_map(|l| l.trim().strip_prefix("card interrupts: "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no card interrupts line in {status}"));
        assert!(wakeups > 100, "{status}");
    }
    assert!(port_counter(&status, "arp answered") >= 1, "{status}");
    assert!(status.contains("neighbour 192.0.2.1 at "), "{status}");
    assert!(stat(&status, "inbound", "forwarded") > 500, "{status}");
    assert_eq!(stat(&status, "inbound", "dropped"), 0, "{status}");
    let neigh = lab.ip(&t.left, &["neigh", "show", "192.0.2.2"]);
    assert!(
        !neigh.contains("FAILED"),
        "gw-a resolved the card's port: {neigh}"
    );
    // The card's port interface still has no address of its own.
    let addrs = lab.ip(&t.right, &["addr", "show", &t.right_out]);
    assert!(!addrs.contains("inet"), "{addrs}");

    // A captured packet to the card gateway, sent again: the card's replay window drops
    // it, and espo status counts it.
    let last_to_b = tunnel
        .iter()
        .rev()
        .find(|p| p[16..20] == [192, 0, 2, 2])
        .expect("a packet to gw-b");
    let anti_replay = |s: &str| drops(s, "replayed") + drops(s, "stale");
    let before = anti_replay(&status);
    capture::replay(&lab, &t.left, last_to_b);
    let status = lab.status_until(&b, |s| anti_replay(s) > before);
    assert_eq!(anti_replay(&status), before + 1, "{status}");
    assert!(
        status.contains("card rx:") && status.contains("dropped (replayed 1)")
            || status.contains("(stale 1)"),
        "counted by the card: {status}"
    );

    // Malformed ARP and ND from the wire: counted, ignored, the gateway unharmed.
    let mac = [0x02, 0, 0, 0, 0, 0x99];
    capture::inject(&lab, &t.left, &t.left_out, &arp_request(mac, |f| f[18] = 9));
    capture::inject(
        &lab,
        &t.left,
        &t.left_out,
        &arp_request(mac, |f| f.truncate(30)),
    );
    let mut ns = vec![0x33, 0x33, 0xff, 0, 0, 2];
    ns.extend_from_slice(&mac);
    ns.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 58, 255]);
    ns.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ns.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
    ns.extend_from_slice(&[135, 0, 0xde, 0xad, 0, 0, 0, 0]); // a wrong checksum
    ns.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&mac);
    capture::inject(&lab, &t.left, &t.left_out, &ns);
    let status = lab.status_until(&b, |s| port_counter(s, "malformed arp") >= 2);
    assert_eq!(port_counter(&status, "malformed arp"), 2, "{status}");
    let status = lab.status_until(&b, |s| port_counter(s, "nd") >= 1);
    assert_eq!(port_counter(&status, "nd"), 1, "{status}");
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 5, 500),
        5,
        "still forwarding"
    );

    // Never a key.
    let config = std::fs::read_to_string(lab.dir.join("right.toml")).unwrap();
    for line in config.lines().filter(|l| l.contains("key = ")) {
        let hex = line.split('"').nth(1).unwrap();
        assert!(!status.contains(&hex[..16]), "a key in espo status");
    }

    // SIGTERM: final counters with the card's, every packet read from the TUN device
    // accounted for.
    let final_b = lab.stop(&b);
    assert!(
        final_b.contains("card tx:") && final_b.contains("port "),
        "{final_b}"
    );
    assert_eq!(stat(&final_b, "outbound", "dropped"), 0, "{final_b}");
    assert_eq!(
        stat(&final_b, "outbound", "received"),
        stat(&final_b, "outbound", "forwarded") + stat(&final_b, "outbound", "consumed"),
        "{final_b}"
    );
    assert!(lab.ip(&t.right, &["link"]).find("espo0").is_none());
    let _ = lab.stop(&a);
}

#[test]
fn the_served_card_killed_mid_traffic_leaves_the_tunnel_in_software_without_nonce_reuse() {
    let mut lab = lab_or_skip!("gvk");
    let t = topology::gateway_to_gateway_card(&mut lab);
    let a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out),
    );
    let (socket, server) = lab.card_server("right");
    let gw_b = lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out).replace(
        "engine = \"model\"",
        &format!("engine = \"vfio-user\"\nsocket = \"{}\"", socket.display()),
    );
    let b = lab.espo_run(&t.right, "right", &gw_b);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 10, 800),
        10
    );
    let status = lab.status(&b);
    assert_eq!(runs_on(&status, "out", "0x00002001"), "card", "{status}");

    // A transfer out of gw-b (its data encrypted on the card), content checked, with the
    // card's process killed under it once the card has carried a few thousand packets.
    let on_card = |s: &str| -> u64 {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("card tx: "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no card tx line in {s}"))
    };
    let before = on_card(&lab.status(&b));
    std::thread::scope(|s| {
        let down = s.spawn(|| {
            traffic::tcp_transfer(
                &lab,
                &t.right_host,
                &t.left_host,
                ip("10.1.0.2"),
                60_000_000,
            )
        });
        lab.status_until(&b, |s| on_card(s) > before + 2000);
        assert!(!down.is_finished(), "the transfer was still running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        down.join().unwrap();
    });
    traffic::tcp_transfer_on(
        &lab,
        &t.left_host,
        &t.right_host,
        ip("10.2.0.2"),
        1_000_000,
        7003,
    );
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 20, 1000),
        20,
        "the tunnel runs on in software"
    );
    let status = lab.status(&b);
    assert!(
        status.contains("mode gone (every SA in software)"),
        "{status}"
    );
    assert_eq!(
        runs_on(&status, "out", "0x00002001"),
        "software",
        "{status}"
    );
    assert!(status.contains("card gone"), "{status}");

    // No (SPI, sequence number) of gw-b's outbound SA was sent twice, before or after the
    // move: the software copy continued past every number the card may have used.
    let frames = cap.finish();
    let (_, tunnel) = capture::tally(&frames);
    let mut seen = std::collections::HashSet::new();
    let mut from_b = 0;
    for p in tunnel
        .iter()
        .filter(|p| p.len() > 28 && p[12..16] == [192, 0, 2, 2])
    {
        let spi_seq: [u8; 8] = p[20..28].try_into().unwrap();
        assert!(
            seen.insert(spi_seq),
            "sequence number sent twice: {spi_seq:02x?}"
        );
        from_b += 1;
    }
    assert!(from_b > 1000, "{from_b} ESP packets from gw-b");
    let _ = lab.stop(&b);
    let _ = lab.stop(&a);
}

#[test]
fn three_outbound_workers_feed_the_card_model() {
    // gw-b on the card model with three outbound workers sharing the engine: eight TCP
    // transfers from hB, checked byte for byte; the card numbers every packet once.
    let mut lab = lab_or_skip!("gmw");
    let t = topology::gateway_to_gateway_card(&mut lab);
    let a = lab.espo_run(
        &t.left,
        "left",
        &lab::set_gateway_field(
            &lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out),
            "workers",
            "1",
        ),
    );
    let b = lab.espo_run(
        &t.right,
        "right",
        &lab::set_gateway_field(
            &lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out),
            "workers",
            "3",
        ),
    );
    let seen = capture::EspSeen::start(&t.left, &t.left_out);
    parallel_tcp_transfers(
        &lab,
        &t.right_host,
        &t.left_host,
        ip("10.1.0.2"),
        300_000,
        7400,
        8,
    );
    let (packets, twice) = seen.finish();
    assert!(packets > 400, "{packets} ESP packets seen");
    assert!(twice.is_empty(), "sequence numbers used twice: {twice:?}");
    let (sa, sb) = (lab.status(&a), lab.status(&b));
    assert_spread_over_workers(&sb, 3);
    assert_eq!(stat(&sb, "outbound", "dropped"), 0, "{sb}");
    assert_eq!(stat(&sa, "inbound", "dropped"), 0, "{sa}");
    assert_eq!(
        stat(&sb, "outbound", "forwarded"),
        stat(&sa, "inbound", "forwarded"),
        "what gw-b's workers handed the card, gw-a delivered:\n{sb}\n{sa}"
    );
    // The card's SA rows once, not once per worker: its count is what gw-a received.
    let row = |status: &str, dir: &str| -> u64 {
        let l = status
            .lines()
            .find(|l| l.starts_with(dir) && l.contains("0x00002001"))
            .unwrap_or_else(|| panic!("no {dir} SA 0x2001 in {status}"));
        // ... seq, packets, bytes, where it runs.
        let words: Vec<&str> = l.split_whitespace().collect();
        words[words.len() - 3]
            .parse()
            .unwrap_or_else(|_| panic!("no packet count in {l}"))
    };
    // gw-b's card rows are read from its engine when status is asked for, not from a
    // worker's last publication (up to 200 ms old when idle): at most the card's last
    // completions behind. Read again for 100 ms at most.
    let (mut sa, mut sb) = (sa, sb);
    for _ in 0..5 {
        if row(&sb, "out") == row(&sa, "in") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        (sa, sb) = (lab.status(&a), lab.status(&b));
    }
    assert_eq!(row(&sb, "out"), row(&sa, "in"), "{sb}\n{sa}");
}

/// A configuration moved onto the card model.
fn on_the_model(config: String) -> String {
    config.replace("engine = \"software\"", "engine = \"model\"")
}

#[test]
fn server_to_gateway_with_the_gateway_on_the_card_model() {
    // ChaCha20-Poly1305 in UDP 4500 and AH: SAs the card cannot take, run in software and
    // sent and received through the card's port.
    for variant in ["esp", "ah"] {
        let mut lab = lab_or_skip!(if variant == "esp" { "sgm" } else { "sgn" });
        let t = topology::server_to_gateway(&mut lab);
        lab.ip(&t.right, &["addr", "flush", "dev", &t.right_out]);
        let dir = format!("server-gw/{variant}");
        let _s = lab.espo_run(
            &t.left,
            "left",
            &lab::example(&format!("{dir}/server.toml"), &t.left_out),
        );
        let gw = lab.espo_run(
            &t.right,
            "right",
            &on_the_model(lab::example(&format!("{dir}/gw.toml"), &t.right_out)),
        );
        let cap = capture::Capture::start(&t.left, &t.left_out);
        assert_eq!(
            traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 10, 1000),
            10,
            "{variant}"
        );
        traffic::tcp_transfer(&lab, &t.right_host, &t.left_host, ip("10.9.0.1"), 500_000);
        let (tally, _) = capture::tally(&cap.finish());
        assert!(tally.other.is_empty(), "{variant}: {:?}", tally.other);
        match variant {
            "esp" => assert!(tally.udp_encap > 100 && tally.esp == 0, "{tally:?}"),
            _ => assert!(tally.ah > 100 && tally.esp == 0, "{tally:?}"),
        }
        let status = lab.status(&gw);
        assert_eq!(runs_on(&status, "out", "0x00002"), "software", "{status}");
        assert_eq!(runs_on(&status, "in", "0x00001"), "software", "{status}");
        assert!(
            status.contains("runs in software: "),
            "the reason: {status}"
        );
        assert!(
            status.contains("card: ESPO-1 model, mode offload, 0 of 2 SAs on the card"),
            "{status}"
        );
        assert!(stat(&status, "inbound", "forwarded") >= 10, "{status}");
        assert_eq!(stat(&status, "inbound", "dropped"), 0, "{status}");
        assert_eq!(stat(&status, "outbound", "dropped"), 0, "{status}");
    }
}

#[test]
fn server_to_server_over_ipv6_with_one_end_on_the_card_model() {
    let mut lab = lab_or_skip!("s6m");
    let t = topology::server_to_server_v6(&mut lab);
    lab.ip(&t.right, &["addr", "flush", "dev", &t.right_out]);
    let v6 = |text: String| {
        text.replace("192.0.2.1/32", "2001:db8::1/128")
            .replace("192.0.2.2/32", "2001:db8::2/128")
            .replace("192.0.2.1", "2001:db8::1")
            .replace("192.0.2.2", "2001:db8::2")
    };
    let a = lab.espo_run(
        &t.left,
        "left",
        &v6(lab::example("server-server/esp/server-a.toml", &t.left_out)),
    );
    let b = lab.espo_run(
        &t.right,
        "right",
        // The port has no address: the server's own (inner = outer) address lives on its
        // TUN device.
        &lab::set_gateway_field(
            &on_the_model(v6(lab::example(
                "server-server/esp/server-b.toml",
                &t.right_out,
            ))),
            "tun_address",
            "\"2001:db8::2/128\"",
        ),
    );
    let cap = capture::Capture::start(&t.left, &t.left_out);
    let echoed = traffic::udp_echo(
        &lab,
        &t.left_host,
        &t.right_host,
        ip("2001:db8::2"),
        10,
        1000,
    );
    assert_eq!(echoed, 10, "{}\n{}", lab.status(&a), lab.status(&b));
    traffic::tcp_transfer(
        &lab,
        &t.right_host,
        &t.left_host,
        ip("2001:db8::1"),
        500_000,
    );
    let (tally, _) = capture::tally(&cap.finish());
    assert!(tally.other.is_empty(), "{:?}", tally.other);
    assert!(
        tally.esp > 100 && tally.icmpv6 >= 2,
        "ND and ESP: {tally:?}"
    );
    let status = lab.status(&b);
    assert_eq!(runs_on(&status, "out", "0x00002001"), "card", "{status}");
    assert_eq!(runs_on(&status, "in", "0x00001001"), "card", "{status}");
    assert!(port_counter(&status, "nd answered") >= 1, "{status}");
    assert!(status.contains("neighbour 2001:db8::1 at "), "{status}");
    // The kernel stays off the card's interface, and gets it back afterwards.
    let conf = format!("net.ipv6.conf.{}.disable_ipv6", t.right_out);
    let sysctl = |ns: &str| {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-n", &conf])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(sysctl(&t.right), "1");
    let link = lab.ip(&t.right, &["link", "show", &t.right_out]);
    assert!(
        link.contains("ALLMULTI"),
        "solicited-node groups reach the port: {link}"
    );
    lab.stop(&b);
    assert_eq!(sysctl(&t.right), "0", "restored on exit");
    let link = lab.ip(&t.right, &["link", "show", &t.right_out]);
    assert!(!link.contains("ALLMULTI"), "restored on exit: {link}");
}

#[test]
fn the_card_gateway_reaches_its_peer_through_a_next_hop() {
    // hA ── gwA ══ router ══ gwB (card) ── hB: gwB's peer is not on its link; its
    // configured next hop is the router, whose address espo resolves itself.
    let mut lab = lab_or_skip!("nhm");
    let (ha, gwa, r, gwb, hb) = (
        lab.ns("hA"),
        lab.ns("gwA"),
        lab.ns("rt"),
        lab.ns("gwB"),
        lab.ns("hB"),
    );
    let (a_out, r_a) = lab.link(&gwa, "w0", &r, "ra");
    let (r_b, b_out) = lab.link(&r, "rb", &gwb, "w1");
    for (ns, dev) in [(&gwa, &a_out), (&r, &r_a), (&r, &r_b)] {
        lab.sysctl(ns, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1");
    }
    lab.addr(&gwa, &a_out, "192.0.2.1/24");
    lab.addr(&r, &r_a, "192.0.2.254/24");
    lab.addr(&r, &r_b, "198.51.100.254/24");
    lab.sysctl(&r, "net.ipv4.ip_forward", "1");
    lab.ip(
        &gwa,
        &["route", "add", "198.51.100.0/24", "via", "192.0.2.254"],
    );
    topology::host_behind(&mut lab, &gwa, &ha, 1, "a");
    topology::host_behind(&mut lab, &gwb, &hb, 2, "b");

    let moved = |text: String| text.replace("192.0.2.2", "198.51.100.2");
    let _a = lab.espo_run(
        &gwa,
        "left",
        &moved(lab::example("gw-gw/esp-model/gw-a.toml", &a_out)),
    );
    let b_config = lab::set_gateway_field(
        &moved(lab::example("gw-gw/esp-model/gw-b.toml", &b_out)),
        "next_hop",
        "\"198.51.100.254\"",
    );
    let b = lab.espo_run(&gwb, "right", &b_config);
    assert_eq!(
        traffic::udp_echo(&lab, &hb, &ha, ip("10.1.0.2"), 10, 1000),
        10
    );
    traffic::tcp_transfer(&lab, &hb, &ha, ip("10.1.0.2"), 500_000);
    let status = lab.status(&b);
    assert!(
        status.contains("neighbour 198.51.100.254 at "),
        "the router resolved: {status}"
    );
    assert!(!status.contains("neighbour 192.0.2.1"), "{status}");
    assert!(port_counter(&status, "requests") >= 1, "{status}");
    assert_eq!(stat(&status, "outbound", "dropped"), 0, "{status}");
}

#[test]
fn pmtu_errors_and_fragmentation_on_the_card_model() {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mut lab = lab_or_skip!("pmm");
    let t = topology::gateway_to_gateway_card(&mut lab);
    let _a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out),
    );
    // The TUN MTU set to the outside MTU: what does not fit the tunnel reaches espo.
    let b_cfg = lab::set_gateway_field(
        &lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out),
        "mtu",
        "1500",
    );
    let b = lab.espo_run(&t.right, "right", &b_cfg);
    let tunnel_mtu = 1431;
    let h4 = Ipv4Addr::new(10, 2, 0, 2);
    let df = pmtu::udp4(h4, Ipv4Addr::new(10, 1, 0, 2), 1500, true);
    let got = lab.run_in(&t.right_host, || pmtu::send_and_catch(&df, false));
    assert_eq!(
        got,
        Some((ip("10.2.255.1"), tunnel_mtu)),
        "fragmentation needed"
    );
    let h6: Ipv6Addr = "fd00:2::2".parse().unwrap();
    let big6 = pmtu::udp6(h6, "fd00:1::2".parse().unwrap(), 1500);
    let got = lab.run_in(&t.right_host, || pmtu::send_and_catch(&big6, true));
    assert_eq!(
        got,
        Some((ip("fd00:2:ffff::1"), tunnel_mtu)),
        "packet too big"
    );
    // Without DF: fragmented before the card encapsulates each piece, reassembled at the
    // host.
    let plain = pmtu::udp4(h4, Ipv4Addr::new(10, 1, 0, 2), 1500, false);
    let (tx, rx) = std::sync::mpsc::channel();
    let received = std::thread::scope(|s| {
        let r = s.spawn(|| lab.run_in(&t.left_host, || pmtu::receive_7003(ip("10.1.0.2"), tx)));
        rx.recv_timeout(std::time::Duration::from_secs(3)).unwrap();
        lab.run_in(&t.right_host, || pmtu::send(&plain, false));
        r.join().unwrap()
    });
    assert_eq!(received.as_deref(), Some(&plain[28..]));
    let status = lab.status_until(&b, |s| s.contains("fragmented 1 into 2"));
    assert!(
        status.contains("icmp errors sent 2, fragmented 1 into 2"),
        "{status}"
    );
    assert_eq!(drops(&status, "too-big"), 2, "{status}");
}

#[test]
fn a_served_cards_port_on_an_interface_sends_and_receives_raw_frames() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use espo_driver::card::{Card, CardConfig, RxPacket, TxAction, TxRequest};
    use espo_driver::vfio_user::{VfioUserDevice, VfioUserOptions};

    let mut lab = lab_or_skip!("gvp");
    let ns = lab.ns("c");
    let (card_if, wire_if) = lab.link(&ns, "ca", &ns, "wi");
    let socket = lab.dir.join("card");
    let log = std::fs::File::create(lab.dir.join("card.log")).unwrap();
    let mut server = std::process::Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(env!("CARGO_BIN_EXE_espo"))
        .args(["card", "serve", "--port", &card_if, "--socket"])
        .arg(&socket)
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the server did not listen: {}",
            lab.log("card")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let dev = VfioUserDevice::connect(&socket, VfioUserOptions::default()).unwrap();
    let mut card = Card::open(Arc::new(dev), CardConfig::default()).unwrap();

    // Out: a bypass frame leaves on the interface as it is.
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x22, 0x02, 0, 0, 0, 0, 0x11, 0x88, 0xb5];
    frame.extend((0..100u8).map(|i| i ^ 0x5a));
    let cap = capture::Capture::start(&ns, &wire_if);
    let reqs = [TxRequest {
        tag: 1,
        frame: &frame,
        action: TxAction::Bypass,
    }];
    assert_eq!(card.tx_batch(0, &reqs).unwrap(), 1);
    let mut done = Vec::new();
    while done.is_empty() {
        card.tx_completions(0, &mut done).unwrap();
        assert!(Instant::now() < deadline, "no TX completion");
    }
    std::thread::sleep(Duration::from_millis(100));
    let frames = cap.finish();
    assert!(
        frames.contains(&frame),
        "the card's frame on the wire: {frames:?}"
    );

    // In: a frame sent on the wire reaches the card as bypass.
    let mut back = frame.clone();
    back[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x11]);
    back[20] = 0x77;
    capture::inject(&lab, &ns, &wire_if, &back);
    let mut rx = vec![RxPacket::default(); 8];
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        let n = card.rx_batch(0, &mut rx).unwrap();
        if let Some(p) = rx[..n].iter().find(|p| p.data == back) {
            break p.data.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the wire's frame never reached the card"
        );
    };
    assert_eq!(got, back);
    drop(card);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn gso_runs_from_a_peer_on_the_same_host_are_oversize_at_the_port() {
    // gw-a sends ESP in UDP with `udp_gso`: over the veth link its runs of datagrams reach
    // the card model's port whole, as frames longer than the link's MTU. The port counts
    // them and drops them (the card never sees one, so no ICV failure); a datagram sent
    // alone still crosses, intact.
    let mut lab = lab_or_skip!("gmo");
    let t = topology::gateway_to_gateway_card(&mut lab);
    let _a = lab.espo_run(
        &t.left,
        "left",
        &lab::set_gateway_field(
            &lab::esp_in_udp(&lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out)),
            "udp_gso",
            "true",
        ),
    );
    let b = lab.espo_run(
        &t.right,
        "right",
        &lab::esp_in_udp(&lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out)),
    );
    // A burst, then single datagrams with room between them.
    for gap in [
        std::time::Duration::ZERO,
        std::time::Duration::from_millis(20),
    ] {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let stream = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(400));
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            traffic::udp_stream(
                &lab,
                &t.left_host,
                &t.right_host,
                ip("10.2.0.2"),
                1000,
                gap,
                &stop,
            )
        });
        assert_eq!(stream.corrupted, 0, "nothing arrives damaged");
        if !gap.is_zero() {
            assert!(
                stream.received.len() as u64 * 10 >= stream.sent * 9,
                "datagrams sent alone cross: {} of {}",
                stream.received.len(),
                stream.sent
            );
        }
    }
    let sb = lab.status(&b);
    let oversize: u64 = sb
        .lines()
        .find_map(|l| {
            l.strip_prefix("  oversize: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(oversize > 0, "{sb}");
    assert!(!sb.contains("bad-icv"), "{sb}");
}
