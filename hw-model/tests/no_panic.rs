//! The card is hardware: no frame, descriptor, admin command or register write may make
//! it panic. Arbitrary input is refused and counted.

mod common;
use common::*;
use espo_fpga::{Counter, Status};
use espo_model::{MemLink, ModelParams};
use proptest::prelude::*;

fn card_with_sa() -> (Host, MemLink) {
    let (l, tap) = MemLink::pair();
    let mut h = Host::new(ModelParams::default());
    h.model.attach_link(Box::new(l));
    h.bring_up(1, 5);
    let mut sa = gcm_sa(false, 0x1001, [1; 16], [0; 4]);
    sa.esn = true;
    assert_eq!(h.sa_write(0, &sa, None), Status::Ok);
    (h, tap)
}

/// Frames that look like ESP to a varying depth before turning into noise.
fn esp_like() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        0usize..120,
        proptest::collection::vec(any::<u8>(), 0..200),
    )
        .prop_map(|(mode, cut, noise)| {
            let mut f = ipv4_frame(60 + noise.len(), 0, 0, 0);
            // Outer IPv4 ESP header towards the SA's destination with its SPI.
            f[14 + 9] = if mode % 3 == 0 { 17 } else { 50 };
            f[14 + 16..14 + 20].copy_from_slice(&[192, 0, 2, 2]);
            f[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
            let mut sum = 0u32;
            for c in f[14..34].chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
            }
            while sum > 0xFFFF {
                sum = (sum & 0xFFFF) + (sum >> 16);
            }
            f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            if mode % 3 == 0 {
                f[34..38].copy_from_slice(&[0x11, 0x94, 0x11, 0x94]);
                let ulen = (f.len() - 34) as u16;
                f[38..40].copy_from_slice(&ulen.to_be_bytes());
                f[42..46].copy_from_slice(&0x1001u32.to_be_bytes());
            } else {
                f[34..38].copy_from_slice(&0x1001u32.to_be_bytes());
            }
            let keep = (34 + cut).min(f.len());
            f.truncate(keep);
            f.extend_from_slice(&noise);
            if mode % 5 == 0 {
                f.truncate(f.len() / 2);
            }
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_never_panic_and_are_all_accounted(
        frames in proptest::collection::vec(prop_oneof![proptest::collection::vec(any::<u8>(), 0..300), esp_like()], 1..20)
    ) {
        let (mut h, tap) = card_with_sa();
        for f in &frames {
            tap.send_bytes(f);
        }
        let mut delivered = 0;
        for _ in 0..4 {
            h.model.run_until_idle();
            delivered += h.rx_completions(0).len();
        }
        prop_assert_eq!(h.counter(Counter::RxFrames), frames.len() as u64);
        prop_assert_eq!(delivered, frames.len(), "every frame gets exactly one completion");
    }

    #[test]
    fn arbitrary_tx_descriptors_and_data_never_panic(
        posts in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..200), any::<bool>(), 0u32..3), 1..16),
        raw_desc in proptest::collection::vec(any::<u8>(), 16),
    ) {
        let (mut h, _tap) = card_with_sa();
        let mut out = gcm_sa(true, 0x2002, [2; 16], [0; 4]);
        out.udp_encap = true;
        prop_assert_eq!(h.sa_write(1, &out, None), Status::Ok);
        let frames: Vec<(&[u8], Option<u32>)> =
            posts.iter().map(|(f, bypass, sa)| (f.as_slice(), if *bypass { None } else { Some(*sa) })).collect();
        h.post_tx(0, &frames);
        h.model.run_until_idle();
        let done = h.tx_completions(0).len();
        prop_assert_eq!(done, frames.len());
        // A descriptor of random bytes: completes or faults, never panics.
        let hq = h.queues[0].clone();
        h.write(hq.txq.slot_addr(hq.txq.index, 16), &raw_desc);
        h.queues[0].txq.index += 1;
        let idx = h.queues[0].txq.index;
        h.wr_q(&espo_fpga::regs::queue::TXQ_TAIL, 0, idx);
        h.model.run_until_idle();
    }

    #[test]
    fn arbitrary_register_writes_never_panic(writes in proptest::collection::vec((0u32..0x2100, any::<u32>()), 0..64)) {
        let (mut h, tap) = card_with_sa();
        for (off, v) in writes {
            h.model.bar0_write32(off, v);
            let _ = h.model.bar0_read32(off);
            h.model.advance(100);
        }
        tap.send_bytes(&ipv4_frame(100, 0, 0, 0));
        h.model.run_until_idle();
    }

    #[test]
    fn arbitrary_admin_commands_never_panic(cmds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 64), 1..8)) {
        let (mut h, _tap) = card_with_sa();
        for raw in cmds {
            let mut cmd = espo_fpga::AdminCommand::decode(&raw.clone().try_into().expect("64"));
            if cmd.data_addr.is_multiple_of(3) {
                cmd.data_addr = IOVA_BASE + (cmd.data_addr % 4096);
            }
            let _ = h.admin(cmd);
        }
    }
}
