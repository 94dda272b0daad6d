//! `espo bench tunnel`: throughput through a tunnel — gateway to gateway, server to
//! gateway or server to server — against the plain kernel path on the same namespaces,
//! measured in the same run.
//!
//! Network namespaces ([`espo_harness::netlab`]; by default hA ── gwA ══ gwB ── hB),
//! traffic by iperf3 from the left host to the right one. The topologies, modes, tests and
//! figures are described in [`TunnelArgs`]; the numbers in README ("Throughput") come from
//! here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use espo_harness::loopback;
use espo_harness::netlab::{self, Gateway, Lab, Topology};
use serde_json::Value;

/// Every mode, the baseline first.
const MODES: [&str; 15] = [
    "kernel",
    "sw-sw",
    "sw-model",
    "sw-sw-udp",
    "sw-model-udp",
    "swan",
    "sw-swan",
    "sw-sw-no-offload",
    "sw-model-no-offload",
    "sw-sw-udp-no-gso",
    "sw-sw-1-worker",
    "sw-sw-udp-1-worker",
    "sw-model-1-worker",
    "sw-sw-udp-no-busy-poll",
    "sw-model-no-busy-poll",
];
/// The modes run unless --modes names others (`all`: every one).
const DEFAULT_MODES: [&str; 4] = ["kernel", "sw-sw", "sw-model", "sw-sw-udp"];
const TESTS: [Test; 5] = [
    Test::Tcp,
    Test::Tcp4,
    Test::TcpReverse,
    Test::Udp(64),
    Test::Udp(1400),
];
/// hB's address, where iperf3 listens behind a gateway.
const HOST_B: &str = "10.2.0.2";
/// The right server's own inner address (its TUN device's, from examples/gw-gw/esp), where
/// iperf3 listens in the server-to-server topology; the left one sends from 10.1.255.1.
const SERVER_B: &str = "10.2.255.1";
const SERVER_A: &str = "10.1.255.1";
/// The right server's outside address: the kernel path's in the server-to-server topology.
const OUTSIDE_B: &str = "192.0.2.2";
/// The gateways' configurations: examples/gw-gw/esp (AES-GCM-128 ESP tunnel), their
/// outside interface set by the bench.
const GW_A_TOML: &str = include_str!("../../../examples/gw-gw/esp/gw-a.toml");
const GW_B_TOML: &str = include_str!("../../../examples/gw-gw/esp/gw-b.toml");

/// Measure a tunnel with iperf3, against the plain kernel path on the same namespaces.
///
/// Builds network namespaces joined by veth links — by default four, hA ── gwA ══ gwB ── hB
/// (--topology: gw-gw, server-gw, server-server; nothing outside them is touched,
/// everything is removed at the end, also after Ctrl-C — a second Ctrl-C ends it at once,
/// leaving them) — and runs iperf3 from the left host to the right one through each mode,
/// the modes alternating in every round:
///
///   kernel        no espo: gwA and gwB route the two sites to each other (Linux IP
///                 forwarding, no encryption) — the baseline every ratio is against; in
///                 server-server, TCP and UDP between the two servers' outside addresses
///                 (no forwarding, no tunnel)
///   sw-sw         `espo run` on both gateways, software engine, AES-GCM-128 ESP tunnel
///   sw-model      the same with gwB on the card model (its outside interface the card's
///                 port, without an address while espo runs)
///   sw-sw-udp     software both ends, ESP in UDP (port 4500) with `udp_gso = true`
///   sw-model-udp  ESP in UDP with gwB on the card model; gwA's link cuts its UDP runs
///                 into datagrams before the card's port, as a NIC does
///   swan          strongSwan on both gateways (charon with its userspace ESP,
///                 kernel-libipsec: ESP in UDP 4500), IKEv2 with a PSK, AES-GCM-128 — an
///                 IPsec implementation nobody here wrote, on the same namespaces
///   sw-swan       espo on gwA negotiating with strongSwan on gwB (IKEv2, the same
///                 proposals, `udp_gso`): interoperation under load
///
/// and, with --modes all (or by name), each lever switched off to say what it gives:
/// sw-sw-no-offload, sw-model-no-offload (`tun_offload = false`), sw-sw-udp-no-gso
/// (neither TUN offloads nor UDP GSO/GRO), sw-sw-1-worker, sw-sw-udp-1-worker,
/// sw-model-1-worker (`workers = 1`), sw-sw-udp-no-busy-poll, sw-model-no-busy-poll
/// (`busy_poll_us = 0`).
///
/// Topologies (--topology), each mode run in the same shape:
///
///   gw-gw          hA ── gwA ══ gwB ── hB: hosts behind two gateways (the default)
///   server-gw      srv ══ gw ── hB: a server's own traffic (from its inner address
///                  10.1.255.1) to a host behind a gateway; the server is the left end (gwA
///                  in the figures), the gateway the right one (gwB, the card model in
///                  sw-model)
///   server-server  srvA ══ srvB: the two servers' own traffic, 10.1.255.1 to 10.2.255.1
///                  (strongSwan modes: those addresses on the servers' loopback)
///
/// Tests per mode: tcp (one TCP flow), tcp4 (four at once), tcpr (one flow from hB to hA:
/// gwB encapsulates), udp64 and udp1400 (UDP with 64- and 1400-byte payloads, at an
/// unlimited rate or at --udp-rate). Printed per round: the receiver's Gbit/s and packets
/// per second, how busy the machine was, TCP retransmissions, the round trip beside each
/// TCP flow (ping every 20 ms from the sending side's host: a paced flow, as BBR's, is held
/// back by what the path adds to it), the TCP sender's window, what it has in flight and
/// its round trips (`ss -tin`, ten looks over the round's middle half; window-limited when
/// at least 90% of the window is in flight), espo's drop counters, packets per system call
/// per gateway and direction, and where the time goes — each busy gateway thread's share of
/// a core, its CPU per delivered packet and the share of the test it waited for a core (a
/// thread near 100% is the limit; a busy machine without one means the cores are, and a
/// thread that ran or waited nearly all the time was held back by them). At the end the
/// median of each with its ratio to the kernel's; for TCP with the software engine at both
/// ends (sw-sw, sw-sw-udp) and with one end on the card model (sw-model, sw-model-udp),
/// whether the goal — 0.5 and 0.4 of the kernel path — is met, with the busiest thread of
/// that test; one JSON line with every figure.
///
/// Needs root, iperf3 and iproute2; `--perf` also perf (Debian: linux-perf); swan and
/// sw-swan strongSwan (Debian: strongswan-charon, strongswan-swanctl,
/// libcharon-extra-plugins).
///
/// Examples:
///   espo bench tunnel
///   espo bench tunnel --modes kernel,sw-sw-udp --tests tcp,udp64 --rounds 5
///   espo bench tunnel --modes all --seconds 10
///   espo bench tunnel --cc cubic --tests tcp,tcpr
///   espo bench tunnel --modes kernel,sw-sw-udp,swan,sw-swan
///   espo bench tunnel --topology server-gw --modes kernel,sw-sw,sw-model
///   espo bench tunnel --perf --rounds 1
///   espo bench tunnel --modes kernel,sw-sw-udp --tests tcp --policies 1000
///   espo bench tunnel --modes kernel,sw-sw-udp --tests tcp --peers 1000
///   espo bench tunnel --modes kernel,sw-sw-udp --tests udp64 --udp-rate 20000
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TunnelArgs {
    /// Modes to run, comma-separated, or `all` (default: kernel,sw-sw,sw-model,sw-sw-udp).
    /// `kernel` is the baseline: without it no ratio is given.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub modes: Vec<String>,
    /// Where the tunnel runs: between two gateways with a host behind each (gw-gw), from a
    /// server to a gateway with a host behind it (server-gw), or between two servers
    /// (server-server).
    #[arg(long, value_enum, default_value_t = Shape::GwGw)]
    pub topology: Shape,
    /// Tests to run, comma-separated: tcp, tcp4, tcpr, udp64, udp1400 (default: all).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub tests: Vec<String>,
    /// Rounds; every mode runs once per round, the median is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Seconds each iperf3 test runs.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// The UDP tests send this many datagrams a second instead of as many as they can: what
    /// a path that is not saturated costs — each thread's share of a core and CPU per
    /// packet at a given rate (1 to 10,000,000; default: unlimited).
    #[arg(long, value_name = "PPS")]
    pub udp_rate: Option<u64>,
    /// Every link of the topology (hosts, gateways, outside) at this MTU, for the kernel
    /// path and every espo mode alike (1280 to 65535; default: 1500).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// The hosts' TCP congestion control (cubic, bbr, reno, ...; default: the machine's).
    /// The kernel path's figure depends on it: with bbr it paces itself below what the
    /// machine can forward. One the machine has but does not let namespaces choose is
    /// added to net.ipv4.tcp_allowed_congestion_control for the run, and taken off after.
    #[arg(long, value_name = "NAME")]
    pub cc: Option<String>,
    /// Also run `perf record` on the whole machine beside the last round of each espo
    /// test, and print how its busy samples split (espo's user space and of it the AEAD,
    /// the kernel on espo's threads, the other threads), the heaviest symbols by thread,
    /// and for a TCP goal not met what the kernel's and the other threads' work alone
    /// would take at the goal's rate (needs perf).
    #[arg(long)]
    pub perf: bool,
    /// With --perf: keep each profile (its path is printed) for `perf report -i`, and the
    /// scratch directory that holds them.
    #[arg(long, requires = "perf")]
    pub keep_profiles: bool,
    /// Policies per direction in each espo gateway: the tunnel's own last, behind N-1
    /// other sites' (one /24 each, discard, matching none of the bench's traffic) — the
    /// policy lookup of a gateway with a policy per site, on every packet.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub policies: usize,
    /// Peers of each espo gateway: the bench's own peer last, behind N-1 others' tunnels
    /// (an SA and a `protect` policy each way to a site of its own, matching none of the
    /// bench's traffic) — a hub's SAs, policies and guard rules, on every packet.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub peers: usize,
    /// Scratch directory for the gateways' configurations, logs and sockets, kept
    /// afterwards: a new or empty directory, made mode 0700 (default: a new one under the
    /// system's temporary directory, removed after a successful run).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
}

