//! The IKEv2 daemon fed hostile datagrams: a responder (and an initiator that has sent its
//! IKE_SA_INIT) receives a sequence of arbitrary messages, with time passing between them.
//! Nothing may panic, every answer must itself parse as an IKEv2 message, and the IKE SAs
//! kept stay within the daemon's half-open bound.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use espo_ike::connection::{ChildSpec, ConnectionSpec, Lifetimes, LocalAuth, Psk, RemoteAuth, StartAction};
use espo_ike::daemon::{Event, KeyManager};
use espo_ike::manager::{Connection, Daemon, MAX_HALF_OPEN};
use espo_ike::wire::Message;
use libfuzzer_sys::fuzz_target;

const HERE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

fn daemon(initiator: bool) -> Daemon {
    let spec = ConnectionSpec {
        name: "fuzz".into(),
        local_addrs: vec![HERE],
        remote_addrs: if initiator { vec![PEER] } else { vec![] },
        local_port: 500,
        remote_port: 500,
        local_id: None,
        remote_id: None,
        local_auth: LocalAuth::Psk,
        remote_auth: RemoteAuth::Psk,
        psk: Some(Psk(b"a pre-shared key for fuzzing".to_vec().into())),
        proposals: vec!["aes128gcm16-prfsha256-x25519".into(), "aes128-sha256-modp2048".into()],
        dpd_delay: Duration::from_secs(30),
        encap: false,
        lifetimes: Lifetimes::IKE_DEFAULT,
        reauth_time: Duration::ZERO,
        fragmentation: true,
        fragment_size: 1280,
        children: vec![ChildSpec {
            name: "net".into(),
            local_ts: vec!["10.1.0.0/16".parse().unwrap()],
            remote_ts: vec!["10.2.0.0/16".parse().unwrap()],
            esp_proposals: vec!["aes128gcm16".into()],
            start_action: if initiator { StartAction::Start } else { StartAction::None },
            lifetimes: Lifetimes::CHILD_DEFAULT,
            replay_window: 64,
        }],
    };
    Daemon::new(
        vec![Connection::load(spec).unwrap()],
        vec![SocketAddr::new(HERE, 500)],
        Instant::now(),
        1_800_000_000,
    )
}

fn drain(d: &mut Daemon) {
    let mut n = 0;
    while let Some(e) = d.next_event() {
        n += 1;
        assert!(n < 10_000, "the event queue grows without bound");
        if let Event::Send { message, .. } = e {
            Message::parse(&message).expect("espo's own messages parse");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut d = [daemon(false), daemon(true)];
    for x in &mut d {
        x.tick(t0);
        drain(x);
    }
    let from = SocketAddr::new(PEER, 500);
    let to = SocketAddr::new(HERE, 500);
    let mut now = t0;
    let mut rest = data;
    // Each message: two bytes of length, then the message.
    while rest.len() >= 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let (msg, tail) = rest[2..].split_at(len);
        rest = tail;
        for x in &mut d {
            x.receive(msg, from, to, now);
            drain(x);
        }
        now += Duration::from_millis(700);
        for x in &mut d {
            x.tick(now);
            drain(x);
            assert!(x.ike_sas().len() <= MAX_HALF_OPEN + 1);
        }
    }
});
