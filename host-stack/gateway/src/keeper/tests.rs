use super::*;
use espo_ipsec::crypto::{EncryptionAlgorithm, SecretKey};
use espo_ipsec::spec::{DfMode, Lifetime, SaMode, SaProtocol};

fn sa(spi: u32, seq: u64, key_byte: u8) -> SaSpec {
    SaSpec {
        spi,
        dir: None,
        protocol: SaProtocol::Esp,
        mode: SaMode::Tunnel,
        src: [192, 0, 2, 1].into(),
        dst: [192, 0, 2, 2].into(),
        encryption: Some(EncryptionAlgorithm::AesGcm128),
        key: Some(SecretKey::new(vec![key_byte; 20])),
        integrity: None,
        integrity_key: None,
        esn: false,
        seq,
        replay_window: 64,
        udp_encap: None,
        ttl: 64,
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

fn outbound(k: &mut Keeper, s: &SaSpec) -> (u64, SeqReservation) {
    match k.start(s, Direction::Out).unwrap() {
        Start::Outbound { seq, reservation } => (seq, reservation),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_restart_continues_after_everything_ever_reserved() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sa(0x1001, 0, 1);
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    let (seq, r) = outbound(&mut k, &spec);
    assert_eq!((seq, r.limit(), r.used()), (0, BLOCK, 0));
    // Half a block used: nothing to do yet; a little more and the keeper tops it up.
    r.note_used(BLOCK / 2 - 1);
    k.reserve_ahead();
    assert_eq!(r.limit(), BLOCK);
    r.note_used(BLOCK / 2 + 10);
    k.reserve_ahead();
    assert_eq!(r.limit(), BLOCK / 2 + 10 + BLOCK);
    let used_before_crash = BLOCK / 2 + 500;
    r.note_used(used_before_crash);
    drop(k); // killed: nothing more is written

    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    let (seq, r) = outbound(&mut k, &spec);
    assert!(
        seq > used_before_crash,
        "no number used before the restart is used again"
    );
    assert_eq!(
        seq,
        BLOCK / 2 + 10 + BLOCK,
        "it continues after the last reservation"
    );
    assert_eq!(r.limit(), seq + BLOCK);
    // The configured seq counts too when it is ahead.
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    let (seq, _) = outbound(&mut k, &sa(0x1001, 10 * BLOCK, 1));
    assert_eq!(seq, 10 * BLOCK);
}

#[test]
fn another_keys_record_is_not_used_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    outbound(&mut k, &sa(0x1001, 0, 1));
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    let (seq, _) = outbound(&mut k, &sa(0x1001, 0, 2));
    assert_eq!(seq, 0, "a new key starts afresh");
    assert!(
        k.problems()[0].contains("another key"),
        "{:?}",
        k.problems()
    );
}

#[test]
fn no_reservation_past_the_last_sequence_number() {
    let tmp = tempfile::tempdir().unwrap();
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    let max = u64::from(u32::MAX);
    let (seq, r) = outbound(&mut k, &sa(0x1001, max - 10, 1));
    assert_eq!((seq, r.limit()), (max - 10, max));
    r.note_used(max);
    k.reserve_ahead();
    assert_eq!(r.limit(), max);
}

#[test]
fn a_write_that_fails_is_reported_and_the_limit_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let mut k = Keeper::new(StateDir::open(&dir).unwrap());
    let (_, r) = outbound(&mut k, &sa(0x1001, 0, 1));
    // The directory vanishes and a file takes its place: every write fails, root or not.
    let saved = tmp.path().join("saved");
    std::fs::rename(&dir, &saved).unwrap();
    std::fs::write(&dir, "").unwrap();
    r.note_used(BLOCK - 1);
    k.reserve_ahead();
    std::fs::remove_file(&dir).unwrap();
    std::fs::rename(&saved, &dir).unwrap();
    assert_eq!(r.limit(), BLOCK, "never raised before it is on disk");
    assert!(k.problems()[0].contains("reserving sequence numbers failed"));
    k.reserve_ahead();
    assert_eq!(r.limit(), 2 * BLOCK - 1);
    assert!(k.problems().is_empty());
}

#[test]
fn inbound_marks_survive_and_close_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = sa(0x2001, 0, 3);
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    assert!(matches!(
        k.start(&spec, Direction::In).unwrap(),
        Start::Inbound { closed_at: None }
    ));
    k.record_marks(|spi, _| (spi == 0x2001).then_some(77));
    k.record_marks(|_, _| Some(50)); // never moves back
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    assert!(matches!(
        k.start(&spec, Direction::In).unwrap(),
        Start::Inbound {
            closed_at: Some(77)
        }
    ));
    k.forget(&spec, Direction::In, true);
    let mut k = Keeper::new(StateDir::open(tmp.path()).unwrap());
    assert!(
        matches!(
            k.start(&spec, Direction::In).unwrap(),
            Start::Inbound { closed_at: None }
        ),
        "a retired SA's record is gone"
    );
}

