//! Every configuration in examples/ parses (those for `espo run` with a `[gateway]`), and
//! each pair of `espo run` ends agrees: the same SAs
//! (SPI, addresses, algorithms, keys) on both sides, and each side's outbound policies
//! mirrored by the other's inbound policies with the same SA bundle.

use std::path::{Path, PathBuf};

use espo_config::Config;
use espo_ipsec::spec::{Direction, PolicySpec};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn configs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            configs(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}

#[test]
fn every_example_parses() {
    let mut all = Vec::new();
    configs(&examples(), &mut all);
    assert!(
        all.len() >= 18,
        "three topologies x ESP, AH, ESP+AH x two ends: {all:?}"
    );
    for path in &all {
        let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
        // examples/pcap is for `espo pcap`, examples/demo is compiled into `espo demo`;
        // every other example is for `espo run`.
        if !path.starts_with(examples().join("pcap")) && !path.starts_with(examples().join("demo"))
        {
            let gw = c.gateway.as_ref();
            let gw = gw.unwrap_or_else(|| panic!("{}: no [gateway]", path.display()));
            // A card on the bus has its own port; every other example names its interface.
            let own_port = c.device.engine == espo_config::EngineKind::Vfio;
            assert!(gw.port.is_some() != own_port, "{}", path.display());
        }
        c.software_engine()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

fn mirrored(a: &PolicySpec, b: &PolicySpec) -> bool {
    a.src == b.src && a.dst == b.dst && a.sa == b.sa && a.dir != b.dir
}

#[test]
fn both_ends_of_every_example_agree() {
    let pairs = [
        ("gw-gw", "gw-a", "gw-b"),
        ("server-gw", "server", "gw"),
        ("server-server", "server-a", "server-b"),
    ];
    for (topology, left, right) in pairs {
        let card: &[&str] = if topology == "gw-gw" {
            &["esp-model", "esp-vfio-user", "esp-vfio"]
        } else {
            &[]
        };
        for variant in ["esp", "ah", "esp-ah"]
            .into_iter()
            .chain(card.iter().copied())
        {
            let dir = examples().join(topology).join(variant);
            let a = Config::load(&dir.join(format!("{left}.toml"))).unwrap();
            let b = Config::load(&dir.join(format!("{right}.toml"))).unwrap();
            assert_eq!(a.sas.len(), b.sas.len(), "{}", dir.display());
            for sa in &a.sas {
                let other = b
                    .sa(sa.spi)
                    .unwrap_or_else(|| panic!("{}: {:#x} only on one end", dir.display(), sa.spi));
                assert_eq!(
                    (
                        sa.src,
                        sa.dst,
                        sa.protocol,
                        sa.mode,
                        sa.encryption,
                        sa.integrity,
                        sa.udp_encap
                    ),
                    (
                        other.src,
                        other.dst,
                        other.protocol,
                        other.mode,
                        other.encryption,
                        other.integrity,
                        other.udp_encap
                    ),
                    "{}: sa {:#x}",
                    dir.display(),
                    sa.spi
                );
                let key = |k: &Option<espo_ipsec::crypto::SecretKey>| {
                    k.as_ref().map(|k| k.as_bytes().to_vec())
                };
                assert_eq!(
                    key(&sa.key),
                    key(&other.key),
                    "{}: sa {:#x} key",
                    dir.display(),
                    sa.spi
                );
                assert_eq!(key(&sa.integrity_key), key(&other.integrity_key));
            }
            for p in a.policies.iter().chain(b.policies.iter()) {
                let (mine, theirs) = if a.policies.contains(p) {
                    (&a, &b)
                } else {
                    (&b, &a)
                };
                assert!(
                    theirs.policies.iter().any(|q| mirrored(p, q)),
                    "{}: {:?} policy {}->{} has no mirror on the other end",
                    dir.display(),
                    p.dir,
                    p.src.addr(),
                    p.dst.addr()
                );
                if p.dir == Direction::Out {
                    let gw = mine.gateway.as_ref().unwrap();
                    assert_eq!(
                        Some(mine.sa(p.sa[0]).unwrap().src),
                        gw.local,
                        "outbound SAs leave from the local endpoint"
                    );
                }
            }
        }
    }
}
