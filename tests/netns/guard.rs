//! The guard (`espo run`'s nftables table): cleartext from the outside that an inbound
//! protect policy covers never reaches the inside, and traffic an outbound protect policy
//! covers never leaves the outside interface in clear — also after espo was killed —
//! until `espo guard off`; tunnel packets and earlier bypass policies pass.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::lab::{self, Lab, lab_or_skip};
use super::{capture, ip, pmtu, stat, topology, traffic};

/// `espo ARGS...` inside namespace `ns`.
fn espo(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(env!("CARGO_BIN_EXE_espo"))
        .args(args)
        .output()
        .expect("espo runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `nft ARGS` run in namespace `ns`.
fn nft(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "nft"])
        .args(args)
        .output()
        .expect("nft runs")
}

/// The tables of namespace `ns` (`nft list tables`).
fn tables(ns: &str) -> String {
    let out = nft(ns, &["list", "tables"]);
    assert!(out.status.success(), "nft list tables: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The guard table of the gateway whose TUN device is espo0 in namespace `ns`, as nft lists
/// it (empty when there is none).
fn guard_table(ns: &str) -> String {
    let out = nft(ns, &["list", "table", "inet", "espo-espo0"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The packets a guard counter line of espo status or espo guard status reports
/// (`  inbound cleartext dropped: 3 packets (policy[2] 3)`).
fn guard_dropped(status: &str, direction: &str) -> u64 {
    status
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{direction} cleartext dropped: "))
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {direction} guard counter in {status}"))
}

/// The count of one policy in a guard counter line (`policy[2] 3`).
fn policy_dropped(status: &str, index: usize) -> u64 {
    let key = format!("policy[{index}] ");
    status
        .lines()
        .filter(|l| l.contains("cleartext dropped"))
        .flat_map(|l| l.split(['(', ',', ')']))
        .find_map(|part| part.trim().strip_prefix(&key)?.parse().ok())
        .unwrap_or_else(|| panic!("no policy[{index}] counter in {status}"))
}

/// An IPv4 UDP datagram of 64 bytes from `src` to `dst`:`port`, sent by raw socket as it
/// is — so its source can be an address the sender does not have.
fn udp4(src: Ipv4Addr, dst: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut p = pmtu::udp4(src, dst, 64, false);
    p[22..24].copy_from_slice(&port.to_be_bytes());
    p
}

/// Datagrams that reach UDP `port` in namespace `ns` while `send` runs and in the second
/// after it.
fn arrivals(lab: &Lab, ns: &str, port: u16, send: impl FnOnce()) -> usize {
    let (ready_tx, ready_rx) = mpsc::channel();
    let sent = AtomicBool::new(false);
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            lab.run_in(ns, || {
                let sock = UdpSocket::bind(("0.0.0.0", port)).expect("udp bind");
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                ready_tx.send(()).unwrap();
                let mut n = 0;
                let mut buf = [0u8; 65536];
                let mut until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    if sock.recv_from(&mut buf).is_ok() {
                        n += 1;
                    }
                    if sent.swap(false, Ordering::SeqCst) {
                        until = Instant::now() + Duration::from_secs(1);
                    }
                }
                n
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(3))
            .expect("receiver up");
        send();
        sent.store(true, Ordering::SeqCst);
        receiver.join().unwrap()
    })
}

/// Sends each packet (a whole IPv4 packet) from namespace `ns` by raw socket.
fn send_raw(lab: &Lab, ns: &str, packets: &[Vec<u8>]) {
    lab.run_in(ns, || {
        for p in packets {
            pmtu::send(p, false);
        }
    });
}

/// Sends `count` UDP datagrams of `size` bytes from namespace `ns` to `dst`, each carrying
/// `marker` at its start.
fn send_udp(lab: &Lab, ns: &str, dst: SocketAddr, count: usize, size: usize, marker: &[u8]) {
    lab.run_in(ns, || {
        let sock = UdpSocket::bind(("0.0.0.0", 0)).expect("udp bind");
        let mut msg = vec![0x5a; size];
        msg[..marker.len()].copy_from_slice(marker);
        for _ in 0..count {
            // Refusals (ICMP errors about earlier datagrams) do not matter here.
            let _ = sock.send_to(&msg, dst);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
}

/// IPv4 packets of a capture sent from `src` in clear (not ESP, AH or UDP 4500): per
/// packet its UDP destination port (`None` for a non-first fragment or not UDP).
fn cleartext_from(frames: &[Vec<u8>], src: [u8; 4]) -> Vec<Option<u16>> {
    frames
        .iter()
        .filter(|f| f.get(12..14) == Some(&[0x08, 0x00]))
        .map(|f| &f[14..])
        .filter(|ip| ip.len() >= 20 && ip[12..16] == src)
        .filter(|ip| !matches!(ip[9], 50 | 51))
        .filter_map(|ip| {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
            let dport = (ip[9] == 17 && offset == 0)
                .then(|| ip.get(ihl + 2..ihl + 4))
                .flatten()
                .map(|b| u16::from_be_bytes([b[0], b[1]]));
            (dport != Some(4500)).then_some(dport)
        })
        .collect()
}

/// Whether any frame holds `marker`.
fn seen(frames: &[Vec<u8>], marker: &[u8]) -> bool {
    frames
        .iter()
        .any(|f| f.windows(marker.len()).any(|w| w == marker))
}

/// No reverse-path filter on the gateway, as on the machine the audit found this on: the
/// guard, not rp_filter, must be what stops cleartext with a protected source.
fn loose_reverse_path(lab: &Lab, ns: &str, outside: &str) {
    for dev in ["all", "default", outside] {
        lab.sysctl(ns, &format!("net.ipv4.conf.{dev}.rp_filter"), "0");
    }
}

fn config_path(lab: &Lab, name: &str) -> PathBuf {
    lab.dir.join(format!("{name}.toml"))
}

fn guard_cli(ns: &str, action: &str, config: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["guard", action, "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    espo(ns, &args)
}

/// Kills a gateway with SIGKILL and waits for it to be gone.
fn kill_hard(lab: &mut Lab, gw: &lab::Gateway) {
    kill(Pid::from_raw(gw.pid as i32), Signal::SIGKILL).expect("SIGKILL delivered");
    let (status, _) = lab.wait_exit(gw);
    assert!(!status.success(), "{status}");
}

#[test]
fn guard_drops_cleartext_with_a_protected_source_from_the_outside() {
    let mut lab = lab_or_skip!("gdi");
    let t = topology::gateway_to_gateway(&mut lab);
    loose_reverse_path(&lab, &t.left, &t.left_out);
    // gw-b runs no espo here: it is the attacker on the outside link, routing to gw-a.
    lab.ip(
        &t.right,
        &["route", "add", "10.1.0.0/16", "via", "192.0.2.1"],
    );
    let a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("gw-gw/esp/gw-a.toml", &t.left_out),
    );
    // From 10.2.0.5 — inside gw-a's protected remote site, so only the tunnel may bring it.
    let forged: Vec<Vec<u8>> = (0..3)
        .map(|_| udp4(Ipv4Addr::new(10, 2, 0, 5), Ipv4Addr::new(10, 1, 0, 2), 7005))
        .collect();
    let got = arrivals(&lab, &t.left_host, 7005, || {
        send_raw(&lab, &t.right, &forged)
    });
    assert_eq!(
        got, 0,
        "cleartext from a protected source reached the inside"
    );
    let status = lab.status_until(&a, |s| guard_dropped(s, "inbound") >= 3);
    assert_eq!(guard_dropped(&status, "inbound"), 3, "{status}");
    assert_eq!(policy_dropped(&status, 2), 3, "{status}");
    assert_eq!(
        stat(&status, "inbound", "received"),
        0,
        "espo never saw it: {status}"
    );

    // The same packets without the guard, espo still running: they reach the host, and
    // espo's own counters do not move — what the audit found.
    let off = guard_cli(&t.left, "off", &config_path(&lab, "left"), &["--force"]);
    assert!(off.status.success(), "{}", text(&off));
    let got = arrivals(&lab, &t.left_host, 7005, || {
        send_raw(&lab, &t.right, &forged)
    });
    assert_eq!(got, 3, "without the guard the forged packets arrive");
    let status = lab.status(&a);
    assert!(status.contains("is not installed"), "{status}");
    assert_eq!(stat(&status, "inbound", "received"), 0, "{status}");
}

#[test]
fn guard_between_servers_drops_plain_packets_and_passes_the_tunnel() {
    let mut lab = lab_or_skip!("gds");
    let t = topology::server_to_server(&mut lab);
    let a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("server-server/esp/server-a.toml", &t.left_out),
    );
    plain_dropped_then_the_tunnel_passes(
        &lab,
        &t,
        &a,
        &lab::example("server-server/esp/server-b.toml", &t.right_out),
        7005,
    );
}

/// Between two servers whose inner addresses are their outer ones, server A's espo `a`
/// running: three plain datagrams from B to A's `port` match A's inbound protect policy;
/// none arrives, and A's guard counts the three.
fn three_plain_datagrams_dropped(lab: &Lab, t: &topology::Topology, a: &lab::Gateway, port: u16) {
    let dst = SocketAddr::new(ip("192.0.2.1"), port);
    let got = arrivals(lab, &t.left, port, || {
        send_udp(lab, &t.right, dst, 3, 100, b"plain")
    });
    assert_eq!(got, 0, "a plain packet between the servers was delivered");
    let status = lab.status_until(a, |s| guard_dropped(s, "inbound") >= 3);
    assert_eq!(guard_dropped(&status, "inbound"), 3, "{status}");
}

/// Between two servers whose inner addresses are their outer ones, server A's espo `a`
/// running: plain datagrams from B to A's `port` match A's inbound protect policy and are
/// dropped by its guard; then, with B's espo up (configuration `b_cfg`), the same addresses
/// talk through the tunnel — ESP between the endpoints passes both guards and nothing else
/// crosses the link.
fn plain_dropped_then_the_tunnel_passes(
    lab: &Lab,
    t: &topology::Topology,
    a: &lab::Gateway,
    b_cfg: &str,
    port: u16,
) {
    three_plain_datagrams_dropped(lab, t, a, port);
    let _b = lab.espo_run(&t.right, "right", b_cfg);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    assert_eq!(
        traffic::udp_echo(lab, &t.right, &t.left, ip("192.0.2.1"), 10, 1000),
        10
    );
    traffic::tcp_transfer(lab, &t.left, &t.right, ip("192.0.2.2"), 300_000);
    let (tally, _) = capture::tally(&cap.finish());
    assert!(tally.other.is_empty(), "{:?}", tally.other);
    assert!(tally.esp > 50, "{tally:?}");
    let status = lab.status(a);
    assert_eq!(guard_dropped(&status, "inbound"), 3, "{status}");
    assert_eq!(guard_dropped(&status, "outbound"), 0, "{status}");
}

/// A hub's guard matches its many peers' tunnel packets through sets: the tunnel between
/// the servers, one flow among 31 of its kind at each end, still passes both guards — where
/// inner = outer, a tunnel packet no set matched would meet the protect policy's drop —
/// and plain packets between the same addresses are still dropped.
#[test]
fn guard_of_a_hub_passes_each_peers_tunnel_through_its_sets() {
    let mut lab = lab_or_skip!("gdh");
    let t = topology::server_to_server(&mut lab);
    let a_cfg = espo_harness::loopback::behind_peers(
        &lab::example("server-server/esp/server-a.toml", &t.left_out),
        "192.0.2.1",
        "192.0.2.1/32",
        30,
    );
    let b_cfg = espo_harness::loopback::behind_peers(
        &lab::example("server-server/esp/server-b.toml", &t.right_out),
        "192.0.2.2",
        "192.0.2.2/32",
        30,
    );
    let a = lab.espo_run(&t.left, "left", &a_cfg);
    // What the kernel holds: the peers' tunnels in a set.
    let shown = guard_table(&t.left);
    assert!(
        shown.contains("ip saddr . ip daddr . ip protocol") && shown.contains("198.18.0.29"),
        "{shown}"
    );
    plain_dropped_then_the_tunnel_passes(&lab, &t, &a, &b_cfg, 7006);
}

/// A change that leaves the guard's rules as they are (an SA no policy names yet; a rekey
/// changes only SPIs, which no rule names) does not touch the table: its counters carry
/// on. A change of the rules replaces it.
#[test]
fn guard_is_replaced_only_when_its_rules_change() {
    let mut lab = lab_or_skip!("gdu");
    let t = topology::server_to_server(&mut lab);
    let a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("server-server/esp/server-a.toml", &t.left_out),
    );
    three_plain_datagrams_dropped(&lab, &t, &a, 7007);
    let before = guard_table(&t.left);

    let key: String = (0..20u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(37) ^ 0xa5))
        .collect();
    let sa = lab.dir.join("extra-sa.toml");
    std::fs::write(
        &sa,
        format!(
            "[[sa]]\nspi = 0x7001\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.9\"\n\
             encryption = \"aes-gcm-128\"\nkey = \"{key}\"\ndir = \"out\"\n"
        ),
    )
    .unwrap();
    let (done, out, err) = lab.espo(&a, &["sa", "add", sa.to_str().unwrap()]);
    assert!(done, "{out}{err}");
    assert_eq!(guard_table(&t.left), before, "the table was rewritten");
    let status = lab.status(&a);
    assert_eq!(guard_dropped(&status, "inbound"), 3, "{status}");

    // A table deleted by hand is put back by the next change, though its rules are the
    // same (and its counters start again).
    let out = nft(&t.left, &["delete", "table", "inet", "espo-espo0"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!tables(&t.left).contains("espo-espo0"));
    let (done, out, err) = lab.espo(&a, &["sa", "del", "0x7001"]);
    assert!(done, "{out}{err}");
    assert!(
        tables(&t.left).contains("table inet espo-espo0"),
        "not put back"
    );
    let (done, out, err) = lab.espo(&a, &["sa", "add", sa.to_str().unwrap()]);
    assert!(done, "{out}{err}");

    // A policy that protects with it changes the rules: the table is replaced.
    let policy = lab.dir.join("extra-policy.toml");
    std::fs::write(
        &policy,
        "[[policy]]\ndir = \"out\"\nsrc = \"192.0.2.1/32\"\ndst = \"192.0.2.9/32\"\naction = \"protect\"\nsa = [0x7001]\n",
    )
    .unwrap();
    let (done, out, err) = lab.espo(&a, &["policy", "add", policy.to_str().unwrap()]);
    assert!(done, "{out}{err}");
    let after = guard_table(&t.left);
    assert!(after.contains("192.0.2.9"), "{after}");
}

#[test]
fn guard_keeps_protected_traffic_off_the_link_after_espo_is_killed() {
    let mut lab = lab_or_skip!("gdk");
    let t = topology::gateway_to_gateway(&mut lab);
    // A route that would carry the inside's traffic out in clear once espo's are gone.
    lab.ip(&t.left, &["route", "add", "default", "via", "192.0.2.2"]);
    let cfg = lab::example("gw-gw/esp/gw-a.toml", &t.left_out);
    let a = lab.espo_run(&t.left, "left", &cfg);
    let b_cfg = lab::example("gw-gw/esp/gw-b.toml", &t.right_out);
    let b = lab.espo_run(&t.right, "right", &b_cfg);
    assert!(tables(&t.left).contains("table inet espo-espo0"));
    let marker = b"guard-marker-9f3a";
    let dst = SocketAddr::new(ip("10.2.0.2"), 7006);

    // hA sends all along: through the tunnel, then while espo is killed, then after.
    let cap = capture::Capture::start(&t.left, &t.left_out);
    let stop = AtomicBool::new(false);
    let delivered_before_kill = std::thread::scope(|s| {
        let sender = s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                send_udp(&lab, &t.left_host, dst, 10, 200, marker);
            }
        });
        let delivered = arrivals(&lab, &t.right_host, 7006, || {
            std::thread::sleep(Duration::from_millis(300))
        });
        kill(Pid::from_raw(a.pid as i32), Signal::SIGKILL).expect("SIGKILL delivered");
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::SeqCst);
        sender.join().unwrap();
        delivered
    });
    let frames = cap.finish();
    let (exit, _) = lab.wait_exit(&a);
    assert!(!exit.success(), "{exit}");
    assert!(delivered_before_kill > 0, "the tunnel carried the flow");
    assert!(
        cleartext_from(&frames, [10, 1, 0, 2]).is_empty() && !seen(&frames, marker),
        "cleartext of the protected flow on the link"
    );
    let (tally, _) = capture::tally(&frames);
    assert!(tally.esp > 0, "{tally:?}");
    // The TUN device and its routes died with espo; the guard did not.
    assert!(!lab.ip(&t.left, &["link"]).contains("espo0"));
    let status = guard_cli(&t.left, "status", &config_path(&lab, "left"), &[]);
    let report = text(&status);
    assert!(status.status.success(), "{report}");
    assert!(report.contains("espo run is not running"), "{report}");
    assert!(guard_dropped(&report, "outbound") > 0, "{report}");

    // A restarted espo replaces the table (one of it) and the tunnel works again (gw-b
    // restarted too: both SAs start again from the configured sequence numbers).
    lab.stop(&b);
    let _b2 = lab.espo_run(&t.right, "right2", &b_cfg);
    let a2 = lab.espo_run(&t.left, "left2", &cfg);
    assert_eq!(tables(&t.left).matches("espo-espo0").count(), 1);
    let status = lab.status(&a2);
    assert_eq!(
        guard_dropped(&status, "outbound"),
        0,
        "a fresh table: {status}"
    );
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 5, 500),
        5
    );
    kill_hard(&mut lab, &a2);

    // `espo guard off` takes the guard away: now the same flow leaves in clear.
    let off = guard_cli(&t.left, "off", &config_path(&lab, "left2"), &[]);
    assert!(off.status.success(), "{}", text(&off));
    assert!(
        text(&off).contains("table inet espo-espo0 removed"),
        "{}",
        text(&off)
    );
    let cap = capture::Capture::start(&t.left, &t.left_out);
    send_udp(&lab, &t.left_host, dst, 20, 200, marker);
    let frames = cap.finish();
    assert!(
        seen(&frames, marker) && !cleartext_from(&frames, [10, 1, 0, 2]).is_empty(),
        "without the guard the flow leaves in clear"
    );
    let status = guard_cli(&t.left, "status", &config_path(&lab, "left2"), &[]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
}

