use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
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
    let text = render(&c, &info(), &out, &inb);

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
fn publishing_never_waits_for_a_reader() {
    let slot = Published::default();
    let stats = DirectionStats {
        received: 5,
        ..Default::default()
    };
    let held = slot.view.lock().unwrap();
    assert!(
        !slot.try_publish(&stats, &[]),
        "a held slot is skipped, not waited for"
    );
    drop(held);
    assert!(slot.try_publish(&stats, &[snapshot(0x1001, Direction::Out, 1)]));
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