/// The bench's topologies (`--topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// hA ── gwA ══ gwB ── hB.
    GwGw,
    /// srv ══ gw ── hB.
    ServerGw,
    /// srvA ══ srvB.
    ServerServer,
}

impl Shape {
    /// Its name on the command line (clap's, from the variant).
    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_owned())
    }

    /// Where iperf3 listens: the host behind the right gateway, or the right server's own
    /// inner address — for the kernel path between two servers, its outside address.
    fn target(self, mode: &str) -> &'static str {
        match (self, mode) {
            (Shape::ServerServer, "kernel") => OUTSIDE_B,
            (Shape::ServerServer, _) => SERVER_B,
            _ => HOST_B,
        }
    }

    /// The inner addresses a mode's strongSwan ends need on a server's loopback (espo puts
    /// them on its TUN device), each with its side (`true`: the left end).
    fn loopback_addresses(self, mode: &str) -> Vec<(bool, &'static str)> {
        let servers = match self {
            Shape::GwGw => &[][..],
            Shape::ServerGw => &[(true, SERVER_A)][..],
            Shape::ServerServer => &[(true, SERVER_A), (false, SERVER_B)][..],
        };
        servers
            .iter()
            .copied()
            .filter(|&(left, _)| mode == "swan" || (mode == "sw-swan" && !left))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    Tcp,
    /// Four TCP flows at once (`iperf3 -P 4`): what several outbound workers can share.
    Tcp4,
    /// One TCP flow from hB to hA (`iperf3 -R`): gw-b encapsulates the data (with
    /// `sw-model`, the card model), gw-a decapsulates it.
    TcpReverse,
    /// UDP datagrams of this many payload bytes, sent as fast as iperf3 can.
    Udp(usize),
}

impl Test {
    fn name(self) -> String {
        match self {
            Test::Tcp => "tcp".into(),
            Test::Tcp4 => "tcp4".into(),
            Test::TcpReverse => "tcpr".into(),
            Test::Udp(n) => format!("udp{n}"),
        }
    }
}

/// The ratio to the kernel path a mode's TCP test is to reach: 0.5 with the software
/// engine at both ends (raw ESP or ESP in UDP), 0.4 with one end on the card model; none
/// for the other modes and tests.
fn goal(mode: &str, test: Test) -> Option<f64> {
    if !matches!(test, Test::Tcp | Test::Tcp4 | Test::TcpReverse) {
        return None;
    }
    match mode {
        "sw-sw" | "sw-sw-udp" => Some(0.5),
        "sw-model" | "sw-model-udp" => Some(0.4),
        _ => None,
    }
}

/// What the receiver got in one test.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    gbps: f64,
    /// Datagrams per second (UDP); for TCP, full segments of the path per second (estimated:
    /// the links' MTU without a tunnel, the tunnel's through espo, less 52 bytes of headers).
    pps: f64,
    /// TCP: segments the sender retransmitted (what the path lost or reordered).
    retransmits: Option<u64>,
    /// The machine's busy share during the test (0 to 1).
    busy: f64,
    /// TCP: the round trip beside the flow (ping every 20 ms from the client's host, from
    /// half a second in): average and largest, in milliseconds.
    ping_ms: Option<(f64, f64)>,
    /// TCP: the sending socket's state over the middle half of the test.
    sender: Option<SenderState>,
    /// The busiest gateway thread: its share of a core, and the share of the test it was
    /// runnable but waiting for a core (where the kernel keeps scheduler statistics).
    busiest: Option<(f64, Option<f64>)>,
}

/// A TCP sender's state as `ss -tin` gives it: its congestion window and what it has in
/// flight (segments), its smoothed round trip and the least it has seen. Nearly the whole
/// window in flight says the flow is window-limited: it moves window ÷ round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TcpState {
    cwnd: u64,
    unacked: u64,
    rtt_ms: f64,
    min_rtt_ms: f64,
}

/// The test's data sender over the middle half of a test: the medians of [`SENDER_SAMPLES`]
/// looks at its state, and the share of them that found at least 90% of its window in
/// flight (window-limited).
#[derive(Debug, Clone, Copy, PartialEq)]
struct SenderState {
    median: TcpState,
    limited: f64,
}

/// How many times a TCP test's sender is looked at.
const SENDER_SAMPLES: usize = 10;

/// Looks at the test's data sender [`SENDER_SAMPLES`] times over the middle half of a
/// test of `seconds`: each time, of the sockets to or from iperf3's port in `hosts`, the
/// one that has sent the most segments. One shell per host runs every look (`ss -tin`,
/// then a pause), so the flow shares the machine with two processes and their `ss` runs,
/// not with a namespace entry per look. `None` when `ss` is not installed or no socket was
/// found.
fn sender_midway(hosts: [&str; 2], seconds: f64) -> Option<SenderState> {
    std::thread::sleep(Duration::from_secs_f64(seconds / 4.0));
    let step = seconds / 2.0 / SENDER_SAMPLES as f64;
    let script = format!(
        "for i in $(seq {SENDER_SAMPLES}); do ss -tin '( sport = :5299 or dport = :5299 )'; \
         echo {LOOK_END}; sleep {step:.3}; done"
    );
    let looks: Vec<Vec<Option<(u64, TcpState)>>> = hosts
        .iter()
        .filter_map(|ns| {
            Command::new("ip")
                .args(["netns", "exec", ns, "sh", "-c", &script])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|child| child.wait_with_output().ok())
        .map(|out| split_looks(&String::from_utf8_lossy(&out.stdout)))
        .collect();
    // Look i of every host: the socket that has sent the most.
    let seen: Vec<TcpState> = (0..SENDER_SAMPLES)
        .filter_map(|i| {
            looks
                .iter()
                .filter_map(|host| host.get(i).copied().flatten())
                .max_by_key(|&(sent, _)| sent)
                .map(|(_, state)| state)
        })
        .collect();
    sender_summary(&seen)
}

/// What a look's shell prints after each `ss`.
const LOOK_END: &str = "@@look";

/// Each look of one host's shell ([`sender_midway`]), in order: the socket that has sent
/// the most, `None` where that look found none.
fn split_looks(text: &str) -> Vec<Option<(u64, TcpState)>> {
    let mut looks: Vec<_> = text.split(&format!("{LOOK_END}\n")).map(parse_ss).collect();
    // What follows the last marker is not a look.
    looks.pop();
    looks
}

/// The medians of `seen` and the share window-limited (`None` when empty).
fn sender_summary(seen: &[TcpState]) -> Option<SenderState> {
    if seen.is_empty() {
        return None;
    }
    let of = |f: fn(&TcpState) -> f64| median(&seen.iter().map(f).collect::<Vec<_>>());
    let limited = seen
        .iter()
        .filter(|s| s.cwnd > 0 && s.unacked * 10 >= s.cwnd * 9)
        .count();
    Some(SenderState {
        median: TcpState {
            cwnd: of(|s| s.cwnd as f64).round() as u64,
            unacked: of(|s| s.unacked as f64).round() as u64,
            rtt_ms: of(|s| s.rtt_ms),
            min_rtt_ms: of(|s| s.min_rtt_ms),
        },
        limited: limited as f64 / seen.len() as f64,
    })
}

/// The socket of `ss -tin`'s output that has sent the most data segments, with that count.
fn parse_ss(text: &str) -> Option<(u64, TcpState)> {
    text.lines()
        // Each socket's details are on the indented line after its address line.
        .filter(|l| l.starts_with(|c: char| c.is_whitespace()))
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name)?.strip_prefix(':'))
            };
            let sent = field("data_segs_out")?.parse::<u64>().ok()?;
            let rtt_ms = field("rtt")?.split('/').next()?.parse::<f64>().ok()?;
            let state = TcpState {
                cwnd: field("cwnd")?.parse().ok()?,
                // Absent when nothing is in flight.
                unacked: field("unacked").map_or(Some(0), |v| v.parse().ok())?,
                rtt_ms,
                min_rtt_ms: field("minrtt").map_or(Some(rtt_ms), |v| v.parse().ok())?,
            };
            Some((sent, state))
        })
        .max_by_key(|&(sent, _)| sent)
}

/// Pings `target` from `ns` every 20 ms while a test of `seconds` runs, from half a second
/// in (a quarter of a short test: the flow beside it under way) to shortly before its end;
/// the round trip's average and largest in milliseconds, `None` when ping is not
/// installed or too little time is left.
fn ping_under_load(ns: &str, target: &str, seconds: f64) -> Option<(f64, f64)> {
    let delay = (seconds / 4.0).min(0.5);
    let count = ((seconds - delay - 0.3) / 0.02) as usize;
    if count < 10 {
        return None;
    }
    std::thread::sleep(Duration::from_secs_f64(delay));
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-q", "-n", "-i", "0.02", "-W", "1",
        ])
        .args(["-c", &count.to_string(), target])
        .output()
        .ok()?;
    parse_ping(&String::from_utf8_lossy(&out.stdout))
}

/// The average and largest round trip of ping's summary line
/// (`rtt min/avg/max/mdev = 0.006/0.018/0.045/0.005 ms`).
fn parse_ping(text: &str) -> Option<(f64, f64)> {
    let figures = text.lines().find_map(|l| {
        l.split_once("min/avg/max")?
            .1
            .split_once('=')
            .map(|(_, v)| v.trim().to_owned())
    })?;
    let mut v = figures
        .trim_end_matches("ms")
        .trim()
        .split('/')
        .map(str::parse::<f64>);
    let (_min, avg, max) = (v.next()?.ok()?, v.next()?.ok()?, v.next()?.ok()?);
    Some((avg, max))
}

/// A thread's time so far: on a core (clock ticks), and — where the kernel keeps scheduler
/// statistics — runnable but waiting for a core (nanoseconds).
#[derive(Debug, Clone, Copy, Default)]
struct ThreadTime {
    ticks: u64,
    waited_ns: Option<u64>,
}

/// The time of every thread of a process, by "name/tid".
fn thread_times(pid: u32) -> BTreeMap<String, ThreadTime> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ... utime(14) stime(15): fields after the closing parenthesis.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let name = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
        let f: Vec<&str> = stat
            .get(close + 2..)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let waited_ns = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| schedstat_waited(&s));
        out.insert(
            format!("{name}/{}", entry.file_name().to_string_lossy()),
            ThreadTime { ticks, waited_ns },
        );
    }
    out
}

