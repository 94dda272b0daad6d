//! Throughput through a tunnel (gateway to gateway unless `ESPO_TUNNEL_TOPOLOGY` says
//! otherwise), against the plain kernel path on the same namespaces, measured in the same
//! run: `espo bench tunnel` (see
//! its `--help`, and README, "Throughput"), run by `cargo bench --bench tunnel` with its
//! options from the environment:
//!
//! | variable | option |
//! | --- | --- |
//! | `ESPO_TUNNEL_MODES` | `--modes` (a list, or `all`) |
//! | `ESPO_TUNNEL_TOPOLOGY` | `--topology` (gw-gw, server-gw, server-server) |
//! | `ESPO_TUNNEL_TESTS` | `--tests` |
//! | `ESPO_TUNNEL_ROUNDS` | `--rounds` (default 3) |
//! | `ESPO_TUNNEL_SECONDS` | `--seconds` (default 4) |
//! | `ESPO_TUNNEL_MTU` | `--mtu` |
//! | `ESPO_TUNNEL_CC` | `--cc` |
//! | `ESPO_TUNNEL_UDP_RATE` | `--udp-rate` |
//! | `ESPO_TUNNEL_PERF=1` (`keep`) | `--perf` (`--keep-profiles`) |
//!
//! Needs root and iperf3; prints why it is skipped otherwise.

use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; there are no criterion entries.
    }
    if let Some(why) = espo_harness::netlab::skip_reason() {
        println!("tunnel bench skipped: {why}");
        return;
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        println!("tunnel bench skipped: iperf3 is not installed (Debian package iperf3)");
        return;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_espo"));
    cmd.args(["bench", "tunnel"]);
    for (var, option) in [
        ("ESPO_TUNNEL_MODES", "--modes"),
        ("ESPO_TUNNEL_TOPOLOGY", "--topology"),
        ("ESPO_TUNNEL_TESTS", "--tests"),
        ("ESPO_TUNNEL_ROUNDS", "--rounds"),
        ("ESPO_TUNNEL_SECONDS", "--seconds"),
        ("ESPO_TUNNEL_MTU", "--mtu"),
        ("ESPO_TUNNEL_CC", "--cc"),
        ("ESPO_TUNNEL_UDP_RATE", "--udp-rate"),
    ] {
        if let Some(value) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            cmd.arg(option).arg(value);
        }
    }
    match std::env::var("ESPO_TUNNEL_PERF").as_deref() {
        Ok("keep") => {
            cmd.args(["--perf", "--keep-profiles"]);
        }
        Ok(v) if !v.is_empty() && v != "0" => {
            cmd.arg("--perf");
        }
        _ => {}
    }
    let status = cmd.status().expect("espo bench tunnel runs");
    assert!(status.success(), "espo bench tunnel failed: {status}");
}
