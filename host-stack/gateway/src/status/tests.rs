use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use espo_config::Config;
use espo_ipsec::counters::DropReason;
use espo_offload::Placement;

fn config() -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gw-gw/esp-ah/gw-a.toml");
    Config::load(&path).unwrap()
}

fn info() -> GatewayInfo {
    GatewayInfo {
        tun: "espo0".into(),
        tun_mtu: 1403,
        outside: "eth1".into(),
        outside_mtu: 1500,
        engine: "software",
        started: Instant::now(),
        state_dir: None,
        warnings: Vec::new(),
    }
}

fn snapshot(spi: u32, direction: Direction, packets: u64) -> SaSnapshot {
    SaSnapshot {
        spi,
        dst: "192.0.2.2".parse::<IpAddr>().unwrap(),
        direction,
        seq: packets,
        packets,
        bytes: packets * 100,
        placement: Placement::Software,
    }
}

#[test]
fn status_shows_counters_drops_and_sas_but_never_keys() {
    let c = config();
    let mut out = DirectionView::default();
    out.stats.received = 12;
    out.stats.forwarded = 10;
    out.stats.icmp_errors = 1;
    out.stats.drops.count(DropReason::TooBig);
    out.stats.drops.count(DropReason::NoPolicy);
    out.sas = vec![
        snapshot(0x1001, Direction::Out, 10),
        snapshot(0x1102, Direction::Out, 10),
    ];
    let mut inb = DirectionView::default();
    inb.stats.drops.count(DropReason::Replayed);
    inb.sas = vec![snapshot(0x2001, Direction::In, 7)];
    let text = render(&|spi, _, _| c.sa(spi), &info(), &out, &inb);

    assert!(
        text.contains("tun espo0 (mtu 1403), outside eth1 (mtu 1500), engine software"),
        "{text}"
    );
    assert!(
        text.contains("outbound: 12 received, 10 forwarded"),
        "{text}"
    );
    assert!(text.contains("drops: no-policy 1, too-big 1"), "{text}");
    assert!(text.contains("drops: replayed 1"), "{text}");
    let sa_line = text.lines().find(|l| l.contains("0x00001102")).unwrap();
    assert!(
        sa_line.starts_with("out") && sa_line.contains("ah") && sa_line.contains("transport"),
        "{sa_line}"
    );
    assert!(
        sa_line.contains("hmac-sha256-128") && sa_line.ends_with("software"),
        "{sa_line}"
    );
    let esp_line = text.lines().find(|l| l.contains("0x00002001")).unwrap();
    assert!(
        esp_line.starts_with("in") && esp_line.contains("aes-gcm-128"),
        "{esp_line}"
    );
    for sa in &c.sas {
        for key in [&sa.key, &sa.integrity_key].into_iter().flatten() {
            let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            assert!(!text.contains(&hex[..8]), "key bytes in the status text");
        }
    }
}

#[test]
fn status_says_how_many_packets_each_system_call_carried() {
    let c = config();
    let mut out = DirectionView::default();
    out.stats.received = 94;
    out.stats.reads = 2;
    out.stats.forwarded = 90;
    out.stats.writes = 3;
    let mut inb = DirectionView::default();
    // A card's receive queue: no reads; the TUN writes are counted.
    inb.stats.received = 40;
    inb.stats.forwarded = 40;
    inb.stats.writes = 4;
    let text = render(&|spi, _, _| c.sa(spi), &info(), &out, &inb);
    let lines: Vec<&str> = text.lines().collect();
    let under = |dir: &str| {
        let at = lines.iter().position(|l| l.starts_with(dir)).unwrap();
        lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .find(|l| l.contains("system calls:"))
            .copied()
            .unwrap_or("")
    };
    assert_eq!(
        under("outbound:").trim(),
        "system calls: reads 2 (47.0 packets each), writes 3 (30.0 packets each)",
        "{text}"
    );
    assert_eq!(
        under("inbound:").trim(),
        "system calls: writes 4 (10.0 packets each)",
        "{text}"
    );
    // Nothing counted: no line.
    let idle = render(
        &|spi, _, _| c.sa(spi),
        &info(),
        &DirectionView::default(),
        &DirectionView::default(),
    );
    assert!(!idle.contains("system calls"), "{idle}");
    assert!(!idle.contains("straight into"), "{idle}");
    assert!(!text.contains("straight into"), "{text}");
    // Segments a card took straight from super-packets: said under outbound, and summed
    // over workers.
    let mut worker = DirectionStats {
        segments_direct: 40,
        reads_direct: 3,
        ..Default::default()
    };
    worker.add(&DirectionStats {
        segments_direct: 7,
        reads_direct: 2,
        ..Default::default()
    });
    out.stats = worker;
    let text = render(&|spi, _, _| c.sa(spi), &info(), &out, &inb);
    // Packets written from the card's buffers: said under inbound.
    let mut held = inb.clone();
    held.stats.writes_direct = 9;
    let with_held = render(&|spi, _, _| c.sa(spi), &info(), &out, &held);
    let line = "  packets written straight from the card's buffers: 9\n";
    let at = with_held
        .find(line)
        .unwrap_or_else(|| panic!("{with_held}"));
    assert!(with_held.find("inbound:").unwrap() < at, "{with_held}");
    assert!(!text.contains("written straight from"), "{text}");
    for line in [
        "  segments written straight into the card's buffers: 47\n",
        "  packets read straight into the card's buffers: 5\n",
    ] {
        let at = text.find(line).unwrap_or_else(|| panic!("{text}"));
        assert!(text.find("outbound:").unwrap() < at, "{text}");
        assert!(at < text.find("inbound:").unwrap(), "{text}");
    }
}

