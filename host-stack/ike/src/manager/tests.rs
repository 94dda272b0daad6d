//! Two daemons talking through their events: establishment, refusals, retransmission,
//! liveness checks, deletion.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use espo_ipsec::spec::SaSpec;

use super::*;
use crate::connection::{ChildSpec, Lifetimes, Psk};
use crate::ts::TsSpec;

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const PSK: &[u8] = b"a pre-shared key of some length";

fn range(cidr: &str) -> TsSpec {
    cidr.parse::<TsSpec>().unwrap()
}

fn child(local: &str, remote: &str, start: StartAction) -> ChildSpec {
    ChildSpec {
        name: "net".into(),
        local_ts: vec![range(local)],
        remote_ts: vec![range(remote)],
        esp_proposals: vec!["aes128gcm16".into()],
        start_action: start,
        lifetimes: Lifetimes::CHILD_DEFAULT,
        replay_window: 64,
    }
}

fn spec(
    name: &str,
    local: IpAddr,
    remote: Option<IpAddr>,
    children: Vec<ChildSpec>,
) -> ConnectionSpec {
    ConnectionSpec {
        name: name.into(),
        local_addrs: vec![local],
        remote_addrs: remote.into_iter().collect(),
        local_port: 500,
        remote_port: 500,
        local_id: None,
        remote_id: None,
        local_auth: LocalAuth::Psk,
        remote_auth: RemoteAuth::Psk,
        psk: Some(Psk(PSK.to_vec().into())),
        proposals: vec!["aes128gcm16-prfsha256-x25519".into()],
        dpd_delay: Duration::from_secs(30),
        encap: false,
        lifetimes: Lifetimes::IKE_DEFAULT,
        reauth_time: Duration::ZERO,
        fragmentation: true,
        fragment_size: 1280,
        children,
    }
}

/// What a test does to a datagram on the link: (to which side, the datagram) -> whether it
/// arrives.
type Filter = Box<dyn FnMut(char, &mut Vec<u8>) -> bool>;

/// Two daemons on a lossless (or lossy, when told) link.
struct Pair {
    a: Daemon,
    b: Daemon,
    now: Instant,
    /// Installed CHILD_SAs: (side, SAs).
    installed: Vec<(char, [SaSpec; 2])>,
    /// Their ids and how they renew another: (side, id, renewal).
    renewals: Vec<(char, ChildId, Option<crate::daemon::Renewal>)>,
    removed: Vec<(char, ChildId)>,
    logs: Vec<(char, Level, String)>,
    keepalives: Vec<(char, SocketAddr)>,
    traps: Vec<(
        char,
        crate::daemon::TrapId,
        Vec<espo_ipsec::spec::PolicySpec>,
    )>,
    /// Datagrams in flight: (to a?, local, remote, bytes).
    wire: Vec<(char, SocketAddr, SocketAddr, Vec<u8>)>,
    drop_to: Option<char>,
    /// Sees every datagram on its way (to which side); false: it is lost.
    filter: Option<Filter>,
}

impl Pair {
    fn new(a: ConnectionSpec, b: ConnectionSpec) -> Pair {
        let now = Instant::now();
        let unix = 1_800_000_000;
        Pair {
            a: Daemon::new(
                vec![Connection::load(a).unwrap()],
                vec![SocketAddr::new(A, 500)],
                now,
                unix,
            ),
            b: Daemon::new(
                vec![Connection::load(b).unwrap()],
                vec![SocketAddr::new(B, 500)],
                now,
                unix,
            ),
            now,
            installed: Vec::new(),
            renewals: Vec::new(),
            removed: Vec::new(),
            logs: Vec::new(),
            keepalives: Vec::new(),
            traps: Vec::new(),
            wire: Vec::new(),
            drop_to: None,
            filter: None,
        }
    }

    fn collect(&mut self) {
        for (side, d) in [('a', &mut self.a), ('b', &mut self.b)] {
            while let Some(e) = d.next_event() {
                match e {
                    Event::Send {
                        local,
                        remote,
                        message,
                    } => {
                        let to = if side == 'a' { 'b' } else { 'a' };
                        self.wire.push((to, local, remote, message));
                    }
                    Event::InstallChild {
                        id, sas, renews, ..
                    } => {
                        self.installed.push((side, *sas));
                        self.renewals.push((side, id, renews));
                    }
                    Event::Keepalive { local, .. } => self.keepalives.push((side, local)),
                    Event::InstallTrap { id, policies, .. } => {
                        self.traps.push((side, id, policies))
                    }
                    Event::RemoveChild { id } => self.removed.push((side, id)),
                    Event::Log { level, text, .. } => self.logs.push((side, level, text)),
                }
            }
        }
    }

    /// Runs until nothing is in flight.
    fn run(&mut self) {
        for _ in 0..100 {
            self.collect();
            if self.wire.is_empty() {
                return;
            }
            for (to, from_local, from_remote, mut bytes) in std::mem::take(&mut self.wire) {
                if self.drop_to == Some(to) {
                    continue;
                }
                if let Some(f) = self.filter.as_mut()
                    && !f(to, &mut bytes)
                {
                    continue;
                }
                // What one end sent from `local` to `remote` arrives at the other with the
                // addresses swapped.
                let d = if to == 'a' { &mut self.a } else { &mut self.b };
                d.receive(&bytes, from_local, from_remote, self.now);
            }
        }
        panic!("the exchange does not settle");
    }

    fn tick(&mut self, by: Duration) {
        self.now += by;
        self.a.tick(self.now);
        self.b.tick(self.now);
        self.run();
    }

    fn logs_of(&self, side: char) -> String {
        self.logs
            .iter()
            .filter(|(s, ..)| *s == side)
            .map(|(_, l, t)| format!("{l:?} {t}\n"))
            .collect()
    }
}

fn initiator_and_responder() -> Pair {
    Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    )
}

fn spis(sas: &[SaSpec; 2]) -> (u32, u32) {
    (sas[0].spi, sas[1].spi)
}

