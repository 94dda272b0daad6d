//! The runtime against a scripted key manager: what it hears reaches the daemon (marker
//! removed on port 4500), what the daemon asks for is done — messages sent from the right
//! socket (marker added), CHILD_SAs installed and removed in the live database, a failed
//! install reported back.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use espo_ike::daemon::{ChildId, Event, KeyManager, Level, Renewal, Request, Subsystem};

use super::*;
use crate::ike::inbox::{self, IkeMessage};
use crate::live::tests::{K3, K4, in_spis, live, negotiated, out_spis, rig};

/// Keys of a renewed CHILD_SA.
const K5: &str = "0505050505050505050505050505050505050505";
const K6: &str = "0606060606060606060606060606060606060606";
const K7: &str = "0707070707070707070707070707070707070707";
const K8: &str = "0808080808080808080808080808080808080808";
const K9: &str = "0909090909090909090909090909090909090909";
const K10: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";

/// Answers every message with "re:" + the message, from where it arrived; a message
/// "install N" installs a CHILD_SA with SPIs from N, "remove N" removes it.
#[derive(Default)]
struct Scripted {
    heard: Vec<(Vec<u8>, SocketAddr, SocketAddr)>,
    events: VecDeque<Event>,
    failed: Vec<(ChildId, String)>,
    ticks: u32,
    reached: Vec<(ChildId, bool)>,
}

impl KeyManager for Scripted {
    fn receive(&mut self, message: &[u8], remote: SocketAddr, local: SocketAddr, _: Instant) {
        self.heard.push((message.to_vec(), remote, local));
        let text = String::from_utf8_lossy(message).to_string();
        if let Some(n) = text.strip_prefix("install ") {
            let n: u32 = n.parse().unwrap();
            let (key_in, key_out) = if n == 1 { (K3, K4) } else { (K3, K3) };
            let (sas, policies) = negotiated(0xc000 + n, 0xd000 + n, key_in, key_out);
            self.events.push_back(Event::InstallChild {
                id: ChildId(n as u64),
                name: format!("conn/child{n}"),
                sas: Box::new(sas),
                policies,
                renews: None,
            });
        } else if let Some((how, rest)) = text.split_once(' ')
            && ["renew", "answer", "beside"].contains(&how)
        {
            // "renew N OLD": CHILD_SA N renews CHILD_SA OLD (this end asked); "answer N
            // OLD": the same, this end answered; "beside N S": N is the redundant one of
            // a rekey collision, S stays.
            let (n, old) = rest.split_once(' ').unwrap();
            let (n, old): (u32, u64) = (n.parse().unwrap(), old.parse().unwrap());
            let (key_in, key_out) = match n {
                3 => (K5, K6),
                4 => (K7, K8),
                _ => (K9, K10),
            };
            let (sas, policies) = negotiated(0xc000 + n, 0xd000 + n, key_in, key_out);
            let old = ChildId(old);
            let renews = match how {
                "renew" => Renewal::Replaces {
                    old,
                    hold_outbound: None,
                },
                "answer" => Renewal::Replaces {
                    old,
                    hold_outbound: Some(Duration::from_secs(60)),
                },
                _ => Renewal::Beside(old),
            };
            self.events.push_back(Event::InstallChild {
                id: ChildId(n as u64),
                name: format!("conn/child{n}"),
                sas: Box::new(sas),
                policies,
                renews: Some(renews),
            });
        } else if let Some(n) = text.strip_prefix("remove ") {
            self.events.push_back(Event::RemoveChild {
                id: ChildId(n.parse().unwrap()),
            });
        }
        let mut reply = b"re:".to_vec();
        reply.extend_from_slice(message);
        self.events.push_back(Event::Send {
            local,
            remote,
            message: reply,
        });
    }
    fn tick(&mut self, _: Instant) {
        self.ticks += 1;
    }
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    fn next_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    fn install_failed(&mut self, id: ChildId, why: &str, _: Instant) {
        self.failed.push((id, why.to_string()));
        self.events.push_back(Event::Log {
            level: Level::Warning,
            subsystem: Subsystem::Ike,
            text: format!("deleting child {} again", id.0),
        });
    }
    fn lifetime_reached(
        &mut self,
        id: ChildId,
        hard: bool,
        _: espo_ipsec::lifetime::LifetimeCause,
        _: Instant,
    ) {
        self.reached.push((id, hard));
    }
    fn request(&mut self, request: Request, _: Instant) -> Result<String, String> {
        match request {
            Request::List => Ok("no connections\n".into()),
            Request::Up(name) | Request::Down(name) => Err(format!("no connection {name}")),
        }
    }
}

