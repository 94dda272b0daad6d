mod common;
use common::*;
use espo_fpga::Status;
use rand::SeedableRng;

#[test]
fn one_packet_each_way() {
    let t = [Tunnel::new(0x1001)];
    let mut rtl = rtl_with(&t);
    let mut tx = sender(&t);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let ip = inner_packet(&mut rng, 0, false, 100, 0, true);
    let out = rtl.process(&[outbound(0, &ip)]).expect("process");
    let v = out[0].verdict.clone().expect("verdict");
    println!("{v:?} {:?}", out[0].timing);
    let mut buf = vec![0u8; 4096];
    let sw = tx.outbound.encapsulate(&ip, &mut buf).expect("sw");
    println!("{sw:?}");
    let espo_stack::engine::Encapsulated::Protected { len, .. } = sw else { panic!() };
    println!("rtl {:02x?}", &out[0].frame);
    println!("sw  {:02x?}", &buf[..len]);
    assert_eq!(v.status, Status::Ok);
    assert_eq!(&out[0].frame[14..], &buf[..len]);
    let back = rtl.process(&[inbound(out[0].frame.clone())]).expect("process");
    let v = back[0].verdict.clone().expect("verdict");
    println!("{v:?} {:?}", back[0].timing);
    assert_eq!(v.status, Status::Ok);
    assert_eq!(&back[0].frame[14..], &ip[..]);
}