#[test]
fn two_daemons_establish_an_ike_sa_and_a_child_sa_with_matching_keys() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    let a = &p.installed.iter().find(|(s, _)| *s == 'a').unwrap().1;
    let b = &p.installed.iter().find(|(s, _)| *s == 'b').unwrap().1;
    // a's inbound is b's outbound, with the same key, and the other way round.
    let (a_in, a_out) = spis(a);
    let (b_in, b_out) = spis(b);
    assert_eq!((a_in, a_out), (b_out, b_in));
    assert_eq!(
        a[0].key.as_ref().unwrap().as_bytes(),
        b[1].key.as_ref().unwrap().as_bytes()
    );
    assert_eq!(
        a[1].key.as_ref().unwrap().as_bytes(),
        b[0].key.as_ref().unwrap().as_bytes()
    );
    assert_ne!(
        a[0].key.as_ref().unwrap().as_bytes(),
        a[1].key.as_ref().unwrap().as_bytes()
    );
    assert_eq!(a[1].src, A);
    assert_eq!(a[1].dst, B);
    assert!(a[1].udp_encap.is_none(), "no NAT between them");
    assert_eq!(p.a.ike_sas()[0].2, "ESTABLISHED");
    assert_eq!(p.b.ike_sas()[0].2, "ESTABLISHED");
    let list = p.b.request(Request::List, p.now).unwrap();
    assert!(list.contains("CHILD_SA net"), "{list}");
    assert!(!list.contains(&hex(PSK)), "{list}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn a_wrong_psk_installs_nothing_and_says_so() {
    let mut b = spec(
        "b",
        B,
        None,
        vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
    );
    b.psk = Some(Psk(b"another pre-shared key, longer".to_vec().into()));
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        b,
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    assert!(
        p.logs_of('b').contains("pre-shared key does not match"),
        "{}",
        p.logs_of('b')
    );
    assert!(
        p.logs_of('a').contains("AuthenticationFailed"),
        "{}",
        p.logs_of('a')
    );
    assert!(p.a.ike_sas().is_empty());
    assert!(p.b.ike_sas().is_empty());
}

#[test]
fn no_common_proposal_is_no_proposal_chosen() {
    let mut b = spec(
        "b",
        B,
        None,
        vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
    );
    b.proposals = vec!["aes256-sha384-ecp384".into()];
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        b,
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    assert!(
        p.logs_of('b').contains("NO_PROPOSAL_CHOSEN"),
        "{}",
        p.logs_of('b')
    );
    assert!(
        p.logs_of('a').contains("NoProposalChosen"),
        "{}",
        p.logs_of('a')
    );
    assert!(p.b.ike_sas().is_empty(), "the responder keeps nothing");
}

#[test]
fn the_responders_group_is_taken_after_invalid_ke_payload() {
    let mut a = spec(
        "a",
        A,
        Some(B),
        vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
    );
    a.proposals = vec!["aes128gcm16-prfsha256-x25519-ecp256".into()];
    let mut b = spec(
        "b",
        B,
        None,
        vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
    );
    b.proposals = vec!["aes128gcm16-prfsha256-ecp256".into()];
    let mut p = Pair::new(a, b);
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2, "{}", p.logs_of('a'));
    assert!(
        p.logs_of('a').contains("wants Diffie-Hellman group 19"),
        "{}",
        p.logs_of('a')
    );
}

#[test]
fn selectors_outside_the_configuration_are_ts_unacceptable() {
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.9.0.0/16", StartAction::Start)],
        ),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    assert!(
        p.logs_of('b').contains("TsUnacceptable"),
        "{}",
        p.logs_of('b')
    );
    // The IKE SA itself stands.
    assert_eq!(p.a.ike_sas()[0].2, "ESTABLISHED");
}

#[test]
fn the_responder_narrows_the_selectors() {
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.0.0.0/8", "10.0.0.0/8", StartAction::Start)],
        ),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2, "{}", p.logs_of('a'));
    let list = p.a.request(Request::List, p.now).unwrap();
    assert!(
        list.contains("10.1.0.0/16") && list.contains("10.2.0.0/16"),
        "{list}"
    );
}

#[test]
fn a_lost_response_is_resent_from_the_cache() {
    let mut p = initiator_and_responder();
    // Everything to a is lost at first: the IKE_SA_INIT response.
    p.drop_to = Some('a');
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    p.drop_to = None;
    p.tick(Duration::from_secs(5)); // a retransmits; b answers from its cache
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    assert_eq!(
        p.b.ike_sas().len(),
        1,
        "the retransmission made no second IKE SA"
    );
}

#[test]
fn a_silent_peer_is_noticed_and_its_sas_removed() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2);
    p.drop_to = Some('b');
    // 30 s of quiet, then 165 s of unanswered liveness checks.
    for _ in 0..30 {
        p.tick(Duration::from_secs(10));
    }
    assert!(p.a.ike_sas().is_empty(), "{}", p.logs_of('a'));
    assert_eq!(p.removed.iter().filter(|(s, _)| *s == 'a').count(), 1);
    assert!(
        p.logs_of('a').contains("does not answer"),
        "{}",
        p.logs_of('a')
    );
}

#[test]
fn a_live_peer_answers_the_liveness_check() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    for _ in 0..30 {
        p.tick(Duration::from_secs(10));
    }
    assert_eq!(p.a.ike_sas()[0].2, "ESTABLISHED");
    assert!(p.removed.is_empty());
}

#[test]
fn down_deletes_on_both_ends() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    p.a.request(Request::Down("a".into()), p.now).unwrap();
    p.run();
    assert!(p.a.ike_sas().is_empty());
    assert!(p.b.ike_sas().is_empty(), "{}", p.logs_of('b'));
    assert_eq!(p.removed.len(), 2);
}

#[test]
fn up_starts_a_connection_whose_start_action_is_none() {
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::None)],
        ),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    p.a.request(Request::Up("a".into()), p.now).unwrap();
    p.run();
    assert_eq!(p.installed.len(), 2);
    assert!(p.a.request(Request::Up("nope".into()), p.now).is_err());
}

#[test]
fn forced_encapsulation_puts_esp_in_udp_4500() {
    let mut a = spec(
        "a",
        A,
        Some(B),
        vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
    );
    a.encap = true;
    let mut p = Pair::new(
        a,
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2, "{}", p.logs_of('a'));
    for (_, sas) in &p.installed {
        for sa in sas {
            let e = sa.udp_encap.expect("ESP in UDP");
            assert_eq!((e.src_port, e.dst_port), (4500, 4500));
        }
    }
    // The end that pretends to be behind a NAT keeps the mapping alive; the other does not.
    p.tick(Duration::from_secs(10));
    assert!(p.keepalives.is_empty());
    p.tick(Duration::from_secs(11));
    assert_eq!(p.keepalives, vec![('a', SocketAddr::new(A, 4500))]);
}

