//! A ready-made tunnel between two endpoints, for benchmarks, demos and tests: one SA from
//! 192.0.2.1 to 192.0.2.2 protecting 10.1.0.0/16 → 10.2.0.0/16, as the sender's and the
//! receiver's configuration, and inner packets to send through it.

use std::path::Path;

use espo_config::{Config, ConfigError};

/// The SPI of the loopback tunnel's SA.
pub const SPI: u32 = 0x0000_5001;

/// A key of `len` bytes that is fixed (benchmarks and tests must be repeatable); never use
/// it for traffic that matters.
fn fixed_key_hex(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| format!("{:02x}", (i as u8).wrapping_mul(31).wrapping_add(seed)))
        .collect()
}

/// Sender and receiver configurations for one tunnel SA with `encryption` (a configuration
/// name such as `aes-gcm-128`) and, for non-AEAD algorithms, `integrity`.
pub fn tunnel_pair(
    encryption: &str,
    integrity: Option<&str>,
) -> Result<(Config, Config), ConfigError> {
    tunnel_pair_behind_sites(encryption, integrity, 0)
}

/// The most sites [`site_policies`] writes.
pub const MAX_SITES: usize = 64_000;

/// `sites` policies of direction `dir` (`"out"` or `"in"`), one per other site, as
/// configuration text: `10.X.Y.0/24 → 10.2.0.0/16`, discard, X from 3 — none of them
/// matches a packet of 10.1.0.0/16 and 10.2.0.0/16 either way. Put in front of a tunnel's
/// own policies, every packet of the tunnel is looked up among them and matches after them,
/// as at a hub gateway with one policy per site. At most [`MAX_SITES`] (fewer written).
pub fn site_policies(dir: &str, sites: usize) -> String {
    (0..sites.min(MAX_SITES))
        .map(|i| {
            format!(
                "[[policy]]\ndir = \"{dir}\"\nsrc = \"10.{}.{}.0/24\"\ndst = \"10.2.0.0/16\"\naction = \"discard\"\n\n",
                3 + i / 256,
                i % 256
            )
        })
        .collect()
}

/// The most other peers [`peer_tunnels`] writes.
pub const MAX_PEERS: usize = 32_768;

/// `peers` other peers' tunnels of the gateway at `local` with the site `local_site`, as
/// configuration text, as at a hub with one peer per site: for peer `i`, at
/// `198.18.{i/256}.{i%256}` (RFC 2544's benchmarking range) with the site
/// `10.{128+i/256}.{i%256}.0/24`, an ESP SA each way (AES-GCM-128, fixed keys of their
/// own; outbound SPI `0x300000+i`, inbound `0x200000+i`) and a `protect` policy each way
/// between the two sites. None of them matches a packet between 10.1.0.0/16 and 10.2.0.0/16; put in front
/// of a tunnel's own entries, they come before it wherever a gateway lists its tunnels (its
/// policy lookups, its guard's rules). At most [`MAX_PEERS`] (fewer written).
pub fn peer_tunnels(local: &str, local_site: &str, peers: usize) -> String {
    let mut out = String::new();
    for i in 0..peers.min(MAX_PEERS) {
        let peer = format!("198.18.{}.{}", i / 256, i % 256);
        let site = format!("10.{}.{}.0/24", 128 + i / 256, i % 256);
        let (spi_out, spi_in) = (0x30_0000 + i, 0x20_0000 + i);
        // 12 fixed bytes and the SA's own number make its AES-128 key, the number again its
        // salt: no two SAs share a key.
        let key = |n: usize| format!("{}{n:08x}{n:08x}", fixed_key_hex(12, 0x5e));
        out.push_str(&format!(
            "[[sa]]\nspi = {spi_out:#x}\nprotocol = \"esp\"\nsrc = \"{local}\"\ndst = \"{peer}\"\n\
             encryption = \"aes-gcm-128\"\nkey = \"{}\"\n\n\
             [[sa]]\nspi = {spi_in:#x}\nprotocol = \"esp\"\nsrc = \"{peer}\"\ndst = \"{local}\"\n\
             encryption = \"aes-gcm-128\"\nkey = \"{}\"\n\n\
             [[policy]]\ndir = \"out\"\nsrc = \"{local_site}\"\ndst = \"{site}\"\naction = \"protect\"\nsa = [{spi_out:#x}]\n\n\
             [[policy]]\ndir = \"in\"\nsrc = \"{site}\"\ndst = \"{local_site}\"\naction = \"protect\"\nsa = [{spi_in:#x}]\n\n",
            key(2 * i),
            key(2 * i + 1),
        ));
    }
    out
}

/// A gateway's configuration text with `sites` other sites' policies in each direction
/// ([`site_policies`]) in front of its own policies; unchanged when it has none.
pub fn behind_sites(config: &str, sites: usize) -> String {
    let others = [site_policies("out", sites), site_policies("in", sites)].concat();
    in_front_of(config, "[[policy]]", &others)
}

/// The configuration text of the gateway at `local` with the site `local_site`, with
/// `peers` other peers' SAs and policies ([`peer_tunnels`]) in front of its own SAs, so
/// that its tunnels come last wherever the gateway lists them; unchanged when it has none.
pub fn behind_peers(config: &str, local: &str, local_site: &str, peers: usize) -> String {
    in_front_of(config, "[[sa]]", &peer_tunnels(local, local_site, peers))
}