fn peer() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    buf[..n].to_vec()
}

/// Pumps until the key manager heard `count` messages (datagrams take a moment on loopback).
fn pump_until(rt: &mut IkeRuntime<Scripted>, db: &mut Live<'_>, count: usize) -> bool {
    let mut changed = false;
    for _ in 0..200 {
        changed |= rt.pump(db, Instant::now());
        if rt.key_manager().heard.len() >= count {
            return changed;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!(
        "the key manager heard {} messages",
        rt.key_manager().heard.len()
    );
}

#[test]
fn messages_go_both_ways_with_the_marker_on_port_4500_only() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let natt = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
    let (ike_at, natt_at) = (ike.local, natt.local);
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let mut rt = IkeRuntime::new(
        Scripted::default(),
        vec![ike, natt],
        None,
        LogFilter::default(),
    )
    .with_sink(move |l| sink.lock().unwrap().push(l.to_string()));
    let p = peer();
    p.send_to(b"hello", ike_at).unwrap();
    pump_until(&mut rt, &mut db, 1);
    assert_eq!(recv(&p), b"re:hello");
    // On 4500 the marker goes in front, and comes off what arrives.
    p.send_to(b"\0\0\0\0natted", natt_at).unwrap();
    // ESP and keepalives on a socket of the daemon's own are not IKE.
    p.send_to(&[0xff], natt_at).unwrap();
    p.send_to(b"\x00\x00\x10\x01espespesp", natt_at).unwrap();
    pump_until(&mut rt, &mut db, 2);
    assert_eq!(recv(&p), b"\0\0\0\0re:natted");
    let heard = &rt.key_manager().heard;
    assert_eq!(heard[1].0, b"natted");
    assert_eq!(heard[1].2, natt_at);
    std::thread::sleep(Duration::from_millis(20));
    rt.pump(&mut db, Instant::now());
    assert_eq!(rt.counters().not_ike, 2);
    assert_eq!((rt.counters().received, rt.counters().sent), (2, 2));
    assert!(rt.key_manager().ticks >= 2);
}

#[test]
fn child_sas_are_installed_and_removed_and_failures_reported() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    p.send_to(b"install 1", at).unwrap();
    assert!(pump_until(&mut rt, &mut db, 1));
    assert!(in_spis(&r.engine).contains(&0xc001) && out_spis(&r.engine).contains(&0xd001));
    assert!(
        rt.status_lines()
            .contains("child conn/child1: sa 0x0000c001 in")
    );
    // The same key in both directions is refused by the database: the daemon hears of it.
    p.send_to(b"install 2", at).unwrap();
    assert!(!pump_until(&mut rt, &mut db, 2));
    assert_eq!(rt.key_manager().failed.len(), 1);
    assert_eq!(rt.key_manager().failed[0].0, ChildId(2));
    assert!(!in_spis(&r.engine).contains(&0xc002));
    assert_eq!(rt.counters().install_failures, 1);
    p.send_to(b"remove 1", at).unwrap();
    assert!(pump_until(&mut rt, &mut db, 3));
    assert!(!in_spis(&r.engine).contains(&0xc001) && !out_spis(&r.engine).contains(&0xd001));
    assert_eq!(rt.counters().children_removed, 1);
    // The configured SAs are untouched throughout.
    assert!(in_spis(&r.engine).contains(&0x2001));
}

#[test]
fn the_inbox_feeds_the_daemon_and_uninstall_all_cleans_up() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let (tx, rx) = inbox::channel(8).unwrap();
    let natt = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
    let mut natt = natt;
    natt.receive = false; // the datapath reads it
    let at = natt.local;
    let mut rt = IkeRuntime::new(
        Scripted::default(),
        vec![natt],
        Some(rx),
        LogFilter::default(),
    )
    .with_sink(|_| {});
    assert_eq!(rt.fds().len(), 1, "the inbox only");
    let p = peer();
    assert!(tx.offer(IkeMessage {
        bytes: b"install 1".to_vec(),
        src: p.local_addr().unwrap(),
        dst: at,
    }));
    assert!(pump_until(&mut rt, &mut db, 1));
    assert_eq!(recv(&p), b"\0\0\0\0re:install 1");
    rt.uninstall_all(&mut db);
    assert!(!in_spis(&r.engine).contains(&0xc001));
    assert_eq!(rt.counters().children_removed, 1);
}

