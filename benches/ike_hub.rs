//! A hub's IKEv2 at scale: N peers each bring up an IKE SA and a CHILD_SA with one hub.
//!
//! The hub is one `espo_ike` daemon that accepts any peer (PSK, AES-GCM-128, PRF
//! HMAC-SHA-256, X25519; a CHILD_SA narrowed to each peer's site, `10.X.Y.0/24` against the
//! hub's `10.0.0.0/16`), and each peer a daemon of its own that starts its tunnel at once.
//! Their messages go through an in-memory link in the order they were sent, peers starting
//! in waves of [`WAVE`] (below the hub's cookie threshold: a steady arrival, not a storm),
//! with the clock standing still (no retransmission, no timer). What is timed is the hub's
//! own work, each message handled as `espo run`'s control thread handles a wake-up — the
//! message received, the daemon's timers run (`tick`), its events taken, its next deadline
//! asked for — and apart from it the peers'; beside them, in the same run, the floor of a
//! responder's asymmetric work per handshake: one X25519 key pair generated and one
//! agreement, through `ring` directly.
//! The hub's memory is what it holds once every peer is up (live heap bytes, counted by
//! `allocation-counter`), per peer.
//!
//! Correctness is checked, time is not: every peer and the hub must have installed one
//! CHILD_SA per peer, with SPIs that never repeat, and the hub must count N IKE SAs.
//!
//!     cargo bench --bench ike_hub                     # 100, 1,000 and 10,000 peers
//!     ESPO_HUB_PEERS=1000,5000 cargo bench --bench ike_hub

use std::collections::{HashMap, HashSet, VecDeque};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use espo_ike::connection::{
    ChildSpec, ConnectionSpec, Lifetimes, LocalAuth, Psk, RemoteAuth, StartAction,
};
use espo_ike::daemon::{Event, KeyManager};
use espo_ike::manager::{COOKIE_THRESHOLD, Connection, Daemon};
use ring::agreement;
use ring::rand::SystemRandom;

const HUB: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const PSK: &[u8] = b"the hub's pre-shared key, for every peer";
/// Peers that start together: the next wave starts when this one is up.
const WAVE: usize = COOKIE_THRESHOLD / 2;

fn peer_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, (i / 256) as u8, (i % 256) as u8))
}

fn site(i: usize) -> String {
    format!("10.{}.{}.0/24", 128 + i / 256, i % 256)
}

fn spec(name: &str, local: IpAddr, remote: Option<IpAddr>, child: ChildSpec) -> ConnectionSpec {
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
        children: vec![child],
    }
}

fn child(local: &str, remote: &str, start: StartAction) -> ChildSpec {
    ChildSpec {
        name: "site".into(),
        local_ts: vec![local.parse().expect("a traffic selector")],
        remote_ts: vec![remote.parse().expect("a traffic selector")],
        esp_proposals: vec!["aes128gcm16".into()],
        start_action: start,
        lifetimes: Lifetimes::CHILD_DEFAULT,
        replay_window: 64,
    }
}

fn daemon(spec: ConnectionSpec, local: IpAddr, now: Instant) -> Daemon {
    let conn = Connection::load(spec).expect("a valid connection");
    Daemon::new(
        vec![conn],
        vec![SocketAddr::new(local, 500)],
        now,
        1_800_000_000,
    )
}

/// What one run of `peers` gave.
struct Run {
    hub: Duration,
    peers: Duration,
    hub_bytes: u64,
    cookies: u64,
    messages: usize,
}

/// A datagram on the link: to the hub (`None`) or to peer `i`.
type Datagram = (Option<usize>, SocketAddr, SocketAddr, Vec<u8>);

/// Takes every event `d` has: sends go on the link, CHILD_SAs installed are counted (their
/// inbound SPI kept, which must never repeat at that end).
fn drain(d: &mut Daemon, link: &mut VecDeque<Datagram>, spis: &mut HashSet<u32>) -> usize {
    let mut installed = 0;
    while let Some(e) = d.next_event() {
        match e {
            Event::Send {
                local,
                remote,
                message,
            } => {
                let to = (remote.ip() != HUB).then(|| match remote.ip() {
                    IpAddr::V4(a) => {
                        let [_, _, hi, lo] = a.octets();
                        usize::from(hi) * 256 + usize::from(lo)
                    }
                    IpAddr::V6(_) => unreachable!("every address here is IPv4"),
                });
                link.push_back((to, local, remote, message));
            }
            Event::InstallChild { sas, .. } => {
                assert!(spis.insert(sas[0].spi), "an inbound SPI used twice");
                installed += 1;
            }
            _ => {}
        }
    }
    installed
}