#[test]
fn garbage_and_unknown_spis_are_dropped_without_an_answer() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    let before = p.b.counters();
    let from = SocketAddr::new(A, 500);
    let to = SocketAddr::new(B, 500);
    p.b.receive(&[0u8; 3], from, to, p.now);
    p.b.receive(&[0xffu8; 100], from, to, p.now);
    let mut unknown = vec![0u8; 28];
    unknown[0] = 1;
    unknown[16] = 46;
    unknown[17] = 0x20;
    unknown[18] = 37;
    unknown[19] = 0x08;
    unknown[27] = 28;
    p.b.receive(&unknown, from, to, p.now);
    p.collect();
    assert!(p.wire.is_empty(), "no answer to garbage");
    let after = p.b.counters();
    assert!(after.malformed + after.dropped >= before.malformed + before.dropped + 3);
}

#[test]
fn a_flood_of_ike_sa_init_is_bounded() {
    let mut p = initiator_and_responder();
    // Cookies off: the half-open table's own bound.
    p.b = std::mem::replace(&mut p.b, Daemon::new(Vec::new(), Vec::new(), p.now, 0))
        .with_cookie_threshold(usize::MAX);
    p.tick(Duration::ZERO);
    // A real initiator's IKE_SA_INIT, replayed with new SPIs from many addresses.
    let mut fresh = Pair::new(
        spec(
            "x",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        spec("y", B, None, vec![]),
    );
    fresh.a.tick(fresh.now);
    fresh.collect();
    let init = fresh.wire[0].3.clone();
    for i in 0..(MAX_HALF_OPEN as u32 + 500) {
        let mut m = init.clone();
        m[..4].copy_from_slice(&i.to_be_bytes());
        let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 500);
        p.b.receive(&m, src, SocketAddr::new(B, 500), p.now);
    }
    p.collect();
    assert_eq!(p.b.sas.len(), MAX_HALF_OPEN + 1);
    p.wire.clear();
    // The established tunnel is unaffected and the half-open ones time out.
    p.tick(HALF_OPEN_TIMEOUT + Duration::from_secs(1));
    assert_eq!(p.b.sas.len(), 1);
    assert_eq!(p.b.ike_sas()[0].2, "ESTABLISHED");
}

#[test]
fn installed_sas_carry_the_configured_replay_window() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    let (_, sas) = &p.installed[0];
    assert_eq!(sas[0].replay_window, 64);
}

#[test]
fn a_trap_waits_for_its_first_packet_then_negotiates() {
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Trap)],
        ),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty(), "a trap starts nothing by itself");
    assert!(p.a.ike_sas().is_empty());
    let (side, id, policies) = p.traps[0].clone();
    assert_eq!(side, 'a');
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].action, espo_ipsec::spec::PolicyAction::Trap);
    assert_eq!(policies[0].dst.to_string(), "10.2.0.0/16");
    // The datapath reports a packet that matched: the CHILD_SA is negotiated; a second
    // report while it is under way starts nothing more.
    p.a.acquire(id, p.now);
    p.a.acquire(id, p.now);
    p.run();
    assert_eq!(p.installed.len(), 2, "{}", p.logs_of('a'));
    assert_eq!(p.a.ike_sas().len(), 1);
    assert!(
        p.logs_of('a').contains("acquire for a/net"),
        "{}",
        p.logs_of('a')
    );
    // Once installed, another report changes nothing.
    p.a.acquire(id, p.now);
    p.run();
    assert_eq!(p.installed.len(), 2);
}

#[test]
fn a_child_sa_is_renewed_before_it_ends_and_the_old_one_deleted() {
    let mut rekeying = child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start);
    rekeying.lifetimes.rekey_time = Duration::from_secs(5);
    rekeying.lifetimes.rand_time = Duration::ZERO;
    rekeying.lifetimes.life_time = Duration::from_secs(10);
    let mut p = Pair::new(
        spec("a", A, Some(B), vec![rekeying]),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2);
    p.tick(Duration::from_secs(4));
    assert_eq!(p.installed.len(), 2, "not due yet");
    p.tick(Duration::from_secs(2));
    assert_eq!(
        p.installed.len(),
        4,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    assert!(
        p.removed.is_empty(),
        "the old SAs stay for the grace period"
    );
    p.tick(REKEY_GRACE);
    assert_eq!(p.removed.len(), 2, "then go on both ends");
    let side = |s: char| -> Vec<&[SaSpec; 2]> {
        p.installed
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, sas)| sas)
            .collect()
    };
    let (a, b) = (side('a'), side('b'));
    let (a_old, a_new, b_new) = (a[0], a[1], b[1]);
    assert_ne!(spis(a_old), spis(a_new), "new SPIs");
    assert_eq!(spis(a_new), (b_new[1].spi, b_new[0].spi));
    assert_eq!(
        a_new[1].key.as_ref().unwrap().as_bytes(),
        b_new[0].key.as_ref().unwrap().as_bytes()
    );
    assert_ne!(
        a_old[1].key.as_ref().unwrap().as_bytes(),
        a_new[1].key.as_ref().unwrap().as_bytes(),
        "fresh keys"
    );
    let list = p.a.request(Request::List, p.now).unwrap();
    assert!(list.contains("1 rekeys before it"), "{list}");
    assert!(list.contains("ago by this end (time)"), "{list}");
    assert_eq!(list.matches("CHILD_SA net").count(), 1, "{list}");
    let list = p.b.request(Request::List, p.now).unwrap();
    assert!(list.contains("ago by the peer"), "{list}");
    // The initiator sends on the new SAs at once; the responder, which installed them
    // before the initiator read its answer, holds its outbound SA until the old CHILD_SA
    // goes (at most a few seconds, never past the old SA's hard limit: 10 s from 0).
    use crate::daemon::Renewal;
    let renewal = |side: char| p.renewals.iter().filter(|r| r.0 == side).nth(1).unwrap().2;
    assert!(
        matches!(
            renewal('a'),
            Some(Renewal::Replaces {
                hold_outbound: None,
                ..
            })
        ),
        "{:?}",
        renewal('a')
    );
    match renewal('b') {
        Some(Renewal::Replaces {
            hold_outbound: Some(hold),
            ..
        }) => assert!(hold <= HOLD_OUTBOUND && hold > Duration::ZERO, "{hold:?}"),
        other => panic!("{other:?}"),
    }
    // And again five seconds later.
    p.tick(Duration::from_secs(4));
    p.tick(REKEY_GRACE);
    assert_eq!(p.installed.len(), 6);
    assert_eq!(p.removed.len(), 4);
}

