//! Receiving runs of datagrams (`UDP_GRO`) over the loopback device. Binding to a device
//! needs root (`CAP_NET_RAW`); the tests are skipped without it.

use super::*;
use std::net::UdpSocket;

/// A receiving socket with `UDP_GRO` on 127.0.0.1, and a plain UDP socket sending to it.
fn pair() -> Option<(OuterRx, UdpSocket)> {
    let sender = UdpSocket::bind("127.0.0.1:0").ok()?;
    let port = {
        let probe = UdpSocket::bind("127.0.0.1:0").ok()?;
        probe.local_addr().ok()?.port()
    };
    let plan = RxPlan {
        udp: vec![(IpAddr::from([127, 0, 0, 1]), port)],
        ..RxPlan::default()
    };
    let Ok(mut rx) = OuterRx::open("lo", &plan) else {
        eprintln!("skipped: binding to a device needs root");
        return None;
    };
    rx.enable_udp_gro();
    sender.connect(("127.0.0.1", port)).ok()?;
    Some((rx, sender))
}

/// Datagram `i` of run `run`, `len` bytes: every byte says which datagram it belongs to.
fn datagram(run: usize, i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|b| (run * 31 + i * 7 + b) as u8 ^ (b >> 8) as u8)
        .collect()
}

/// Sends `count` datagrams of `seg` bytes and one of `tail` bytes (none when 0) as one run:
/// one send with `UDP_SEGMENT` (a single datagram goes as it is).
fn send_run(sender: &UdpSocket, run: usize, seg: usize, count: usize, tail: usize) -> Vec<Vec<u8>> {
    let mut datagrams: Vec<Vec<u8>> = (0..count).map(|i| datagram(run, i, seg)).collect();
    if tail > 0 {
        datagrams.push(datagram(run, count, tail));
    }
    let bytes: Vec<u8> = datagrams.concat();
    nix::sys::socket::setsockopt(
        sender,
        nix::sys::socket::sockopt::UdpGsoSegment,
        &(seg as i32),
    )
    .unwrap();
    assert_eq!(sender.send(&bytes).unwrap(), bytes.len());
    datagrams
}

/// Receives until `want` packets have come, `batch` buffers at a time; returns each
/// packet's UDP payload.
fn receive(
    rx: &OuterRx,
    headers: &mut RxHeaders,
    bufs: &mut [PacketBuf],
    batch: usize,
    want: usize,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut idle = 0;
    while got.len() < want && idle < 1000 {
        let n = rx.recv_batch(0, &mut bufs[..batch], headers).unwrap();
        if n == 0 {
            idle += 1;
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        for b in &bufs[..n] {
            let p = b.packet();
            // Each arrives as a whole IPv4 packet, its IP and UDP headers rebuilt.
            assert_eq!(p[9], 17, "not UDP");
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            got.push(p[28..].to_vec());
        }
    }
    got
}

/// Runs of one datagram size land one datagram per buffer with nothing copied after the
/// first; a run of another size, a short last datagram, single datagrams of every size and
/// batches smaller than a run all arrive whole and in order.
#[test]
fn runs_arrive_whole_and_in_order_straight_into_the_buffers() {
    let Some((rx, sender)) = pair() else { return };
    let mut headers = rx.scratch();
    let mut bufs: Vec<PacketBuf> = (0..RX_BATCH).map(|_| PacketBuf::default()).collect();

    // The first run has no size to expect: it is copied. The next ones of its size are not.
    let sent = send_run(&sender, 0, 1000, 20, 0);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, 32, 20), sent);
    assert_eq!(headers.runs_copied(), 1);
    for run in 1..6 {
        let sent = send_run(&sender, run, 1000, 20, 0);
        assert_eq!(
            receive(&rx, &mut headers, &mut bufs, 32, 20),
            sent,
            "run {run}"
        );
    }
    let sent = send_run(&sender, 6, 1000, 30, 321);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, RX_BATCH, 31), sent);
    assert_eq!(
        headers.runs_copied(),
        1,
        "runs of the expected size were copied"
    );
    assert_eq!(rx.calls(&headers), 7);

    // A run larger than the batch: the rest waits for the next calls.
    let sent = send_run(&sender, 7, 1000, 40, 0);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, 7, 40), sent);
    assert_eq!(headers.runs_copied(), 1);

    // Another size is copied once, then expected.
    let sent = send_run(&sender, 8, 700, 12, 0);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, 32, 12), sent);
    assert_eq!(headers.runs_copied(), 2);
    let sent = send_run(&sender, 9, 700, 12, 5);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, 32, 13), sent);
    assert_eq!(headers.runs_copied(), 2);

    // Single datagrams: no larger than expected, in place; larger, copied.
    let sent = send_run(&sender, 10, 100, 1, 0);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, 32, 1), sent);
    assert_eq!(headers.runs_copied(), 2);
    let sent = send_run(&sender, 11, 1400, 1, 0);
    assert_eq!(receive(&rx, &mut headers, &mut bufs, 32, 1), sent);
    assert_eq!(headers.runs_copied(), 3);
}

/// Whatever sizes, counts and batch sizes come in whatever order, every datagram arrives
/// as it was sent, in order (a fixed pseudo-random sequence).
#[test]
fn runs_of_changing_sizes_arrive_as_sent() {
    let Some((rx, sender)) = pair() else { return };
    let mut headers = rx.scratch();
    let mut bufs: Vec<PacketBuf> = (0..RX_BATCH).map(|_| PacketBuf::default()).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |m: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % m as u64) as usize
    };
    let mut in_place = 0;
    let mut seg = 1436;
    for run in 0..300 {
        // One run in four changes the size.
        if next(4) == 0 {
            seg = [1436, 800, 1, 64, 1472, 1000, 1200][next(7)];
        }
        // At most 64 datagrams and 64 KiB in a run.
        let most = (64_000 / seg).min(63);
        let count = 1 + next(most);
        let tail = if next(3) == 0 { next(seg) } else { 0 };
        let batch = [1, 5, 32, RX_BATCH, RX_BATCH][next(5)];
        let copied = headers.runs_copied();
        let sent = send_run(&sender, run, seg, count, tail);
        let got = receive(&rx, &mut headers, &mut bufs, batch, sent.len());
        assert_eq!(
            got.len(),
            sent.len(),
            "run {run}: {count} of {seg} + {tail}"
        );
        assert!(
            got == sent,
            "run {run}: {count} of {seg} + {tail}, batch {batch}"
        );
        in_place += usize::from(headers.runs_copied() == copied);
    }
    // Three runs in four repeat the size before them (a size chosen again, too).
    assert!(in_place > 150, "only {in_place} of 300 runs in place");
}
