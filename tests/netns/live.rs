//! The live SA and policy database and the durable SA state, end to end: SAs replaced
//! under traffic through the control socket, gateways killed and restarted, replays across
//! a restart, time lifetimes in software, and what the control socket refuses.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use super::lab::{self, Gateway, Lab, lab_or_skip};
use super::{capture, drops, ip, start_pair, stat, topology, traffic};

/// Sets a flag when dropped — also when a test panics, so that the threads of a scope
/// that wait for the flag stop and the panic is reported instead of hanging the test.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A random AES-GCM-128 key with its salt, in hex.
fn key() -> String {
    (0..20)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// One `[[sa]]` entry: ESP AES-GCM-128 from `src` to `dst`.
fn sa(spi: u32, src: &str, dst: &str, key: &str) -> String {
    format!(
        "[[sa]]\nspi = {spi:#x}\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"{dst}\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\n"
    )
}

/// Writes `text` into the lab's directory as `name` and returns its path.
fn file(lab: &Lab, name: &str, text: &str) -> String {
    let path = lab.dir.join(name);
    std::fs::write(&path, text).expect("SA file written");
    path.display().to_string()
}

fn ok(lab: &Lab, gw: &Gateway, args: &[&str]) -> String {
    let (ok, out, err) = lab.espo(gw, args);
    assert!(ok, "espo {args:?}: {err}{out}");
    out
}

/// (SPI, sequence number) of every ESP packet from `src` in a capture's IPv4 packets.
fn esp_numbers(tunnel: &[Vec<u8>], src: [u8; 4]) -> Vec<(u32, u32)> {
    tunnel
        .iter()
        .filter(|p| p.len() >= 28 && p[9] == 50 && p[12..16] == src)
        .map(|p| {
            let h = usize::from(p[0] & 0x0f) * 4;
            let spi = u32::from_be_bytes(p[h..h + 4].try_into().unwrap());
            let seq = u32::from_be_bytes(p[h + 4..h + 8].try_into().unwrap());
            (spi, seq)
        })
        .collect()
}

/// Replaces the SA pair of the gw-gw/esp tunnel 100 times under UDP streams both ways and
/// a TCP transfer loop: nothing lost, duplicated or corrupted, both ends' counters agree,
/// and the outside shows the SPIs change.
#[test]
fn replacing_the_sa_pair_100_times_under_traffic_loses_nothing() {
    let mut lab = lab_or_skip!("lrk");
    let t = topology::gateway_to_gateway(&mut lab);
    rekey_100_times(&mut lab, &t, "gw-gw/esp");
}

/// The same with gw-b on the card model: its SAs on the card, replaced there.
#[test]
fn replacing_the_sa_pair_100_times_on_the_card_model_loses_nothing() {
    let mut lab = lab_or_skip!("lrm");
    let t = topology::gateway_to_gateway_card(&mut lab);
    rekey_100_times(&mut lab, &t, "gw-gw/esp-model");
    let status = lab.status(&Gateway::at(&lab.inner, "right"));
    assert!(
        status
            .lines()
            .filter(|l| l.starts_with("out ") || l.starts_with("in "))
            .filter(|l| l.contains("0x00011064") || l.contains("0x00021064"))
            .all(|l| l.trim_end().ends_with("card")),
        "the new SAs run on the card: {status}"
    );
}

fn rekey_100_times(lab: &mut Lab, t: &topology::Topology, dir: &str) {
    let (a, b) = start_pair(lab, t, dir, "gw-a", "gw-b");
    let lab = &*lab;
    let cap = capture::Capture::start(&t.left, &t.left_out);
    let stop = AtomicBool::new(false);
    let rekeys_done = AtomicBool::new(false);
    let gap = Duration::from_micros(500);
    let (ab, ba, transfers) = std::thread::scope(|s| {
        let ab = s.spawn(|| {
            traffic::udp_stream(
                lab,
                &t.left_host,
                &t.right_host,
                ip("10.2.0.2"),
                200,
                gap,
                &stop,
            )
        });
        let ba = s.spawn(|| {
            traffic::udp_stream(
                lab,
                &t.right_host,
                &t.left_host,
                ip("10.1.0.2"),
                1200,
                gap,
                &stop,
            )
        });
        let tcp = s.spawn(|| {
            let mut n = 0;
            while !rekeys_done.load(Ordering::SeqCst) {
                let port = 7100 + (n % 500) as u16;
                traffic::tcp_transfer_on(
                    lab,
                    &t.left_host,
                    &t.right_host,
                    ip("10.2.0.2"),
                    300_000,
                    port,
                );
                n += 1;
            }
            n
        });
        let stop_on_panic = SetOnDrop(&stop);
        let rekeys_on_panic = SetOnDrop(&rekeys_done);
        std::thread::sleep(Duration::from_millis(200));
        let (mut a_old, mut b_old) = (0x1001u32, 0x2001u32);
        for k in 1..=100u32 {
            let (a_new, b_new) = (0x0001_1000 + k, 0x0002_1000 + k);
            let a_sa = file(
                lab,
                &format!("a{k}.toml"),
                &sa(a_new, "192.0.2.1", "192.0.2.2", &key()),
            );
            let b_sa = file(
                lab,
                &format!("b{k}.toml"),
                &sa(b_new, "192.0.2.2", "192.0.2.1", &key()),
            );
            let (ao, bo) = (format!("{a_old:#x}"), format!("{b_old:#x}"));
            // Make before break: both inbound SAs first, then the senders switch.
            ok(lab, &b, &["sa", "replace", &ao, &a_sa, "--grace", "3"]);
            ok(lab, &a, &["sa", "replace", &bo, &b_sa, "--grace", "3"]);
            ok(lab, &a, &["sa", "replace", &ao, &a_sa]);
            ok(lab, &b, &["sa", "replace", &bo, &b_sa]);
            (a_old, b_old) = (a_new, b_new);
        }
        drop(rekeys_on_panic);
        let transfers = tcp
            .join()
            .expect("TCP transfers complete with their content");
        std::thread::sleep(Duration::from_millis(200));
        drop(stop_on_panic);
        (ab.join().unwrap(), ba.join().unwrap(), transfers)
    });
    for (name, s) in [("a->b", &ab), ("b->a", &ba)] {
        assert!(s.sent > 1000, "{name}: {} sent", s.sent);
        assert_eq!(s.corrupted, 0, "{name}: corrupted");
        assert!(
            s.lost().is_empty(),
            "{name}: lost {:?} of {}",
            s.lost(),
            s.sent
        );
        assert!(
            s.duplicated().is_empty(),
            "{name}: duplicated {:?}",
            s.duplicated()
        );
    }
    assert!(transfers >= 1);

    let (sa_text, sb_text) = (lab.status(&a), lab.status(&b));
    for (name, st) in [("gw-a", &sa_text), ("gw-b", &sb_text)] {
        assert_eq!(stat(st, "outbound", "dropped"), 0, "{name}: {st}");
        assert_eq!(stat(st, "inbound", "dropped"), 0, "{name}: {st}");
    }
    assert_eq!(
        stat(&sa_text, "outbound", "forwarded"),
        stat(&sb_text, "inbound", "forwarded"),
        "what gw-a sent, gw-b delivered:\n{sa_text}\n{sb_text}"
    );
    assert_eq!(
        stat(&sb_text, "outbound", "forwarded"),
        stat(&sa_text, "inbound", "forwarded"),
        "what gw-b sent, gw-a delivered"
    );
    // The last SAs are the ones in use; the first ones are gone.
    let list = ok(lab, &a, &["sa", "list"]);
    assert!(
        list.contains("0x00011064") && list.contains("0x00021064"),
        "{list}"
    );
    assert!(!list.contains("0x00001001"), "{list}");

    let (_, tunnel) = capture::tally(&cap.finish());
    let spis: BTreeSet<u32> = esp_numbers(&tunnel, [192, 0, 2, 1])
        .into_iter()
        .map(|(spi, _)| spi)
        .collect();
    assert!(
        spis.len() >= 90,
        "the SPI changes on the wire: {} seen",
        spis.len()
    );
    assert!(spis.contains(&0x0001_1064));
}

/// `espo run` killed with SIGKILL mid-traffic and started again with the same
/// configuration, ten times: no (SPI, sequence number) pair appears twice on the outside,
/// and traffic resumes after every restart.
#[test]
fn restarts_after_sigkill_never_repeat_a_sequence_number() {
    let mut lab = lab_or_skip!("lrs");
    let t = topology::gateway_to_gateway(&mut lab);
    let (a, b) = start_pair(&mut lab, &t, "gw-gw/esp", "gw-a", "gw-b");
    let config = lab::example("gw-gw/esp/gw-a.toml", &t.left_out);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    restart_10_times(&lab, &t, a, &b, &config, true, cap);
}

/// The same with the card model as the sender that is killed and restarted: the card's
/// numbers are reserved too.
#[test]
fn restarts_of_the_card_model_never_repeat_a_sequence_number() {
    let mut lab = lab_or_skip!("lrc");
    let t = topology::gateway_to_gateway_card(&mut lab);
    let (a, b) = start_pair(&mut lab, &t, "gw-gw/esp-model", "gw-a", "gw-b");
    let config = lab::example("gw-gw/esp-model/gw-b.toml", &t.right_out);
    let cap = capture::Capture::start(&t.left, &t.left_out);
    restart_10_times(&lab, &t, b, &a, &config, false, cap);
    let status = lab.status(&Gateway::at(&lab.inner, "right"));
    assert!(
        status.contains("0x00002001") && status.contains("card"),
        "{status}"
    );
}

/// Kills `sender` (left when `left`, else right) ten times under a stream towards `peer`,
/// restarting it on `config` each time; then checks the capture of the link: no (SPI,
/// sequence number) twice from the sender.
fn restart_10_times(
    lab: &Lab,
    t: &topology::Topology,
    sender: Gateway,
    peer: &Gateway,
    config: &str,
    left: bool,
    cap: capture::Capture,
) {
    let stop = AtomicBool::new(false);
    let (from_ns, to_ns, to, name, ns, src) = if left {
        (
            &t.left_host,
            &t.right_host,
            ip("10.2.0.2"),
            "left",
            &t.left,
            [192, 0, 2, 1],
        )
    } else {
        (
            &t.right_host,
            &t.left_host,
            ip("10.1.0.2"),
            "right",
            &t.right,
            [192, 0, 2, 2],
        )
    };
    let b = peer;
    let stream = std::thread::scope(|s| {
        let stream = s.spawn(|| {
            traffic::udp_stream(
                lab,
                from_ns,
                to_ns,
                to,
                300,
                Duration::from_micros(400),
                &stop,
            )
        });
        let stop_on_panic = SetOnDrop(&stop);
        let mut gw = sender;
        for round in 0..10 {
            std::thread::sleep(Duration::from_millis(300));
            lab.kill9(&gw);
            gw = lab.espo_run(ns, name, config);
            // Traffic flows again: the peer accepts the restarted sender's numbers.
            let deadline = Instant::now() + Duration::from_secs(5);
            let before = stat(&lab.status(b), "inbound", "forwarded");
            while stat(&lab.status(b), "inbound", "forwarded") < before + 100 {
                assert!(
                    Instant::now() < deadline,
                    "round {round}: no traffic through the restarted gateway: {}",
                    lab.status(b)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        drop(stop_on_panic);
        stream.join().unwrap()
    });
    assert!(
        stream.sent > 2000 && stream.received.len() > 1000,
        "{} sent, {} received",
        stream.sent,
        stream.received.len()
    );
    assert_eq!(stream.corrupted, 0);
    let (_, tunnel) = capture::tally(&cap.finish());
    let numbers = esp_numbers(&tunnel, src);
    assert!(
        numbers.len() > 2000,
        "{} ESP packets captured",
        numbers.len()
    );
    let mut seen: BTreeMap<(u32, u32), usize> = BTreeMap::new();
    for n in &numbers {
        *seen.entry(*n).or_default() += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(repeated.is_empty(), "(SPI, seq) sent twice: {repeated:?}");
    // Each restart continued after a reservation: the numbers jump, never fall back.
    let jumps = numbers
        .windows(2)
        .filter(|w| w[1].1 > w[0].1 + 1000)
        .count();
    assert!(jumps >= 10, "{jumps} jumps");
    assert!(drops(&lab.status(b), "replayed") == 0);
}

/// A packet gw-b accepted before it was killed is refused after its restart: its replay
/// mark survived in the state directory.
#[test]
fn a_packet_accepted_before_a_restart_is_refused_after_it() {
    let mut lab = lab_or_skip!("lrp");
    let t = topology::gateway_to_gateway(&mut lab);
    let (_a, b) = start_pair(&mut lab, &t, "gw-gw/esp", "gw-a", "gw-b");
    let cap = capture::Capture::start(&t.left, &t.left_out);
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 20, 500),
        20
    );
    let (_, tunnel) = capture::tally(&cap.finish());
    let early = tunnel
        .iter()
        .find(|p| p[9] == 50 && p[16..20] == [192, 0, 2, 2])
        .expect("an ESP packet to gw-b")
        .clone();
    // The mark is recorded within a second; then gw-b dies without a word.
    std::thread::sleep(Duration::from_millis(1500));
    lab.kill9(&b);
    let b = lab.espo_run(
        &t.right,
        "right",
        &lab::example("gw-gw/esp/gw-b.toml", &t.right_out),
    );
    let anti_replay = |s: &str| drops(s, "replayed") + drops(s, "stale");
    assert_eq!(anti_replay(&lab.status(&b)), 0);
    capture::replay(&lab, &t.left, &early);
    let status = lab.status_until(&b, |s| anti_replay(s) > 0);
    assert_eq!(
        anti_replay(&status),
        1,
        "the old packet is refused: {status}"
    );
    assert_eq!(stat(&status, "inbound", "forwarded"), 0, "{status}");
    // And the tunnel works: the peer's next numbers are above the mark.
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 5, 500),
        5
    );
}

/// `hard_seconds` ends an SA in the software engine: it sends nothing once its time is up,
/// its packets are counted `expired`, and the status says why.
#[test]
fn a_software_sa_stops_at_its_hard_time_lifetime() {
    let mut lab = lab_or_skip!("llt");
    let t = topology::gateway_to_gateway(&mut lab);
    let timed = lab::example("gw-gw/esp/gw-a.toml", &t.left_out).replace(
        "key = \"12595b1aa441d9d8abf622c239b077f852f71c4c\"",
        "key = \"12595b1aa441d9d8abf622c239b077f852f71c4c\"\nlifetime = { soft_seconds = 1, hard_seconds = 2 }",
    );
    assert!(timed.contains("hard_seconds"));
    let a = lab.espo_run(&t.left, "left", &timed);
    let _b = lab.espo_run(
        &t.right,
        "right",
        &lab::example("gw-gw/esp/gw-b.toml", &t.right_out),
    );
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 5, 200),
        5,
        "working before its time is up"
    );
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 3, 200),
        0,
        "nothing sent after its hard lifetime"
    );
    let status = lab.status(&a);
    assert!(drops(&status, "expired") >= 3, "{status}");
    assert!(
        status.contains("sa 0x00001001 out: soft lifetime reached (seconds)")
            && status.contains("sa 0x00001001 out: hard lifetime reached (seconds)"),
        "{status}"
    );
}