/// The time a thread has waited on a run queue, from its `schedstat` ("time on a core,
/// time waiting for one, both in ns, and the number of times it ran").
fn schedstat_waited(text: &str) -> Option<u64> {
    let mut f = text.split_whitespace();
    f.next()?.parse::<u64>().ok()?;
    let waited = f.next()?.parse().ok()?;
    f.next()?.parse::<u64>().ok()?;
    Some(waited)
}

/// (busy, total) jiffies of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Clock ticks per second of /proc's CPU times (CLK_TCK: 100 on every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A whole-machine `perf record` (flat, 999 Hz) running beside one test.
struct Perf {
    child: std::process::Child,
    path: PathBuf,
}

impl Perf {
    /// Starts recording for `seconds` into a file under `dir`; `None` when perf cannot run.
    fn start(dir: &Path, name: &str, seconds: f64) -> Option<Perf> {
        let path = dir.join(format!("perf-{name}.data"));
        let child = Command::new("perf")
            .args(["record", "-a", "-F", "999", "-q", "-o"])
            .arg(&path)
            .args(["--", "sleep", &format!("{seconds}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Perf { child, path })
    }

    /// Where the machine's samples went: first one line with each thread's share (perf's
    /// `comm`: threads of the same name together, `swapper` is idle), then one with the
    /// [`CpuSplit`] (also returned), then the heaviest symbols by thread — espo's functions
    /// and the kernel's work on its threads.
    fn finish(mut self, top: usize, keep: bool) -> (Vec<String>, Option<CpuSplit>) {
        let _ = self.child.wait();
        let report = |sort: &str, limit: &str| -> Vec<String> {
            Command::new("perf")
                .args(["report", "--stdio", "-q", "--no-children", "--sort", sort])
                .args(["--percent-limit", limit, "-i"])
                .arg(&self.path)
                .stderr(Stdio::null())
                .output()
                .map(|out| {
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                        .filter(|l| !l.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut lines = vec![format!("threads: {}", report("comm", "2").join(", "))];
        // Every symbol's line (perf sorts them heaviest first): the split's AEAD share,
        // and the heaviest of them printed.
        let symbols = report("comm,sym", "0");
        let split = CpuSplit::of(&report("comm,dso", "0"), &symbols);
        if let Some(s) = &split {
            lines.push(s.to_string());
        }
        lines.extend(
            symbols
                .into_iter()
                .filter(|l| percent(l.split(' ').next().as_ref()).is_some_and(|p| p >= 0.8))
                .take(top),
        );
        if keep {
            lines.push(format!("profile kept: {}", self.path.display()));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        (lines, split)
    }
}

/// Where a whole-machine profile's samples went, in percent of all of them (perf's clock
/// samples an idle CPU less often than a busy one, so `idle` understates the machine's idle
/// time; [`busy_share`](Self::busy_share) gives a part of the busy samples): espo's threads
/// in user space (and of that its AEAD — the software engine's, or the card model's
/// simulated card's), the kernel on espo's threads (their system calls and the softirq
/// work those trigger, such as the next hop's receive on a veth link), every other thread
/// (the hosts' iperf3, their TCP stacks' work on their own threads), and idle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct CpuSplit {
    espo_user: f64,
    espo_aead: f64,
    espo_kernel: f64,
    other: f64,
    idle: f64,
}

impl CpuSplit {
    /// From `perf report -q --sort comm,dso` and `--sort comm,sym` lines (all of them,
    /// whitespace collapsed); `None` when they hold no sample.
    fn of(comm_dso: &[String], comm_sym: &[String]) -> Option<CpuSplit> {
        let mut s = CpuSplit::default();
        let mut total = 0.0;
        for line in comm_dso {
            let words: Vec<&str> = line.split(' ').collect();
            let (Some(share), [_, comm @ .., dso]) = (percent(words.first()), words.as_slice())
            else {
                continue;
            };
            let comm = comm.join(" ");
            let kernel = kernel_object(dso);
            total += share;
            match (comm.as_str(), espo_thread(&comm)) {
                ("swapper", _) => s.idle += share,
                (_, true) if kernel => s.espo_kernel += share,
                (_, true) => s.espo_user += share,
                _ => s.other += share,
            }
        }
        for line in comm_sym {
            let words: Vec<&str> = line.split(' ').collect();
            let Some(share) = percent(words.first()) else {
                continue;
            };
            let Some(at) = words.iter().position(|w| *w == "[.]") else {
                continue;
            };
            let comm = words.get(1..at).unwrap_or_default().join(" ");
            let symbol = words.get(at + 1..).unwrap_or_default().join(" ");
            if espo_thread(&comm) && aead_symbol(&symbol) {
                s.espo_aead += share;
            }
        }
        (total > 0.0).then_some(s)
    }

    /// `share` (of all samples) as a percentage of the samples that were not idle.
    fn busy_share(&self, share: f64) -> f64 {
        share / (100.0 - self.idle).max(f64::MIN_POSITIVE) * 100.0
    }

    /// The cores the kernel's work on espo's threads and every other thread's work would
    /// take with the traffic `scale` times what it was with the machine `busy` (0 to 1,
    /// from /proc/stat), shared out as these samples were. perf's idle share is not the
    /// machine's (its clock samples an idle CPU less often than a busy one, and /proc/stat
    /// counts less busy time while perf runs), so the busy samples stand for the busy time
    /// measured in the rounds.
    fn cores_outside_espo(&self, scale: f64, busy: f64) -> f64 {
        self.cores_of(self.espo_kernel + self.other, scale, busy)
    }

    /// [`cores_outside_espo`](Self::cores_outside_espo) with the AEAD's work added: what
    /// would be left for the rest of espo's own code is the machine's cores less this.
    /// The software engine's AEAD is ring's (the fastest on this machine: the baseline of
    /// `espo bench`); the card model's is the simulated card's, which a card does itself.
    fn cores_outside_espo_with_aead(&self, scale: f64, busy: f64) -> f64 {
        self.cores_of(self.espo_kernel + self.other + self.espo_aead, scale, busy)
    }

    /// The cores `share` (of all samples) would take at `scale` times the traffic.
    fn cores_of(&self, share: f64, scale: f64, busy: f64) -> f64 {
        self.busy_share(share) / 100.0 * busy * machine_cores() as f64 * scale
    }
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "split of the busy samples: espo user space {:.1}% (AEAD {:.1}%), the kernel on \
             espo's threads {:.1}%, other threads {:.1}%; idle {:.1}% of all samples",
            self.busy_share(self.espo_user),
            self.busy_share(self.espo_aead),
            self.busy_share(self.espo_kernel),
            self.busy_share(self.other),
            self.idle
        )
    }
}

/// The machine's online CPUs (what a whole-machine profile's 100% is): the `cpuN` lines of
/// /proc/stat.
fn machine_cores() -> usize {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let n = stat
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    n.max(1)
}

/// Whether perf's object name is the kernel's: `[kernel.kallsyms]` and the like, or a
/// module (`[veth]`, `[nf_tables]`); not the bracketed names it gives user-space memory.
fn kernel_object(dso: &str) -> bool {
    let Some(name) = dso.strip_prefix('[').and_then(|d| d.strip_suffix(']')) else {
        return false;
    };
    const USER: [&str; 6] = ["vdso", "vsyscall", "unknown", "heap", "stack", "uprobes"];
    name.starts_with("kernel") || !(USER.contains(&name) || name.starts_with("anon"))
}

/// A perf report's share ("12.34%").
fn percent(word: Option<&&str>) -> Option<f64> {
    word?.strip_suffix('%')?.parse().ok()
}

/// espo's threads: `espo` itself and every thread it names `espo-...`.
fn espo_thread(comm: &str) -> bool {
    comm == "espo" || comm.starts_with("espo-")
}

/// An AEAD's symbol: ring's AES-GCM and ChaCha20-Poly1305 (the software engine), the
/// RustCrypto crates the card model encrypts with.
fn aead_symbol(symbol: &str) -> bool {
    const NEEDLES: [&str; 9] = [
        "aes_gcm",
        "gcm_ghash",
        "aes_hw_",
        "ring::aead",
        "chacha",
        "poly1305",
        "ghash::",
        "polyval::",
        "aes::",
    ];
    NEEDLES.iter().any(|n| symbol.contains(n))
}

/// Runs iperf3 from `client_ns` to the server in `server_ns`; `None` when it failed.
/// `segment`: the TCP payload bytes of a full segment on the path (its MTU less 52).
fn iperf(
    client_ns: &str,
    server_ns: &str,
    target: &str,
    test: Test,
    seconds: f64,
    segment: f64,
    udp_rate: Option<u64>,
) -> Option<Measured> {
    let start_server = || {
        Command::new("ip")
            .args([
                "netns", "exec", server_ns, "iperf3", "-s", "-1", "-p", "5299",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    };
    let mut server = start_server()?;
    let secs = format!("{seconds}");
    let mut args = vec![
        "netns", "exec", client_ns, "iperf3", "-c", target, "-p", "5299", "-J", "-t", &secs,
    ];
    let (len, bits);
    if test == Test::Tcp4 {
        args.extend(["-P", "4"]);
    }
    if test == Test::TcpReverse {
        args.push("-R");
    }
    if let Test::Udp(n) = test {
        len = n.to_string();
        // A 4 MiB receive buffer, so that the receiving iperf3 (on a busy core) loses
        // fewer datagrams to its own socket in every mode.
        // iperf3's rate is of its payload, in bits a second.
        bits = udp_rate.map_or(0, |pps| pps * n as u64 * 8).to_string();
        args.extend(["-u", "-b", &bits, "-l", &len, "-w", "4M"]);
    }
    let mut result = None;
    let deadline = Instant::now() + Duration::from_secs(3);
    while result.is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let Ok(out) = Command::new("ip").args(&args).output() else {
            break;
        };
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if v.get("error").is_some() || !out.status.success() {
            // The server is not listening yet, or the test failed once: a UDP test's
            // first datagrams larger than the tunnel's MTU draw an ICMP error that fails
            // the client's connected socket ("Message too long") until the host has
            // learnt the path MTU — after which it fragments them. The server takes one
            // test (`-1`): a new one for the next try.
            if matches!(server.try_wait(), Ok(Some(_))) {
                match start_server() {
                    Some(s) => server = s,
                    None => break,
                }
            }
            continue;
        }
        result = Some(v);
    }
    if result.is_none() {
        let _ = server.kill();
    }
    let _ = server.wait();
    let v = result?;
    let end = &v["end"];
    Some(match test {
        Test::Tcp | Test::Tcp4 | Test::TcpReverse => {
            let r = &end["sum_received"];
            let gbps = r["bits_per_second"].as_f64()? / 1e9;
            Measured {
                gbps,
                pps: gbps * 1e9 / 8.0 / segment,
                retransmits: end["sum_sent"]["retransmits"].as_u64(),
                busy: 0.0,
                ping_ms: None,
                sender: None,
                busiest: None,
            }
        }
        Test::Udp(n) => {
            let s = &end["sum"];
            let packets = s["packets"].as_f64()? - s["lost_packets"].as_f64()?;
            let secs = s["seconds"].as_f64()?;
            let pps = packets / secs;
            Measured {
                gbps: pps * n as f64 * 8.0 / 1e9,
                pps,
                retransmits: None,
                busy: 0.0,
                ping_ms: None,
                sender: None,
                busiest: None,
            }
        }
    })
}

/// One direction's counts from `espo status`: which, packets received and forwarded, and
/// the system calls that read and wrote them.
#[derive(Debug, Clone, Copy, Default)]
struct Calls {
    outbound: bool,
    received: u64,
    forwarded: u64,
    reads: u64,
    writes: u64,
}

/// The outbound and inbound [`Calls`] in `espo status` text (zeros where it says nothing).
fn call_counts(status: &str) -> Vec<Calls> {
    [true, false]
        .into_iter()
        .map(|outbound| {
            let dir = if outbound { "outbound" } else { "inbound" };
            let (reads, writes) = netlab::system_calls(status, dir).unwrap_or((0, 0));
            Calls {
                outbound,
                received: netlab::stat(status, dir, "received").unwrap_or(0),
                forwarded: netlab::stat(status, dir, "forwarded").unwrap_or(0),
                reads,
                writes,
            }
        })
        .collect()
}

/// The list of TCP congestion controls a network namespace other than the first may make
/// its default.
const ALLOWED_CC: &str = "net.ipv4.tcp_allowed_congestion_control";

/// The machine's [`ALLOWED_CC`] as it was before the bench added one to it: put back when
/// dropped (at the end of the run, after an error or Ctrl-C too).
struct AllowedCc(Option<String>);

impl Drop for AllowedCc {
    fn drop(&mut self) {
        if let Some(list) = self.0.take() {
            let _ = Command::new("sysctl")
                .args(["-q", "-w", &format!("{ALLOWED_CC}={list}")])
                .status();
        }
    }
}

/// Sets the two hosts' TCP congestion control to `wanted` when it is given, and returns
/// the one in use (printed, and in the JSON line). A namespace's default may only be one
/// the machine allows namespaces ([`ALLOWED_CC`]): one it has but does not allow is added
/// to that list for the run (and taken off again when the returned guard is dropped) — set
/// per socket instead, it would keep the pacing the default's (BBR's) socket began with.
/// Refuses a name the kernel does not have rather than measure with another.
fn tcp_congestion_control(
    left_host: &str,
    right_host: &str,
    wanted: Option<&str>,
) -> anyhow::Result<(String, AllowedCc)> {
    let sysctl = |ns: Option<&str>, args: &[&str]| -> anyhow::Result<String> {
        // A host's namespace, or the machine's own (the allowed list is the machine's).
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "sysctl", "-n"]);
                c
            }
            None => {
                let mut c = Command::new("sysctl");
                c.arg("-n");
                c
            }
        };
        Ok(netlab::run(cmd.args(args))?.trim().to_owned())
    };
    let key = "net.ipv4.tcp_congestion_control";
    let mut allowed = AllowedCc(None);
    if let Some(cc) = wanted {
        let has = |list: &str| list.split_whitespace().any(|c| c == cc);
        let available = || sysctl(None, &["net.ipv4.tcp_available_congestion_control"]);
        if !has(&available()?) {
            // A congestion control built as a module is there once loaded.
            let _ = Command::new("modprobe")
                .args(["-q", &format!("tcp_{cc}")])
                .status();
            let now = available()?;
            if !has(&now) {
                bail!(
                    "--cc {cc}: this kernel has no such TCP congestion control (available here: {now})"
                );
            }
        }
        let list = sysctl(None, &[ALLOWED_CC])?;
        if !has(&list) {
            sysctl(None, &["-w", &format!("{ALLOWED_CC}={list} {cc}")])
                .with_context(|| format!("--cc {cc}: adding it to {ALLOWED_CC}"))?;
            allowed.0 = Some(list);
            println!("{ALLOWED_CC}: {cc} added for this run");
        }
        for ns in [left_host, right_host] {
            let set = sysctl(Some(ns), &["-w", &format!("{key}={cc}")]);
            let now = sysctl(Some(ns), &[key]).unwrap_or_default();
            if set.is_err() || now != cc {
                bail!("--cc {cc}: the kernel refused it as the hosts' default ({key})");
            }
        }
    }
    let cc = sysctl(Some(left_host), &[key]).with_context(|| format!("reading {key}"))?;
    match wanted {
        Some(_) => println!("hosts' TCP congestion control: {cc} (--cc)"),
        None => println!(
            "hosts' TCP congestion control: {cc} (the machine's default; --cc sets another)"
        ),
    }
    Ok((cc, allowed))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Checks what the bench needs before building anything.
fn check(args: &TunnelArgs) -> anyhow::Result<()> {
    for m in &args.modes {
        if m != "all" && !MODES.contains(&m.as_str()) {
            bail!(
                "--modes: unknown mode {m:?} (modes: all, {})",
                MODES.join(", ")
            );
        }
    }
    let names: Vec<String> = TESTS.iter().map(|t| t.name()).collect();
    for t in &args.tests {
        if !names.contains(t) {
            bail!("--tests: unknown test {t:?} (tests: {})", names.join(", "));
        }
    }
    if args.rounds == 0 || args.rounds > 1000 {
        bail!("--rounds {} is out of range (1 to 1000)", args.rounds);
    }
    if let Some(pps) = args.udp_rate
        && !(1..=10_000_000).contains(&pps)
    {
        bail!("--udp-rate {pps} is out of range (1 to 10,000,000 datagrams a second)");
    }
    if !(args.seconds >= 1.0 && args.seconds <= 3600.0) {
        bail!("--seconds {} is out of range (1 to 3600)", args.seconds);
    }
    if let Some(mtu) = args.mtu
        && !(1280..=65535).contains(&mtu)
    {
        bail!("--mtu {mtu} is out of range (1280 to 65535)");
    }
    if !(1..=10_001).contains(&args.policies) {
        bail!(
            "--policies {} is out of range: 1 (the tunnel's own) to 10001",
            args.policies
        );
    }
    if !(1..=10_001).contains(&args.peers) {
        bail!(
            "--peers {} is out of range: 1 (the tunnel's own) to 10001",
            args.peers
        );
    }
    if let Some(why) = netlab::skip_reason() {
        bail!("espo bench tunnel cannot run here: {why}");
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        bail!("espo bench tunnel needs iperf3 (Debian package iperf3), which is not installed");
    }
    let swan = args.modes.iter().any(|m| m == "swan" || m == "sw-swan");
    if swan && !Path::new(netlab::CHARON).exists() {
        bail!(
            "--modes swan and sw-swan need strongSwan: {} is missing (Debian: strongswan-charon strongswan-swanctl libcharon-extra-plugins)",
            netlab::CHARON
        );
    }
    Ok(())
}

/// What carries a mode's traffic while its tests run (nothing for the kernel path).
#[derive(Default)]
struct Running {
    /// espo gateways, by side.
    espo: Vec<(char, Gateway)>,
    /// strongSwan daemons, by side; stopped when dropped.
    swans: Vec<(char, netlab::Swan)>,
    /// gw-a's TUN device, whose MTU is the tunnel's.
    tun: Option<&'static str>,
}

impl Running {
    /// The processes whose threads are sampled, by side.
    fn pids(&self) -> Vec<(char, u32)> {
        let espo = self.espo.iter().map(|(side, gw)| (*side, gw.pid));
        let swans = self
            .swans
            .iter()
            .filter_map(|(side, s)| Some((*side, s.pid()?)));
        espo.chain(swans).collect()
    }
}

/// The pre-shared key of the strongSwan modes' IKE SA (a bench's, not a secret).
const SWAN_PSK: &str = "0x5e0b7a9c1d3f5b7d9e1a3c5e7f9b1d3e5a7c9e1b3d5f7a9c";

/// swanctl.conf of one end of the strongSwan modes: this end `local` with site `local_ts`,
/// the other `remote` with `remote_ts`; AES-GCM-128 for IKE and ESP (kernel-libipsec puts
/// ESP in UDP 4500).
fn swanctl_conf(local: &str, local_ts: &str, remote: &str, remote_ts: &str) -> String {
    format!(
        "connections {{
  bench {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = aes128gcm16-prfsha256-x25519
    local {{
      auth = psk
      id = {local}
    }}
    remote {{
      auth = psk
      id = {remote}
    }}
    children {{
      net {{
        local_ts = {local_ts}
        remote_ts = {remote_ts}
        esp_proposals = aes128gcm16
        mode = tunnel
        start_action = none
      }}
    }}
  }}
}}
secrets {{
  ike-bench {{
    id-a = {local}
    id-b = {remote}
    secret = {SWAN_PSK}
  }}
}}
"
    )
}

