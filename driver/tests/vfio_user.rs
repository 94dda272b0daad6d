//! The card driver over vfio-user: the card model served by `CardServer` on a thread of
//! this process (its own socket, DMA through shared memory, interrupts through eventfds),
//! and hostile servers scripted byte by byte.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{frame, gcm_sa, requests};
use espo_driver::card::{Card, CardConfig, CardError, CardEvent, Fault, IrqMode, TxAction, TxDone};
use espo_driver::vfio_user::port::PortPeer;
use espo_driver::vfio_user::proto::{
    self, Command, DeviceInfo, FaultRecord, HEADER_BYTES, Header, Kind, MAX_MESSAGE_BYTES,
    RegionAccess, RegionInfo, Version,
};
use espo_driver::vfio_user::server::{CardServer, ServedPort, SessionEnd};
use espo_driver::vfio_user::{
    ESPO1_DEVICE_ID, ESPO1_VENDOR_ID, VfioUserDevice, VfioUserError, VfioUserOptions,
};
use espo_driver::{AccessError, Device, DeviceError};
use espo_fpga::regs::{BAR0_SIZE, admin, ctrl, ident};
use espo_model::ModelParams;

/// A card model served on a thread, with the far end of its port.
struct Served {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<(SessionEnd, CardServer)>>,
}

impl Served {
    fn new(params: ModelParams) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = ServedPort::datagram(&dir.path().join("port")).unwrap();
        let mut server = CardServer::bind(&dir.path().join("card"), params, port).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = server.run(&flag).unwrap();
            (end, server)
        });
        Self {
            dir,
            stop,
            thread: Some(thread),
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("card")
    }

    fn connect(&self) -> VfioUserDevice {
        VfioUserDevice::connect(&self.socket(), VfioUserOptions::default()).unwrap()
    }

    fn port(&self) -> PortPeer {
        PortPeer::connect(&self.dir.path().join("port"), &self.dir.path().join("peer")).unwrap()
    }

    fn finish(mut self) -> (SessionEnd, CardServer) {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn within<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "nothing within {limit:?}");
        std::thread::yield_now();
    }
}

fn send_all(card: &mut Card, frames: &[Vec<u8>], action: TxAction) -> Vec<TxDone> {
    let reqs = requests(frames, 0, action);
    let mut done = Vec::new();
    let mut at = 0;
    within(Duration::from_secs(10), || {
        if at < reqs.len() {
            at += card.tx_batch(0, &reqs[at..]).unwrap();
        }
        card.tx_completions(0, &mut done).unwrap();
        (at == reqs.len() && card.tx_outstanding(0).unwrap() == 0).then_some(())
    });
    done
}

#[test]
fn a_second_server_does_not_take_a_live_servers_socket() {
    let served = Served::new(ModelParams::zero_latency());
    let err = CardServer::bind(
        &served.socket(),
        ModelParams::zero_latency(),
        ServedPort::unplugged(),
    )
    .unwrap_err();
    assert!(matches!(err, VfioUserError::Listen { .. }), "{err}");
    // The first still serves.
    let dev = served.connect();
    assert_eq!(
        dev.read32(0, u64::from(ident::DEVICE_ID.addr())).unwrap(),
        ident::DEVICE_ID_VALUE
    );
}

#[test]
fn configuration_space_and_bar0_are_reached_through_messages() {
    let served = Served::new(ModelParams::zero_latency());
    let dev = served.connect();
    let mut ids = [0u8; 4];
    dev.read_config(0, &mut ids).unwrap();
    assert_eq!(u16::from_le_bytes([ids[0], ids[1]]), ESPO1_VENDOR_ID);
    assert_eq!(u16::from_le_bytes([ids[2], ids[3]]), ESPO1_DEVICE_ID);
    assert_eq!(dev.bar_len(0), Some(u64::from(BAR0_SIZE)));
    assert_eq!(dev.bar_len(1), None);
    assert_eq!(
        dev.read32(0, u64::from(ident::DEVICE_ID.addr())).unwrap(),
        ident::DEVICE_ID_VALUE
    );
    dev.write32(0, u64::from(ident::SCRATCH.addr()), 0x5a5a_0001)
        .unwrap();
    assert_eq!(
        dev.read32(0, u64::from(ident::SCRATCH.addr())).unwrap(),
        0x5a5a_0001,
        "a read returns after the posted write before it took effect"
    );
    assert!(matches!(
        dev.read32(0, u64::from(BAR0_SIZE)),
        Err(DeviceError::Access(AccessError::OutOfBounds { .. }))
    ));
    assert!(matches!(
        dev.write64(0, 4, 0),
        Err(DeviceError::Access(AccessError::Misaligned { .. }))
    ));
    assert!(matches!(
        dev.read32(1, 0),
        Err(DeviceError::NoSuchBar { bar: 1 })
    ));
    dev.set_bus_master(true).unwrap();
    let mut cmd = [0u8; 2];
    dev.read_config(4, &mut cmd).unwrap();
    assert_eq!(u16::from_le_bytes(cmd) & 4, 4, "bus master on");
    drop(dev);
    let (_, server) = served.finish();
    assert_eq!(server.stats.clients, 1);
    assert_eq!(server.stats.malformed, 0);
}

