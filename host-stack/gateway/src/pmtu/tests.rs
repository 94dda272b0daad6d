use super::*;
use espo_ipsec::wire::{ChecksumCaps, IpProtocol};
use proptest::prelude::*;
use std::net::Ipv4Addr;

fn packet(len: usize, df: bool) -> Vec<u8> {
    let mut p = vec![0u8; len];
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(10, 1, 0, 2),
        dst_addr: Ipv4Addr::new(10, 2, 0, 2),
        next_header: IpProtocol::Udp,
        payload_len: len - ipv4::HEADER_LEN,
        hop_limit: 64,
        tos: 0,
        dont_frag: df,
        ident: 0x1234,
    };
    repr.emit(
        &mut ipv4::Packet::new_unchecked(&mut p[..]),
        &ChecksumCaps::default(),
    )
    .unwrap();
    for (i, b) in p[ipv4::HEADER_LEN..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

#[test]
fn tunnel_mtu_subtracts_the_overhead() {
    assert_eq!(tunnel_mtu(1500, 69), 1431);
    assert_eq!(tunnel_mtu(100, 69), MIN_IPV4_MTU);
}

#[test]
fn fit_decides_by_df_and_family() {
    assert_eq!(fit(&packet(1400, true), 69, 1500, 1431), Fit::Fits);
    assert_eq!(fit(&packet(1431, true), 69, 1500, 1431), Fit::Fits);
    assert_eq!(
        fit(&packet(1432, true), 69, 1500, 1431),
        Fit::TooBig { mtu: 1431 }
    );
    assert_eq!(
        fit(&packet(1432, false), 69, 1500, 1431),
        Fit::Fragment { max_len: 1416 }
    );
    // IPv6 (anything that is not IPv4) is never fragmented.
    let mut v6 = vec![0u8; 1500];
    v6[0] = 0x60;
    assert_eq!(fit(&v6, 69, 1500, 1431), Fit::TooBig { mtu: 1431 });
}

proptest! {
    #[test]
    fn any_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1600), overhead in 0usize..200) {
        let _ = fit(&data, overhead, 1500, 1431);
    }
}

#[test]
fn a_lower_path_limits_the_packets_of_its_sa() {
    let interface = PathLimit {
        outer_mtu: 1500,
        tunnel_mtu: 1431,
    };
    assert_eq!(limit(1500, 1431, None), interface);
    let path = PathLimit {
        outer_mtu: 1300,
        tunnel_mtu: 1231,
    };
    assert_eq!(limit(1500, 1431, Some(path)), path);
    // A path above the interface changes nothing.
    let above = PathLimit {
        outer_mtu: 1600,
        tunnel_mtu: 1531,
    };
    assert_eq!(limit(1500, 1431, Some(above)), interface);
    // What fits the interface no longer fits the path: DF gets the path's inner MTU, no DF
    // is cut for the path.
    let l = limit(1500, 1431, Some(path));
    assert_eq!(fit(&packet(1400, true), 69, 1500, 1431), Fit::Fits);
    assert_eq!(
        fit(&packet(1400, true), 69, l.outer_mtu, l.tunnel_mtu),
        Fit::TooBig { mtu: 1231 }
    );
    assert_eq!(
        fit(&packet(1400, false), 69, l.outer_mtu, l.tunnel_mtu),
        Fit::Fragment { max_len: 1216 }
    );
}
