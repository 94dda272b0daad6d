//! Key management against strongSwan (Debian's charon with its userspace ESP,
//! kernel-libipsec, which always puts ESP in UDP 4500) and between two espo gateways: the
//! tunnel is negotiated with IKEv2, then TCP crosses it both ways with its content checked.
//!
//! Each charon runs in its namespace with a private /run (its pid file path is compiled
//! in), its own vici socket, strongswan.conf and swanctl directory ([`netlab::Swan`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use espo_harness::netlab;

use super::lab::{self, Gateway, Lab, lab_or_skip};
use super::{ip, traffic};

const CHARON: &str = netlab::CHARON;
const PSK: &str = "0x3f1e5a7c9b2d4e6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c5e7b";

/// One charon: [`netlab::Swan`], each failure a panic naming it.
pub struct Swan(netlab::Swan);

impl Swan {
    /// Starts charon in `ns` with `swanctl_conf` and loads it.
    pub fn start(lab: &Lab, ns: &str, name: &str, swanctl_conf: &str) -> Swan {
        Swan(
            netlab::Swan::start(&lab.inner, ns, name, swanctl_conf)
                .unwrap_or_else(|e| panic!("strongSwan: {e}")),
        )
    }

    /// `swanctl ARGS` against this charon.
    pub fn swanctl(&self, args: &[&str]) -> (bool, String) {
        self.0.swanctl(args).expect("swanctl runs")
    }

    pub fn log(&self) -> String {
        self.0.log()
    }

    /// The installed CHILD_SAs' listing.
    pub fn sas(&self) -> String {
        self.0.sas().expect("swanctl runs")
    }

    pub fn kill9(&mut self) {
        self.0.kill9()
    }
}

/// Whether charon is installed (Debian's strongswan-charon).
pub(super) fn swan_or_skip() -> bool {
    if Path::new(CHARON).exists() {
        true
    } else {
        eprintln!(
            "skipped: {CHARON} missing (apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins)"
        );
        false
    }
}

/// Two namespaces on one link: espo at 192.0.2.1 (site 10.1.0.0/16, its TUN at 10.1.0.1),
/// strongSwan at 192.0.2.2 (site 10.2.0.0/16, 10.2.0.1 on its loopback).
pub(super) struct Pair {
    pub espo_ns: String,
    pub swan_ns: String,
    pub espo_out: String,
}

pub(super) fn pair(lab: &mut Lab) -> Pair {
    let e = lab.ns("e");
    let s = lab.ns("s");
    let (eo, so) = lab.link(&e, "eo", &s, "so");
    lab.addr(&e, &eo, "192.0.2.1/24");
    lab.addr(&s, &so, "192.0.2.2/24");
    lab.ip(&s, &["addr", "add", "10.2.0.1/32", "dev", "lo"]);
    for ns in [&e, &s] {
        lab.sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
        lab.sysctl(ns, "net.ipv4.conf.default.rp_filter", "0");
    }
    Pair {
        espo_ns: e,
        swan_ns: s,
        espo_out: eo,
    }
}

/// espo's configuration: one connection to (or from) 192.0.2.2.
pub(super) fn espo_config(outside: &str, tun: &str, connection: &str) -> String {
    format!(
        "[device]
engine = \"software\"

[gateway]
tun = \"{tun}\"
tun_address = \"10.1.0.1/32\"
port = \"{outside}\"
local = \"192.0.2.1\"
ike_log = \"info\"

{connection}"
    )
}

pub(super) fn psk_connection(start: &str) -> String {
    netlab::espo_psk_connection("swan", PSK, start)
}

pub(super) fn swan_psk_conf(start: &str) -> String {
    format!(
        "connections {{
  espo {{
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = aes128gcm16-prfsha256-x25519
    local {{
      auth = psk
      id = 192.0.2.2
    }}
    remote {{
      auth = psk
      id = 192.0.2.1
    }}
    children {{
      net {{
        local_ts = 10.2.0.0/16
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128gcm16
        mode = tunnel
        start_action = {start}
      }}
    }}
  }}
}}
secrets {{
  ike-espo {{
    id-a = 192.0.2.1
    id-b = 192.0.2.2
    secret = {PSK}
  }}
}}
"
    )
}

/// TCP both ways through the tunnel, content checked.
pub(super) fn traffic_both_ways(lab: &Lab, p: &Pair) {
    traffic::tcp_transfer_from(
        lab,
        &p.espo_ns,
        Some(ip("10.1.0.1")),
        &p.swan_ns,
        ip("10.2.0.1"),
        256 * 1024,
    );
    traffic::tcp_transfer_from(
        lab,
        &p.swan_ns,
        Some(ip("10.2.0.1")),
        &p.espo_ns,
        ip("10.1.0.1"),
        256 * 1024,
    );
}