#[test]
fn the_card_comes_up_and_frames_cross_its_served_port_both_ways() {
    let served = Served::new(ModelParams::zero_latency());
    let mut port = served.port();
    let dev = Arc::new(served.connect());
    let mut card = Card::open(dev.clone(), CardConfig::default()).expect("card comes up");
    assert!(card.capabilities().sa_table_size >= 4096);
    card.sa_write(3, &gcm_sa(true, 0x1003), None).unwrap();
    let read_back = card.sa_read(3).unwrap();
    assert_eq!(read_back.packets, 0);

    let frames: Vec<_> = (0..40).map(|i| frame(200 + i as usize, i)).collect();
    let done = send_all(&mut card, &frames[..20], TxAction::Bypass);
    assert_eq!(done.len(), 20);
    for f in &frames[..20] {
        let got = within(Duration::from_secs(5), || port.recv());
        assert_eq!(&got, f, "bypass frames leave unchanged, in order");
    }
    let done = send_all(&mut card, &frames[20..], TxAction::Encap { sa_index: 3 });
    assert_eq!(done.len(), 20);
    for _ in 20..40 {
        let esp = within(Duration::from_secs(5), || port.recv());
        assert_eq!(esp[12..14], [0x08, 0x00]);
        assert_eq!(esp[14 + 9], 50, "ESP");
    }
    assert_eq!(card.sa_read(3).unwrap().packets, 20);

    port.send(&frames[0]).unwrap();
    let mut rx = vec![espo_driver::card::RxPacket::default(); 4];
    let n = within(Duration::from_secs(5), || {
        let n = card.rx_batch(0, &mut rx).unwrap();
        (n > 0).then_some(n)
    });
    assert_eq!(n, 1);
    assert_eq!(rx[0].data, frames[0], "non-ESP frames arrive as bypass");
}

