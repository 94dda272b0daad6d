//! Every DMA structure decodes to what was encoded, for arbitrary field values.

use espo_fpga::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn descriptors_and_completions(addr in any::<u64>(), len in any::<u16>(), sa in any::<u32>(), seq in any::<u64>(),
                                   status in any::<u8>(), flags in any::<[bool; 5]>(), small in any::<u16>()) {
        let d = TxDescriptor { addr, len, bypass: flags[0], sa_index: sa };
        prop_assert_eq!(TxDescriptor::decode(&d.encode()), d);
        let c = TxCompletion { seq, sa_index: sa, desc_index: small, status: Status::from_value(status), phase: flags[1] };
        prop_assert_eq!(TxCompletion::decode(&c.encode()), c);
        let r = RxDescriptor { addr, len: sa };
        prop_assert_eq!(RxDescriptor::decode(&r.encode()), r);
        let rc = RxCompletion { seq, sa_index: sa, spi: sa.rotate_left(3), len, desc_index: small, status: Status::from_value(status),
            decapsulated: flags[0], inner_ipv6: flags[1], udp_encap: flags[2], truncated: flags[3], wire_len: small ^ 1, phase: flags[4] };
        prop_assert_eq!(RxCompletion::decode(&rc.encode()), rc);
        let e = EventEntry { detail: seq, index: sa, code: EventCode::from_value(status), aux: status ^ 0x55, phase: flags[2] };
        prop_assert_eq!(EventEntry::decode(&e.encode()), e);
    }

    #[test]
    fn arbitrary_bytes_decode_without_panic(b in proptest::collection::vec(any::<u8>(), 576)) {
        let arr: [u8; 576] = b.clone().try_into().expect("576");
        let s = SaState::decode(&arr);
        let again = SaState::decode(&s.encode());
        prop_assert_eq!(again, s);
        let e: [u8; 128] = b[..128].try_into().expect("128");
        let _ = SaEntry::decode(&e);
        let c: [u8; 64] = b[..64].try_into().expect("64");
        let _ = AdminCommand::decode(&c);
    }
}