#[test]
fn guard_goes_with_a_clean_stop_and_stays_after_a_failure() {
    let mut lab = lab_or_skip!("gdc");
    let t = topology::server_to_server(&mut lab);
    let cfg = lab::example("server-server/esp/server-a.toml", &t.left_out);
    let a = lab.espo_run(&t.left, "left", &cfg);
    let path = config_path(&lab, "left");
    assert!(tables(&t.left).contains("table inet espo-espo0"));
    let status = guard_cli(&t.left, "status", &path, &["--rules"]);
    let report = text(&status);
    assert!(status.status.success(), "{report}");
    assert!(
        report.contains("espo run is running with it")
            && report.contains(&format!("oifname \"{}\" jump guard-out", t.left_out)),
        "{report}"
    );
    // Not from under a running espo without --force.
    let off = guard_cli(&t.left, "off", &path, &[]);
    assert!(
        !off.status.success() && text(&off).contains("SIGTERM"),
        "{}",
        text(&off)
    );
    assert!(tables(&t.left).contains("espo-espo0"));

    // SIGTERM: the final counters include the guard's, then the table goes.
    let out = lab.stop(&a);
    assert!(
        out.contains("guard: table inet espo-espo0 installed"),
        "{out}"
    );
    assert!(!tables(&t.left).contains("espo"), "{}", tables(&t.left));
    let status = guard_cli(&t.left, "status", &path, &[]);
    assert_eq!(status.status.code(), Some(1));
    assert!(
        text(&status).contains("is not installed"),
        "{}",
        text(&status)
    );

    // A start that fails after the guard went in (here: its status socket is taken)
    // leaves no table behind...
    let busy = lab.dir.join("busy.sock");
    let _taken = std::os::unix::net::UnixListener::bind(&busy).expect("socket bound");
    let state = format!("\"{}\"", lab.dir.join("bad-state").display());
    let bad = lab::set_gateway_field(&cfg, "status_socket", &format!("\"{}\"", busy.display()));
    let bad = lab::set_gateway_field(&bad, "state_dir", &state)
        + "\n[[policy]]\ndir = \"in\"\nsrc = \"198.51.100.0/24\"\ndst = \"192.0.2.1\"\naction = \"discard\"\n";
    let bad_path = config_path(&lab, "bad");
    std::fs::write(&bad_path, &bad).unwrap();
    let run = espo(&t.left, &["run", "--config", bad_path.to_str().unwrap()]);
    assert!(
        !run.status.success() && text(&run).contains("opening the status socket"),
        "{}",
        text(&run)
    );
    assert!(!tables(&t.left).contains("espo"), "{}", tables(&t.left));
    assert!(!lab.ip(&t.left, &["link"]).contains("espo0"));
    // ...and puts back the one a killed espo left.
    let a = lab.espo_run(&t.left, "left", &cfg);
    kill_hard(&mut lab, &a);
    let run = espo(&t.left, &["run", "--config", bad_path.to_str().unwrap()]);
    assert!(!run.status.success(), "{}", text(&run));
    let listing = guard_table(&t.left);
    assert!(
        listing.contains(&format!("oifname \"{}\"", t.left_out))
            && !listing.contains("198.51.100.0/24"),
        "the killed espo's table: {listing}"
    );

    // A gateway that stops because its datapath failed keeps the guard, and says so.
    let a = lab.espo_run(&t.left, "left", &cfg);
    lab.ip(&t.left, &["link", "del", "espo0"]);
    let (status, _) = lab.wait_exit(&a);
    assert!(!status.success());
    assert!(tables(&t.left).contains("espo-espo0"));
    let log = lab.log("left");
    assert!(
        log.contains("the guard (table inet espo-espo0) stays"),
        "{log}"
    );
    let off = guard_cli(&t.left, "off", &path, &[]);
    assert!(off.status.success(), "{}", text(&off));
    assert!(!tables(&t.left).contains("espo"));
}