#[test]
fn completions_wake_the_driver_through_eventfds() {
    let served = Served::new(ModelParams::default());
    let _port = served.port();
    let dev = Arc::new(served.connect());
    let config = CardConfig {
        irq: IrqMode::Interrupt {
            coalesce_packets: 1,
            coalesce_cycles: 0,
        },
        ..CardConfig::default()
    };
    let mut card = Card::open(dev, config).unwrap();
    let wake = card
        .queue_irq_fd(0)
        .expect("the queue's eventfd, to poll with others");
    let frames: Vec<_> = (0..4).map(|i| frame(100, i)).collect();
    card.tx_batch(0, &requests(&frames, 0, TxAction::Bypass))
        .unwrap();
    // The duplicate becomes readable when the interrupt arrives...
    within(Duration::from_secs(2), || {
        let mut pfd = [nix::poll::PollFd::new(
            std::os::fd::AsFd::as_fd(&wake),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::ZERO).unwrap();
        (n > 0).then_some(())
    });
    // ... and the wait takes it.
    let woke = card.wait_queue(0, Duration::ZERO).unwrap();
    assert!(woke, "the TX completion's interrupt arrived on the eventfd");
    let mut done = Vec::new();
    within(Duration::from_secs(2), || {
        card.tx_completions(0, &mut done).unwrap();
        (done.len() == 4).then_some(())
    });
    drop(card);
    let (_, server) = served.finish();
    assert!(server.interrupts_delivered() >= 1);
}

#[test]
fn dma_outside_the_mapped_windows_is_a_fault_the_card_reports() {
    let served = Served::new(ModelParams::zero_latency());
    let dev = Arc::new(served.connect());
    let _card = Card::open(dev.clone(), CardConfig::default()).unwrap();
    // Behind the driver's back: disable the card, point the admin submission ring at an
    // IOVA no window covers, enable again (the rings are latched at enable, datasheet
    // §5.7) and ring the doorbell. The card must not reach any client memory.
    let unmapped = 0x7f_0000_0000u64;
    let control = u64::from(ctrl::CONTROL.addr());
    dev.write32(0, control, 0).unwrap();
    dev.write64(0, u64::from(admin::ASQ_BASE.addr()), unmapped)
        .unwrap();
    dev.write32(0, control, ctrl::control::ENABLE.mask() as u32)
        .unwrap();
    dev.write32(0, u64::from(admin::ASQ_TAIL.addr()), 1)
        .unwrap();
    let cause = within(Duration::from_secs(2), || {
        let c = dev.read32(0, u64::from(ctrl::ERR_CAUSE.addr())).unwrap();
        (c & ctrl::err::DMA_FAULT.mask() as u32 != 0).then_some(c)
    });
    assert_ne!(cause, 0);
    let addr = dev.read64(0, u64::from(ctrl::FAULT_ADDR.addr())).unwrap();
    assert!(
        (unmapped..unmapped + 4096).contains(&addr),
        "FAULT_ADDR {addr:#x}"
    );
}

#[test]
fn reset_and_a_second_client_find_a_working_card() {
    let served = Served::new(ModelParams::zero_latency());
    {
        let dev = Arc::new(served.connect());
        let mut card = Card::open(dev.clone(), CardConfig::default()).unwrap();
        card.sa_write(1, &gcm_sa(true, 0x11), None).unwrap();
        dev.reset().unwrap();
        let status = within(Duration::from_secs(2), || {
            let s = dev.read32(0, u64::from(ctrl::STATUS.addr())).unwrap();
            (s & ctrl::status::ENABLED.mask() as u32 == 0).then_some(s)
        });
        assert_eq!(
            status & ctrl::status::ENABLED.mask() as u32,
            0,
            "reset disables"
        );
    }
    // The first client went with its windows; the card serves the next one.
    let dev = Arc::new(served.connect());
    let card = Card::open(dev, CardConfig::default()).expect("second client");
    drop(card);
    let (_, server) = served.finish();
    assert_eq!(server.stats.clients, 2);
}

#[test]
fn faults_injected_through_the_fault_region_reach_the_model() {
    let served = Served::new(ModelParams::zero_latency());
    let dev = Arc::new(served.connect());
    let mut card = Card::open(dev.clone(), CardConfig::default()).unwrap();
    dev.inject_fault(FaultRecord {
        kind: espo_driver::vfio_user::server::fault_code(espo_model::FaultKind::SurpriseRemoval),
        trigger: 0,
        value: 0,
    })
    .unwrap();
    let mut events = Vec::new();
    within(Duration::from_secs(5), || {
        let _ = card.service(&mut events);
        events
            .iter()
            .any(|e| matches!(e, CardEvent::Fault(Fault::Removed)))
            .then_some(())
    });
    assert!(
        dev.is_connected(),
        "an injected removal leaves the server up"
    );
    assert!(matches!(
        dev.inject_fault(FaultRecord {
            kind: 99,
            trigger: 0,
            value: 0
        }),
        Err(VfioUserError::Refused { errno, .. }) if errno == libc::EINVAL as u32
    ));
}

#[test]
fn a_server_that_ends_mid_run_is_a_removed_card() {
    let served = Served::new(ModelParams::zero_latency());
    let _port = served.port();
    let dev = Arc::new(served.connect());
    let mut card = Card::open(dev.clone(), CardConfig::default()).unwrap();
    card.sa_write(2, &gcm_sa(true, 0x22), None).unwrap();
    dev.inject_fault(FaultRecord {
        kind: FaultRecord::EXIT
            | espo_driver::vfio_user::server::fault_code(espo_model::FaultKind::SurpriseRemoval),
        trigger: 1,
        value: 5,
    })
    .unwrap();
    let frames: Vec<_> = (0..10).map(|i| frame(300, i)).collect();
    let _ = card.tx_batch(0, &requests(&frames, 0, TxAction::Encap { sa_index: 2 }));
    let mut events = Vec::new();
    let mut done = Vec::new();
    within(Duration::from_secs(10), || {
        let _ = card.tx_completions(0, &mut done);
        let _ = card.service(&mut events);
        events
            .iter()
            .any(|e| matches!(e, CardEvent::Fault(Fault::Removed)))
            .then_some(())
    });
    let (end, _) = served.finish();
    assert!(matches!(end, SessionEnd::Exit), "{end}");
    assert!(!dev.is_connected());
    assert!(matches!(card.sa_read(2), Err(CardError::Removed)));
    let report = card.quiesce().unwrap();
    let sa = report
        .sas
        .iter()
        .find(|s| s.index == 2)
        .expect("SA 2 reported");
    assert!(
        sa.seq_upper_bound.is_some_and(|b| b >= 10),
        "every packet that may have used a number is counted: {sa:?}"
    );
    assert!(matches!(
        dev.read32(0, 0),
        Err(e) if e.device_gone()
    ));
}

/// A scripted server: answers the handshake like a served ESPO-1 (with `regions` as the
/// region sizes), then hands every later message to `after`.
fn scripted(
    dir: &Path,
    bar0_bytes: u64,
    after: impl FnOnce(&mut UnixStream, Header) + Send + 'static,
) -> JoinHandle<()> {
    let listener = UnixListener::bind(dir.join("evil")).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        loop {
            let mut head = [0u8; HEADER_BYTES];
            if s.read_exact(&mut head).is_err() {
                return;
            }
            let h = Header::parse(&head, MAX_MESSAGE_BYTES).unwrap();
            let mut payload = vec![0u8; h.payload_len()];
            s.read_exact(&mut payload).unwrap();
            let reply = match h.command {
                Command::Version => Version::parse(&payload).unwrap().emit(),
                Command::DeviceGetInfo => DeviceInfo {
                    flags: proto::DEVICE_FLAGS_PCI | proto::DEVICE_FLAGS_RESET,
                    num_regions: 10,
                    num_irqs: 5,
                }
                .emit(),
                Command::DeviceGetRegionInfo => {
                    let r = RegionInfo::parse(&payload).unwrap();
                    let size = match r.index {
                        0 => bar0_bytes,
                        7 => 256,
                        _ => 0,
                    };
                    RegionInfo { size, ..r }.emit()
                }
                _ => {
                    after(&mut s, h);
                    return;
                }
            };
            let mut out = h.reply(reply.len()).emit().to_vec();
            out.extend_from_slice(&reply);
            s.write_all(&out).unwrap();
        }
    })
}