#[test]
fn publishing_never_waits_for_a_reader() {
    let slot = Published::default();
    let stats = DirectionStats {
        received: 5,
        ..Default::default()
    };
    let held = slot.view.lock().unwrap();
    assert!(
        !slot.try_publish(&stats, &[], &[]),
        "a held slot is skipped, not waited for"
    );
    drop(held);
    assert!(slot.try_publish(&stats, &[snapshot(0x1001, Direction::Out, 1)], &[]));
    let v = slot.read();
    assert_eq!((v.stats.received, v.sas.len()), (5, 1));
}

#[test]
fn the_status_socket_is_private_and_answers() {
    let dir = std::env::temp_dir().join(format!("espo-status-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("sub/espo.sock");
    let socket = StatusSocket::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    // A second gateway on the same socket is refused while the first is alive.
    assert_eq!(
        StatusSocket::bind(&path).unwrap_err().kind(),
        io::ErrorKind::AddrInUse
    );
    let client = std::thread::spawn({
        let path = path.clone();
        move || query(&path)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !client.is_finished() && Instant::now() < deadline {
        socket.serve_waiting(|| "hello from espo\n".to_string());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(client.join().unwrap().unwrap(), "hello from espo\n");
    drop(socket);
    assert!(!path.exists(), "the socket file is removed on exit");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh private directory for one test, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "espo-status-{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
            .create(&dir)
            .unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn what_is_not_a_socket_is_refused_and_left_alone() {
    let dir = TempDir::new("not-a-socket");
    let path = dir.0.join("espo.sock");

    std::fs::write(&path, "precious").unwrap();
    let e = StatusSocket::bind(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert!(
        e.to_string().contains(&*path.to_string_lossy()) && e.to_string().contains("regular file"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
    std::fs::remove_file(&path).unwrap();

    // A symbolic link, to a file or to nothing: not followed, not removed.
    let target = dir.0.join("target");
    std::fs::write(&target, "precious").unwrap();
    for to in [target.clone(), dir.0.join("nowhere")] {
        std::os::unix::fs::symlink(&to, &path).unwrap();
        let e = StatusSocket::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");

    std::fs::create_dir(&path).unwrap();
    let e = StatusSocket::bind(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
    assert!(path.is_dir());
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = TempDir::new("stale");
    let path = dir.0.join("espo.sock");
    // A socket left behind by a process that is gone: the file stays, nothing listens.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let socket = StatusSocket::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(socket);

    // Something else listening there (not espo): refused, and still listening after.
    let other = UnixListener::bind(&path).unwrap();
    let e = StatusSocket::bind(&path).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    drop(other);
}

#[test]
fn a_directory_others_can_write_is_refused() {
    let dir = TempDir::new("shared-dir");
    let path = dir.0.join("espo.sock");
    for mode in [0o777, 0o1777, 0o770, 0o730, 0o702] {
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = StatusSocket::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{mode:o}: {e}");
        assert!(
            e.to_string().contains(&*dir.0.to_string_lossy()),
            "the error names the directory: {e}"
        );
        assert!(!path.exists(), "{mode:o}: nothing created");
    }
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(StatusSocket::bind(&path).unwrap());
}

#[test]
fn a_directory_must_belong_to_root_or_espos_user() {
    assert_eq!(directory_problem(0o40700, 0, 1000), None);
    assert_eq!(directory_problem(0o40755, 1000, 1000), None);
    assert_eq!(directory_problem(0o40700, 0, 0), None);
    let e = directory_problem(0o40700, 1001, 1000).unwrap();
    assert!(e.contains("uid 1001"), "{e}");
    assert!(directory_problem(0o40700, 1001, 0).is_some());
    assert!(
        directory_problem(0o40775, 0, 0)
            .unwrap()
            .contains("its group")
    );
    assert!(
        directory_problem(0o41777, 0, 0)
            .unwrap()
            .contains("every user")
    );
}

/// The socket appears at its path by a rename, already 0600: it is never created there
/// (with the umask's mode) and never has its mode changed there.
#[test]
fn the_socket_appears_at_its_path_already_private() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let dir = TempDir::new("appears");
    let path = dir.0.join("espo.sock");
    let watch = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    watch
        .add_watch(
            &dir.0,
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_ATTRIB | AddWatchFlags::IN_MOVED_TO,
        )
        .unwrap();
    let socket = StatusSocket::bind(&path).unwrap();
    let events = watch.read_events().unwrap();
    let ours: Vec<AddWatchFlags> = events
        .iter()
        .filter(|e| e.name.as_deref() == Some(std::ffi::OsStr::new("espo.sock")))
        .map(|e| e.mask)
        .collect();
    assert_eq!(ours, vec![AddWatchFlags::IN_MOVED_TO], "{events:?}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Nothing else is left in the directory.
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("espo.sock")]);
    drop(socket);
}

#[test]
fn workers_views_merge_into_one() {
    use espo_ipsec::lifetime::{LifetimeCause, LifetimeEvent};
    let soft = LifetimeEvent {
        spi: 0x1001,
        dir: Direction::Out,
        hard: false,
        cause: LifetimeCause::Packets,
    };
    let mut a = DirectionView::default();
    a.stats.received = 10;
    a.stats.forwarded = 9;
    a.stats.drops.count(DropReason::NoPolicy);
    a.sas = vec![
        snapshot(0x1001, Direction::Out, 7),
        snapshot(0x1002, Direction::Out, 1),
    ];
    a.events = vec![soft];
    let mut b = DirectionView::default();
    b.stats.received = 5;
    b.stats.forwarded = 4;
    b.stats.drops.count(DropReason::NoPolicy);
    b.stats.write_errors = 1;
    b.sas = vec![snapshot(0x1001, Direction::Out, 30)];
    b.events = vec![soft];
    let m = merged(&[a, b]);
    assert_eq!((m.stats.received, m.stats.forwarded), (15, 13));
    assert_eq!(m.stats.drops.get(DropReason::NoPolicy), 2);
    assert_eq!(m.stats.write_errors, 1);
    assert_eq!(m.sas.len(), 2, "each SA once");
    let first = m.sas.iter().find(|s| s.spi == 0x1001).unwrap();
    assert_eq!((first.packets, first.bytes), (37, 3700), "counts summed");
    assert_eq!(first.seq, 30, "the highest number any worker used");
    assert_eq!(m.events, [soft], "an event once");
    // One slot reads as it is; several merge.
    let slots = [Published::default(), Published::default()];
    slots[0].publish(&a_stats(3), &[snapshot(0x1001, Direction::Out, 2)], &[]);
    slots[1].publish(&a_stats(4), &[snapshot(0x1001, Direction::Out, 5)], &[]);
    let views = slots.each_ref().map(Published::read);
    let all = combined(&views);
    assert_eq!(all.stats.received, 7);
    assert_eq!(all.sas[0].packets, 7);
    assert_eq!(combined(&views[..1]).stats.received, 3);
    assert_eq!(
        workers_line(&views),
        "outbound workers: 2, received 3 / 4, forwarded 0 / 0\n"
    );
}

fn a_stats(received: u64) -> DirectionStats {
    DirectionStats {
        received,
        ..Default::default()
    }
}