pub(super) fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<String>,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = check() {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(super) fn child_installed(lab: &Lab, gw: &Gateway) -> Option<String> {
    let (ok, out, _) = lab.espo(gw, &["ike", "list"]);
    (ok && out.contains("CHILD_SA net")).then_some(out)
}

/// strongSwan waiting in its namespace, espo initiating to it with a PSK: the pair, both
/// gateways and `espo ike list` once the CHILD_SA is up (20 s at most).
fn espo_up_with_swan(lab: &mut Lab) -> (Pair, Swan, Gateway, String) {
    let p = pair(lab);
    let swan = Swan::start(lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let gw = lab.espo_run(
        &p.espo_ns,
        "espo",
        &espo_config(&p.espo_out, &lab.name("t"), &psk_connection("start")),
    );
    let list = wait_for(
        "espo's CHILD_SA with strongSwan",
        Duration::from_secs(20),
        || child_installed(lab, &gw),
    );
    (p, swan, gw, list)
}

/// Waits (10 s at most) until strongSwan holds no established IKE SA: espo told it of the
/// end.
fn swan_forgets_the_ike_sa(swan: &Swan) {
    wait_for(
        "strongSwan to forget the IKE SA",
        Duration::from_secs(10),
        || (!swan.sas().contains("ESTABLISHED")).then_some(String::new()),
    );
}

#[test]
fn espo_initiates_to_strongswan_with_a_psk() {
    let mut lab = lab_or_skip!("ik");
    if !swan_or_skip() {
        return;
    }
    let (p, swan, gw, list) = espo_up_with_swan(&mut lab);
    assert!(
        list.contains("ESTABLISHED") && list.contains("initiator"),
        "{list}"
    );
    assert!(
        list.contains("ESP in UDP"),
        "strongSwan's libipsec fakes a NAT: {list}"
    );
    let sas = swan.sas();
    assert!(sas.contains("INSTALLED, TUNNEL"), "{sas}\n{}", swan.log());
    traffic_both_ways(&lab, &p);
    let status = lab.status(&gw);
    assert!(!status.contains(&PSK[2..]), "the PSK is never shown");
    // espo ike down deletes on both ends.
    let (ok, out, err) = lab.espo(&gw, &["ike", "down", "swan"]);
    assert!(ok, "{out}{err}");
    swan_forgets_the_ike_sa(&swan);
}

/// SIGTERM with a negotiated tunnel up and traffic through it: espo tells strongSwan and
/// exits at once (its datapath threads close their mailboxes as they stop, so removing the
/// negotiated SAs on the way out does not wait for them, 2 s per change).
#[test]
fn espo_stops_at_once_with_a_negotiated_tunnel_up() {
    let mut lab = lab_or_skip!("is");
    if !swan_or_skip() {
        return;
    }
    let (p, swan, gw, _) = espo_up_with_swan(&mut lab);
    traffic_both_ways(&lab, &p);
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gw.pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (status, out) = lab.wait_exit(&gw);
    let took = started.elapsed();
    assert!(status.success(), "espo run exited with {status}: {out}");
    assert!(
        took < Duration::from_secs(3),
        "espo took {took:?} to stop: {}",
        lab.log("espo")
    );
    swan_forgets_the_ike_sa(&swan);
}

#[test]
fn strongswan_initiates_to_espo_with_a_psk() {
    let mut lab = lab_or_skip!("ir");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let gw = lab.espo_run(
        &p.espo_ns,
        "espo",
        &espo_config(&p.espo_out, &lab.name("t"), &psk_connection("none")),
    );
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let (ok, out) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "20"]);
    assert!(
        ok,
        "strongSwan's initiate: {out}\n{}\n{}",
        swan.log(),
        lab.log("espo")
    );
    let list = wait_for("espo's CHILD_SA", Duration::from_secs(10), || {
        child_installed(&lab, &gw)
    });
    assert!(list.contains("responder"), "{list}");
    traffic_both_ways(&lab, &p);
}

#[test]
fn a_wrong_psk_is_refused_with_a_clear_log_line_and_nothing_installed() {
    let mut lab = lab_or_skip!("iw");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let gw = lab.espo_run(
        &p.espo_ns,
        "espo",
        &espo_config(&p.espo_out, &lab.name("t"), &psk_connection("none")),
    );
    let wrong = swan_psk_conf("none").replace(PSK, "0x00112233445566778899aabbccddeeff00112233");
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &wrong);
    let (ok, _) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
    assert!(!ok, "a wrong PSK must not establish");
    let log = lab.log("espo");
    assert!(log.contains("pre-shared key does not match"), "{log}");
    let (_, list, _) = lab.espo(&gw, &["ike", "list"]);
    assert!(!list.contains("CHILD_SA"), "{list}");
    assert!(
        swan.log().contains("AUTHENTICATION_FAILED"),
        "{}",
        swan.log()
    );
}

/// Two espo gateways, b on `b_engine`, negotiate their tunnel and carry TCP both ways.
fn two_espo_gateways(tag: &str, b_engine: &str) {
    let mut lab = lab_or_skip!(tag);
    let a = lab.ns("a");
    let b = lab.ns("b");
    let (ao, bo) = lab.link(&a, "ao", &b, "bo");
    lab.addr(&a, &ao, "192.0.2.1/24");
    if b_engine == "model" {
        // The card's port owns b's side of the link.
        lab.sysctl(&b, &format!("net.ipv6.conf.{bo}.disable_ipv6"), "1");
    } else {
        lab.addr(&b, &bo, "192.0.2.2/24");
    }
    let gw_a = lab.espo_run(
        &a,
        "a",
        &espo_config(&ao, &lab.name("ta"), &psk_connection("start")),
    );
    let b_conf = mirror_for_b(espo_config(&bo, &lab.name("tb"), &psk_connection("none")))
        .replace("engine = \"software\"", &format!("engine = \"{b_engine}\""));
    let gw_b = lab.espo_run(&b, "b", &b_conf);
    wait_for("a's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw_a)
    });
    wait_for("b's CHILD_SA", Duration::from_secs(5), || {
        child_installed(&lab, &gw_b)
    });
    traffic::tcp_transfer_from(
        &lab,
        &a,
        Some(ip("10.1.0.1")),
        &b,
        ip("10.2.0.1"),
        256 * 1024,
    );
    traffic::tcp_transfer_from(
        &lab,
        &b,
        Some(ip("10.2.0.1")),
        &a,
        ip("10.1.0.1"),
        256 * 1024,
    );
    let _: IpAddr = ip("10.1.0.1");
    if b_engine == "model" {
        let status = lab.status(&gw_b);
        assert!(
            status.contains("card: ESPO-1 model, mode offload, 2 of 2 SAs on the card"),
            "{status}"
        );
    }
}