fn quick() -> VfioUserOptions {
    VfioUserOptions {
        reply_timeout: Duration::from_millis(200),
        ..VfioUserOptions::default()
    }
}

#[test]
fn hostile_servers_give_clear_errors_within_the_reply_timeout() {
    // Bad region sizes are refused at connect.
    for bad in [0u64, 3, 1 << 40] {
        let dir = tempfile::tempdir().unwrap();
        let t = scripted(dir.path(), bad, |_, _| {});
        let err = VfioUserDevice::connect(&dir.path().join("evil"), quick()).unwrap_err();
        assert!(matches!(err, VfioUserError::BadDevice(_)), "{bad}: {err}");
        assert!(err.to_string().contains("BAR0"), "{err}");
        t.join().unwrap();
    }

    type Script = fn(&mut UnixStream, Header);
    let scripts: [(&str, Script); 6] = [
        ("silent", |s, _| {
            std::thread::sleep(Duration::from_millis(600));
            let _ = s.shutdown(std::net::Shutdown::Both);
        }),
        ("closes", |_, _| {}),
        ("oversized", |s, h| {
            let mut r = h.reply(0);
            r.size = MAX_MESSAGE_BYTES + 1;
            let _ = s.write_all(&r.emit());
            std::thread::sleep(Duration::from_millis(300));
        }),
        ("wrong id", |s, h| {
            let mut r = h.reply(0);
            r.id = h.id.wrapping_add(1);
            let _ = s.write_all(&r.emit());
            std::thread::sleep(Duration::from_millis(300));
        }),
        ("short data", |s, h| {
            let body = RegionAccess {
                offset: 0,
                region: 0,
                count: 2,
                data: vec![1, 2],
            }
            .emit();
            let mut out = h.reply(body.len()).emit().to_vec();
            out.extend_from_slice(&body);
            let _ = s.write_all(&out);
            std::thread::sleep(Duration::from_millis(300));
        }),
        ("a command instead of a reply", |s, h| {
            let mut r = h.reply(0);
            r.kind = Kind::Command;
            let _ = s.write_all(&r.emit());
            std::thread::sleep(Duration::from_millis(300));
        }),
    ];
    for (name, script) in scripts {
        let dir = tempfile::tempdir().unwrap();
        let t = scripted(dir.path(), 8192, script);
        let dev = VfioUserDevice::connect(&dir.path().join("evil"), quick()).unwrap();
        let started = Instant::now();
        let err = dev.read32(0, 0).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{name}: bounded wait"
        );
        assert!(err.device_gone(), "{name}: {err:?}");
        assert!(!dev.is_connected(), "{name}");
        // Gone for good: no further message is attempted.
        assert!(matches!(
            dev.write32(0, 0, 1),
            Err(DeviceError::VfioUser(VfioUserError::Disconnected))
        ));
        // And the card driver, on such a device, reports a removed card.
        let open = Card::open(Arc::new(dev), CardConfig::default());
        assert!(matches!(open, Err(CardError::Removed)), "{name}");
        t.join().unwrap();
    }
}