/// gw-a's configuration for `sw-swan`: espo negotiating the tunnel with gw-b's strongSwan
/// (IKEv2, the same proposals), ESP in UDP sent in runs (`udp_gso`).
fn espo_to_swan(outside: &str) -> String {
    format!(
        "[device]
engine = \"software\"

[gateway]
tun = \"espo0\"
tun_address = \"10.1.255.1/32\"
port = \"{outside}\"
local = \"192.0.2.1\"
udp_gso = true

{}",
        netlab::espo_psk_connection("bench", SWAN_PSK, "start")
    )
}

/// The bench's state between tests: the lab, the topology, and what is asked.
struct Bench {
    lab: Lab,
    t: Topology,
    args: TunnelArgs,
    /// Set by SIGINT or SIGTERM: the bench stops after the current test and cleans up.
    stop: Arc<AtomicBool>,
}

pub fn run(mut args: TunnelArgs) -> anyhow::Result<ExitCode> {
    // "kernel, sw-sw" as well as "kernel,sw-sw".
    for list in [&mut args.modes, &mut args.tests] {
        for name in list.iter_mut() {
            *name = name.trim().to_owned();
        }
    }
    check(&args)?;
    // The first SIGINT or SIGTERM stops the bench after the current test, which then
    // removes what it built; a second one ends it at once (exit status 130), leaving that.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    // Without --dir, a new directory of a name no one can guess, mode 0700 (the gateways'
    // configurations hold keys): removed at the end unless a gateway's log is worth keeping.
    let (dir, temp) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("espo-bench-tunnel-")
                .tempdir()
                .context("creating a scratch directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let espo = std::env::current_exe().context("finding the espo binary")?;
    let mut lab = Lab::new("bt", &dir, &espo).context("the lab's scratch directory")?;
    eprintln!(
        "espo bench tunnel: building the namespaces, {} (scratch directory {})",
        args.topology.name(),
        dir.display()
    );
    let t = match args.topology {
        Shape::GwGw => netlab::gateway_to_gateway(&mut lab),
        Shape::ServerGw => netlab::server_to_gateway(&mut lab),
        Shape::ServerServer => netlab::server_to_server(&mut lab),
    }
    .context("building the namespaces")?;
    let keep_profiles = args.keep_profiles;
    let mut bench = Bench { lab, t, args, stop };
    let result = bench.measure();
    // Gateways stopped and namespaces gone before the directory goes.
    drop(bench);
    match result {
        Ok(()) if keep_profiles => {
            // The profiles are in the scratch directory: it stays (mode 0700, as made).
            if let Some(t) = temp {
                let _ = t.keep();
                eprintln!(
                    "espo bench tunnel: the profiles are kept in {} (remove it when done: \
                     it also holds the gateways' configurations, keys included)",
                    dir.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if gateways_ran(&dir) => {
            let _ = temp.map(tempfile::TempDir::keep);
            Err(anyhow::anyhow!(
                "{e:#} (the gateways' configurations and logs are kept in {})",
                dir.display()
            ))
        }
        Err(e) => Err(e),
    }
}

/// Whether a gateway was started in scratch directory `dir` (its log is there).
fn gateways_ran(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "log"))
    })
}

