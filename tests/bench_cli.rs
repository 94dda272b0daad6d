//! `espo bench` as a user runs it: sizes given as a list, each measured and reported in
//! turn (a table each, or a JSON line each), bad sizes refused by name. Nothing here
//! asserts a speed: the figures are for the README, not for tests.

use std::process::{Command, Output};

fn espo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_espo"))
        .args(args)
        .output()
        .expect("espo runs")
}

/// What a successful run printed.
fn espo_ok(args: &[&str]) -> String {
    let out = espo(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The number after `"key":` in a JSON line.
fn field(line: &str, key: &str) -> f64 {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {line}"))
}

#[test]
fn the_model_engine_reports_its_host_cost_for_every_size_asked_for() {
    let stdout = espo_ok(&[
        "bench",
        "--engine",
        "model",
        "--size",
        "64,1420,9000",
        "--seconds",
        "0.3",
        "--json",
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    // Per size: the software engine against the baseline, then the offload engine's host
    // cost over the card model.
    let host: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("\"encap_host_ns_per_packet\""))
        .collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(host.len(), 3, "{stdout}");
    for (line, size) in host.iter().zip([64.0, 1420.0, 9000.0]) {
        assert_eq!(field(line, "size"), size, "{line}");
        // Zero-copy, the copying path beside it, the writes into the lent buffers (the
        // TUN read's stand-in) that the zero-copy figure leaves out, and `espo run`'s ways
        // (a read straight into a lent buffer, the read apart, and the same read into host
        // memory then copied in; from host memory into the lent buffers, the copy counted;
        // a super-packet's segments written from it into them, and assembled in host
        // memory first).
        for key in [
            "encap_host_ns_per_packet",
            "decap_host_ns_per_packet",
            "encap_copy_host_ns_per_packet",
            "decap_copy_host_ns_per_packet",
            "encap_source_ns_per_packet",
            "encap_from_read_ns_per_packet",
            "encap_read_source_ns_per_packet",
            "encap_read_via_host_ns_per_packet",
            "encap_from_host_ns_per_packet",
            "encap_from_segments_ns_per_packet",
            "encap_segments_via_host_ns_per_packet",
        ] {
            assert!(field(line, key) > 0.0, "{line}");
        }
        // Where the host's time goes: its stages add up to it (each rounded to 0.1 ns).
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        for (dir, names) in [
            ("encap", &["lend", "decide", "post", "complete"][..]),
            ("decap", &["receive", "release"][..]),
        ] {
            let stages = v[format!("{dir}_host_stages_ns")]
                .as_object()
                .unwrap_or_else(|| panic!("no {dir} stages in {line}"));
            assert_eq!(stages.len(), names.len(), "{line}");
            let mut sum = 0.0;
            for name in names {
                let ns = stages[*name].as_f64().unwrap_or(-1.0);
                assert!(ns >= 0.0, "{dir} {name} in {line}");
                sum += ns;
            }
            let host = field(line, &format!("{dir}_host_ns_per_packet"));
            assert!((sum - host).abs() <= 0.1 * names.len() as f64, "{line}");
        }
        // Every packet went through the card, none through software.
        assert_eq!(
            field(line, "encap_by_card") + field(line, "decap_by_card"),
            field(line, "packets"),
            "{line}"
        );
    }
}

/// `--policies N`: the bench's packets go through its policy behind N−1 others in each
/// direction, through the card model too (a packet whose lookup found another policy fails
/// the bench: the others discard); the count is in the JSON line and the table's title.
#[test]
fn the_bench_looks_its_packets_up_among_as_many_policies_as_asked() {
    let stdout = espo_ok(&[
        "bench",
        "--engine",
        "model",
        "--size",
        "64",
        "--seconds",
        "0.4",
        "--policies",
        "3000",
        "--json",
    ]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(field(lines[0], "policies"), 3000.0);
    for key in ["encap_mpps", "decap_mpps"] {
        assert!(field(lines[0], key) > 0.0, "{key}: {stdout}");
    }
    assert!(
        field(lines[1], "encap_host_ns_per_packet") > 0.0,
        "{stdout}"
    );
    let out = espo(&[
        "bench",
        "--size",
        "64",
        "--seconds",
        "0.2",
        "--policies",
        "20",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("20 policies per direction"), "{stdout}");
    for bad in ["0", "64002"] {
        let out = espo(&["bench", "--policies", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("--policies {bad} is out of range")),
            "{stderr}"
        );
    }
}

#[test]
fn a_table_per_size_and_bad_sizes_refused_by_name() {
    let out = espo(&["bench", "--size", "64,1420", "--seconds", "0.2"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("64-byte inner packets") && stdout.contains("1420-byte inner packets"),
        "{stdout}"
    );
    let out = espo(&["bench", "--size", "64,20", "--seconds", "0.2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--size 20 is out of range"), "{stderr}");
    let out = espo(&["bench", "--engine", "model", "--size", "1420,9001"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--size 9001 is too large for the card"),
        "{stderr}"
    );
}

#[test]
fn the_tunnel_bench_teaches_its_modes_and_refuses_unknown_names() {
    let out = espo(&["bench", "tunnel", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "kernel",
        "sw-sw",
        "sw-model",
        "sw-sw-udp",
        "--modes",
        "--tests",
        "--rounds",
        "--topology",
        "server-gw",
        "server-server",
        "iperf3",
        "root",
        "--policies",
        "--peers",
        "--udp-rate",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
    // `espo bench --help` names the subcommand.
    let out = espo(&["bench", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("tunnel"));
    // Bad names are refused before anything is built, whoever runs it.
    for (args, needle) in [
        (&["--modes", "kernel,sw-warp"][..], "sw-warp"),
        (&["--tests", "tcp,udp9"][..], "udp9"),
        (&["--rounds", "0"][..], "--rounds"),
        (&["--mtu", "100"][..], "--mtu"),
        (&["--topology", "mesh"][..], "mesh"),
        (&["--policies", "0"][..], "--policies 0 is out of range"),
        (
            &["--policies", "10002"][..],
            "--policies 10002 is out of range",
        ),
        (&["--peers", "0"][..], "--peers 0 is out of range"),
        (&["--peers", "10002"][..], "--peers 10002 is out of range"),
        (&["--udp-rate", "0"][..], "--udp-rate 0 is out of range"),
        (
            &["--udp-rate", "10000001"][..],
            "--udp-rate 10000001 is out of range",
        ),
    ] {
        let out = espo(&[&["bench", "tunnel"][..], args].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    // Options of the engine bench do not mix with it.
    assert!(!espo(&["bench", "--size", "64", "tunnel"]).status.success());
}

/// Network namespaces of this machine whose name starts with `prefix`.
fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(prefix))
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

/// Whether the tunnel bench cannot run here (it needs root and iperf3); says why.
fn cannot_run_the_tunnel_bench() -> bool {
    let why = espo_harness::netlab::skip_reason().or_else(|| {
        Command::new("iperf3")
            .arg("--version")
            .output()
            .is_err()
            .then(|| "iperf3 is not installed".to_owned())
    });
    if let Some(why) = &why {
        eprintln!("skipped: {why}");
    }
    why.is_some()
}

/// Runs `espo bench tunnel ARGS` to its end and checks it succeeded: what it printed, its
/// JSON line, and the prefix of the namespaces it made (to check none is left).
fn tunnel_bench(args: &[&str]) -> (String, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_espo"))
        .args(["bench", "tunnel"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("espo runs");
    let prefix = espo_harness::netlab::prefix("bt", child.id());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout
        .lines()
        .find(|l| l.starts_with("{\"bench\":\"tunnel\""))
        .unwrap_or_else(|| panic!("no JSON line: {stdout}"))
        .to_owned();
    (stdout, json, prefix)
}

/// The whole bench once, short: the kernel path and espo's software path with UDP
/// through the same namespaces, each figure with its ratio in the JSON line, and nothing
/// left behind. Skipped (with the reason) where it cannot run: it needs root and iperf3.
#[test]
fn the_tunnel_bench_measures_espo_against_kernel_forwarding_and_cleans_up() {
    if cannot_run_the_tunnel_bench() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A directory with something in it is refused, never emptied.
    std::fs::write(dir.path().join("keep"), "mine").unwrap();
    let out = espo(&["bench", "tunnel", "--dir", dir.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("not empty"),
        "{stderr}"
    );
    assert!(dir.path().join("keep").exists());
    let scratch = dir.path().join("lab");
    let dir_arg = scratch.to_str().unwrap();
    let mut args = vec![
        "--modes",
        "kernel,sw-sw",
        "--tests",
        "udp64,tcp",
        "--rounds",
        "1",
        "--seconds",
        "1",
        "--dir",
        dir_arg,
        "--policies",
        "40",
        "--peers",
        "30",
    ];
    let perf = perf_records();
    if perf {
        args.push("--perf");
    }
    let (stdout, json, prefix) = tunnel_bench(&args);
    let json = json.as_str();
    // Each gateway's traffic was looked up behind 39 other sites' policies per direction,
    // and went through its guard among 29 other peers' tunnels.
    assert_eq!(field(json, "policies"), 40.0, "{json}");
    assert_eq!(field(json, "peers"), 30.0, "{json}");
    for test in ["udp64", "tcp"] {
        let kernel = field(json, &format!("{test}_kernel_pps"));
        let espo = field(json, &format!("{test}_sw_sw_pps"));
        let ratio = field(json, &format!("{test}_sw_sw_ratio"));
        assert!(kernel > 0.0 && espo > 0.0, "{test}: {json}");
        // The ratio is of the two Gbit/s figures in the same line.
        let gbps = field(json, &format!("{test}_sw_sw_gbps"))
            / field(json, &format!("{test}_kernel_gbps"));
        assert!(
            (ratio - gbps).abs() < 0.002,
            "{test}: ratio {ratio}, figures {gbps}"
        );
        assert_eq!(field(json, &format!("{test}_kernel_ratio")), 1.0);
    }
    // TCP with the software engine at both ends has a goal (half the kernel path's), and
    // the verdict is the ratio's; UDP has none.
    assert_eq!(field(json, "tcp_sw_sw_goal"), 0.5);
    let met = field(json, "tcp_sw_sw_ratio") >= 0.5;
    assert!(
        json.contains(&format!("\"tcp_sw_sw_goal_met\":{met}")),
        "{json}"
    );
    assert!(!json.contains("udp64_sw_sw_goal"), "{json}");
    let verdict = if met { "met" } else { "not met" };
    assert!(
        stdout.lines().any(|l| l.contains("tcp")
            && l.contains("sw-sw")
            && l.contains(&format!("goal 0.5: {verdict}; machine"))
            && l.contains("busy; busiest thread gw")),
        "{stdout}"
    );
    // Where the time goes, per espo test: the gateways' threads, and where the kernel keeps
    // scheduler statistics, how long the busiest waited for a core.
    assert!(stdout.contains("where the time goes: gw"), "{stdout}");
    let at = json.find("\"tcp_sw_sw_busiest_thread\":{").expect(json);
    let busiest = &json[at..at + json[at..].find('}').unwrap() + 1];
    assert!(field(busiest, "cpu") > 0.05, "{busiest}");
    if std::path::Path::new("/proc/thread-self/schedstat").exists() {
        let waiting = field(busiest, "waiting");
        assert!((0.0..=1.0).contains(&waiting), "{busiest}");
        assert!(stdout.contains("; waiting for a core "), "{stdout}");
    }
    if perf {
        // The profiled round's samples split into espo's user space (its AEAD part of
        // it), the kernel on espo's threads, the other threads and idle: shares of the
        // whole machine that add up to all of it.
        let parts = ["espo_user", "espo_kernel", "other", "idle"];
        for test in ["udp64", "tcp"] {
            let key = format!("{test}_sw_sw_cpu_split");
            let at = json.find(&format!("\"{key}\":{{")).expect(&key);
            let obj = &json[at..at + json[at..].find('}').unwrap() + 1];
            let sum: f64 = parts.iter().map(|p| field(obj, p)).sum();
            assert!((sum - 100.0).abs() < 1.0, "{test}: {obj} adds up to {sum}");
            let aead = field(obj, "espo_aead");
            assert!(
                aead > 0.0 && aead <= field(obj, "espo_user"),
                "{test}: {obj}"
            );
            assert!(field(obj, "espo_kernel") > 0.0, "{test}: {obj}");
        }
        assert!(
            stdout.contains("    split of the busy samples: espo user space "),
            "{stdout}"
        );
        // A goal not met says what the work outside espo's own code would take at the
        // goal's rate.
        if !met {
            let cores = field(json, "tcp_sw_sw_cores_outside_espo_at_goal");
            assert!(cores > 0.0, "{json}");
            // The AEAD's work on top of it.
            let with_aead = field(json, "tcp_sw_sw_cores_outside_espo_with_aead_at_goal");
            assert!(with_aead > cores, "{json}");
            assert!(
                stdout.contains(
                    "at the goal's rate the kernel's and the hosts' work alone would take"
                ) && stdout.contains(" with the AEAD's"),
                "{stdout}"
            );
        }
    }
    // And the round trip beside each TCP flow, where ping is installed.
    if Command::new("ping").arg("-V").output().is_ok() {
        for mode in ["kernel", "sw_sw"] {
            let ping = field(json, &format!("tcp_{mode}_ping_ms"));
            assert!(ping > 0.0 && ping < 1000.0, "{mode}: {json}");
        }
        assert!(!json.contains("udp64_kernel_ping_ms"), "{json}");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("round 0: sw-sw") && l.contains(" ms (max ")),
            "{stdout}"
        );
    }
    // The TCP sender's state over the middle of each TCP test, where ss is installed.
    if Command::new("ss").arg("-V").output().is_ok() {
        for mode in ["kernel", "sw_sw"] {
            let key = format!("tcp_{mode}_sender");
            let at = json.find(&format!("\"{key}\":{{")).expect(&key);
            let obj = &json[at..at + json[at..].find('}').unwrap() + 1];
            let (rtt, least) = (field(obj, "rtt_ms"), field(obj, "min_rtt_ms"));
            assert!(field(obj, "cwnd") > 0.0 && rtt > 0.0, "{obj}");
            assert!(least <= rtt, "{obj}");
            assert!(field(obj, "unacked") >= 0.0, "{obj}");
            let limited = field(obj, "window_limited");
            assert!((0.0..=1.0).contains(&limited), "{obj}");
        }
        assert!(!json.contains("udp64_kernel_sender"), "{json}");
        assert!(
            stdout.contains("         sender (medians of 10 looks): "),
            "{stdout}"
        );
    }
    assert!(
        namespaces(&prefix).is_empty(),
        "left behind: {:?}",
        namespaces(&prefix)
    );
    // The scratch directory asked for is kept, with the gateways' logs.
    assert!(scratch.join("a.log").exists() && scratch.join("b.toml").exists());
    let b = std::fs::read_to_string(scratch.join("b.toml")).unwrap();
    assert_eq!(b.matches("[[policy]]").count(), 2 * 39 + 2 * 29 + 4, "{b}");
    assert_eq!(b.matches("[[sa]]").count(), 2 * 29 + 2, "{b}");
    assert!(b.contains("dst = \"198.18.0.28\""), "{b}");
}

/// Whether `perf record` can profile the whole machine here (the tunnel bench's `--perf`).
fn perf_records() -> bool {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("probe.data");
    Command::new("perf")
        .args(["record", "-a", "-q", "-o"])
        .arg(&data)
        .args(["--", "sleep", "0.1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && data.exists()
}

fn sysctl(key: &str) -> String {
    let out = Command::new("sysctl").args(["-n", key]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `--cc` makes the hosts run the congestion control asked for, also one the machine does
/// not let namespaces choose (it is allowed for the run, and the machine's list put back
/// after it), and refuses one the kernel does not have. Skipped where the bench cannot
/// run.
#[test]
fn the_tunnel_bench_runs_the_congestion_control_asked_for() {
    if cannot_run_the_tunnel_bench() {
        return;
    }
    let allowed_key = "net.ipv4.tcp_allowed_congestion_control";
    let allowed = sysctl(allowed_key);
    let available = sysctl("net.ipv4.tcp_available_congestion_control");
    let default = sysctl("net.ipv4.tcp_congestion_control");
    // One the namespaces may not choose where there is one; else any but the default.
    let cc = available
        .split_whitespace()
        .find(|c| !allowed.split_whitespace().any(|a| a == *c))
        .or_else(|| available.split_whitespace().find(|c| *c != default))
        .unwrap_or("reno")
        .to_owned();
    let (stdout, json, _) = tunnel_bench(&[
        "--modes",
        "kernel",
        "--tests",
        "tcp",
        "--rounds",
        "1",
        "--seconds",
        "1",
        "--cc",
        &cc,
    ]);
    assert!(
        stdout.contains(&format!("hosts' TCP congestion control: {cc} (--cc)")),
        "{stdout}"
    );
    assert!(json.contains(&format!("\"tcp_cc\":\"{cc}\"")), "{json}");
    assert!(field(&json, "tcp_kernel_gbps") > 0.0, "{json}");
    assert_eq!(
        sysctl(allowed_key),
        allowed,
        "the machine's list is as it was"
    );
    let out = espo(&["bench", "tunnel", "--rounds", "1", "--cc", "no-such-cc"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("--cc no-such-cc: this kernel has no such TCP congestion control"),
        "{stderr}"
    );
}

/// strongSwan on the same namespaces, both ends and facing espo: each measured (no kernel
/// mode asked, so no ratio), and nothing left behind. Skipped without root, iperf3 or
/// strongSwan.
#[test]
fn the_tunnel_bench_measures_strongswan_and_espo_against_it() {
    if cannot_run_the_tunnel_bench() {
        return;
    }
    if !std::path::Path::new(espo_harness::netlab::CHARON).exists() {
        eprintln!("skipped: strongSwan is not installed");
        return;
    }
    let (stdout, json, prefix) = tunnel_bench(&[
        "--modes",
        "swan,sw-swan",
        "--tests",
        "udp64",
        "--rounds",
        "1",
        "--seconds",
        "1",
    ]);
    let json = json.as_str();
    assert!(field(json, "udp64_swan_pps") > 0.0, "{json}");
    assert!(field(json, "udp64_sw_swan_pps") > 0.0, "{json}");
    assert!(json.contains("\"udp64_swan_ratio\":null"), "{json}");
    // charon's threads and espo's, where the time goes.
    assert!(stdout.contains("gwB charon"), "{stdout}");
    assert!(stdout.contains("gwA espo-"), "{stdout}");
    assert!(
        namespaces(&prefix).is_empty(),
        "left behind: {:?}",
        namespaces(&prefix)
    );
    // Between two servers, twice: the servers' inner addresses strongSwan needs on their
    // loopback are put there for each mode and taken away after it.
    let (_, json, prefix) = tunnel_bench(&[
        "--topology",
        "server-server",
        "--modes",
        "swan,sw-swan",
        "--tests",
        "udp64",
        "--rounds",
        "2",
        "--seconds",
        "1",
    ]);
    assert!(field(&json, "udp64_swan_pps") > 0.0, "{json}");
    assert!(field(&json, "udp64_sw_swan_pps") > 0.0, "{json}");
    assert!(namespaces(&prefix).is_empty());
}

/// The other two topologies, short: between two servers (the kernel path their own link,
/// espo's their inner addresses) and from a server to a gateway with the gateway on the
/// card model; each figure measured with its ratio, the topology in the JSON line, nothing
/// left behind. Skipped without root or iperf3.
#[test]
fn the_tunnel_bench_runs_between_servers_and_from_a_server_to_a_gateway() {
    if cannot_run_the_tunnel_bench() {
        return;
    }
    for (topology, espo_mode, test) in [
        ("server-server", "sw-sw", "tcp"),
        ("server-gw", "sw-model", "udp64"),
    ] {
        let modes = format!("kernel,{espo_mode}");
        let (stdout, json, prefix) = tunnel_bench(&[
            "--topology",
            topology,
            "--modes",
            &modes,
            "--tests",
            test,
            "--rounds",
            "1",
            "--seconds",
            "1",
        ]);
        let json = json.as_str();
        assert!(
            json.contains(&format!("\"topology\":\"{topology}\"")),
            "{json}"
        );
        let key = format!("{test}_{}", espo_mode.replace('-', "_"));
        let (kernel, espo) = (
            field(json, &format!("{test}_kernel_gbps")),
            field(json, &format!("{key}_gbps")),
        );
        assert!(kernel > 0.0 && espo > 0.0, "{topology}: {json}");
        let ratio = field(json, &format!("{key}_ratio"));
        assert!((ratio - espo / kernel).abs() < 0.002, "{topology}: {json}");
        // The espo mode's traffic went through the tunnel: the left end read it from its
        // TUN device, the right end wrote it to its own (packets per call of each).
        let per_call = &json[json
            .find(&format!("\"{key}_per_call\""))
            .unwrap_or_else(|| panic!("{topology}: no packets per call: {json}"))..];
        let per_call = &per_call[..per_call.find('}').unwrap_or(per_call.len())];
        assert!(
            field(per_call, "gwA_out_read") >= 1.0 && field(per_call, "gwB_in_write") >= 1.0,
            "{topology}: {per_call}"
        );
        assert!(stdout.contains(topology), "{stdout}");
        assert!(
            namespaces(&prefix).is_empty(),
            "left behind: {:?}",
            namespaces(&prefix)
        );
    }
}