#[test]
fn a_server_refuses_malformed_and_oversized_messages_without_dying() {
    let served = Served::new(ModelParams::zero_latency());
    // An oversized message: the server drops that connection...
    let mut s = UnixStream::connect(served.socket()).unwrap();
    let mut h = Header::command(1, Command::RegionWrite, 0, false);
    h.size = MAX_MESSAGE_BYTES + 1;
    s.write_all(&h.emit()).unwrap();
    let mut buf = [0u8; 16];
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(s.read(&mut buf).unwrap(), 0, "connection closed");
    // ... a short one gets an error reply ...
    let mut s = UnixStream::connect(served.socket()).unwrap();
    let h = Header::command(2, Command::DeviceGetRegionInfo, 4, false);
    let mut msg = h.emit().to_vec();
    msg.extend_from_slice(&[0, 0, 0, 0]);
    s.write_all(&msg).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.read_exact(&mut buf).unwrap();
    let r = Header::parse(&buf, MAX_MESSAGE_BYTES).unwrap();
    assert!(r.failed && r.error == libc::EINVAL as u32 && r.id == 2);
    drop(s);
    // ... and the card still serves a well-behaved client.
    let dev = served.connect();
    assert_eq!(
        dev.read32(0, u64::from(ident::DEVICE_ID.addr())).unwrap(),
        ident::DEVICE_ID_VALUE
    );
    drop(dev);
    let (_, server) = served.finish();
    assert_eq!(server.stats.malformed, 1);
    assert!(server.stats.refused >= 1);
}

/// Sends one command on a raw connection and returns the reply's header and payload.
fn raw_request(s: &mut UnixStream, h: Header, payload: &[u8]) -> (Header, Vec<u8>) {
    let mut msg = h.emit().to_vec();
    msg.extend_from_slice(payload);
    s.write_all(&msg).unwrap();
    let mut head = [0u8; HEADER_BYTES];
    s.read_exact(&mut head).unwrap();
    let r = Header::parse(&head, MAX_MESSAGE_BYTES).unwrap();
    let mut body = vec![0u8; r.payload_len()];
    s.read_exact(&mut body).unwrap();
    (r, body)
}

#[test]
fn windows_without_a_descriptor_are_recorded_but_out_of_the_cards_reach() {
    let served = Served::new(ModelParams::zero_latency());
    let mut s = UnixStream::connect(served.socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let map = proto::DmaMap {
        flags: proto::DMA_READABLE | proto::DMA_WRITEABLE,
        offset: 0,
        address: 0x20_0000,
        size: 0x2000,
    };
    let (r, _) = raw_request(
        &mut s,
        Header::command(1, Command::DmaMap, 32, false),
        &map.emit(),
    );
    assert!(!r.failed, "accepted without a descriptor");
    let overlap = proto::DmaMap {
        address: 0x20_1000,
        ..map
    };
    let (r, _) = raw_request(
        &mut s,
        Header::command(2, Command::DmaMap, 32, false),
        &overlap.emit(),
    );
    assert!(r.failed && r.error == libc::EEXIST as u32);
    let unmap = proto::DmaUnmap {
        flags: 0,
        address: 0x20_0000,
        size: 0x2000,
    };
    let (r, body) = raw_request(
        &mut s,
        Header::command(3, Command::DmaUnmap, 24, false),
        &unmap.emit(),
    );
    assert!(!r.failed);
    assert_eq!(
        proto::DmaUnmap::parse(&body).unwrap(),
        unmap,
        "the entry echoed"
    );
    let (r, _) = raw_request(
        &mut s,
        Header::command(4, Command::DmaUnmap, 24, false),
        &unmap.emit(),
    );
    assert!(
        r.failed && r.error == libc::ENOENT as u32,
        "unmapped once only"
    );
}