fn run(n: usize) -> Run {
    let now = Instant::now();
    let mut hub_time = Duration::ZERO;
    let mut peer_time = Duration::ZERO;
    let mut hub: Option<Daemon> = None;
    let mut messages = 0;
    let info = allocation_counter::measure(|| {
        let mut h = daemon(
            spec(
                "hub",
                HUB,
                None,
                child("10.0.0.0/16", "10.128.0.0/9", StartAction::None),
            ),
            HUB,
            now,
        );
        let mut hub_spis = HashSet::new();
        let mut hub_installed = 0;
        let mut link = VecDeque::new();
        for wave in (0..n).collect::<Vec<_>>().chunks(WAVE) {
            let t = Instant::now();
            let mut peers: HashMap<usize, (Daemon, HashSet<u32>)> = wave
                .iter()
                .map(|&i| {
                    let mut p = daemon(
                        spec(
                            &format!("peer{i}"),
                            peer_addr(i),
                            Some(HUB),
                            child(&site(i), "10.0.0.0/16", StartAction::Start),
                        ),
                        peer_addr(i),
                        now,
                    );
                    let mut spis = HashSet::new();
                    p.tick(now);
                    assert_eq!(drain(&mut p, &mut link, &mut spis), 0);
                    (i, (p, spis))
                })
                .collect();
            peer_time += t.elapsed();
            let mut peers_installed = 0;
            while let Some((to, from, at, message)) = link.pop_front() {
                messages += 1;
                match to {
                    None => {
                        // As `espo run`'s control thread does with each wake-up: what
                        // arrived, the daemon's timers, its events, and when to wake next.
                        let t = Instant::now();
                        h.receive(&message, from, at, now);
                        h.tick(now);
                        hub_installed += drain(&mut h, &mut link, &mut hub_spis);
                        black_box(h.next_deadline());
                        hub_time += t.elapsed();
                    }
                    Some(i) => {
                        let t = Instant::now();
                        let (p, spis) = peers.get_mut(&i).expect("a peer of this wave");
                        p.receive(&message, from, at, now);
                        peers_installed += drain(p, &mut link, spis);
                        peer_time += t.elapsed();
                    }
                }
            }
            assert_eq!(peers_installed, wave.len(), "every peer of the wave is up");
            drop(peers);
        }
        assert_eq!(hub_installed, n, "the hub installed a CHILD_SA per peer");
        assert_eq!(h.counters().ike_established, n as u64);
        assert_eq!(h.ike_sas().len(), n);
        drop(hub_spis);
        drop(link);
        hub = Some(h);
    });
    let hub = hub.expect("the hub ran");
    let cookies = hub.counters().cookies_sent;
    drop(black_box(hub));
    Run {
        hub: hub_time,
        peers: peer_time,
        hub_bytes: info.bytes_current.max(0) as u64,
        cookies,
        messages,
    }
}

/// A responder's asymmetric floor per handshake: an X25519 key pair and one agreement.
fn x25519_floor(n: usize) -> Duration {
    let rng = SystemRandom::new();
    let peer = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .expect("a key")
        .compute_public_key()
        .expect("its public key");
    let started = Instant::now();
    for _ in 0..n {
        let own =
            agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("a key");
        black_box(own.compute_public_key().expect("its public key"));
        let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, peer.as_ref());
        black_box(agreement::agree_ephemeral(own, &peer, |k| k[0]).expect("an agreement"));
    }
    started.elapsed() / n as u32
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the command line.
    let sizes: Vec<usize> = std::env::var("ESPO_HUB_PEERS")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .map(|s| match s.trim().parse::<usize>() {
            Ok(n) if (1..=32_768).contains(&n) => n,
            _ => panic!("ESPO_HUB_PEERS: {s:?} is not a number of peers from 1 to 32768"),
        })
        .collect();
    println!(
        "a hub's IKEv2: N peers each bring up an IKE SA and a CHILD_SA (PSK, AES-GCM-128, \
         PRF HMAC-SHA-256, X25519), {WAVE} at a time"
    );
    let mut json = vec!["\"bench\":\"ike_hub\"".to_string()];
    for n in sizes {
        let floor = x25519_floor(n.clamp(200, 2000));
        let r = run(n);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "  {n:>6} peers: the hub {:.1} µs of CPU per peer ({:.2} times the X25519 floor \
             of {:.1} µs in the same run), the peers {:.1} µs each; the hub holds {:.1} KiB \
             per peer; {} messages, {} cookies asked for",
            per(r.hub),
            per(r.hub) / (floor.as_secs_f64() * 1e6),
            floor.as_secs_f64() * 1e6,
            per(r.peers),
            r.hub_bytes as f64 / 1024.0 / n as f64,
            r.messages,
            r.cookies,
        );
        json.push(format!(
            "\"peers_{n}\":{{\"hub_us_per_peer\":{:.2},\"x25519_floor_us\":{:.2},\"peer_us\":{:.2},\"hub_bytes_per_peer\":{:.0},\"messages\":{},\"cookies\":{}}}",
            per(r.hub),
            floor.as_secs_f64() * 1e6,
            per(r.peers),
            r.hub_bytes as f64 / n as f64,
            r.messages,
            r.cookies
        ));
    }
    println!("{{{}}}", json.join(","));
}