/// What the control socket refuses — malformed requests, unknown and duplicate SPIs, a
/// client that is not root — it refuses clearly, and nothing changes.
#[test]
fn the_control_socket_refuses_bad_requests_and_changes_nothing() {
    let mut lab = lab_or_skip!("lcs");
    let t = topology::gateway_to_gateway(&mut lab);
    let (a, _b) = start_pair(&mut lab, &t, "gw-gw/esp", "gw-a", "gw-b");
    let before = ok(&lab, &a, &["sa", "list"]);
    let policies = ok(&lab, &a, &["policy", "list"]);

    let (done, _, err) = lab.espo(&a, &["sa", "del", "0x9999"]);
    assert!(!done && err.contains("no sa 0x00009999"), "{err}");
    let dup = file(
        &lab,
        "dup.toml",
        &format!(
            "{}dir = \"out\"\n",
            sa(0x1001, "192.0.2.1", "192.0.2.2", &key())
        ),
    );
    let (done, _, err) = lab.espo(&a, &["sa", "add", &dup]);
    assert!(!done && err.contains("already exists"), "{err}");
    let k = key();
    let bad = file(
        &lab,
        "bad.toml",
        &sa(0x3001, "192.0.2.1", "192.0.2.2", &format!("{}zz", &k[..38])),
    );
    let (done, out, err) = lab.espo(&a, &["sa", "replace", "0x1001", &bad]);
    assert!(!done && err.contains("field `key`"), "{err}");
    assert!(
        !err.contains(&k[..16]) && !out.contains(&k[..16]),
        "the key is never echoed"
    );
    let (done, _, err) = lab.espo(&a, &["sa", "del", "0x1001"]);
    assert!(!done && err.contains("in use by policy"), "{err}");
    let (done, _, err) = lab.espo(&a, &["policy", "del", "99"]);
    assert!(!done && err.contains("no policy 99"), "{err}");

    // Raw garbage on the socket.
    for garbage in [
        &b"\xff\xfe\x00"[..],
        b"sa add\n[[sa]\n",
        b"policy set x y z",
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&a.socket).unwrap();
        std::io::Write::write_all(&mut s, garbage).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        assert!(answer.starts_with("error\n"), "{answer:?}");
    }

    // Not root: the socket's mode keeps the client out, and it says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_espo"))
        .args(["sa", "list", "--socket"])
        .arg(&a.socket)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("permission denied"),
        "{err}"
    );

    assert_eq!(ok(&lab, &a, &["sa", "list"]), before, "nothing changed");
    assert_eq!(ok(&lab, &a, &["policy", "list"]), policies);
    assert_eq!(
        traffic::udp_echo(&lab, &t.left_host, &t.right_host, ip("10.2.0.2"), 5, 200),
        5
    );
}