#[test]
fn operator_requests_reach_the_daemon() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let mut rt = IkeRuntime::new(Scripted::default(), vec![], None, LogFilter::default());
    let (answer, changed) = rt.request(Request::Up("nope".into()), &mut db, Instant::now());
    assert_eq!(answer, Err("no connection nope".into()));
    assert!(!changed);
}

#[test]
fn log_levels_per_subsystem() {
    let f = LogFilter {
        default: Level::Warning,
        per: vec![(Subsystem::Ike, Level::Debug)],
    };
    assert!(f.shows(Subsystem::Ike, Level::Debug));
    assert!(f.shows(Subsystem::Net, Level::Error));
    assert!(!f.shows(Subsystem::Net, Level::Info));
}

#[test]
fn a_rekey_takes_the_old_sas_places_and_keeps_the_policies() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    p.send_to(b"install 1", at).unwrap();
    assert!(pump_until(&mut rt, &mut db, 1));
    let policies = db.policy_list();
    p.send_to(b"renew 3 1", at).unwrap();
    assert!(pump_until(&mut rt, &mut db, 2));
    // The new inbound SA accepts beside the old one (which retires later); the outbound one
    // replaced the old; the policies are the same ones, now naming the new SAs.
    let (inb, outb) = (in_spis(&r.engine), out_spis(&r.engine));
    assert!(inb.contains(&0xc003) && inb.contains(&0xc001), "{inb:x?}");
    assert!(
        outb.contains(&0xd003) && !outb.contains(&0xd001),
        "{outb:x?}"
    );
    let after = db.policy_list();
    assert_eq!(
        policies.lines().count(),
        after.lines().count(),
        "{policies}\n{after}"
    );
    assert!(
        after.contains("0x0000d003") && !after.contains("0x0000d001"),
        "{after}"
    );
    // The old CHILD_SA's removal (its DELETE) touches nothing of the new one.
    p.send_to(b"remove 1", at).unwrap();
    pump_until(&mut rt, &mut db, 3);
    assert!(out_spis(&r.engine).contains(&0xd003));
    assert!(
        rt.status_lines().contains("child conn/child3"),
        "{}",
        rt.status_lines()
    );
}

fn renewal_rig_step(
    rt: &mut IkeRuntime<Scripted>,
    db: &mut Live<'_>,
    p: &UdpSocket,
    at: SocketAddr,
    text: &str,
) {
    let heard = rt.key_manager().heard.len();
    p.send_to(text.as_bytes(), at).unwrap();
    pump_until(rt, db, heard + 1);
}

#[test]
fn a_rekey_this_end_answered_sends_on_the_old_sa_until_the_old_child_sa_goes() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    renewal_rig_step(&mut rt, &mut db, &p, at, "install 1");
    renewal_rig_step(&mut rt, &mut db, &p, at, "answer 3 1");
    // The new inbound SA accepts at once; the policies still send on the old outbound SA
    // (the peer may not have read the answer yet).
    let (inb, outb) = (in_spis(&r.engine), out_spis(&r.engine));
    assert!(inb.contains(&0xc003) && inb.contains(&0xc001), "{inb:x?}");
    assert!(
        outb.contains(&0xd001) && !outb.contains(&0xd003),
        "{outb:x?}"
    );
    assert!(
        db.policy_list().contains("0x0000d001"),
        "{}",
        db.policy_list()
    );
    assert!(
        rt.timeout(Instant::now()).is_some(),
        "the hold has a deadline"
    );
    // The peer deletes the old CHILD_SA: it sends on the new one, so does this end.
    renewal_rig_step(&mut rt, &mut db, &p, at, "remove 1");
    let outb = out_spis(&r.engine);
    assert!(
        outb.contains(&0xd003) && !outb.contains(&0xd001),
        "{outb:x?}"
    );
    let list = db.policy_list();
    assert!(
        list.contains("0x0000d003") && !list.contains("0x0000d001"),
        "{list}"
    );
}