/// espo's configuration for the other end of a tunnel between two espo gateways: a's
/// (from [`espo_config`] and [`psk_connection`]) with addresses, identities and selectors
/// mirrored.
pub(super) fn mirror_for_b(conf: String) -> String {
    conf.replace("10.1.0.1/32", "10.2.0.1/32")
        .replace("local = \"192.0.2.1\"", "local = \"192.0.2.2\"")
        .replace("local_addrs = \"192.0.2.1\"", "local_addrs = \"192.0.2.2\"")
        .replace(
            "remote_addrs = \"192.0.2.2\"",
            "remote_addrs = \"192.0.2.1\"",
        )
        .replace("id = \"192.0.2.1\"", "id = \"TMP\"")
        .replace("id = \"192.0.2.2\"", "id = \"192.0.2.1\"")
        .replace("id = \"TMP\"", "id = \"192.0.2.2\"")
        .replace("local_ts = [\"10.1.0.0/16\"]", "local_ts = [\"TMP\"]")
        .replace(
            "remote_ts = [\"10.2.0.0/16\"]",
            "remote_ts = [\"10.1.0.0/16\"]",
        )
        .replace("local_ts = [\"TMP\"]", "local_ts = [\"10.2.0.0/16\"]")
}

#[test]
fn two_espo_gateways_negotiate_their_tunnel() {
    two_espo_gateways("ie", "software");
}

#[test]
fn two_espo_gateways_negotiate_with_one_on_the_card_model() {
    two_espo_gateways("ig", "model");
}

/// The test PKI of espo-ike (made by strongSwan's `pki`): `name`.crt and `name`.key copied
/// into `dir`, the key private.
fn pki_file(dir: &Path, name: &str) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("host-stack/ike/testdata/auth")
        .join(name);
    let to = dir.join(name);
    std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    if name.ends_with(".key") {
        std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    to
}

/// The identity in the test PKI's certificate `key`.
fn id_of(key: &str) -> &'static str {
    match key {
        "ee-ecdsa" => "gw-a.espo.test",
        "ee-rsa" => "gw-b.espo.test",
        "ee-ed25519" => "gw-c.espo.test",
        _ => "gw-d.espo.test",
    }
}