impl Bench {
    fn interrupted(&self) -> anyhow::Result<()> {
        if self.stop.load(Ordering::Relaxed) {
            bail!("interrupted: namespaces and gateways removed");
        }
        Ok(())
    }

    /// strongSwan on gw-a (`left`) or gw-b, configured for its end of the tunnel.
    fn start_swan(&self, left: bool) -> anyhow::Result<netlab::Swan> {
        let (a, b) = (("192.0.2.1", "10.1.0.0/16"), ("192.0.2.2", "10.2.0.0/16"));
        let (ns, name, (local, local_ts), (remote, remote_ts)) = if left {
            (&self.t.left, "swan-a", a, b)
        } else {
            (&self.t.right, "swan-b", b, a)
        };
        let conf = swanctl_conf(local, local_ts, remote, remote_ts);
        netlab::Swan::start(&self.lab, ns, name, &conf)
            .with_context(|| format!("strongSwan on {}", if left { "gw-a" } else { "gw-b" }))
    }

    /// strongSwan on gw-b, and on gw-a too unless `espo_a` (espo there, which initiates);
    /// returns once the tunnel is up (20 s at most).
    fn start_swans(&self, espo_a: Option<Gateway>) -> anyhow::Result<Running> {
        let b = self.start_swan(false)?;
        let mut running = Running {
            espo: Vec::new(),
            swans: Vec::new(),
            tun: Some("espo0"),
        };
        match espo_a {
            Some(a) => running.espo.push(('A', a)),
            None => {
                let a = self.start_swan(true)?;
                let (ok, out) = a.swanctl(&["--initiate", "--child", "net", "--timeout", "20"])?;
                if !ok {
                    bail!("strongSwan on gw-a could not set up the tunnel: {out}");
                }
                running.swans.push(('A', a));
                running.tun = Some("ipsec0");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !b.sas()?.contains("INSTALLED") {
            self.interrupted()?;
            if Instant::now() > deadline {
                bail!(
                    "no CHILD_SA on gw-b's strongSwan within 20 s; its log:\n{}",
                    b.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        running.swans.push(('B', b));
        Ok(running)
    }

    fn measure(&mut self) -> anyhow::Result<()> {
        let (lab, t) = (&self.lab, &self.t);
        let shape = self.args.topology;
        let rounds = self.args.rounds;
        let seconds = self.args.seconds;
        let perf_wanted = self.args.perf;
        let perf_dir = self.lab.dir().to_path_buf();
        if perf_wanted && Command::new("perf").arg("--version").output().is_err() {
            println!("--perf: perf is not installed (Debian package linux-perf): no profiles");
        }
        let test_wanted =
            |test: &Test| self.args.tests.is_empty() || self.args.tests.contains(&test.name());
        // `all` takes the strongSwan modes where strongSwan is installed (named, they are
        // required: `check`).
        let have_swan = Path::new(netlab::CHARON).exists();
        let all = self.args.modes.iter().any(|m| m == "all");
        if all && !have_swan {
            println!("--modes all: strongSwan is not installed, so without swan and sw-swan");
        }
        let wanted = |mode: &str| {
            if self.args.modes.is_empty() {
                DEFAULT_MODES.contains(&mode)
            } else if self.args.modes.iter().any(|m| m == mode) {
                true
            } else {
                all && (have_swan || !mode.contains("swan"))
            }
        };
        let link_mtu = self.args.mtu;
        if let Some(mtu) = link_mtu {
            for ns in [&t.left, &t.right, &t.left_host, &t.right_host] {
                let links = lab.ip(ns, &["-o", "link", "show"])?;
                for dev in links.lines().filter_map(|l| {
                    let name = l.split(": ").nth(1)?.split('@').next()?;
                    (name != "lo").then(|| name.to_string())
                }) {
                    lab.ip(ns, &["link", "set", "dev", &dev, "mtu", &mtu.to_string()])?;
                }
            }
            println!("every link at MTU {mtu} (--mtu)");
        }
        // Put back when the run ends.
        let (cc, _allowed) =
            tcp_congestion_control(&t.left_host, &t.right_host, self.args.cc.as_deref())?;
        // A full TCP segment's payload (IPv4 and TCP headers with timestamps: 52 bytes), for
        // the TCP tests' packets per second: 1448 bytes on 1500-byte links without a tunnel,
        // the tunnel's MTU less 52 through espo.
        let segment = f64::from(link_mtu.unwrap_or(1500) - 52);
        let port = |config: &str, outside: &str| {
            netlab::set_gateway_field(config, "port", &format!("\"{outside}\""))
                .context("the example configuration has no [gateway] section")
        };
        let field = |c: &str, key: &str, value: &str| {
            netlab::set_gateway_field(c, key, value).unwrap_or_else(|| c.to_owned())
        };
        let sites = self.args.policies - 1;
        let others = self.args.peers - 1;
        let a_cfg = loopback::behind_peers(
            &loopback::behind_sites(&port(GW_A_TOML, &t.left_out)?, sites),
            "192.0.2.1",
            "10.1.0.0/16",
            others,
        );
        let b_cfg = loopback::behind_peers(
            &loopback::behind_sites(&port(GW_B_TOML, &t.right_out)?, sites),
            "192.0.2.2",
            "10.2.0.0/16",
            others,
        );
        if sites > 0 {
            println!(
                "{} policies per direction in each espo gateway, the tunnel's last (--policies)",
                sites + 1
            );
        }
        if others > 0 {
            println!(
                "{} peers of each espo gateway, the bench's last: {} SAs (--peers)",
                others + 1,
                2 * (others + 1)
            );
        }
        let b_model_cfg = b_cfg.replace("engine = \"software\"", "engine = \"model\"");
        let in_udp = netlab::esp_in_udp;
        let udp_gso = |c: &str| field(&in_udp(c), "udp_gso", "true");
        let no_offload = |c: &str| field(c, "tun_offload", "false");
        let one_worker = |c: &str| field(c, "workers", "1");
        let no_busy_poll = |c: &str| field(c, "busy_poll_us", "0");
        // Each espo mode: gw-a's and gw-b's configurations, and whether gw-b is on the model.
        let configs = |mode: &str| -> (String, String, bool) {
            match mode {
                "sw-model" => (a_cfg.clone(), b_model_cfg.clone(), true),
                "sw-sw-udp" => (udp_gso(&a_cfg), udp_gso(&b_cfg), false),
                // gw-a's runs are cut before the card's port: see `TunnelArgs`.
                "sw-model-udp" => (udp_gso(&a_cfg), in_udp(&b_model_cfg), true),
                "sw-sw-no-offload" => (no_offload(&a_cfg), no_offload(&b_cfg), false),
                "sw-model-no-offload" => (no_offload(&a_cfg), no_offload(&b_model_cfg), true),
                "sw-sw-udp-no-gso" => (
                    no_offload(&in_udp(&a_cfg)),
                    no_offload(&in_udp(&b_cfg)),
                    false,
                ),
                "sw-sw-1-worker" => (one_worker(&a_cfg), one_worker(&b_cfg), false),
                "sw-sw-udp-1-worker" => (
                    one_worker(&udp_gso(&a_cfg)),
                    one_worker(&udp_gso(&b_cfg)),
                    false,
                ),
                "sw-model-1-worker" => (one_worker(&a_cfg), one_worker(&b_model_cfg), true),
                "sw-sw-udp-no-busy-poll" => (
                    no_busy_poll(&udp_gso(&a_cfg)),
                    no_busy_poll(&udp_gso(&b_cfg)),
                    false,
                ),
                "sw-model-no-busy-poll" => (no_busy_poll(&a_cfg), no_busy_poll(&b_model_cfg), true),
                // "sw-sw"
                _ => (a_cfg.clone(), b_cfg.clone(), false),
            }
        };
        // (mode, test) -> measurements of every round
        let mut results: BTreeMap<(usize, usize), Vec<Measured>> = BTreeMap::new();
        let mut profiles: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        let mut perf_profiles: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
        let mut perf_splits: BTreeMap<(usize, usize), CpuSplit> = BTreeMap::new();
        // (mode, test) -> per round, "gwA_out_read"-style keys and packets per system call
        let mut per_call_rounds: BTreeMap<(usize, usize), Vec<BTreeMap<String, f64>>> =
            BTreeMap::new();
        let runs = MODES.iter().filter(|m| wanted(m)).count()
            * TESTS.iter().filter(|t| test_wanted(t)).count()
            * rounds;
        eprintln!(
            "espo bench tunnel: {runs} iperf3 runs of {seconds} s ({rounds} rounds), about {:.0} s",
            runs as f64 * (seconds + 1.5)
        );
        for round in 0..rounds {
            for (m, mode) in MODES.iter().enumerate() {
                if !wanted(mode) {
                    continue;
                }
                self.interrupted()?;
                // strongSwan's inner addresses on its servers' loopback while it runs.
                let loopback: Vec<(&String, String)> = shape
                    .loopback_addresses(mode)
                    .into_iter()
                    .map(|(left, a)| (if left { &t.left } else { &t.right }, format!("{a}/32")))
                    .collect();
                for (ns, addr) in &loopback {
                    lab.addr(ns, "lo", addr)?;
                }
                let running = match *mode {
                    "kernel" => {
                        // Between two servers the path is their link: nothing to route.
                        if shape != Shape::ServerServer {
                            lab.ip(
                                &t.left,
                                &["route", "add", "10.2.0.0/16", "via", "192.0.2.2"],
                            )?;
                            lab.ip(
                                &t.right,
                                &["route", "add", "10.1.0.0/16", "via", "192.0.2.1"],
                            )?;
                        }
                        Running::default()
                    }
                    "swan" => self.start_swans(None)?,
                    "sw-swan" => {
                        let a = lab
                            .espo_run(&t.left, "a", &espo_to_swan(&t.left_out))
                            .context("sw-swan: starting gw-a")?;
                        self.start_swans(Some(a))?
                    }
                    espo => {
                        let (a, b, model) = configs(espo);
                        if model {
                            // gw-b on the card model: its outside interface is the card's
                            // port, with no address of its own while espo runs.
                            lab.ip(&t.right, &["addr", "flush", "dev", &t.right_out])?;
                            // What reaches the card's port is frames, as on a wire: gw-a's
                            // outside link segments any GSO packet (its UDP runs) itself.
                            lab.ip(
                                &t.left,
                                &["link", "set", "dev", &t.left_out, "gso_max_segs", "1"],
                            )?;
                        }
                        let a = lab
                            .espo_run(&t.left, "a", &a)
                            .with_context(|| format!("{mode}: starting gw-a"))?;
                        let b = lab
                            .espo_run(&t.right, "b", &b)
                            .with_context(|| format!("{mode}: starting gw-b"))?;
                        Running {
                            espo: vec![('A', a), ('B', b)],
                            swans: Vec::new(),
                            tun: Some("espo0"),
                        }
                    }
                };
                // The tunnel's MTU: inner packets above it are fragmented by the sending
                // host (one datagram, two ESP packets, reassembly at the receiver), and
                // TCP's segments (path MTU discovery) are that long.
                let tunnel_mtu = match running.tun {
                    Some(tun) => lab
                        .ip(&t.left, &["link", "show", tun])?
                        .split_whitespace()
                        .skip_while(|w| *w != "mtu")
                        .nth(1)
                        .and_then(|m| m.parse::<usize>().ok()),
                    None => None,
                };
                let segment =
                    tunnel_mtu.map_or(segment, |mtu| mtu.saturating_sub(52).max(1) as f64);
                if round == 0
                    && let Some(mtu) = tunnel_mtu
                {
                    println!(
                        "         {mode}: tunnel MTU {mtu} (UDP 1400-byte payloads are 1428-byte packets{})",
                        if mtu < 1428 {
                            ": fragmented"
                        } else {
                            ": whole"
                        }
                    );
                }
                for (k, test) in TESTS.iter().enumerate() {
                    if !test_wanted(test) || self.stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    let pids = running.pids();
                    let before: Vec<_> = pids.iter().map(|&(_, p)| thread_times(p)).collect();
                    let mut calls_before: Vec<Vec<Calls>> = Vec::new();
                    for (_, gw) in &running.espo {
                        calls_before.push(call_counts(&lab.status(gw)?));
                    }
                    let machine_before = machine_ticks();
                    let perf = (perf_wanted && !pids.is_empty() && round + 1 == rounds)
                        .then(|| {
                            Perf::start(&perf_dir, &format!("{mode}-{}", test.name()), seconds)
                        })
                        .flatten();
                    let started = Instant::now();
                    let (got, ping, sender) = std::thread::scope(|s| {
                        let tcp = !matches!(test, Test::Udp(_));
                        let ping = tcp.then(|| {
                            s.spawn(|| ping_under_load(&t.left_host, shape.target(mode), seconds))
                        });
                        let sender = tcp.then(|| {
                            s.spawn(|| sender_midway([&t.left_host, &t.right_host], seconds))
                        });
                        let got = iperf(
                            &t.left_host,
                            &t.right_host,
                            shape.target(mode),
                            *test,
                            seconds,
                            segment,
                            self.args.udp_rate,
                        );
                        (
                            got,
                            ping.and_then(|p| p.join().ok().flatten()),
                            sender.and_then(|p| p.join().ok().flatten()),
                        )
                    });
                    let mut split = None;
                    if let Some(perf) = perf {
                        let lines;
                        (lines, split) = perf.finish(14, self.args.keep_profiles);
                        perf_profiles.insert((m, k), lines);
                    }
                    let wall = started.elapsed().as_secs_f64();
                    let machine_after = machine_ticks();
                    let Some(mut got) = got else {
                        println!("round {round}: {mode:<19} {:<7} iperf3 failed", test.name());
                        continue;
                    };

                    let busy = machine_after.0.saturating_sub(machine_before.0) as f64
                        / machine_after.1.saturating_sub(machine_before.1).max(1) as f64;
                    got.busy = busy;
                    got.ping_ms = ping;
                    got.sender = sender;
                    if let Some(split) = split {
                        perf_splits.insert((m, k), split);
                    }
                    println!(
                        "round {round}: {mode:<19} {:<7} {:>7.3} Gbit/s {:>10.0} pkt/s  machine {:>3.0}% busy{}{}",
                        test.name(),
                        got.gbps,
                        got.pps,
                        busy * 100.0,
                        got.retransmits
                            .map_or(String::new(), |r| format!(", {r} retransmitted")),
                        ping.map_or(String::new(), |(avg, max)| format!(
                            ", ping {avg:.3} ms (max {max:.3})"
                        ))
                    );
                    if let Some(st) = sender {
                        println!(
                            "         sender (medians of {SENDER_SAMPLES} looks): {} of a window of {} segments in flight, round trip {:.3} ms (least {:.3}); window-limited in {:.0}% of the looks",
                            st.median.unacked,
                            st.median.cwnd,
                            st.median.rtt_ms,
                            st.median.min_rtt_ms,
                            st.limited * 100.0
                        );
                    }
                    // The busiest gateway threads of this test: each one's share of a core
                    // and, where the kernel keeps scheduler statistics, the share of the test
                    // it was runnable but waited for a core.
                    let mut threads = Vec::new();
                    for ((side, pid), b) in pids.iter().zip(&before) {
                        for (name, now) in thread_times(*pid) {
                            let was = b.get(&name).copied().unwrap_or_default();
                            let cpu_s =
                                now.ticks.saturating_sub(was.ticks) as f64 / TICKS_PER_SECOND;
                            let waited = now
                                .waited_ns
                                .zip(was.waited_ns.or(Some(0)))
                                .map(|(n, w)| n.saturating_sub(w) as f64 / 1e9 / wall);
                            if cpu_s / wall > 0.05 {
                                let short = name.split('/').next().unwrap_or("").to_string();
                                threads.push((
                                    cpu_s / wall,
                                    format!("gw{side} {short}"),
                                    cpu_s,
                                    waited,
                                ));
                            }
                        }
                    }
                    threads.sort_by(|a, b| b.0.total_cmp(&a.0));
                    got.busiest = threads.first().map(|t| (t.0, t.3));
                    let line: Vec<String> = threads
                        .iter()
                        .map(|(share, name, cpu_s, waited)| {
                            format!(
                                "{name} {:.0}% ({:.0} ns/pkt{})",
                                share * 100.0,
                                cpu_s * 1e9 / (got.pps * seconds).max(1.0),
                                waited.map_or(String::new(), |w| format!(
                                    "; waiting for a core {:.0}%",
                                    w * 100.0
                                ))
                            )
                        })
                        .collect();
                    if !running.espo.is_empty() {
                        let mut per_call = Vec::new();
                        let mut this_round = BTreeMap::new();
                        for ((side, gw), before) in running.espo.iter().zip(&calls_before) {
                            let status = lab.status(gw)?;
                            // Packets espo dropped so far in this mode, by reason.
                            for l in status.lines() {
                                if l.trim_start().starts_with("drops:") {
                                    println!("         gw{side} {}", l.trim());
                                }
                            }
                            // Packets per system call during this test, where the gateway
                            // carried more than a few hundred.
                            for now in call_counts(&status) {
                                let dir = if now.outbound { "out" } else { "in" };
                                let was = before.iter().find(|c| c.outbound == now.outbound);
                                let d =
                                    |f: fn(&Calls) -> u64| f(&now).saturating_sub(was.map_or(0, f));
                                let (rx, tx) = (d(|c| c.received), d(|c| c.forwarded));
                                if rx < 500 {
                                    continue;
                                }
                                // Packets per call; `None` where no call was counted.
                                let per = |p: u64, c: u64| (c > 0).then(|| p as f64 / c as f64);
                                let (read, write) =
                                    (per(rx, d(|c| c.reads)), per(tx, d(|c| c.writes)));
                                for (what, v) in [("read", read), ("write", write)] {
                                    if let Some(v) = v {
                                        this_round.insert(format!("gw{side}_{dir}_{what}"), v);
                                    }
                                }
                                let show =
                                    |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
                                per_call.push(format!(
                                    "gw{side} {dir} {}/read {}/write",
                                    show(read),
                                    show(write)
                                ));
                            }
                        }
                        if !per_call.is_empty() {
                            println!("         packets per system call: {}", per_call.join(", "));
                        }
                        per_call_rounds.entry((m, k)).or_default().push(this_round);
                    }
                    if !line.is_empty() {
                        println!("         where the time goes: {}", line.join(", "));
                        profiles.entry((m, k)).or_default().push(line.join(", "));
                    }
                    results.entry((m, k)).or_default().push(got);
                }
                if *mode == "kernel" {
                    if shape != Shape::ServerServer {
                        lab.ip(&t.left, &["route", "del", "10.2.0.0/16"])?;
                        lab.ip(&t.right, &["route", "del", "10.1.0.0/16"])?;
                    }
                } else {
                    for (side, gw) in &running.espo {
                        lab.stop(gw)
                            .with_context(|| format!("{mode}: stopping gw-{side}"))?;
                    }
                    // SIGTERM: charon removes its TUN device, routes and rule.
                    drop(running);
                    for (ns, addr) in &loopback {
                        lab.ip(ns, &["addr", "del", addr, "dev", "lo"])?;
                    }
                    if mode.starts_with("sw-model") {
                        lab.addr(&t.right, &t.right_out, "192.0.2.2/24")?;
                        lab.ip(
                            &t.left,
                            &["link", "set", "dev", &t.left_out, "gso_max_segs", "65535"],
                        )?;
                    }
                }
            }
        }
        self.interrupted()?;
        println!(
            "\nmedians of {rounds} rounds of {seconds} s, {} (ratio to {}; goal TCP >= 0.5 sw-sw, >= 0.4 sw-model):",
            shape.name(),
            if shape == Shape::ServerServer {
                "the plain kernel path between the two servers"
            } else {
                "plain kernel forwarding"
            }
        );
        let mut json = vec![format!(
            "\"bench\":\"tunnel\",\"topology\":\"{}\",\"rounds\":{rounds},\"seconds\":{seconds},\"link_mtu\":{},\"tcp_cc\":\"{cc}\",\"policies\":{},\"peers\":{},\"udp_rate\":{}",
            shape.name(),
            link_mtu.unwrap_or(1500),
            self.args.policies,
            self.args.peers,
            self.args
                .udp_rate
                .map_or("null".to_string(), |r| r.to_string())
        )];
        let mut goals = Vec::new();
        for (k, test) in TESTS.iter().enumerate() {
            let med = |m: usize, f: fn(&Measured) -> f64| {
                results
                    .get(&(m, k))
                    .map(|v| median(&v.iter().map(f).collect::<Vec<_>>()))
            };
            let base_gbps = med(0, |x| x.gbps);
            for (m, mode) in MODES.iter().enumerate() {
                let (Some(gbps), Some(pps)) = (med(m, |x| x.gbps), med(m, |x| x.pps)) else {
                    continue;
                };
                let ratio = base_gbps.filter(|b| *b > 0.0).map(|b| gbps / b);
                let ratio_text = ratio.map_or(String::from("-"), |r| format!("{r:.2}"));
                // The round trip beside the flow, median of the rounds' averages.
                let pings: Vec<f64> = results
                    .get(&(m, k))
                    .map(|v| v.iter().filter_map(|x| x.ping_ms.map(|p| p.0)).collect())
                    .unwrap_or_default();
                let ping = (!pings.is_empty()).then(|| median(&pings));
                println!(
                    "  {:<7} {mode:<19} {gbps:>7.3} Gbit/s {pps:>10.0} pkt/s  ratio {ratio_text}{}",
                    test.name(),
                    ping.map_or(String::new(), |p| format!("  ping {p:.3} ms"))
                );
                let key = format!("{}_{}", test.name(), mode.replace('-', "_"));
                json.push(format!(
                    "\"{key}_gbps\":{gbps:.4},\"{key}_pps\":{pps:.0},\"{key}_ratio\":{}",
                    ratio.map_or("null".into(), |r| format!("{r:.3}"))
                ));
                if let Some(p) = ping {
                    json.push(format!("\"{key}_ping_ms\":{p:.3}"));
                }
                // The sender's state, medians over the rounds that looked at it.
                let states: Vec<SenderState> = results
                    .get(&(m, k))
                    .map(|v| v.iter().filter_map(|x| x.sender).collect())
                    .unwrap_or_default();
                if !states.is_empty() {
                    let of = |f: fn(&SenderState) -> f64| {
                        median(&states.iter().map(f).collect::<Vec<_>>())
                    };
                    json.push(format!(
                        "\"{key}_sender\":{{\"cwnd\":{:.0},\"unacked\":{:.0},\"rtt_ms\":{:.3},\"min_rtt_ms\":{:.3},\"window_limited\":{:.2}}}",
                        of(|x| x.median.cwnd as f64),
                        of(|x| x.median.unacked as f64),
                        of(|x| x.median.rtt_ms),
                        of(|x| x.median.min_rtt_ms),
                        of(|x| x.limited)
                    ));
                }
                // The busiest gateway thread of each round: medians of its share of a
                // core and of the share it waited for one.
                let busiest: Vec<(f64, Option<f64>)> = results
                    .get(&(m, k))
                    .map(|v| v.iter().filter_map(|x| x.busiest).collect())
                    .unwrap_or_default();
                if !busiest.is_empty() {
                    let cpu = median(&busiest.iter().map(|b| b.0).collect::<Vec<_>>());
                    let waits: Vec<f64> = busiest.iter().filter_map(|b| b.1).collect();
                    let waiting = if waits.is_empty() {
                        "null".to_string()
                    } else {
                        format!("{:.2}", median(&waits))
                    };
                    json.push(format!(
                        "\"{key}_busiest_thread\":{{\"cpu\":{cpu:.2},\"waiting\":{waiting}}}"
                    ));
                }
                if let Some(c) = perf_splits.get(&(m, k)) {
                    json.push(format!(
                        "\"{key}_cpu_split\":{{\"espo_user\":{:.2},\"espo_aead\":{:.2},\"espo_kernel\":{:.2},\"other\":{:.2},\"idle\":{:.2}}}",
                        c.espo_user, c.espo_aead, c.espo_kernel, c.other, c.idle
                    ));
                }
                if let (Some(goal), Some(ratio)) = (goal(mode, *test), ratio) {
                    let met = ratio >= goal;
                    json.push(format!("\"{key}_goal\":{goal},\"{key}_goal_met\":{met}"));
                    // Where the time went in the last round: its busiest thread.
                    let busiest = profiles
                        .get(&(m, k))
                        .and_then(|rounds| rounds.last())
                        .and_then(|l| l.split(", ").next())
                        .map_or(String::new(), |t| format!("; busiest thread {t}"));
                    let busy = med(m, |x| x.busy).unwrap_or(0.0);
                    // What the work espo's own code does not do would take at the goal's
                    // rate, were it to grow with the rate: its share of the profiled round's
                    // busy samples, of the machine's busy time at the median rate.
                    let floor = match perf_splits.get(&(m, k)) {
                        Some(c) if !met && ratio > 0.0 => {
                            let cores = c.cores_outside_espo(goal / ratio, busy);
                            let with_aead = c.cores_outside_espo_with_aead(goal / ratio, busy);
                            json.push(format!(
                                "\"{key}_cores_outside_espo_at_goal\":{cores:.2},\"{key}_cores_outside_espo_with_aead_at_goal\":{with_aead:.2}"
                            ));
                            format!(
                                "; at the goal's rate the kernel's and the hosts' work alone would take {cores:.2} of {} cores (perf: {:.1}% of the busy samples), {with_aead:.2} with the AEAD's",
                                machine_cores(),
                                c.busy_share(c.espo_kernel + c.other),
                            )
                        }
                        _ => String::new(),
                    };
                    goals.push(format!(
                        "  {:<7} {mode:<19} {ratio:.2} of the kernel path, goal {goal}: {}; machine {:.0}% busy{busiest}{floor}",
                        test.name(),
                        if met { "met" } else { "not met" },
                        busy * 100.0
                    ));
                }
                // Packets per system call, median over the rounds, per gateway, direction
                // and call ("gwA_out_read": TUN reads of gw-a's outbound).
                if let Some(rounds) = per_call_rounds.get(&(m, k)) {
                    let names: BTreeSet<&String> = rounds.iter().flat_map(|r| r.keys()).collect();
                    let fields: Vec<String> = names
                        .into_iter()
                        .map(|n| {
                            let v: Vec<f64> =
                                rounds.iter().filter_map(|r| r.get(n).copied()).collect();
                            format!("\"{n}\":{:.1}", median(&v))
                        })
                        .collect();
                    if !fields.is_empty() {
                        json.push(format!("\"{key}_per_call\":{{{}}}", fields.join(",")));
                    }
                }
            }
        }
        if !goals.is_empty() {
            println!("\ngoals (TCP through the tunnel as a share of the kernel path's, medians):");
            for g in &goals {
                println!("{g}");
            }
        }
        println!(
            "\nwhere the time goes: the kernel path carries a TCP flow as 64 KiB GSO packets over every hop;\n\
             espo must send one ESP packet per segment (raw ESP: one skb through the outer stack and the\n\
             receiver's per packet; ESP in UDP with udp_gso: one per run of up to 64). A thread near 100% is\n\
             the limit; a busy machine with no such thread means the cores are (shared with both hosts):\n\
             a thread whose share of a core and wait for one add up to nearly 100% was runnable all along.\n\
             A paced flow (bbr's) stops where its window waits: the ping beside it says how long a packet\n\
             waits in the path under load (the kernel path's is tens of microseconds), and a sender with\n\
             nearly its whole window in flight is window-limited: it moves window / round trip.\n\
             Per thread, its share of one core and its CPU per delivered packet (kernel work it triggers,\n\
             such as the receiver's softirq on a veth link, included), and the share of the test it was\n\
             runnable but waiting for a core (from the kernel's scheduler statistics):"
        );
        for ((m, k), lines) in &profiles {
            for l in lines {
                println!("  {:<7} {:<19} {l}", TESTS[*k].name(), MODES[*m]);
            }
        }
        if !perf_profiles.is_empty() {
            println!(
                "\nperf, last round (--perf; its own cost is in that round's figures): the\n\
                 heaviest symbols by thread, as shares of every sample of the machine ([k]: kernel,\n\
                 [.]: user space; a thread's [k] lines include the softirq work it triggers):"
            );
            for ((m, k), lines) in &perf_profiles {
                println!("  {} {}:", TESTS[*k].name(), MODES[*m]);
                for l in lines {
                    println!("    {l}");
                }
            }
        }
        println!("{{{}}}", json.join(","));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{
        CpuSplit, LOOK_END, TcpState, parse_ping, parse_ss, schedstat_waited, sender_summary,
        split_looks, thread_times,
    };

    #[test]
    fn a_profile_is_split_into_espo_its_aead_the_kernel_on_its_threads_others_and_idle() {
        let lines = |text: &str| -> Vec<String> { text.lines().map(str::to_owned).collect() };
        let by_dso = lines(
            "20.89% espo-out-1 [kernel.kallsyms]\n\
             20.30% espo-inbound [kernel.kallsyms]\n\
             15.99% iperf3 [kernel.kallsyms]\n\
             13.70% espo-out-1 espo\n\
             13.25% espo-inbound espo\n\
             11.10% swapper [kernel.kallsyms]\n\
             1.77% espo-inbound libc.so.6\n\
             0.33% iperf3 libiperf.so.0.0.0\n\
             0.18% kworker/u4:1-events [kernel.kallsyms]\n\
             0.05% espo-model espo\n\
             0.40% espo-out-1 [veth]\n\
             0.12% espo-inbound [vdso]\n\
             not a line",
        );
        let by_sym = lines(
            "4.52% espo-out-1 [.] ring_core_0_17_14__aes_gcm_enc_update_vaes_avx2\n\
             4.04% espo-inbound [.] ring_core_0_17_14__aes_gcm_dec_update_vaes_avx2\n\
             1.44% espo-inbound [.] ring_core_0_17_14__gcm_ghash_vpclmulqdq_avx2_1\n\
             1.33% espo-out-1 [.] ring::aead::aes_gcm::seal\n\
             0.05% espo-model [.] aes_gcm::AesGcm<Aes,NonceSize,TagSize>::encrypt_in_place_detached\n\
             4.60% espo-out-1 [k] _copy_to_iter\n\
             1.71% espo-out-1 [.] espo_ipsec::gso::Segments::next_into\n\
             2.00% iperf3 [.] aes_gcm_not_ours",
        );
        let s = CpuSplit::of(&by_dso, &by_sym).unwrap();
        let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // A module's samples are the kernel's; the vDSO's are user space.
        assert!(near(s.espo_kernel, 41.19 + 0.40), "{s:?}");
        assert!(
            near(s.espo_user, 13.70 + 13.25 + 1.77 + 0.05 + 0.12),
            "{s:?}"
        );
        assert!(near(s.espo_aead, 4.52 + 4.04 + 1.44 + 1.33 + 0.05), "{s:?}");
        assert!(near(s.other, 15.99 + 0.33 + 0.18), "{s:?}");
        assert!(near(s.idle, 11.10), "{s:?}");
        assert!(
            s.to_string()
                .starts_with("split of the busy samples: espo user space 32.5% (AEAD 12.8%)"),
            "{s}"
        );
        assert_eq!(CpuSplit::of(&lines("nothing here"), &[]), None);
        // perf's idle share is not the machine's: the busy samples stand for the busy time
        // /proc/stat measured. 60 of 80 busy samples outside espo's user space, the machine
        // 90% busy, twice the traffic: 0.75 × 0.9 × 2 of every core.
        let s = CpuSplit {
            espo_user: 20.0,
            espo_aead: 5.0,
            espo_kernel: 45.0,
            other: 15.0,
            idle: 20.0,
        };
        assert!(near(s.busy_share(60.0), 75.0));
        let cores = super::machine_cores() as f64;
        assert!(near(
            s.cores_outside_espo(2.0, 0.9),
            0.75 * 0.9 * 2.0 * cores
        ));
        // The AEAD's 5 of the 80 busy samples on top.
        assert!(near(
            s.cores_outside_espo_with_aead(2.0, 0.9),
            0.8125 * 0.9 * 2.0 * cores
        ));
    }

    /// `ss -tin`: the socket that sent the most data segments is the test's sender; its
    /// window, what it has in flight, its smoothed and least round trips. A socket with
    /// nothing in flight has no `unacked`; one with nothing sent (iperf3's control
    /// connection, the receiver) is not the sender.
    #[test]
    fn the_sender_is_the_socket_that_sent_the_most() {
        let out = "State Recv-Q Send-Q  Local Address:Port  Peer Address:PortProcess\n\
            ESTAB 0      0            10.1.0.2:44906     10.2.0.2:5299\n\
            \t cubic wscale:10,10 rto:204 rtt:0.534/0.308 ato:40 mss:1448 cwnd:13 bytes_sent:164 segs_out:8 data_segs_out:3 minrtt:0.135 snd_wnd:65536\n\
            ESTAB 0      3932160      10.1.0.2:44920     10.2.0.2:5299\n\
            \t bbr wscale:10,10 rto:204 rtt:3.763/0.236 mss:1371 cwnd:2276 ssthresh:2053 data_segs_out:1891606 bbr:(bw:8570245104bps,mrtt:0.131) unacked:2256 retrans:0/63 minrtt:0.131 snd_wnd:11009024\n\
            ESTAB 0      0            10.1.0.2:44930     10.2.0.2:5299\n\
            \t bbr rtt:0.2/0.1 cwnd:10 data_segs_out:7\n";
        assert_eq!(
            parse_ss(out),
            Some((
                1_891_606,
                TcpState {
                    cwnd: 2276,
                    unacked: 2256,
                    rtt_ms: 3.763,
                    min_rtt_ms: 0.131
                }
            ))
        );
        let idle = "ESTAB 0 0 10.2.0.2:5299 10.1.0.2:44920\n\t cubic rtt:0.2/0.1 cwnd:10 data_segs_out:5\n";
        assert_eq!(
            parse_ss(idle),
            Some((
                5,
                TcpState {
                    cwnd: 10,
                    unacked: 0,
                    rtt_ms: 0.2,
                    min_rtt_ms: 0.2
                }
            ))
        );
        assert_eq!(parse_ss("State Recv-Q Send-Q\n"), None);
        assert_eq!(parse_ss("\t cwnd:x rtt:1/1 data_segs_out:9\n"), None);

        // One host's shell: a look per marker, in order, a look without a socket kept in
        // its place; what follows the last marker is not a look.
        let shell = format!("{out}{LOOK_END}\nState Recv-Q\n{LOOK_END}\n{idle}{LOOK_END}\n");
        let looks = split_looks(&shell);
        assert_eq!(looks.len(), 3, "{looks:?}");
        assert_eq!(looks[0].map(|l| l.0), Some(1_891_606));
        assert_eq!(looks[1], None);
        assert_eq!(looks[2].map(|l| l.0), Some(5));
        assert!(split_looks("").is_empty());
        assert!(split_looks("ss: not found\n").is_empty());
    }

    /// The looks' medians, and the share of looks with at least 90% of the window in flight.
    #[test]
    fn the_looks_give_medians_and_the_share_window_limited() {
        let look = |cwnd, unacked, rtt_ms| TcpState {
            cwnd,
            unacked,
            rtt_ms,
            min_rtt_ms: 0.1,
        };
        let s = sender_summary(&[
            look(100, 95, 2.0),
            look(100, 89, 1.0),
            look(200, 180, 3.0),
            look(0, 0, 0.5),
        ])
        .unwrap();
        assert_eq!(
            s.limited, 0.5,
            "95 of 100 and 180 of 200; not 89 of 100, nor a window of 0"
        );
        // The bench's median of an even count is the upper of the middle two.
        assert_eq!((s.median.cwnd, s.median.unacked), (100, 95));
        assert_eq!(s.median.rtt_ms, 2.0);
        assert_eq!(sender_summary(&[]), None);
    }

    #[test]
    fn pings_summary_gives_the_average_and_largest_round_trip() {
        let out = "--- 10.2.0.2 ping statistics ---\n\
                   150 packets transmitted, 150 received, 0% packet loss, time 3000ms\n\
                   rtt min/avg/max/mdev = 0.134/1.753/5.744/1.018 ms\n";
        assert_eq!(parse_ping(out), Some((1.753, 5.744)));
        // Everything lost: no summary line.
        let lost = "150 packets transmitted, 0 received, 100% packet loss, time 3000ms\n";
        assert_eq!(parse_ping(lost), None);
        assert_eq!(parse_ping("rtt min/avg/max/mdev = 0.1/x/0.3/0.0 ms"), None);
    }

    #[test]
    fn a_threads_wait_for_a_core_is_the_second_figure_of_its_schedstat() {
        assert_eq!(
            schedstat_waited("1886789931 932512185 12487\n"),
            Some(932_512_185)
        );
        assert_eq!(schedstat_waited("1886789931 932512185\n"), None);
        assert_eq!(schedstat_waited("1886789931 x 12487\n"), None);
        assert_eq!(schedstat_waited(""), None);
        // This process's own, where the kernel keeps scheduler statistics.
        if let Ok(own) = std::fs::read_to_string("/proc/thread-self/schedstat") {
            assert!(schedstat_waited(&own).is_some(), "{own}");
            let me = thread_times(std::process::id());
            assert!(me.values().any(|t| t.waited_ns.is_some()), "{me:?}");
        }
    }
}