/// `text` put into `config` where `marker` first starts (nowhere when it has none).
fn in_front_of(config: &str, marker: &str, text: &str) -> String {
    match config.find(marker) {
        Some(at) => [&config[..at], text, &config[at..]].concat(),
        None => config.to_owned(),
    }
}

/// [`tunnel_pair`] with the tunnel's policy behind `sites` others in each direction
/// ([`site_policies`]): every packet of the tunnel is looked up in a database of
/// `sites + 1` policies and matches the last. At most [`MAX_SITES`] sites.
pub fn tunnel_pair_behind_sites(
    encryption: &str,
    integrity: Option<&str>,
    sites: usize,
) -> Result<(Config, Config), ConfigError> {
    if sites > MAX_SITES {
        return Err(ConfigError::Invalid {
            path: "loopback".into(),
            entry: "policy".into(),
            field: "src",
            message: format!("{sites} sites ahead of the tunnel's policy: at most {MAX_SITES}"),
        });
    }
    let enc: espo_ipsec::crypto::EncryptionAlgorithm = encryption.parse().map_err(
        |e: <espo_ipsec::crypto::EncryptionAlgorithm as core::str::FromStr>::Err| {
            ConfigError::Invalid {
                path: "loopback".into(),
                entry: "sa[0]".into(),
                field: "encryption",
                message: e.to_string(),
            }
        },
    )?;
    let mut sa = format!(
        "[[sa]]\nspi = {SPI:#x}\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"{encryption}\"\nreplay_window = 1024\n"
    );
    if enc.key_len() > 0 {
        sa.push_str(&format!("key = \"{}\"\n", fixed_key_hex(enc.key_len(), 7)));
    }
    if let Some(integ) = integrity {
        let alg: espo_ipsec::crypto::IntegrityAlgorithm = integ.parse().map_err(
            |e: <espo_ipsec::crypto::IntegrityAlgorithm as core::str::FromStr>::Err| {
                ConfigError::Invalid {
                    path: "loopback".into(),
                    entry: "sa[0]".into(),
                    field: "integrity",
                    message: e.to_string(),
                }
            },
        )?;
        sa.push_str(&format!(
            "integrity = \"{integ}\"\nintegrity_key = \"{}\"\n",
            fixed_key_hex(alg.key_len(), 91)
        ));
    }
    let policy = |dir: &str| {
        let mut all = site_policies(dir, sites);
        all.push_str(&format!(
            "[[policy]]\ndir = \"{dir}\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [{SPI:#x}]\n"
        ));
        all
    };
    let sender = Config::parse(
        &format!("{sa}{}", policy("out")),
        Path::new("loopback-sender"),
    )?;
    let receiver = Config::parse(
        &format!("{sa}{}", policy("in")),
        Path::new("loopback-receiver"),
    )?;
    Ok((sender, receiver))
}

/// An IPv4/TCP super-packet (what a TUN read with offloads brings) from `src`:5000 to
/// `dst`:80 with `payload` bytes of a pattern, flags ACK, the timestamp option, lengths
/// and checksums right, and its virtio-net header for segments of `mss` bytes of payload.
pub fn tcp_super_packet(
    src: [u8; 4],
    dst: [u8; 4],
    payload: usize,
    mss: u16,
) -> (Vec<u8>, espo_ipsec::gso::VnetHdr) {
    let mut p = vec![0u8; 20 + 32 + payload];
    p[0] = 0x45;
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..24].copy_from_slice(&[0x13, 0x88, 0, 80]);
    p[24..28].copy_from_slice(&1000u32.to_be_bytes());
    p[32] = 8 << 4;
    p[33] = 0x10;
    p[34..36].copy_from_slice(&500u16.to_be_bytes());
    p[40..52].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
    for (i, b) in p[52..].iter_mut().enumerate() {
        *b = (i * 13 + i / 251) as u8;
    }
    if let Some(l) = espo_ipsec::gso::Layout::of(&p) {
        let len = p.len();
        l.set_ip_len(&mut p, len);
        l.fill_l4_checksum(&mut p);
    }
    let hdr = espo_ipsec::gso::VnetHdr {
        gso_type: espo_ipsec::gso::GSO_TCPV4,
        gso_size: mss,
        ..Default::default()
    };
    (p, hdr)
}

/// An IPv4/UDP packet of exactly `len` bytes (at least 28) from 10.1.0.1 to 10.2.0.1, its
/// payload filled with `fill`.
pub fn udp_packet(len: usize, fill: u8) -> Vec<u8> {
    let len = len.clamp(28, 65535);
    let mut p = vec![fill; len];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
    p[8] = 64;
    p[9] = 17;
    p[10..12].copy_from_slice(&[0, 0]);
    p[12..16].copy_from_slice(&[10, 1, 0, 1]);
    p[16..20].copy_from_slice(&[10, 2, 0, 1]);
    let csum = espo_ipsec::wire::checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&(!csum).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&((len - 20) as u16).to_be_bytes());
    p[26..28].copy_from_slice(&[0, 0]);
    p
}