#[test]
fn a_held_outbound_sa_sends_when_its_time_is_up() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    renewal_rig_step(&mut rt, &mut db, &p, at, "install 1");
    renewal_rig_step(&mut rt, &mut db, &p, at, "answer 3 1");
    assert!(!out_spis(&r.engine).contains(&0xd003));
    assert!(!rt.pump(&mut db, Instant::now() + Duration::from_secs(30)));
    assert!(!out_spis(&r.engine).contains(&0xd003));
    assert!(rt.pump(&mut db, Instant::now() + Duration::from_secs(61)));
    let outb = out_spis(&r.engine);
    assert!(
        outb.contains(&0xd003) && !outb.contains(&0xd001),
        "{outb:x?}"
    );
}

#[test]
fn the_redundant_child_sa_of_a_collision_accepts_beside_the_survivor_until_deleted() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    renewal_rig_step(&mut rt, &mut db, &p, at, "install 1");
    renewal_rig_step(&mut rt, &mut db, &p, at, "renew 3 1");
    renewal_rig_step(&mut rt, &mut db, &p, at, "beside 4 3");
    // Both new inbound SAs accept (the peer may send on either until the redundant one
    // goes); the policies send on the survivor's outbound SA only.
    let (inb, outb) = (in_spis(&r.engine), out_spis(&r.engine));
    assert!(inb.contains(&0xc003) && inb.contains(&0xc004), "{inb:x?}");
    assert!(outb.contains(&0xd003), "{outb:x?}");
    let list = db.policy_list();
    assert!(
        list.contains("0x0000d003") && !list.contains("0x0000d004"),
        "{list}"
    );
    renewal_rig_step(&mut rt, &mut db, &p, at, "remove 4");
    let (inb, outb) = (in_spis(&r.engine), out_spis(&r.engine));
    assert!(inb.contains(&0xc003) && !inb.contains(&0xc004), "{inb:x?}");
    assert!(
        outb.contains(&0xd003) && !outb.contains(&0xd004),
        "{outb:x?}"
    );
    assert!(db.policy_list().contains("0x0000d003"));
}

#[test]
fn lifetime_crossings_reach_key_management_by_child_sa() {
    use espo_ipsec::lifetime::{LifetimeCause, LifetimeEvent};
    use espo_ipsec::spec::Direction;
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    renewal_rig_step(&mut rt, &mut db, &p, at, "install 1");
    let crossing = |spi, dir, hard| LifetimeEvent {
        spi,
        dir,
        hard,
        cause: LifetimeCause::Bytes,
    };
    rt.lifetimes(
        &[
            crossing(0xc001, Direction::In, false),
            crossing(0xd001, Direction::Out, true),
            // Not a negotiated SA's, or the right SPI in the wrong direction: ignored.
            crossing(0x1001, Direction::Out, false),
            crossing(0xc001, Direction::Out, false),
        ],
        &mut db,
        Instant::now(),
    );
    assert_eq!(
        rt.key_manager().reached,
        vec![(ChildId(1), false), (ChildId(1), true)]
    );
}

#[test]
fn drops_during_a_renewal_count_against_its_connection_and_only_then() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let ike = IkeSocket::bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let at = ike.local;
    let mut rt = IkeRuntime::new(Scripted::default(), vec![ike], None, LogFilter::default())
        .with_sink(|_| {});
    let p = peer();
    renewal_rig_step(&mut rt, &mut db, &p, at, "install 1");
    let t0 = Instant::now();
    // Drops before any renewal are not a renewal's.
    rt.note_drops(3, t0);
    assert!(rt.rekey_records().is_empty());
    renewal_rig_step(&mut rt, &mut db, &p, at, "renew 3 1");
    rt.note_drops(5, Instant::now());
    let records = rt.rekey_records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].0, "conn");
    assert_eq!((records[0].1.renewals, records[0].1.dropped), (1, 2));
    // Long after the renewal: drops are someone else's.
    rt.note_drops(9, Instant::now() + Duration::from_secs(60));
    assert_eq!(rt.rekey_records()[0].1.dropped, 2);
    assert!(
        rt.status_lines()
            .contains("rekeys of conn: 1 CHILD_SA renewals, 2 packets dropped during them"),
        "{}",
        rt.status_lines()
    );
}