#[test]
fn the_ike_sa_is_renewed_with_its_child_sas_moved_over() {
    let mut a = spec(
        "a",
        A,
        Some(B),
        vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
    );
    a.lifetimes.rekey_time = Duration::from_secs(5);
    a.lifetimes.rand_time = Duration::ZERO;
    let mut p = Pair::new(
        a,
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    let before = p.a.request(Request::List, p.now).unwrap();
    p.tick(Duration::from_secs(6));
    let after = p.a.request(Request::List, p.now).unwrap();
    assert_eq!(p.a.ike_sas().len(), 1, "{after}\n{}", p.logs_of('a'));
    assert_eq!(p.b.ike_sas().len(), 1, "{}", p.logs_of('b'));
    assert_eq!(p.a.ike_sas()[0].3, 1, "the CHILD_SA moved over");
    assert_eq!(p.b.ike_sas()[0].3, 1);
    assert!(p.removed.is_empty(), "no CHILD_SA went with the old IKE SA");
    let spis = |l: &str| {
        l.lines()
            .find(|l| l.contains("IKE_SA"))
            .unwrap()
            .to_string()
    };
    assert_ne!(spis(&before), spis(&after));
    assert!(
        p.logs_of('a').contains("rekeyed: now"),
        "{}",
        p.logs_of('a')
    );
    assert!(
        p.logs_of('b').contains("rekeyed: now"),
        "{}",
        p.logs_of('b')
    );
    // The new IKE SA works: a liveness check goes through, and it can be closed.
    for _ in 0..4 {
        p.tick(Duration::from_secs(10));
    }
    assert_eq!(p.a.ike_sas()[0].2, "ESTABLISHED");
    p.a.request(Request::Down("a".into()), p.now).unwrap();
    p.run();
    assert!(p.b.ike_sas().is_empty(), "{}", p.logs_of('b'));
    assert_eq!(p.removed.len(), 2);
}

#[test]
fn ike_list_shows_the_ike_sas_time_to_rekey_and_rekeys() {
    let mut p = initiator_and_responder();
    p.tick(Duration::ZERO);
    let list = p.a.request(Request::List, p.now).unwrap();
    // strongSwan's IKE default: 4 h less up to 24 min of jitter.
    let secs: u64 = list
        .split("rekey in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((12_960..=14_400).contains(&secs), "{list}");
    assert!(list.contains("0 rekeys before it"), "{list}");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/auth")
        .join(name)
}

/// A connection authenticating with certificate `key` (of the test PKI) as `id`, trusting
/// the test CA for a peer that must be `peer`.
fn pubkey(
    name: &str,
    local: IpAddr,
    remote: Option<IpAddr>,
    key: &str,
    id: &str,
    peer: &str,
    children: Vec<ChildSpec>,
) -> ConnectionSpec {
    let mut s = spec(name, local, remote, children);
    s.psk = None;
    s.local_auth = LocalAuth::Pubkey {
        certs: vec![fixture(&format!("{key}.crt"))],
        private_key: fixture(&format!("{key}.key")),
    };
    s.remote_auth = RemoteAuth::Pubkey {
        cacerts: vec![fixture("ca.crt")],
    };
    s.local_id = Some(id.into());
    s.remote_id = Some(peer.into());
    s
}

#[test]
fn certificates_authenticate_both_ends() {
    let mut p = Pair::new(
        pubkey(
            "a",
            A,
            Some(B),
            "ee-ecdsa",
            "gw-a.espo.test",
            "gw-b.espo.test",
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        pubkey(
            "b",
            B,
            None,
            "ee-rsa",
            "gw-b.espo.test",
            "gw-a.espo.test",
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    let list = p.b.request(Request::List, p.now).unwrap();
    assert!(list.contains("remote 'gw-a.espo.test'"), "{list}");
}

#[test]
fn a_certificate_that_does_not_name_the_claimed_identity_is_refused() {
    // a claims gw-c.espo.test with gw-a's certificate.
    let mut p = Pair::new(
        pubkey(
            "a",
            A,
            Some(B),
            "ee-ecdsa",
            "gw-c.espo.test",
            "gw-b.espo.test",
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        pubkey(
            "b",
            B,
            None,
            "ee-rsa",
            "gw-b.espo.test",
            "gw-c.espo.test",
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    assert!(
        p.logs_of('b')
            .contains("identity 'gw-c.espo.test' is not in its certificate"),
        "{}",
        p.logs_of('b')
    );
    assert!(
        p.logs_of('a').contains("AuthenticationFailed"),
        "{}",
        p.logs_of('a')
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let mut p = Pair::new(
        pubkey(
            "a",
            A,
            Some(B),
            "expired",
            "old.espo.test",
            "gw-b.espo.test",
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        pubkey(
            "b",
            B,
            None,
            "ee-rsa",
            "gw-b.espo.test",
            "old.espo.test",
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    assert!(p.logs_of('b').contains("has expired"), "{}", p.logs_of('b'));
    assert!(p.b.ike_sas().is_empty(), "nothing kept");
}

#[test]
fn a_peer_claiming_another_identity_than_configured_is_refused() {
    let mut p = Pair::new(
        pubkey(
            "a",
            A,
            Some(B),
            "ee-ecdsa",
            "gw-a.espo.test",
            "gw-b.espo.test",
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        pubkey(
            "b",
            B,
            None,
            "ee-rsa",
            "gw-b.espo.test",
            "someone-else.espo.test",
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty());
    assert!(
        p.logs_of('b')
            .contains("is not the configured 'someone-else.espo.test'"),
        "{}",
        p.logs_of('b')
    );
}

#[test]
fn a_responder_under_load_asks_for_a_cookie_and_the_initiator_brings_it() {
    let mut p = initiator_and_responder();
    p.b = std::mem::replace(&mut p.b, Daemon::new(Vec::new(), Vec::new(), p.now, 0))
        .with_cookie_threshold(0);
    p.tick(Duration::ZERO);
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    assert!(
        p.logs_of('a').contains("asks for a cookie"),
        "{}",
        p.logs_of('a')
    );
    assert_eq!(p.b.counters().cookies_sent, 1);
}

#[test]
fn replayed_requests_without_cookies_leave_no_state() {
    let mut p = initiator_and_responder();
    p.b = std::mem::replace(&mut p.b, Daemon::new(Vec::new(), Vec::new(), p.now, 0))
        .with_cookie_threshold(0);
    let mut fresh = initiator_and_responder();
    fresh.a.tick(fresh.now);
    fresh.collect();
    let init = fresh.wire[0].3.clone();
    for i in 0..500u32 {
        let mut m = init.clone();
        m[..4].copy_from_slice(&i.to_be_bytes());
        let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 500);
        p.b.receive(&m, src, SocketAddr::new(B, 500), p.now);
    }
    assert!(p.b.sas.is_empty(), "a cookie asked of each, no state kept");
    assert_eq!(p.b.counters().cookies_sent, 500);
    // The cookie answered to the first request lets that initiator in, and no other.
    p.collect();
    let (_, _, _, answer) = p.wire.remove(0);
    let cookie = wire::Message::parse(&answer)
        .unwrap()
        .notifications()
        .find(|n| n.kind == wire::NotifyType::Cookie)
        .unwrap()
        .data
        .clone();
    assert_eq!(cookie.len(), 33, "a version byte and SHA-256");
    let with_cookie = |spi: u32| {
        let mut m = wire::Message::parse(&init).unwrap();
        m.spi_i = (u64::from(spi) << 32) | (m.spi_i & 0xffff_ffff);
        m.payloads.insert(
            0,
            wire::Payload::Notify(wire::notify::Repr::cookie(&cookie)),
        );
        m.to_bytes().unwrap()
    };
    let from = |i: u32| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 500);
    p.b.receive(&with_cookie(1), from(1), SocketAddr::new(B, 500), p.now);
    assert!(p.b.sas.is_empty(), "another address");
    p.b.receive(&with_cookie(0), from(0), SocketAddr::new(B, 500), p.now);
    assert_eq!(p.b.sas.len(), 1, "its own cookie: state kept");
    assert_eq!(p.b.counters().cookies_sent, 501);
}

#[test]
fn simultaneous_rekeys_leave_exactly_one_pair() {
    let rekeying = |local: &str, remote: &str, start| {
        let mut c = child(local, remote, start);
        c.lifetimes.rekey_time = Duration::from_secs(5);
        c.lifetimes.rand_time = Duration::ZERO;
        c
    };
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![rekeying("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        ),
        spec(
            "b",
            B,
            None,
            vec![rekeying("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    // Both ends are due at once: their CREATE_CHILD_SA requests cross.
    p.tick(Duration::from_secs(6));
    p.tick(REKEY_GRACE);
    p.tick(REKEY_GRACE);
    for (name, d) in [("a", &mut p.a), ("b", &mut p.b)] {
        let list = d.request(Request::List, p.now).unwrap();
        assert_eq!(list.matches("CHILD_SA net").count(), 1, "{name}: {list}");
    }
    let a_list = p.a.request(Request::List, p.now).unwrap();
    let b_list = p.b.request(Request::List, p.now).unwrap();
    let spis = |l: &str| {
        let line = l.lines().find(|l| l.contains("CHILD_SA net")).unwrap();
        let w: Vec<&str> = line.split_whitespace().collect();
        (w[3].to_string(), w[5].trim_end_matches(',').to_string())
    };
    let (a_in, a_out) = spis(&a_list);
    let (b_in, b_out) = spis(&b_list);
    assert_eq!(
        (a_in, a_out),
        (b_out, b_in),
        "the same pair survives on both ends"
    );
    let collisions = p.logs_of('a').matches("rekey collision").count()
        + p.logs_of('b').matches("rekey collision").count();
    assert_eq!(collisions, 1, "{}\n{}", p.logs_of('a'), p.logs_of('b'));
}

/// A pair whose initiator's CHILD_SA renews after 1 MB (hard limit 2 MB) and after an hour.
fn counting() -> Pair {
    let mut c = child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start);
    c.lifetimes.rekey_bytes = 1_000_000;
    c.lifetimes.life_bytes = 2_000_000;
    Pair::new(
        spec("a", A, Some(B), vec![c]),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    )
}

#[test]
fn a_soft_byte_limit_renews_the_child_sa_and_the_status_says_why() {
    let mut p = counting();
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2);
    // The engine counts against the limits the SAs carry: soft a little below 1 MB (a
    // random part of the room up to the hard limit, so that both ends do not renew at the
    // same packet), hard at 2 MB.
    let a_sas = &p.installed[p.renewals.iter().position(|r| r.0 == 'a').unwrap()].1;
    for sa in a_sas {
        let soft = sa.lifetime.soft_bytes.unwrap();
        assert!((750_000..=1_000_000).contains(&soft), "{soft}");
        assert_eq!(sa.lifetime.hard_bytes, Some(2_000_000));
    }
    let id = p.renewals.iter().find(|r| r.0 == 'a').unwrap().1;
    p.a.lifetime_reached(id, false, espo_ipsec::lifetime::LifetimeCause::Bytes, p.now);
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 4, "{}", p.logs_of('a'));
    assert!(p.logs_of('a').contains("crossed its soft lifetime (bytes)"));
    let list = p.a.request(Request::List, p.now).unwrap();
    assert!(
        list.contains("1 rekeys before it, the last 0s ago by this end (bytes)"),
        "{list}"
    );
    // A second crossing of the same (already renewed) CHILD_SA changes nothing.
    p.a.lifetime_reached(id, false, espo_ipsec::lifetime::LifetimeCause::Bytes, p.now);
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 4);
    p.tick(REKEY_GRACE);
    assert_eq!(p.removed.len(), 2, "the old one goes on both ends");
}

#[test]
fn a_hard_limit_reached_before_renewal_deletes_the_child_sa_on_both_ends() {
    let mut p = counting();
    p.tick(Duration::ZERO);
    let id = p.renewals.iter().find(|r| r.0 == 'a').unwrap().1;
    p.a.lifetime_reached(
        id,
        true,
        espo_ipsec::lifetime::LifetimeCause::Packets,
        p.now,
    );
    p.tick(Duration::ZERO);
    assert_eq!(p.installed.len(), 2, "not renewed");
    assert_eq!(p.removed.len(), 2, "{}\n{}", p.logs_of('a'), p.logs_of('b'));
    assert!(
        p.logs_of('a')
            .contains("reached its hard lifetime (packets)")
    );
    for d in [&mut p.a, &mut p.b] {
        let list = d.request(Request::List, p.now).unwrap();
        assert!(!list.contains("CHILD_SA net"), "{list}");
    }
}

#[test]
fn simultaneous_ike_sa_rekeys_leave_one_ike_sa_with_the_child_sas() {
    let renewing = |mut s: ConnectionSpec| {
        s.lifetimes.rekey_time = Duration::from_secs(5);
        s.lifetimes.rand_time = Duration::ZERO;
        s
    };
    let mut p = Pair::new(
        renewing(spec(
            "a",
            A,
            Some(B),
            vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
        )),
        renewing(spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        )),
    );
    p.tick(Duration::ZERO);
    // Both ends are due at once: their CREATE_CHILD_SA requests cross.
    p.tick(Duration::from_secs(6));
    p.tick(Duration::from_secs(1));
    let collisions = p.logs_of('a').matches("IKE_SA rekey collision").count()
        + p.logs_of('b').matches("IKE_SA rekey collision").count();
    assert_eq!(collisions, 2, "{}\n{}", p.logs_of('a'), p.logs_of('b'));
    for (name, d) in [("a", &p.a), ("b", &p.b)] {
        let sas = d.ike_sas();
        assert_eq!(sas.len(), 1, "{name}: {sas:?}");
        assert_eq!(sas[0].2, "ESTABLISHED");
        assert_eq!(sas[0].3, 1, "{name}: the CHILD_SA moved to the survivor");
    }
    assert!(p.removed.is_empty(), "no CHILD_SA went");
    let spis = |d: &mut Daemon, now| {
        let l = d.request(Request::List, now).unwrap();
        let line = l
            .lines()
            .find(|l| l.contains("IKE_SA"))
            .unwrap()
            .to_string();
        let w: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        (w[1].clone(), w[2].clone())
    };
    let now = p.now;
    assert_eq!(spis(&mut p.a, now), spis(&mut p.b, now), "the same IKE SA");
    // The survivor works: a CHILD_SA rekey and a liveness check go through it.
    p.a.request(Request::Down("a".into()), p.now).unwrap();
    p.run();
    assert!(p.b.ike_sas().is_empty(), "{}", p.logs_of('b'));
}

#[test]
fn a_rekeyed_child_sa_still_to_delete_is_deleted_through_the_renewed_ike_sa() {
    let mut c = child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start);
    c.lifetimes.rekey_time = Duration::from_secs(5);
    c.lifetimes.rand_time = Duration::ZERO;
    c.lifetimes.life_time = Duration::from_secs(20);
    let mut a = spec("a", A, Some(B), vec![c]);
    a.lifetimes.rekey_time = Duration::from_secs(6);
    a.lifetimes.rand_time = Duration::ZERO;
    let mut p = Pair::new(
        a,
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    // The CHILD_SA is renewed at 5 s; its old one is to go 2 s later, but the IKE SA is
    // renewed at 6 s in between.
    p.tick(Duration::from_millis(5500));
    assert_eq!(p.installed.len(), 4, "{}", p.logs_of('a'));
    assert!(p.removed.is_empty());
    p.tick(Duration::from_millis(1000));
    assert!(
        p.logs_of('a').contains("rekeyed: now"),
        "{}",
        p.logs_of('a')
    );
    p.tick(Duration::from_secs(2));
    p.tick(Duration::from_secs(1));
    assert_eq!(p.removed.len(), 2, "{}\n{}", p.logs_of('a'), p.logs_of('b'));
    for d in [&mut p.a, &mut p.b] {
        let list = d.request(Request::List, p.now).unwrap();
        assert_eq!(list.matches("CHILD_SA net").count(), 1, "{list}");
    }
}

#[test]
fn reauthentication_makes_a_new_ike_sa_before_breaking_the_old_one() {
    let mut a = spec(
        "a",
        A,
        Some(B),
        vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
    );
    a.reauth_time = Duration::from_secs(10);
    let mut p = Pair::new(
        a,
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    let ike_spis = |d: &mut Daemon, now| {
        let l = d.request(Request::List, now).unwrap();
        l.lines()
            .filter(|l| l.contains("IKE_SA"))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let now = p.now;
    let before = ike_spis(&mut p.a, now);
    assert_eq!(before.len(), 1);
    p.tick(Duration::from_secs(11));
    p.tick(Duration::from_secs(1));
    assert!(
        p.logs_of('a').contains("reauthenticated: now"),
        "{}",
        p.logs_of('a')
    );
    // A new IKE SA with a new CHILD_SA on both ends, which took the old one's places: the
    // initiator sends on it at once, the responder once the old one is deleted.
    assert_eq!(
        p.installed.len(),
        4,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    use crate::daemon::Renewal;
    let second = |side: char| p.renewals.iter().filter(|r| r.0 == side).nth(1).unwrap().2;
    assert!(
        matches!(
            second('a'),
            Some(Renewal::Replaces {
                hold_outbound: None,
                ..
            })
        ),
        "{:?}",
        second('a')
    );
    assert!(
        matches!(
            second('b'),
            Some(Renewal::Replaces {
                hold_outbound: Some(_),
                ..
            })
        ),
        "{:?}",
        second('b')
    );
    // The old IKE SA and its CHILD_SA are gone on both ends; one of each is left.
    assert_eq!(p.removed.len(), 2, "{:?}", p.removed);
    let now = p.now;
    for (name, d) in [("a", &mut p.a), ("b", &mut p.b)] {
        assert_eq!(d.ike_sas().len(), 1, "{name}");
        let list = d.request(Request::List, now).unwrap();
        assert_eq!(list.matches("CHILD_SA net").count(), 1, "{name}: {list}");
        assert!(list.contains("by reauthentication"), "{name}: {list}");
    }
    let after = ike_spis(&mut p.a, now);
    assert_ne!(before, after, "a new IKE SA");
    assert_eq!(after, ike_spis(&mut p.b, now), "the same one on both ends");
}

/// A pair whose initiator renews its CHILD_SA every 5 s.
fn renewing_pair() -> Pair {
    let mut c = child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start);
    c.lifetimes.rekey_time = Duration::from_secs(5);
    c.lifetimes.rand_time = Duration::ZERO;
    c.lifetimes.life_time = Duration::from_secs(20);
    Pair::new(
        spec("a", A, Some(B), vec![c]),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    )
}

#[test]
fn a_rekey_crossing_the_peers_delete_of_the_same_child_sa_leaves_one_pair() {
    let mut p = renewing_pair();
    p.tick(Duration::ZERO);
    let b_child = p.renewals.iter().find(|r| r.0 == 'b').unwrap().1;
    // At 5 s a renews the CHILD_SA while b deletes it (its hard limit): the two requests
    // cross on the wire.
    p.now += Duration::from_secs(5);
    p.b.lifetime_reached(
        b_child,
        true,
        espo_ipsec::lifetime::LifetimeCause::Packets,
        p.now,
    );
    p.a.tick(p.now);
    p.b.tick(p.now);
    p.run();
    p.tick(Duration::from_secs(3));
    for (name, d) in [("a", &mut p.a), ("b", &mut p.b)] {
        let list = d.request(Request::List, p.now).unwrap();
        assert!(
            list.matches("CHILD_SA net").count() <= 1,
            "{name}: no stale CHILD_SA: {list}"
        );
    }
    let a_list = p.a.request(Request::List, p.now).unwrap();
    let b_list = p.b.request(Request::List, p.now).unwrap();
    let pair = |l: &str| {
        l.lines().find(|l| l.contains("CHILD_SA net")).map(|line| {
            let w: Vec<&str> = line.split_whitespace().collect();
            (w[3].to_string(), w[5].trim_end_matches(',').to_string())
        })
    };
    match (pair(&a_list), pair(&b_list)) {
        // The renewal went through: the same pair on both ends.
        (Some((a_in, a_out)), Some((b_in, b_out))) => {
            assert_eq!((a_in, a_out), (b_out, b_in), "{a_list}\n{b_list}")
        }
        // Or the deletion won: nothing left on either end.
        (None, None) => {}
        other => panic!(
            "one end holds a CHILD_SA the other does not: {other:?}\n{a_list}\n{b_list}\n{}\n{}",
            p.logs_of('a'),
            p.logs_of('b')
        ),
    }
}

#[test]
fn a_rekey_due_while_a_request_is_retransmitted_waits_for_its_answer() {
    let mut p = renewing_pair();
    p.a.conns[0].spec.dpd_delay = Duration::from_secs(4);
    p.tick(Duration::ZERO);
    // b stops hearing at 3.5 s: a's liveness check at 4 s goes unanswered.
    p.tick(Duration::from_millis(3500));
    p.drop_to = Some('b');
    p.tick(Duration::from_millis(1000));
    // The rekey is due at 5 s, while the liveness check waits for its answer (it is resent
    // 4 s after it went): one exchange at a time, so the rekey waits.
    p.tick(Duration::from_millis(1000));
    assert!(
        !p.logs_of('a').contains("rekeying CHILD_SA"),
        "{}",
        p.logs_of('a')
    );
    assert_eq!(p.installed.len(), 2);
    // b hears again: the resent check is answered, then the renewal goes through.
    p.drop_to = None;
    for _ in 0..4 {
        p.tick(Duration::from_secs(1));
    }
    assert!(
        p.logs_of('a').contains("retransmitting"),
        "{}",
        p.logs_of('a')
    );
    assert!(
        p.logs_of('a').contains("rekeying CHILD_SA"),
        "{}",
        p.logs_of('a')
    );
    assert_eq!(p.installed.len(), 4, "{}", p.logs_of('a'));
    p.tick(Duration::from_secs(3));
    for (name, d) in [("a", &mut p.a), ("b", &mut p.b)] {
        let list = d.request(Request::List, p.now).unwrap();
        assert_eq!(list.matches("CHILD_SA net").count(), 1, "{name}: {list}");
    }
}

#[test]
fn every_child_stands_behind_its_child_sa_so_that_nothing_leaves_in_clear() {
    let mut quiet = child("10.1.0.0/16", "10.3.0.0/16", StartAction::None);
    quiet.name = "quiet".into();
    let mut p = Pair::new(
        spec(
            "a",
            A,
            Some(B),
            vec![
                child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start),
                quiet,
            ],
        ),
        spec(
            "b",
            B,
            None,
            vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
        ),
    );
    p.tick(Duration::ZERO);
    use espo_ipsec::spec::PolicyAction;
    let a: Vec<_> = p.traps.iter().filter(|t| t.0 == 'a').collect();
    assert_eq!(a.len(), 2, "one set of placeholders per child");
    // `start`: a trap (a packet without a CHILD_SA negotiates it again); `none`: a discard.
    assert_eq!(a[0].2[0].action, PolicyAction::Trap);
    assert_eq!(a[0].2[0].dst.to_string(), "10.2.0.0/16");
    assert_eq!(a[1].2[0].action, PolicyAction::Discard);
    assert_eq!(a[1].2[0].dst.to_string(), "10.3.0.0/16");
    // A responder for peers anywhere knows no selectors to stand behind.
    assert!(p.traps.iter().all(|t| t.0 == 'a'));
    // The peer goes: the trap negotiates the CHILD_SA again on the next packet.
    let trap = a[0].1;
    p.b.request(Request::Down("b".into()), p.now).unwrap();
    p.run();
    assert!(p.a.ike_sas().is_empty(), "{}", p.logs_of('a'));
    p.a.acquire(trap, p.now);
    p.run();
    assert_eq!(p.a.ike_sas().len(), 1, "{}", p.logs_of('a'));
    assert_eq!(p.a.ike_sas()[0].2, "ESTABLISHED");
}

/// Two certificate ends (RSA on b: its IKE_AUTH is the larger) on a path of `size` bytes.
fn small_path(size: usize, b_fragments: bool) -> Pair {
    let mut a = pubkey(
        "a",
        A,
        Some(B),
        "ee-ecdsa",
        "gw-a.espo.test",
        "gw-b.espo.test",
        vec![child("10.1.0.0/16", "10.2.0.0/16", StartAction::Start)],
    );
    a.fragment_size = size;
    let mut b = pubkey(
        "b",
        B,
        None,
        "ee-rsa",
        "gw-b.espo.test",
        "gw-a.espo.test",
        vec![child("10.2.0.0/16", "10.1.0.0/16", StartAction::None)],
    );
    b.fragment_size = size;
    b.fragmentation = b_fragments;
    Pair::new(a, b)
}

/// Whether a datagram is an SKF fragment.
fn is_fragment(bytes: &[u8]) -> bool {
    wire::sk::locate(bytes).is_ok_and(|e| e.fragment.is_some())
}

#[test]
fn ike_auth_too_large_for_the_path_goes_in_fragments_both_ways() {
    let mut p = small_path(576, true);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = std::rc::Rc::clone(&seen);
    p.filter = Some(Box::new(move |to, bytes| {
        log.borrow_mut().push((to, bytes.len(), is_fragment(bytes)));
        true
    }));
    p.tick(Duration::ZERO);
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    let (a, b) = (p.a.counters(), p.b.counters());
    assert!(a.fragmented >= 1 && b.reassembled >= 1, "{a:?} {b:?}");
    assert!(b.fragmented >= 1 && a.reassembled >= 1, "{a:?} {b:?}");
    // Every datagram fits the path: 576 bytes of IP datagram, 28 of them IPv4 and UDP.
    let seen = seen.borrow();
    assert!(seen.iter().filter(|s| s.2).count() >= 4, "{seen:?}");
    assert!(seen.iter().all(|s| s.1 <= 576 - 28), "{seen:?}");
    // Later exchanges go whole while they fit.
    let list = p.a.request(Request::List, p.now).unwrap();
    assert!(list.contains("messages sent and"), "{list}");
}

#[test]
fn a_lost_or_forged_fragment_is_made_good_by_the_retransmission() {
    let mut p = small_path(576, true);
    let mut count = 0;
    p.filter = Some(Box::new(move |to, bytes| {
        if to == 'b' && is_fragment(bytes) {
            count += 1;
            match count {
                // The second fragment of the first IKE_AUTH request is lost, the third
                // arrives forged (its ICV fails: refused, the others wait).
                2 => return false,
                3 => {
                    let at = bytes.len() - 1;
                    bytes[at] ^= 1;
                }
                _ => {}
            }
        }
        true
    }));
    p.tick(Duration::ZERO);
    assert!(p.installed.is_empty(), "not yet");
    // The request is sent again, all its fragments: b answers.
    p.tick(Duration::from_secs(5));
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    assert!(p.a.counters().retransmissions >= 1);
    assert!(p.b.counters().dropped >= 1, "the forged fragment");
}

#[test]
fn without_the_peers_consent_nothing_is_fragmented() {
    let mut p = small_path(576, false);
    let fragments = std::rc::Rc::new(std::cell::Cell::new(0));
    let count = std::rc::Rc::clone(&fragments);
    p.filter = Some(Box::new(move |_, bytes| {
        if is_fragment(bytes) {
            count.set(count.get() + 1);
        }
        true
    }));
    p.tick(Duration::ZERO);
    // The messages go whole (the network's IP fragmentation is left to carry them).
    assert_eq!(
        p.installed.len(),
        2,
        "{}\n{}",
        p.logs_of('a'),
        p.logs_of('b')
    );
    assert_eq!(fragments.get(), 0);
    assert_eq!(p.a.counters().fragmented, 0);
}

/// A hub and many peers: every peer gets a CHILD_SA of its own, narrowed to its site, with
/// SPIs that never repeat at the hub; the hub's timers then leave its quiet IKE SAs alone
/// and reach every one of them when its liveness check is due.
#[test]
fn a_hub_brings_up_many_peers_and_times_each_of_them() {
    const PEERS: usize = 60;
    let now = Instant::now();
    let unix = 1_800_000_000;
    let peer = |i: usize| IpAddr::V4(Ipv4Addr::new(198, 18, 0, i as u8 + 1));
    let site = |i: usize| format!("10.128.{i}.0/24");
    let mut hub = Daemon::new(
        vec![
            Connection::load(spec(
                "hub",
                B,
                None,
                vec![child("10.0.0.0/16", "10.128.0.0/9", StartAction::None)],
            ))
            .unwrap(),
        ],
        vec![SocketAddr::new(B, 500)],
        now,
        unix,
    );
    let mut peers: Vec<Daemon> = (0..PEERS)
        .map(|i| {
            let mut s = spec(
                &format!("peer{i}"),
                peer(i),
                Some(B),
                vec![child(&site(i), "10.0.0.0/16", StartAction::Start)],
            );
            s.local_addrs = vec![peer(i)];
            Daemon::new(
                vec![Connection::load(s).unwrap()],
                vec![SocketAddr::new(peer(i), 500)],
                now,
                unix,
            )
        })
        .collect();
    // Datagrams in flight: (to the hub, or to peer i), from, to, bytes.
    let mut wire: Vec<(Option<usize>, SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
    let mut hub_children: Vec<[SaSpec; 2]> = Vec::new();
    let mut hub_policies = Vec::new();
    let take = |d: &mut Daemon,
                wire: &mut Vec<(Option<usize>, SocketAddr, SocketAddr, Vec<u8>)>,
                installed: &mut Vec<[SaSpec; 2]>,
                policies: &mut Vec<espo_ipsec::spec::PolicySpec>| {
        let mut sends = 0;
        while let Some(e) = d.next_event() {
            match e {
                Event::Send {
                    local,
                    remote,
                    message,
                } => {
                    sends += 1;
                    let to = (remote.ip() != B).then(|| match remote.ip() {
                        IpAddr::V4(a) => usize::from(a.octets()[3]) - 1,
                        IpAddr::V6(_) => unreachable!(),
                    });
                    wire.push((to, local, remote, message));
                }
                Event::InstallChild {
                    sas, policies: p, ..
                } => {
                    installed.push(*sas);
                    policies.extend(p);
                }
                _ => {}
            }
        }
        sends
    };
    let mut peer_children: Vec<Vec<[SaSpec; 2]>> = vec![Vec::new(); PEERS];
    for (i, p) in peers.iter_mut().enumerate() {
        p.tick(now);
        take(p, &mut wire, &mut peer_children[i], &mut Vec::new());
    }
    for _ in 0..20 {
        for (to, from, at, bytes) in std::mem::take(&mut wire) {
            match to {
                None => {
                    hub.receive(&bytes, from, at, now);
                    hub.tick(now);
                    take(&mut hub, &mut wire, &mut hub_children, &mut hub_policies);
                }
                Some(i) => {
                    peers[i].receive(&bytes, from, at, now);
                    take(
                        &mut peers[i],
                        &mut wire,
                        &mut peer_children[i],
                        &mut Vec::new(),
                    );
                }
            }
        }
    }
    assert!(wire.is_empty(), "the exchanges settle");
    assert_eq!(hub.counters().ike_established, PEERS as u64);
    assert_eq!(hub_children.len(), PEERS);
    assert!(
        peer_children.iter().all(|c| c.len() == 1),
        "one CHILD_SA per peer"
    );
    let spis: std::collections::HashSet<u32> = hub_children.iter().map(|s| s[0].spi).collect();
    assert_eq!(spis.len(), PEERS, "the hub's inbound SPIs never repeat");
    // Each peer's CHILD_SA at the hub: its own address, its site and nothing wider.
    for (i, children) in peer_children.iter().enumerate() {
        let sas = hub_children
            .iter()
            .find(|s| s[1].dst == peer(i))
            .unwrap_or_else(|| panic!("no CHILD_SA for peer {i}"));
        assert_eq!(sas[0].spi, children[0][1].spi);
        let text = format!("{hub_policies:?}");
        assert!(text.contains(&format!("10.128.{i}.0")), "peer {i}: {text}");
    }
    assert!(!format!("{hub_policies:?}").contains("10.128.0.0/9"));
    // Nothing is due a second later: no message, no event.
    hub.tick(now + Duration::from_secs(1));
    assert_eq!(
        take(&mut hub, &mut wire, &mut Vec::new(), &mut Vec::new()),
        0
    );
    // The liveness check is due on every IKE SA at once: each is reached.
    hub.tick(now + Duration::from_secs(31));
    assert_eq!(
        take(&mut hub, &mut wire, &mut Vec::new(), &mut Vec::new()),
        PEERS,
        "one liveness check per peer"
    );
    assert!(wire.iter().all(|(to, ..)| to.is_some()));
}
