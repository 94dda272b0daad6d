//! TCP throughput between two hosts through a gateway-to-gateway tunnel, against the same
//! path through a plain TUN relay without crypto, measured in the same run.
//!
//! Network namespaces as in tests/netns (hA ── gwA ══ gwB ── hB). One TCP flow from hA to
//! hB for a few seconds:
//! - `espo`: `espo run` on both gateways with examples/gw-gw/esp (AES-GCM-128 ESP tunnel);
//! - `espo-model`: the same with gw-b on the card model (`engine = "model"`), its outside
//!   interface the card's port (no address while espo runs);
//! - `plain-relay`: this bench's own binary on both gateways running espo's gateway
//!   datapath — same TUN device, threads, batches, raw sockets, PMTU handling — with an
//!   engine that only puts a bare IPv4 header (protocol 50, no ESP header, no crypto) in
//!   front of each packet and takes it off again. That engine exists only here: it is the
//!   baseline, never a mode of espo.
//!
//! The two alternate for `ESPO_TUNNEL_ROUNDS` rounds (default 5), each `ESPO_TUNNEL_SECONDS`
//! long (default 4); the best and the median of each are reported, with their ratios. Needs root; prints why
//! it is skipped otherwise. Run with `cargo bench --bench tunnel`.

#[allow(dead_code, unused_macros, unused_imports)]
#[path = "../tests/netns/lab.rs"]
mod lab;
#[allow(dead_code)]
#[path = "../tests/netns/topology.rs"]
mod topology;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use espo_config::Config;
use espo_gateway::path::{
    InboundEngine, Incoming, OutboundEngine, Outgoing, PacketBuf, SaSnapshot,
};
use espo_ipsec::counters::DropReason;
use espo_ipsec::wire::{ChecksumCaps, IpProtocol, ipv4};

/// The baseline engine's outbound half: a bare IPv4 header in front, nothing else.
struct PlainOut {
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl OutboundEngine for PlainOut {
    fn overhead(&self, _inner: &[u8]) -> Result<Option<usize>, DropReason> {
        Ok(Some(ipv4::HEADER_LEN))
    }
    fn max_overhead(&self) -> usize {
        ipv4::HEADER_LEN
    }
    fn encapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Outgoing, DropReason>>,
    ) {
        verdicts.clear();
        for p in batch.iter_mut() {
            let r = p.range();
            let start = r.start - ipv4::HEADER_LEN;
            let repr = ipv4::Repr {
                src_addr: self.src,
                dst_addr: self.dst,
                next_header: IpProtocol::Esp,
                payload_len: r.len(),
                hop_limit: 64,
                tos: 0,
                dont_frag: false,
                ident: 0,
            };
            let hdr = &mut p.buffer_mut()[start..r.start];
            let ok = repr
                .emit(
                    &mut ipv4::Packet::new_unchecked(hdr),
                    &ChecksumCaps::default(),
                )
                .is_ok();
            p.set_range(start..r.end);
            verdicts.push(if ok {
                Ok(Outgoing::Protected { spi: 0 })
            } else {
                Err(DropReason::TooBig)
            });
        }
    }
    fn snapshot(&self, _out: &mut Vec<SaSnapshot>) {}
}

/// The baseline engine's inbound half: takes the bare IPv4 header off again.
struct PlainIn;

impl InboundEngine for PlainIn {
    fn decapsulate(
        &mut self,
        batch: &mut [PacketBuf],
        verdicts: &mut Vec<Result<Incoming, DropReason>>,
    ) {
        verdicts.clear();
        for p in batch.iter_mut() {
            let r = p.range();
            let hl = p.packet().first().map_or(0, |b| usize::from(b & 0x0f) * 4);
            if r.len() <= hl || hl < ipv4::HEADER_LEN {
                verdicts.push(Err(DropReason::Malformed));
                continue;
            }
            p.set_range(r.start + hl..r.end);
            verdicts.push(Ok(Incoming::Inner { spi: 0 }));
        }
    }
    fn snapshot(&self, _out: &mut Vec<SaSnapshot>) {}
}

/// Runs the plain relay on a configuration (this binary, started in a gateway namespace).
fn relay(config_path: &Path) {
    let config = Config::load(config_path).expect("configuration");
    let gw = config.gateway.clone().expect("[gateway]");
    let sa = config
        .sas
        .iter()
        .find(|s| Some(s.src) == gw.local)
        .expect("an outbound SA");
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (sa.src, sa.dst) else {
        panic!("the plain relay carries IPv4 outer headers only");
    };
    let outside = gw.port.clone().expect("[gateway] port");
    let report = espo_gateway::run_with(
        &config,
        &gw,
        &outside,
        &mut PlainOut { src, dst },
        &mut PlainIn,
        "plain-relay",
        |_| {},
    )
    .expect("plain relay runs");
    println!("{}", report.status);
}