#[test]
fn guard_passes_an_earlier_bypass_policy_both_ways() {
    let mut lab = lab_or_skip!("gdb");
    let t = topology::gateway_to_gateway(&mut lab);
    loose_reverse_path(&lab, &t.left, &t.left_out);
    lab.ip(
        &t.right,
        &["route", "add", "10.1.0.0/16", "via", "192.0.2.1"],
    );
    lab.ip(&t.left, &["route", "add", "default", "via", "192.0.2.2"]);
    // gw-a's SAs with these policies: UDP 7009 bypasses both ways, ahead of the protect
    // policies; outbound only UDP 7000-7008 is protected (port selectors: the guard drops
    // its non-first fragments too).
    let example = lab::example("gw-gw/esp/gw-a.toml", &t.left_out);
    let sas = &example[..example.find("[[policy]]").unwrap()];
    let policies = r#"
[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
protocol = "udp"
dst_port = 7009
action = "bypass"

[[policy]]
dir = "in"
src = "10.2.0.0/16"
dst = "10.1.0.0/16"
protocol = "udp"
dst_port = 7009
action = "bypass"

[[policy]]
dir = "out"
src = "10.1.0.0/16"
dst = "10.2.0.0/16"
protocol = "udp"
dst_port = "7000-7008"
action = "protect"
sa = [0x00001001]

[[policy]]
dir = "in"
src = "10.2.0.0/16"
dst = "10.1.0.0/16"
action = "protect"
sa = [0x00002001]
"#;
    let a = lab.espo_run(&t.left, "left", &format!("{sas}{policies}"));

    // Inbound: cleartext to the bypassed port arrives, to any other port it does not.
    let forged = |port| vec![udp4(Ipv4Addr::new(10, 2, 0, 5), Ipv4Addr::new(10, 1, 0, 2), port); 3];
    let bypassed = arrivals(&lab, &t.left_host, 7009, || {
        send_raw(&lab, &t.right, &forged(7009))
    });
    let protected = arrivals(&lab, &t.left_host, 7005, || {
        send_raw(&lab, &t.right, &forged(7005))
    });
    assert_eq!((bypassed, protected), (3, 0));
    let status = lab.status_until(&a, |s| guard_dropped(s, "inbound") >= 3);
    assert_eq!(policy_dropped(&status, 3), 3, "{status}");

    // Outbound with espo running: the bypassed port leaves in clear (sent by espo), the
    // protected one as ESP.
    let cap = capture::Capture::start(&t.left, &t.left_out);
    send_udp(
        &lab,
        &t.left_host,
        SocketAddr::new(ip("10.2.0.2"), 7009),
        3,
        100,
        b"bypass-run",
    );
    send_udp(
        &lab,
        &t.left_host,
        SocketAddr::new(ip("10.2.0.2"), 7005),
        3,
        100,
        b"protect-run",
    );
    let status = lab.status_until(&a, |s| stat(s, "outbound", "bypassed") >= 3);
    let frames = cap.finish();
    assert_eq!(stat(&status, "outbound", "bypassed"), 3, "{status}");
    assert!(seen(&frames, b"bypass-run") && !seen(&frames, b"protect-run"));
    assert_eq!(cleartext_from(&frames, [10, 1, 0, 2]), vec![Some(7009); 3]);

    // Outbound with espo killed: the kernel routes both; the guard passes only the bypass,
    // and drops every fragment of a large protected datagram.
    kill_hard(&mut lab, &a);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    send_udp(
        &lab,
        &t.left_host,
        SocketAddr::new(ip("10.2.0.2"), 7009),
        3,
        100,
        b"bypass-dead",
    );
    send_udp(
        &lab,
        &t.left_host,
        SocketAddr::new(ip("10.2.0.2"), 7005),
        3,
        100,
        b"protect-dead",
    );
    send_udp(
        &lab,
        &t.left_host,
        SocketAddr::new(ip("10.2.0.2"), 7005),
        1,
        4000,
        b"fragmented",
    );
    std::thread::sleep(Duration::from_millis(200));
    let frames = cap.finish();
    assert_eq!(cleartext_from(&frames, [10, 1, 0, 2]), vec![Some(7009); 3]);
    assert!(seen(&frames, b"bypass-dead") && !seen(&frames, b"protect-dead"));
    let report = text(&guard_cli(
        &t.left,
        "status",
        &config_path(&lab, "left"),
        &[],
    ));
    // 3 small datagrams and 3 fragments of the large one (4008 bytes over a 1500-byte MTU).
    assert_eq!(policy_dropped(&report, 2), 6, "{report}");

    // Without the guard, the protected datagrams and the fragments leave in clear.
    assert!(
        guard_cli(&t.left, "off", &config_path(&lab, "left"), &[])
            .status
            .success()
    );
    let cap = capture::Capture::start(&t.left, &t.left_out);
    send_udp(
        &lab,
        &t.left_host,
        SocketAddr::new(ip("10.2.0.2"), 7005),
        1,
        4000,
        b"fragmented",
    );
    std::thread::sleep(Duration::from_millis(200));
    let frames = cap.finish();
    let mut clear = cleartext_from(&frames, [10, 1, 0, 2]);
    clear.sort();
    assert_eq!(
        clear,
        vec![None, None, Some(7005)],
        "the three fragments in clear"
    );
}

#[test]
fn espo_run_without_nft_refuses_naming_the_package() {
    let mut lab = lab_or_skip!("gdn");
    let t = topology::server_to_server(&mut lab);
    let cfg = lab::example("server-server/esp/server-a.toml", &t.left_out);
    let cfg = lab::set_gateway_field(
        &cfg,
        "state_dir",
        &format!("\"{}\"", lab.dir.join("left-state").display()),
    );
    let path = config_path(&lab, "left");
    std::fs::write(&path, cfg).unwrap();
    // `nft` nowhere on the PATH espo searches (and `ip` called by its full name).
    let ip_command = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("iproute2's ip");
    let out = Command::new(ip_command)
        .args(["netns", "exec", &t.left])
        .arg(env!("CARGO_BIN_EXE_espo"))
        .args(["run", "--config", path.to_str().unwrap()])
        .env("PATH", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .expect("espo runs");
    let msg = text(&out);
    assert!(!out.status.success(), "{msg}");
    assert!(
        msg.contains("the `nft` command is not installed")
            && msg.contains("apt-get install nftables"),
        "{msg}"
    );
    assert!(
        !lab.ip(&t.left, &["link"]).contains("espo0"),
        "nothing was set up"
    );
}

/// A hub's configuration: its tunnels to `peers` peers, by turns ESP over IPv4, ESP over
/// IPv6 and ESP in UDP over IPv4, with a site each.
fn mixed_hub(peers: usize) -> String {
    let mut text =
        String::from("[gateway]\ntun = \"espo0\"\nport = \"w0\"\nlocal = \"192.0.2.1\"\n\n");
    for i in 0..peers {
        let (v6, udp) = (i % 3 == 1, i % 3 == 2);
        let (local, peer, site, local_site) = if v6 {
            (
                "2001:db8::1".to_string(),
                format!("2001:db8:1::{:x}", i + 1),
                format!("fd00:{i:x}::/48"),
                "fd00:ffff::/48",
            )
        } else {
            (
                "192.0.2.1".to_string(),
                format!("198.18.{}.{}", i / 256, i % 256),
                format!("10.{}.{}.0/24", 128 + i / 256, i % 256),
                "10.1.0.0/16",
            )
        };
        let encap = if udp {
            "udp_encap = { src_port = 4500, dst_port = 4500 }\n"
        } else {
            ""
        };
        for (n, spi, src, dst) in [
            (2 * i, 0x30_0000 + i, &local, &peer),
            (2 * i + 1, 0x20_0000 + i, &peer, &local),
        ] {
            text.push_str(&format!(
                "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"{dst}\"\n\
                 encryption = \"aes-gcm-128\"\nkey = \"{}{n:08x}\"\n{encap}\n",
                "5e".repeat(16)
            ));
        }
        text.push_str(&format!(
            "[[policy]]\ndir = \"out\"\nsrc = \"{local_site}\"\ndst = \"{site}\"\naction = \"protect\"\nsa = [{:#x}]\n\n\
             [[policy]]\ndir = \"in\"\nsrc = \"{site}\"\ndst = \"{local_site}\"\naction = \"protect\"\nsa = [{:#x}]\n\n",
            0x30_0000 + i,
            0x20_0000 + i
        ));
    }
    text
}

/// The guard of every example, and of a hub with many peers of every kind (its tunnels in
/// sets), is accepted by nft and the kernel.
#[test]
fn guard_rules_of_every_example_load_into_nftables() {
    let mut lab = lab_or_skip!("gdr");
    let ns = lab.ns("n");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = Vec::new();
    for dir in ["gw-gw", "server-gw", "server-server"] {
        for variant in std::fs::read_dir(root.join(dir)).unwrap() {
            for file in std::fs::read_dir(variant.unwrap().path()).unwrap() {
                files.push(file.unwrap().path());
            }
        }
    }
    let hub_dir = tempfile::tempdir().unwrap();
    let hub = hub_dir.path().join("hub.toml");
    std::fs::write(&hub, mixed_hub(60)).unwrap();
    files.push(hub.clone());
    let mut checked = 0;
    for file in files {
        let rules = espo(&ns, &["guard", "rules", "--config", file.to_str().unwrap()]);
        assert!(
            rules.status.success(),
            "{}: {}",
            file.display(),
            text(&rules)
        );
        if text(&rules).contains("no guard — the card's port is its own") {
            // A card on the bus: espo run installs no guard (nothing routed can leave
            // through the card).
            assert!(file.ends_with("esp-vfio/gw-b.toml"), "{}", file.display());
            continue;
        }
        if file == hub {
            // Six kinds of tunnel packets (three per direction) and IKE per family and
            // direction: ten rules through sets.
            let sets = String::from_utf8_lossy(&rules.stdout)
                .lines()
                .filter(|l| {
                    (l.ends_with("\"tunnel\"") || l.ends_with("\"IKE\"")) && l.contains(" . ")
                })
                .count();
            assert_eq!(sets, 10, "{}", text(&rules));
        }
        // Check mode: nft parses and the kernel validates, nothing is committed.
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-c", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&rules.stdout)
            .unwrap();
        let check = child.wait_with_output().unwrap();
        assert!(
            check.status.success(),
            "{}: {}",
            file.display(),
            text(&check)
        );
        checked += 1;
    }
    assert!(checked >= 19, "{checked}");
    assert!(!tables(&ns).contains("espo"));
}

#[test]
fn guard_on_the_card_port_catches_the_kernels_own_routing() {
    let mut lab = lab_or_skip!("gdm");
    // gw-b on the card model: espo's frames leave through an AF_PACKET socket on the port,
    // which no netfilter hook sees; the kernel's own routing onto the port is what the
    // guard must catch once espo is gone.
    let t = topology::gateway_to_gateway_card(&mut lab);
    let peer_mac = lab
        .ip(&t.left, &["link", "show", &t.left_out])
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("gw-a's MAC")
        .to_owned();
    lab.ip(
        &t.right,
        &[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.1",
            "dev",
            &t.right_out,
            "onlink",
        ],
    );
    lab.ip(
        &t.right,
        &[
            "neigh",
            "add",
            "192.0.2.1",
            "lladdr",
            &peer_mac,
            "dev",
            &t.right_out,
        ],
    );
    let _a = lab.espo_run(
        &t.left,
        "left",
        &lab::example("gw-gw/esp-model/gw-a.toml", &t.left_out),
    );
    let b = lab.espo_run(
        &t.right,
        "right",
        &lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out),
    );
    let dst = SocketAddr::new(ip("10.1.0.2"), 7006);
    let marker = b"card-guard-marker";
    assert_eq!(
        traffic::udp_echo(&lab, &t.right_host, &t.left_host, ip("10.1.0.2"), 5, 500),
        5,
        "the tunnel works with the guard in place"
    );
    kill_hard(&mut lab, &b);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    send_udp(&lab, &t.right_host, dst, 10, 200, marker);
    let frames = cap.finish();
    assert!(
        cleartext_from(&frames, [10, 2, 0, 2]).is_empty() && !seen(&frames, marker),
        "cleartext from the card gateway's inside after espo was killed"
    );
    let path = config_path(&lab, "right");
    let report = text(&guard_cli(&t.right, "status", &path, &[]));
    assert_eq!(guard_dropped(&report, "outbound"), 10, "{report}");

    assert!(guard_cli(&t.right, "off", &path, &[]).status.success());
    let cap = capture::Capture::start(&t.left, &t.left_out);
    send_udp(&lab, &t.right_host, dst, 10, 200, marker);
    let frames = cap.finish();
    assert!(
        seen(&frames, marker),
        "without the guard the kernel routes it out in clear"
    );
}