fn pubkey_connection(dir: &Path, espo_key: &str, swan_key: &str, start: &str) -> String {
    let crt = pki_file(dir, &format!("{espo_key}.crt"));
    let key = pki_file(dir, &format!("{espo_key}.key"));
    let ca = pki_file(dir, "ca.crt");
    format!(
        "[[connection]]
name = \"swan\"
local_addrs = \"192.0.2.1\"
remote_addrs = \"192.0.2.2\"
proposals = [\"aes256gcm16-prfsha384-ecp384\", \"aes128-sha256-modp3072\"]

[connection.local]
auth = \"pubkey\"
id = \"{}\"
certs = [\"{}\"]
private_key = \"{}\"

[connection.remote]
auth = \"pubkey\"
id = \"{}\"
cacerts = [\"{}\"]

[[connection.child]]
name = \"net\"
local_ts = [\"10.1.0.0/16\"]
remote_ts = [\"10.2.0.0/16\"]
esp_proposals = [\"aes256gcm16\", \"aes128-sha256\"]
start_action = \"{start}\"
",
        id_of(espo_key),
        crt.display(),
        key.display(),
        id_of(swan_key),
        ca.display()
    )
}

fn swan_pubkey_conf(swan_key: &str, espo_key: &str, proposals: &str) -> String {
    format!(
        "connections {{
  espo {{
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = {proposals}
    local {{
      auth = pubkey
      certs = {swan_key}.crt
      id = {}
    }}
    remote {{
      auth = pubkey
      cacerts = ca.crt
      id = {}
    }}
    children {{
      net {{
        local_ts = 10.2.0.0/16
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128-sha256,aes256gcm16
        mode = tunnel
        start_action = none
      }}
    }}
  }}
}}
",
        id_of(swan_key),
        id_of(espo_key)
    )
}

/// Certificates both ways: espo with `espo_key`'s certificate, strongSwan with
/// `swan_key`'s, both from one CA; `espo_initiates` says who starts.
fn certificates(
    tag: &str,
    espo_key: &str,
    swan_key: &str,
    swan_proposals: &str,
    espo_initiates: bool,
) {
    let mut lab = lab_or_skip!(tag);
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let dir = lab.dir.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = espo_config(
        &p.espo_out,
        &lab.name("t"),
        &pubkey_connection(
            &dir,
            espo_key,
            swan_key,
            if espo_initiates { "start" } else { "none" },
        ),
    );
    let swan_dir = lab.dir.join("swan/swanctl");
    for sub in ["x509", "x509ca", "private"] {
        std::fs::create_dir_all(swan_dir.join(sub)).unwrap();
    }
    pki_file(&swan_dir.join("x509ca"), "ca.crt");
    pki_file(&swan_dir.join("x509"), &format!("{swan_key}.crt"));
    pki_file(&swan_dir.join("private"), &format!("{swan_key}.key"));
    let swan = Swan::start(
        &lab,
        &p.swan_ns,
        "swan",
        &swan_pubkey_conf(swan_key, espo_key, swan_proposals),
    );
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    if !espo_initiates {
        let (ok, out) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "20"]);
        assert!(
            ok,
            "strongSwan's initiate: {out}\n{}\n{}",
            swan.log(),
            lab.log("espo")
        );
    }
    let list = wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    assert!(list.contains(&format!("'{}'", id_of(swan_key))), "{list}");
    let log = swan.log();
    assert!(
        log.contains(&format!("authentication of '{}' with", id_of(espo_key))),
        "strongSwan verified espo's signature: {log}"
    );
    traffic_both_ways(&lab, &p);
}

#[test]
fn espo_with_an_ecdsa_certificate_initiates_to_strongswan_with_rsa() {
    certificates(
        "ic",
        "ee-ecdsa",
        "ee-rsa",
        "aes256gcm16-prfsha384-ecp384",
        true,
    );
}

#[test]
fn strongswan_with_an_ecdsa_certificate_initiates_to_espo_with_rsa() {
    certificates("id", "ee-rsa", "ee-ecdsa", "aes128-sha256-modp3072", false);
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_refused_and_nothing_installed() {
    let mut lab = lab_or_skip!("iu");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let dir = lab.dir.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    // strongSwan presents `stranger`, issued by another CA, as gw-b.espo.test's peer.
    let conf = espo_config(
        &p.espo_out,
        &lab.name("t"),
        &pubkey_connection(&dir, "ee-ecdsa", "ee-rsa", "none")
            .replace("id = \"gw-b.espo.test\"", "id = \"stranger.espo.test\""),
    );
    let swan_dir = lab.dir.join("swan/swanctl");
    for sub in ["x509", "x509ca", "private"] {
        std::fs::create_dir_all(swan_dir.join(sub)).unwrap();
    }
    pki_file(&swan_dir.join("x509ca"), "ca.crt");
    pki_file(&swan_dir.join("x509"), "stranger.crt");
    pki_file(&swan_dir.join("private"), "stranger.key");
    let swan_conf = swan_pubkey_conf("stranger", "ee-ecdsa", "aes256gcm16-prfsha384-ecp384")
        .replace("id = gw-d.espo.test", "id = stranger.espo.test");
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_conf);
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    let (ok, _) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
    assert!(!ok, "an untrusted certificate must not establish");
    let log = lab.log("espo");
    assert!(log.contains("no trusted CA issued"), "{log}");
    let (_, list, _) = lab.espo(&gw, &["ike", "list"]);
    assert!(!list.contains("CHILD_SA"), "{list}");
    assert!(
        swan.log().contains("AUTHENTICATION_FAILED"),
        "{}",
        swan.log()
    );
}

#[test]
fn a_dead_strongswan_is_noticed_and_its_sas_removed() {
    let mut lab = lab_or_skip!("ix");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let mut swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let conf = espo_config(&p.espo_out, &lab.name("t"), &psk_connection("start"))
        .replace(
            "ike_log = \"info\"",
            "ike_log = \"info\"\nike_retransmit_timeout = 0.5\nike_retransmit_tries = 2",
        )
        .replace("psk = ", "dpd_delay = 2\npsk = ");
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    let (_, before, _) = lab.espo(&gw, &["sa", "list"]);
    assert_eq!(
        before.lines().count(),
        3,
        "a header and two negotiated SAs: {before}"
    );
    swan.kill9();
    let gone = Instant::now();
    wait_for(
        "espo to notice the dead peer",
        Duration::from_secs(15),
        || {
            let (_, list, _) = lab.espo(&gw, &["ike", "list"]);
            (!list.contains("IKE_SA")).then_some(list)
        },
    );
    let (_, after, _) = lab.espo(&gw, &["sa", "list"]);
    assert_eq!(
        after.lines().count(),
        1,
        "the negotiated SAs are gone: {after}"
    );
    assert!(
        lab.log("espo").contains("does not answer"),
        "{}",
        lab.log("espo")
    );
    eprintln!(
        "dead peer noticed {:.1} s after it died",
        gone.elapsed().as_secs_f64()
    );
    // Without its CHILD_SA the tunnel's traffic does not leave in clear: it meets the
    // child's trap (and asks for the CHILD_SA again).
    let capture = super::capture::Capture::start(&p.espo_ns, &p.espo_out);
    lab.run_in(&p.espo_ns, || {
        let s = std::net::UdpSocket::bind("10.1.0.1:0").unwrap();
        for _ in 0..20 {
            let _ = s.send_to(b"not in clear", "10.2.0.1:7009");
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let frames = capture.finish();
    let clear = frames
        .iter()
        .filter(|f| f.get(12..14) == Some(&[0x08, 0x00]) && f.get(30..34) == Some(&[10, 2, 0, 1]))
        .count();
    assert_eq!(clear, 0, "packets for 10.2.0.1 left in clear");
    let status = lab.status(&gw);
    assert!(super::drops(&status, "trapped") >= 1, "{status}");
}

#[test]
fn nat_traversal_through_a_linux_nat() {
    let mut lab = lab_or_skip!("in");
    if !swan_or_skip() {
        return;
    }
    // espo (192.168.1.2) behind a masquerading router (192.168.1.1 | 192.0.2.254) to
    // strongSwan at 192.0.2.2.
    let e = lab.ns("e");
    let n = lab.ns("n");
    let s = lab.ns("s");
    let (eo, ni) = lab.link(&e, "eo", &n, "ni");
    let (no, so) = lab.link(&n, "no", &s, "so");
    lab.addr(&e, &eo, "192.168.1.2/24");
    lab.addr(&n, &ni, "192.168.1.1/24");
    lab.addr(&n, &no, "192.0.2.254/24");
    lab.addr(&s, &so, "192.0.2.2/24");
    lab.ip(&e, &["route", "add", "default", "via", "192.168.1.1"]);
    lab.ip(&s, &["addr", "add", "10.2.0.1/32", "dev", "lo"]);
    lab.sysctl(&n, "net.ipv4.ip_forward", "1");
    for ns in [&e, &s] {
        lab.sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
    }
    for rule in [
        vec!["add", "table", "ip", "nat"],
        vec![
            "add",
            "chain",
            "ip",
            "nat",
            "post",
            "{ type nat hook postrouting priority 100 ; }",
        ],
        vec![
            "add",
            "rule",
            "ip",
            "nat",
            "post",
            "oifname",
            no.as_str(),
            "masquerade",
        ],
    ] {
        let out = Command::new("ip")
            .args(["netns", "exec", &n, "nft"])
            .args(&rule)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nft {rule:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let swan_conf = swan_psk_conf("none")
        .replace("remote_addrs = 192.0.2.1", "remote_addrs = %any")
        .replace("id = 192.0.2.1", "id = espo.nat.test")
        .replace("id-a = 192.0.2.1", "id-a = espo.nat.test");
    let swan = Swan::start(&lab, &s, "swan", &swan_conf);
    let conf = espo_config(&eo, &lab.name("t"), &psk_connection("start"))
        .replace("192.0.2.1", "192.168.1.2")
        .replace("id = \"192.168.1.2\"", "id = \"espo.nat.test\"");
    let gw = lab.espo_run(&e, "espo", &conf);
    let list = wait_for(
        "espo's CHILD_SA through the NAT",
        Duration::from_secs(20),
        || child_installed(&lab, &gw),
    );
    assert!(
        list.contains("NAT-T") && list.contains("ESP in UDP"),
        "{list}"
    );
    assert!(
        lab.log("espo").contains("here true"),
        "espo sees itself behind the NAT: {}",
        lab.log("espo")
    );
    assert!(swan.sas().contains("192.0.2.254"), "{}", swan.sas());
    traffic::tcp_transfer_from(
        &lab,
        &e,
        Some(ip("10.1.0.1")),
        &s,
        ip("10.2.0.1"),
        256 * 1024,
    );
    traffic::tcp_transfer_from(
        &lab,
        &s,
        Some(ip("10.2.0.1")),
        &e,
        ip("10.1.0.1"),
        256 * 1024,
    );
}

#[test]
fn espo_and_strongswan_over_ipv6_outer_headers() {
    let mut lab = lab_or_skip!("i6");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    lab.addr(&p.espo_ns, &p.espo_out, "2001:db8::1/64");
    let so = lab.name("so");
    lab.addr(&p.swan_ns, &so, "2001:db8::2/64");
    let v6 = |t: String| {
        t.replace("192.0.2.1", "2001:db8::1")
            .replace("192.0.2.2", "2001:db8::2")
    };
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &v6(swan_psk_conf("none")));
    let gw = lab.espo_run(
        &p.espo_ns,
        "espo",
        &v6(espo_config(
            &p.espo_out,
            &lab.name("t"),
            &psk_connection("start"),
        )),
    );
    let list = wait_for("espo's CHILD_SA over IPv6", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    assert!(list.contains("[2001:db8::2]:4500"), "{list}");
    assert!(swan.sas().contains("INSTALLED, TUNNEL"), "{}", swan.sas());
    traffic_both_ways(&lab, &p);
}

#[test]
fn espo_on_the_card_model_negotiates_and_runs_its_child_sas_on_the_card() {
    let lab = lab_or_skip!("im");
    if !swan_or_skip() {
        return;
    }
    espo_on_the_card_against_strongswan(lab, false);
}

#[test]
fn espo_on_a_card_whose_port_is_its_own_negotiates_through_the_card() {
    let lab = lab_or_skip!("io");
    if !swan_or_skip() {
        return;
    }
    espo_on_the_card_against_strongswan(lab, true);
}

/// espo on the card model — in-process, its port on the interface, or served with its
/// port attached to the interface by the server (`own_port`: IKE, ARP and every tunnel
/// packet cross the card) — negotiates with strongSwan and runs both CHILD_SAs on the card.
fn espo_on_the_card_against_strongswan(mut lab: Lab, own_port: bool) {
    // The card's port owns espo's side of the link: no kernel address there (the port
    // answers ARP for 192.0.2.1 itself).
    let e = lab.ns("e");
    let s = lab.ns("s");
    let (eo, so) = lab.link(&e, "eo", &s, "so");
    lab.sysctl(&e, &format!("net.ipv6.conf.{eo}.disable_ipv6"), "1");
    lab.addr(&s, &so, "192.0.2.2/24");
    lab.ip(&s, &["addr", "add", "10.2.0.1/32", "dev", "lo"]);
    for ns in [&e, &s] {
        lab.sysctl(ns, "net.ipv4.conf.all.rp_filter", "0");
    }
    let p = Pair {
        espo_ns: e,
        swan_ns: s,
        espo_out: eo,
    };
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let conf = espo_config(&p.espo_out, &lab.name("t"), &psk_connection("start"));
    let (conf, described) = if own_port {
        let socket = lab.card_server_on(&p.espo_ns, "espo", &p.espo_out);
        let device = format!("engine = \"vfio-user\"\nsocket = \"{}\"", socket.display());
        let conf = conf
            .replace("engine = \"software\"", &device)
            .replace(&format!("port = \"{}\"\n", p.espo_out), "");
        assert!(!conf.contains("\nport = "), "{conf}");
        (conf, "ESPO-1 served over vfio-user")
    } else {
        let conf = conf.replace("engine = \"software\"", "engine = \"model\"");
        (conf, "ESPO-1 model")
    };
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    let list = wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    assert!(list.contains("ESP in UDP"), "{list}");
    traffic_both_ways(&lab, &p);
    let status = lab.status(&gw);
    assert!(
        status.contains(&format!(
            "card: {described}, mode offload, 2 of 2 SAs on the card"
        )),
        "{status}"
    );
    if own_port {
        // Nothing of espo's on the interface: IKE and ARP came through the card.
        assert!(status.contains("port of the card ("), "{status}");
        let to_key_management: u64 = status
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("ike: ")?
                    .strip_suffix(" dropped (its inbox full)")
            })
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no ike line in {status}"));
        assert!(
            to_key_management >= 2,
            "the answers came through the card: {status}"
        );
    }
    assert!(
        status.contains("  ike: ") && status.contains("messages to key management"),
        "{status}"
    );
    assert!(swan.sas().contains("INSTALLED"), "{}", swan.sas());
}

/// tshark `args` on `capture`; its standard output.
fn tshark(capture: &Path, args: &[String]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(capture)
        .args(args)
        .output()
        .expect("tshark runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn wireshark_decrypts_a_capture_with_the_tables_espo_writes() {
    let mut lab = lab_or_skip!("iv");
    if !swan_or_skip() {
        return;
    }
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("skipped: tshark missing (apt-get install tshark)");
        return;
    }
    let p = pair(&mut lab);
    let _swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let capture = super::capture::Capture::start(&p.espo_ns, &p.espo_out);
    let gw = lab.espo_run(
        &p.espo_ns,
        "espo",
        &espo_config(&p.espo_out, &lab.name("t"), &psk_connection("start")),
    );
    wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    traffic::tcp_transfer_from(
        &lab,
        &p.espo_ns,
        Some(ip("10.1.0.1")),
        &p.swan_ns,
        ip("10.2.0.1"),
        32 * 1024,
    );
    let frames = capture.finish();
    let pcap = lab.dir.join("outside.pcap");
    let file = std::fs::File::create(&pcap).unwrap();
    let header = espo_harness::pcap::FileHeader {
        link_type: espo_harness::pcap::LinkType::Ethernet,
        snap_len: 65535,
        nanosecond: false,
    };
    let mut w = espo_harness::pcap::Writer::new(std::io::BufWriter::new(file), header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_record(i as u32, 0, f).unwrap();
    }
    w.finish().unwrap();
    let tables = lab.dir.join("ws");
    let (ok, out, err) = lab.espo(&gw, &["wireshark", "--out", tables.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.is_empty(), "nothing printed: {out}");
    let esp_sa = std::fs::read_to_string(tables.join("esp_sa")).unwrap();
    let ike = std::fs::read_to_string(tables.join("ikev2_decryption_table")).unwrap();
    let mode = std::fs::metadata(tables.join("esp_sa"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077,
        0,
        "root's only"
    );
    assert_eq!(esp_sa.lines().count(), 2, "{esp_sa}");
    // Without the tables tshark sees ESP only; with them, the TCP inside.
    let mut args = vec![
        "-o".to_string(),
        "esp.enable_encryption_decode:TRUE".to_string(),
    ];
    let plain = tshark(
        &pcap,
        &[args.clone(), vec!["-Y".into(), "tcp.port == 7002".into()]].concat(),
    );
    assert_eq!(plain.lines().count(), 0, "{plain}");
    for line in esp_sa.lines() {
        args.push("-o".into());
        args.push(format!("uat:esp_sa:{line}"));
    }
    args.extend(["-Y".into(), "esp && tcp.port == 7002".into()]);
    let decrypted = tshark(&pcap, &args);
    assert!(
        decrypted.lines().count() >= 10,
        "tshark decrypted the ESP: {decrypted}"
    );
    // The IKE SA's messages: IKE_AUTH's traffic selectors in clear.
    let ike_args = vec![
        "-o".to_string(),
        format!("uat:ikev2_decryption_table:{}", ike.lines().next().unwrap()),
        "-Y".into(),
        "isakmp.ts.start_ipv4".into(),
        "-T".into(),
        "fields".into(),
        "-e".into(),
        "isakmp.ts.start_ipv4".into(),
    ];
    let ts = tshark(&pcap, &ike_args);
    assert!(
        ts.contains("10.1.0.0") && ts.contains("10.2.0.0"),
        "tshark decrypted IKE_AUTH: {ts}"
    );
}

#[test]
fn a_trap_negotiates_when_the_first_packet_comes() {
    let mut lab = lab_or_skip!("it");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let gw = lab.espo_run(
        &p.espo_ns,
        "espo",
        &espo_config(&p.espo_out, &lab.name("t"), &psk_connection("trap")),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, list, _) = lab.espo(&gw, &["ike", "list"]);
    assert!(
        !list.contains("IKE_SA"),
        "a trap starts nothing by itself: {list}"
    );
    let (_, policies, _) = lab.espo(&gw, &["policy", "list"]);
    assert!(policies.contains("trap"), "{policies}");
    // The first SYN is trapped (and dropped); TCP sends it again once the CHILD_SA is in.
    traffic::tcp_transfer_from(
        &lab,
        &p.espo_ns,
        Some(ip("10.1.0.1")),
        &p.swan_ns,
        ip("10.2.0.1"),
        64 * 1024,
    );
    let list = wait_for("espo's CHILD_SA", Duration::from_secs(5), || {
        child_installed(&lab, &gw)
    });
    assert!(list.contains("initiator"), "{list}");
    assert!(
        lab.log("espo").contains("acquire for swan/net"),
        "{}",
        lab.log("espo")
    );
    assert!(
        super::drops(&lab.status(&gw), "trapped") >= 1,
        "{}",
        lab.status(&gw)
    );
    assert!(swan.sas().contains("INSTALLED"), "{}", swan.sas());
}

/// A genuine IKE_SA_INIT request (espo's own initiator made it), to replay with other SPIs.
fn an_ike_sa_init() -> Vec<u8> {
    use espo_ike::connection::{
        ChildSpec, ConnectionSpec, Lifetimes, LocalAuth, Psk, RemoteAuth, StartAction,
    };
    use espo_ike::daemon::{Event, KeyManager};
    let spec = ConnectionSpec {
        name: "flood".into(),
        local_addrs: vec![ip("192.0.2.2")],
        remote_addrs: vec![ip("192.0.2.1")],
        local_port: 500,
        remote_port: 500,
        local_id: None,
        remote_id: None,
        local_auth: LocalAuth::Psk,
        remote_auth: RemoteAuth::Psk,
        psk: Some(Psk(b"not the tunnel's pre-shared key".to_vec().into())),
        proposals: vec!["aes128gcm16-prfsha256-x25519".into()],
        dpd_delay: Duration::from_secs(30),
        encap: false,
        lifetimes: Lifetimes::IKE_DEFAULT,
        reauth_time: Duration::ZERO,
        fragmentation: true,
        fragment_size: 1280,
        children: vec![ChildSpec {
            name: "net".into(),
            local_ts: vec!["10.9.0.0/16".parse().unwrap()],
            remote_ts: vec!["10.1.0.0/16".parse().unwrap()],
            esp_proposals: vec!["aes128gcm16".into()],
            start_action: StartAction::Start,
            lifetimes: Lifetimes::CHILD_DEFAULT,
            replay_window: 64,
        }],
    };
    let mut d = espo_ike::manager::Daemon::new(
        vec![espo_ike::manager::Connection::load(spec).unwrap()],
        vec!["192.0.2.2:500".parse().unwrap()],
        Instant::now(),
        0,
    );
    d.tick(Instant::now());
    while let Some(e) = d.next_event() {
        if let Event::Send { message, .. } = e {
            return message;
        }
    }
    panic!("no IKE_SA_INIT");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_flood_of_ike_sa_init_leaves_memory_bounded_and_the_tunnel_working() {
    let mut lab = lab_or_skip!("if");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let so = lab.name("so");
    // 200 more addresses on strongSwan's side, each sending ten IKE_SA_INIT requests.
    for i in 100..300u32 {
        let a = std::net::Ipv4Addr::from(0xc600_0000 + i); // 198.0.0.x: another /16
        lab.ip(&p.swan_ns, &["addr", "add", &format!("{a}/32"), "dev", &so]);
    }
    lab.ip(
        &p.espo_ns,
        &["route", "add", "198.0.0.0/16", "dev", &p.espo_out],
    );
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    // Besides the tunnel, a responder for peers anywhere: what the flood aims at.
    let road = "
[[connection]]
name = \"road\"
local_addrs = \"192.0.2.1\"
remote_addrs = \"%any\"
proposals = [\"aes128gcm16-prfsha256-x25519\"]
psk = \"the road warriors' pre-shared key\"

[connection.local]
auth = \"psk\"

[connection.remote]
auth = \"psk\"

[[connection.child]]
name = \"roadnet\"
local_ts = [\"10.1.0.0/16\"]
";
    let conf = espo_config(
        &p.espo_out,
        &lab.name("t"),
        &format!("{}{road}", psk_connection("start")),
    );
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    let before = rss_kib(gw.pid);
    let init = an_ike_sa_init();
    lab.run_in(&p.swan_ns, || {
        for i in 100..300u32 {
            let a = std::net::Ipv4Addr::from(0xc600_0000 + i);
            let s = std::net::UdpSocket::bind((a, 0)).unwrap();
            for n in 0..10u32 {
                let mut m = init.clone();
                m[..4].copy_from_slice(&i.to_be_bytes());
                m[4..8].copy_from_slice(&n.to_be_bytes());
                let _ = s.send_to(&m, "192.0.2.1:500");
            }
            // Paced, so that the daemon's socket buffer takes them all.
            std::thread::sleep(Duration::from_millis(3));
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let (_, list, _) = lab.espo(&gw, &["ike", "list"]);
    let half_open = list.matches("CONNECTING").count();
    // 2000 requests: past 64 half-open IKE SAs each is answered with a cookie, which the
    // flood does not bring back, and no state is kept for it.
    let threshold = espo_ike::manager::COOKIE_THRESHOLD;
    assert_eq!(half_open, threshold, "{list}");
    let cookies: u64 = list
        .split(" cookies asked for")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(cookies > 1500, "{cookies} cookies: {list}");
    assert!(
        list.contains("ESTABLISHED") && list.contains("CHILD_SA net"),
        "the tunnel stands"
    );
    traffic_both_ways(&lab, &p);
    // A legitimate peer still gets in while the half-open IKE SAs are there: strongSwan
    // starts over, is asked for a cookie, brings it back and establishes.
    let (ok, out) = swan.swanctl(&["--terminate", "--ike", "espo", "--timeout", "10"]);
    assert!(ok, "{out}");
    let (ok, out) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "20"]);
    assert!(ok, "strongSwan establishes during the flood: {out}");
    let (_, list, _) = lab.espo(&gw, &["ike", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains(", responder, ")),
        "{list}"
    );
    let cookies_after: u64 = list
        .split(" cookies asked for")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        cookies_after > cookies,
        "strongSwan was asked for a cookie: {cookies} then {cookies_after}\n{list}"
    );
    traffic_both_ways(&lab, &p);
    let after = rss_kib(gw.pid);
    eprintln!(
        "espo's RSS {before} KiB before the flood, {after} KiB after ({half_open} half-open IKE SAs, {cookies} cookies)"
    );
    assert!(
        after < before + 64 * 1024,
        "memory bounded: {before} -> {after} KiB"
    );
}

#[test]
fn a_killed_espo_comes_back_and_strongswan_keeps_no_stale_sa() {
    let mut lab = lab_or_skip!("rk");
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let swan = Swan::start(&lab, &p.swan_ns, "swan", &swan_psk_conf("none"));
    let conf = espo_config(&p.espo_out, &lab.name("t"), &psk_connection("start"));
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    wait_for("espo's CHILD_SA", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    traffic_both_ways(&lab, &p);
    lab.kill9(&gw);
    // Started again: a new IKE SA with INITIAL_CONTACT, which makes strongSwan drop what
    // it had with the killed instance.
    let restarted = Instant::now();
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    wait_for("the tunnel back", Duration::from_secs(20), || {
        child_installed(&lab, &gw)
    });
    eprintln!(
        "tunnel back {:.2} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    traffic_both_ways(&lab, &p);
    let sas = wait_for(
        "strongSwan to drop the old IKE SA",
        Duration::from_secs(10),
        || {
            let sas = swan.sas();
            (sas.matches("ESTABLISHED").count() == 1).then_some(sas)
        },
    );
    assert_eq!(sas.matches("INSTALLED").count(), 1, "{sas}");
}

/// IKE fragmentation (RFC 7383): a 4096-bit RSA chain (end entity and intermediate, each
/// about 1.4 kB, and a 512-byte AUTH) over a 1280-byte path where IP fragments are dropped,
/// against strongSwan with `fragmentation = yes`; `espo_initiates` says who starts.
fn rsa_chain_over_a_small_path(tag: &str, espo_initiates: bool) {
    let mut lab = lab_or_skip!(tag);
    if !swan_or_skip() {
        return;
    }
    let p = pair(&mut lab);
    let so = lab.name("so");
    for (ns, dev) in [(&p.espo_ns, &p.espo_out), (&p.swan_ns, &so)] {
        lab.ip(ns, &["link", "set", "dev", dev, "mtu", "1280"]);
        // A path that loses IP fragments: only IKE's own fragments get through.
        let nft = "table inet nofrag {\n  chain pre {\n    type filter hook prerouting priority -500;\n    ip frag-off & 0x3fff != 0 drop\n  }\n}\n";
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(nft.as_bytes())?;
                c.wait_with_output()
            })
            .expect("nft");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = lab.dir.join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| pki_file(&dir, name).display().to_string();
    let start = if espo_initiates { "start" } else { "none" };
    let conf = espo_config(
        &p.espo_out,
        &lab.name("t"),
        &format!(
            "[[connection]]
name = \"swan\"
local_addrs = \"192.0.2.1\"
remote_addrs = \"192.0.2.2\"
proposals = [\"aes256gcm16-prfsha384-ecp384\"]

[connection.local]
auth = \"pubkey\"
id = \"gw-a.rsa.espo.test\"
certs = [\"{}\", \"{}\"]
private_key = \"{}\"

[connection.remote]
auth = \"pubkey\"
id = \"gw-b.rsa.espo.test\"
cacerts = [\"{}\", \"{}\"]

[[connection.child]]
name = \"net\"
local_ts = [\"10.1.0.0/16\"]
remote_ts = [\"10.2.0.0/16\"]
esp_proposals = [\"aes256gcm16\"]
start_action = \"{start}\"
",
            file("rsa-gw-a.crt"),
            file("rsa-sub.crt"),
            file("rsa-gw-a.key"),
            file("rsa-ca.crt"),
            file("rsa-sub.crt"),
        ),
    );
    let swan_dir = lab.dir.join("swan/swanctl");
    for sub in ["x509", "x509ca", "private"] {
        std::fs::create_dir_all(swan_dir.join(sub)).unwrap();
    }
    pki_file(&swan_dir.join("x509ca"), "rsa-ca.crt");
    pki_file(&swan_dir.join("x509ca"), "rsa-sub.crt");
    pki_file(&swan_dir.join("x509"), "rsa-gw-b.crt");
    pki_file(&swan_dir.join("private"), "rsa-gw-b.key");
    let swan_conf = "connections {
  espo {
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = aes256gcm16-prfsha384-ecp384
    fragmentation = yes
    local {
      auth = pubkey
      certs = rsa-gw-b.crt
      id = gw-b.rsa.espo.test
    }
    remote {
      auth = pubkey
      cacerts = rsa-ca.crt
      id = gw-a.rsa.espo.test
    }
    children {
      net {
        local_ts = 10.2.0.0/16
        remote_ts = 10.1.0.0/16
        esp_proposals = aes256gcm16
        mode = tunnel
        start_action = none
      }
    }
  }
}
";
    let swan = Swan::start(&lab, &p.swan_ns, "swan", swan_conf);
    let gw = lab.espo_run(&p.espo_ns, "espo", &conf);
    if !espo_initiates {
        let (ok, out) = swan.swanctl(&["--initiate", "--child", "net", "--timeout", "30"]);
        assert!(ok, "{out}\n{}\n{}", swan.log(), lab.log("espo"));
    }
    let list = wait_for("espo's CHILD_SA", Duration::from_secs(30), || {
        child_installed(&lab, &gw)
    });
    // Both IKE_AUTH messages went in fragments, and came in fragments.
    let counts: Vec<u64> = list
        .lines()
        .find(|l| l.contains("received in fragments"))
        .map(|l| {
            let tail = l.split("retransmitted, ").nth(1).unwrap_or_default();
            tail.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        counts.len() == 2 && counts[0] >= 1 && counts[1] >= 1,
        "{counts:?}: {list}"
    );
    let log = swan.log();
    eprintln!(
        "espo: {} messages sent and {} received in fragments; strongSwan: {}",
        counts[0],
        counts[1],
        log.lines()
            .filter(|l| l.contains("fragment"))
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    assert!(
        log.contains("authentication of 'gw-a.rsa.espo.test' with RSA"),
        "strongSwan verified espo's 4096-bit signature: {log}"
    );
    traffic_both_ways(&lab, &p);
}

#[test]
fn espo_initiates_with_a_4096_bit_rsa_chain_over_a_1280_byte_path_in_fragments() {
    rsa_chain_over_a_small_path("kf1", true);
}

#[test]
fn strongswan_initiates_with_a_4096_bit_rsa_chain_over_a_1280_byte_path_in_fragments() {
    rsa_chain_over_a_small_path("kf2", false);
}