/// One TCP flow from `client_ns` to `server` for `seconds`; returns Mbit/s at the receiver.
fn throughput(
    lab: &lab::Lab,
    client_ns: &str,
    server_ns: &str,
    server: IpAddr,
    seconds: f64,
) -> f64 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            lab.run_in(server_ns, || {
                let l =
                    TcpListener::bind(SocketAddr::new(IpAddr::from([0u8; 4]), 7100)).expect("bind");
                tx.send(()).unwrap();
                let (mut c, _) = l.accept().expect("accept");
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = vec![0u8; 1 << 16];
                let mut bytes = 0u64;
                let mut first = None;
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            first.get_or_insert_with(Instant::now);
                            bytes += n as u64;
                        }
                    }
                }
                let secs = first.map_or(1.0, |t| t.elapsed().as_secs_f64());
                bytes as f64 * 8.0 / secs / 1e6
            })
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("receiver up");
        lab.run_in(client_ns, || {
            let mut c =
                TcpStream::connect_timeout(&SocketAddr::new(server, 7100), Duration::from_secs(5))
                    .expect("connect");
            let buf = vec![0x5au8; 1 << 16];
            let end = Instant::now() + Duration::from_secs_f64(seconds);
            while Instant::now() < end {
                if c.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        receiver.join().expect("receiver")
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--config") {
        relay(Path::new(&args[i + 1]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; there are no criterion entries.
    }
    if let Some(why) = lab::skip_reason() {
        println!("tunnel bench skipped: {why}");
        return;
    }
    let rounds: usize = env_or("ESPO_TUNNEL_ROUNDS", 5).max(1);
    let seconds: f64 = env_or("ESPO_TUNNEL_SECONDS", 4.0);
    let exe = std::env::current_exe().expect("own path");
    let mut lab = lab::Lab::new("bt");
    let t = topology::gateway_to_gateway(&mut lab);
    let a_cfg = lab::example("gw-gw/esp/gw-a.toml", &t.left_out);
    let b_cfg = lab::example("gw-gw/esp/gw-b.toml", &t.right_out);
    let b_model_cfg = b_cfg.replace("engine = \"software\"", "engine = \"model\"");
    let (mut espo, mut plain, mut model) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for mode in ["espo", "espo-model", "plain-relay"] {
            let (a, b) = if mode == "espo" {
                (
                    lab.espo_run(&t.left, "a", &a_cfg),
                    lab.espo_run(&t.right, "b", &b_cfg),
                )
            } else if mode == "espo-model" {
                // gw-b on the card model: its outside interface is the card's port, with
                // no address of its own while espo runs.
                lab.ip(&t.right, &["addr", "flush", "dev", &t.right_out]);
                (
                    lab.espo_run(&t.left, "a", &a_cfg),
                    lab.espo_run(&t.right, "b", &b_model_cfg),
                )
            } else {
                (
                    lab.start_gateway(&t.left, "a", &a_cfg, &exe, &["--relay"]),
                    lab.start_gateway(&t.right, "b", &b_cfg, &exe, &["--relay"]),
                )
            };
            let mbps = throughput(
                &lab,
                &t.left_host,
                &t.right_host,
                IpAddr::from([10, 2, 0, 2]),
                seconds,
            );
            println!("round {round}: {mode:<12} {mbps:>9.0} Mbit/s");
            match mode {
                "espo" => espo.push(mbps),
                "espo-model" => model.push(mbps),
                _ => plain.push(mbps),
            }
            lab.stop(&a);
            lab.stop(&b);
            if mode == "espo-model" {
                lab.addr(&t.right, &t.right_out, "192.0.2.2/24");
            }
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0f64, f64::max);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (best_espo, best_plain) = (best(&espo), best(&plain));
    let (median_espo, median_plain) = (median(&mut espo), median(&mut plain));
    let (best_model, median_model) = (best(&model), median(&mut model));
    let ratio = best_espo / best_plain;
    println!(
        "tunnel/tcp: espo {best_espo:.0} Mbit/s, plain TUN relay {best_plain:.0} Mbit/s (best of {rounds}), ratio {:.0}% (target >= 80%); medians {median_espo:.0} / {median_plain:.0}, ratio {:.0}%",
        ratio * 100.0,
        median_espo / median_plain * 100.0
    );
    println!(
        "tunnel/tcp: espo with gw-b on the card model {best_model:.0} Mbit/s (best of {rounds}), ratio {:.0}% to the plain TUN relay; median {median_model:.0}, ratio {:.0}%",
        best_model / best_plain * 100.0,
        median_model / median_plain * 100.0
    );
    println!(
        "{{\"bench\":\"tunnel-tcp-model\",\"espo_model_mbps\":{best_model:.0},\"plain_relay_mbps\":{best_plain:.0},\"ratio\":{:.3},\"median_ratio\":{:.3}}}",
        best_model / best_plain,
        median_model / median_plain
    );
    println!(
        "{{\"bench\":\"tunnel-tcp\",\"espo_mbps\":{best_espo:.0},\"plain_relay_mbps\":{best_plain:.0},\"ratio\":{ratio:.3},\"median_ratio\":{:.3}}}",
        median_espo / median_plain
    );
}