/// Many SAs started together (a gateway's start) start as they would one by one: the same
/// sequence numbers, reservations and marks, the same files — and a restart continues after
/// what they reserved. One SA whose record cannot be read fails alone; when the writing
/// fails, every SA fails with it.
#[test]
fn many_sas_start_together_as_they_would_one_by_one() {
    let specs: Vec<(SaSpec, Direction)> = (0..40u32)
        .map(|i| {
            let dir = if i % 2 == 0 {
                Direction::Out
            } else {
                Direction::In
            };
            (sa(0x3000 + i, u64::from(i) * 7, i as u8 + 1), dir)
        })
        .collect();
    let all: Vec<(&SaSpec, Direction)> = specs.iter().map(|(s, d)| (s, *d)).collect();
    let (one, many) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let describe = |start: &Start| match start {
        Start::Outbound { seq, reservation } => (*seq, reservation.limit()),
        Start::Inbound { closed_at } => (closed_at.unwrap_or(0), 0),
    };
    for round in 0..2 {
        let mut k1 = Keeper::new(StateDir::open(one.path()).unwrap());
        let singly: Vec<_> = all
            .iter()
            .map(|&(s, d)| describe(&k1.start(s, d).unwrap()))
            .collect();
        let mut k2 = Keeper::new(StateDir::open(many.path()).unwrap());
        let together: Vec<_> = k2
            .start_all(&all)
            .iter()
            .map(|r| describe(r.as_ref().unwrap()))
            .collect();
        assert_eq!(singly, together, "round {round}");
        for (s, d) in &all {
            let name = k1.dir().file_of(&StateKey::of(s, *d));
            let name = name.file_name().unwrap();
            assert_eq!(
                std::fs::read(one.path().join(name)).unwrap(),
                std::fs::read(many.path().join(name)).unwrap(),
                "round {round}: {name:?}"
            );
        }
        if round == 0 {
            continue;
        }
        // The restart continued after the first start's reservations.
        assert_eq!(together[0], (BLOCK, 2 * BLOCK));
        // The keeper keeps what it started: a reservation used up is topped up.
        let r = match k2.start_all(&all[..1]).remove(0).unwrap() {
            Start::Outbound { reservation, .. } => reservation,
            other => panic!("{other:?}"),
        };
        r.note_used(r.limit() - 1);
        k2.reserve_ahead();
        assert!(r.limit() > r.used() + BLOCK / 2);
    }
    // A broken record fails its SA alone.
    let (s, d) = all[3];
    let broken = many.path().join(
        StateDir::open(many.path())
            .unwrap()
            .file_of(&StateKey::of(s, d))
            .file_name()
            .unwrap(),
    );
    std::fs::write(&broken, "not a state file").unwrap();
    let mut k = Keeper::new(StateDir::open(many.path()).unwrap());
    let results = k.start_all(&all);
    assert!(results[3].is_err());
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), all.len() - 1);
    // A directory that cannot be written: every SA fails, none runs unreserved.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let k_dir = StateDir::open(&dir).unwrap();
    std::fs::remove_dir(&dir).unwrap();
    std::fs::write(&dir, "").unwrap();
    let mut k = Keeper::new(k_dir);
    let results = k.start_all(&all);
    assert!(results.iter().all(|r| r.is_err()), "{results:?}");
}
