//! The datapath seam (`espo_model::Datapath`): with a datapath attached, SA writes and
//! read-backs and every transformed frame go through it, and its outputs and verdicts
//! become the card's frames, completions, counters and events.

mod common;
use common::*;
use espo_fpga::{Counter, EventCode, SaEntry, SaState, Status};
use espo_model::{Datapath, DatapathOutput, MemLink, ModelParams};
use std::sync::{Arc, Mutex};

/// What the recording datapath saw.
#[derive(Debug, Default)]
struct Seen {
    writes: Vec<(u32, bool, Option<u64>)>,
    tx: Vec<(u32, usize)>,
    rx: Vec<(usize, u16)>,
    resets: u32,
}

/// A datapath that answers with recognisable frames and verdicts.
struct Recording(Arc<Mutex<Seen>>);

impl Datapath for Recording {
    fn reset(&mut self) {
        self.0.lock().unwrap().resets += 1;
    }
    fn write_sa(&mut self, index: u32, entry: &SaEntry, state: Option<&SaState>) -> Status {
        self.0
            .lock()
            .unwrap()
            .writes
            .push((index, entry.outbound, state.map(|s| s.seq)));
        if index == 7 {
            Status::InvalidField
        } else {
            Status::Ok
        }
    }
    fn read_sa(&mut self, _index: u32) -> Option<SaState> {
        Some(SaState {
            seq: 4242,
            packets: 9,
            valid: true,
            ..SaState::default()
        })
    }
    fn invalidate_sa(&mut self, index: u32) -> Option<SaState> {
        self.read_sa(index)
    }
    fn transmit(&mut self, sa_index: u32, frame: &[u8]) -> Option<DatapathOutput> {
        self.0.lock().unwrap().tx.push((sa_index, frame.len()));
        let mut out = frame.to_vec();
        out.extend_from_slice(b"datapath");
        Some(DatapathOutput {
            status: Status::Ok,
            seq: 1000,
            transformed: true,
            inner_ipv6: false,
            events: vec![(EventCode::SeqExhausted, 0)],
            frame: out,
        })
    }
    fn receive(&mut self, frame: &[u8], natt_port: u16) -> Option<DatapathOutput> {
        self.0.lock().unwrap().rx.push((frame.len(), natt_port));
        let n = self.0.lock().unwrap().rx.len();
        if n == 2 {
            return Some(DatapathOutput {
                status: Status::IcvFail,
                seq: 2,
                transformed: false,
                inner_ipv6: false,
                events: vec![],
                frame: frame.to_vec(),
            });
        }
        Some(DatapathOutput {
            status: Status::Ok,
            seq: 77,
            transformed: true,
            inner_ipv6: false,
            events: vec![],
            frame: ipv4_frame(100, 0, 1, 0xab),
        })
    }
}

#[test]
fn sa_writes_frames_and_verdicts_go_through_the_datapath() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (la, lb) = MemLink::pair();
    // a: the plain model, the sender; b: the card with the recording datapath.
    let mut a = Host::new(ModelParams::default());
    let mut b = Host::new(ModelParams::default());
    b.model.attach_datapath(Box::new(Recording(seen.clone())));
    a.model.attach_link(Box::new(la));
    b.model.attach_link(Box::new(lb));
    a.bring_up(2, 6);
    b.bring_up(2, 6);

    let mut sa = gcm_sa(true, 0x6001, [3; 16], [9; 4]);
    assert_eq!(a.sa_write(1, &sa, None), Status::Ok);
    assert_eq!(b.sa_write(1, &sa, None), Status::Ok);
    sa.outbound = false;
    sa.rx_queue = 1;
    let state = SaState {
        seq: 0,
        ..SaState::default()
    };
    assert_eq!(b.sa_write(9, &sa, Some(&state)), Status::Ok);
    let other = SaEntry {
        spi: 0x6002,
        ..sa.clone()
    };
    assert_eq!(
        b.sa_write(7, &other, None),
        Status::InvalidField,
        "the datapath's refusal is the command's status"
    );
    assert_eq!(
        seen.lock().unwrap().writes,
        vec![(1, true, None), (9, false, Some(0)), (7, false, None)]
    );

    // TX on b: the datapath's frame goes out, its sequence number and event are the card's.
    let f = ipv4_frame(200, 0, 1, 3);
    b.post_tx(0, &[(f.as_slice(), Some(1))]);
    for _ in 0..3 {
        b.model.run_until_idle();
        a.model.run_until_idle();
    }
    let tx = b.tx_completions(0);
    assert_eq!(tx.len(), 1);
    assert_eq!((tx[0].status, tx[0].seq), (Status::Ok, 1000));
    assert_eq!(seen.lock().unwrap().tx, vec![(1, f.len())]);
    assert!(
        b.events()
            .iter()
            .any(|e| e.code == EventCode::SeqExhausted && e.index == 1)
    );
    assert_eq!(b.counter(Counter::TxEncapOk), 1);

    // RX on b: ESP from a, looked up by the model, transformed by the datapath.
    let frames = [ipv4_frame(300, 0, 2, 4), ipv4_frame(310, 0, 3, 5)];
    a.post_tx(
        0,
        &frames
            .iter()
            .map(|f| (f.as_slice(), Some(1)))
            .collect::<Vec<_>>(),
    );
    for _ in 0..3 {
        a.model.run_until_idle();
        b.model.run_until_idle();
    }
    let rx = b.rx_completions(1);
    assert_eq!(rx.len(), 2);
    assert_eq!(
        (rx[0].0.status, rx[0].0.seq, rx[0].0.sa_index),
        (Status::Ok, 77, 9)
    );
    assert_eq!(
        rx[0].1,
        ipv4_frame(100, 0, 1, 0xab),
        "the datapath's inner frame"
    );
    assert_eq!((rx[1].0.status, rx[1].0.seq), (Status::IcvFail, 2));
    assert_eq!(b.counter(Counter::RxIcvFail), 1);
    assert_eq!(b.counter(Counter::RxDecapOk), 1);
    assert_eq!(seen.lock().unwrap().rx.len(), 2);

    // Read-back: the datapath's sequence number and counters; the window bitmap is the
    // model's, which followed the accepted 77 (bit 0: its top received).
    let (status, st) = b.sa_read(9);
    assert_eq!((status, st.seq, st.packets), (Status::Ok, 4242, 9));
    assert_eq!(st.bitmap[0] & 1, 1);
    let (status, _) = b.sa_invalidate(9);
    assert_eq!(status, Status::Ok);
}
