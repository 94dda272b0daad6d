//! The card model served by `espo card serve` in its own process, driven through the
//! vfio-user backend: `espo validate --engine vfio-user` clean without faults, with every
//! fault (the removal ending the server), and with the server killed from outside mid-run;
//! `espo probe --engine vfio-user`; `espo bench --engine vfio-user`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `espo card serve` in its own process, killed when dropped.
struct Server {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("card");
        let child = espo()
            .args(["card", "serve", "--socket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("espo card serve starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() || !port_of(&socket).exists() {
            assert!(Instant::now() < deadline, "the server never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            socket,
            _dir: dir,
        }
    }

    fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    /// Waits (bounded) for the server to exit; its status code.
    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn port_of(socket: &Path) -> PathBuf {
    let mut p = socket.as_os_str().to_owned();
    p.push(".port");
    p.into()
}

fn last_line(out: &str) -> &str {
    out.lines().last().unwrap_or("")
}

#[test]
fn the_served_card_passes_2000_packets() {
    let mut server = Server::start();
    let o = run(&[
        "validate",
        "--engine",
        "vfio-user",
        "--socket",
        server.socket(),
        "--packets",
        "2000",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(
        last_line(&out),
        "validate: 2000 packets, 0 mismatches, 0 lost, 0 duplicated, 0 nonces reused"
    );
    assert!(out.contains("card served over vfio-user"), "{out}");
    assert!(
        out.contains("card entry"),
        "SAs ran on the served card: {out}"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server outlives its client"
    );
}

#[test]
fn the_served_card_passes_with_every_fault_and_the_removal_ends_the_server() {
    let mut server = Server::start();
    let o = run(&[
        "validate",
        "--engine",
        "vfio-user",
        "--socket",
        server.socket(),
        "--packets",
        "2000",
        "--faults",
        "--seed",
        "3",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert_eq!(
        last_line(&out),
        "validate: 2000 packets, 0 mismatches, 0 lost, 0 duplicated, 0 nonces reused"
    );
    assert!(
        out.contains(
            "7 injected (DroppedInterrupt, CorruptCompletion, IcvEngineError, DmaError, EngineHang, SurpriseReset, SurpriseRemoval)"
        ),
        "{out}"
    );
    assert!(out.contains("software (card gone)"), "{out}");
    assert_eq!(
        server.exit_code(),
        Some(3),
        "the injected removal ended the server process"
    );
}

/// Runs `espo validate --engine vfio-user` on 50,000 packets, does `to_server` at its
/// first progress line, and returns its stdout once it finished (clean, or the test fails).
fn validate_with_the_server_struck_mid_run(
    server: &mut Server,
    to_server: impl FnOnce(&mut Child),
) -> String {
    let mut validate = espo()
        .args([
            "validate",
            "--engine",
            "vfio-user",
            "--socket",
            server.socket(),
            "--packets",
            "50000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Progress lines come on stderr every tenth of the run: strike at the first.
    let mut progress = BufReader::new(validate.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            progress.read_line(&mut line).unwrap() > 0,
            "validate ended early"
        );
        if line.starts_with("validate: ") && line.contains("/50000 packets") {
            break;
        }
    }
    to_server(&mut server.child);
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut progress, &mut s);
        s
    });
    let o = validate.wait_with_output().unwrap();
    let out = stdout(&o);
    let err = rest.join().unwrap();
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(
        last_line(&out),
        "validate: 50000 packets, 0 mismatches, 0 lost, 0 duplicated, 0 nonces reused"
    );
    assert!(
        out.contains("card gone"),
        "SAs moved off the lost card: {out}"
    );
    assert!(
        !out.contains(" card entry "),
        "no SA is left on the card: {out}"
    );
    out
}

#[test]
fn the_server_killed_mid_run_moves_every_sa_to_software_without_loss_or_nonce_reuse() {
    let mut server = Server::start();
    validate_with_the_server_struck_mid_run(&mut server, |child| {
        child.kill().unwrap();
        let _ = child.wait();
    });
}

#[test]
fn a_server_frozen_mid_run_is_a_lost_card_after_the_reply_timeout() {
    let mut server = Server::start();
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    let started = Instant::now();
    validate_with_the_server_struck_mid_run(&mut server, |_| {
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by the reply timeout, not by the server: {:?}",
        started.elapsed()
    );
    // Stopped processes take SIGKILL too: the server's Drop ends it.
}

#[test]
fn validate_without_a_server_says_what_is_missing() {
    let o = run(&[
        "validate",
        "--engine",
        "vfio-user",
        "--socket",
        "/nonexistent/espo-card",
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("/nonexistent/espo-card") && err.contains("espo card serve"),
        "{err}"
    );
    let o = run(&["validate", "--engine", "vfio-user"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--socket"), "{}", stderr(&o));
}

#[test]
fn probe_finds_a_served_card_ready_and_says_when_it_is_gone() {
    let mut server = Server::start();
    let o = run(&[
        "probe",
        "--engine",
        "vfio-user",
        "--socket",
        server.socket(),
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    for line in [
        "[ ok ] vfio-user: protocol 0.1 negotiated",
        "[ ok ] PCI IDs: [1234:e501] (ESPO-1)",
        "[ ok ] BAR0: 8192 bytes; DEVICE_ID reads 0x4553504f (ESPO-1)",
        "[ ok ] MSI-X: 5 vectors",
        "[ ok ] DMA: a sealed shared-memory window mapped",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert_eq!(
        last_line(&out),
        format!("The card served at {} is ready.", server.socket())
    );
    server.child.kill().unwrap();
    let _ = server.child.wait();
    let o = run(&[
        "probe",
        "--engine",
        "vfio-user",
        "--socket",
        server.socket(),
    ]);
    let out = stdout(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("[FAIL] vfio-user: connecting"), "{out}");
    assert!(out.contains("fix: is the server running"), "{out}");
}

#[test]
fn bench_reports_the_served_cards_host_cost_beside_the_in_process_models() {
    let server = Server::start();
    let o = run(&[
        "bench",
        "--engine",
        "vfio-user",
        "--socket",
        server.socket(),
        "--size",
        "512",
        "--seconds",
        "0.8",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}{}", stderr(&o));
    assert!(
        out.contains("card model through the offload engine"),
        "{out}"
    );
    assert!(out.contains("card served over vfio-user"), "{out}");
    let host_ns: Vec<f64> = out
        .lines()
        .skip_while(|l| !l.contains("card served over vfio-user"))
        .filter(|l| l.contains(" host "))
        .filter_map(|l| {
            l.split(" host ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(host_ns.len(), 2, "encap and decap: {out}");
    assert!(host_ns.iter().all(|&ns| ns > 0.0), "{out}");
    assert!(out.contains("against the in-process model"), "{out}");
    assert!(out.contains("transformed by the served card"), "{out}");
}

/// Why QEMU cannot give a guest a vfio-user device here, if it cannot.
fn qemu_without_vfio_user() -> Option<String> {
    let out = match std::process::Command::new("qemu-system-x86_64")
        .args(["-device", "help"])
        .output()
    {
        Ok(out) => out,
        Err(e) => return Some(format!("qemu-system-x86_64 is not installed ({e})")),
    };
    let list = String::from_utf8_lossy(&out.stdout);
    if list.contains("\"vfio-user-pci\"") {
        return None;
    }
    let version = std::process::Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    Some(format!(
        "{version} has no vfio-user-pci device (QEMU 10.1 or later has it)"
    ))
}

#[test]
fn qemu_gives_a_guest_the_served_card_as_a_pci_device() {
    if let Some(why) = qemu_without_vfio_user() {
        eprintln!("skipped: {why}");
        return;
    }
    use std::io::Write;
    let server = Server::start();
    // Guest memory QEMU can share with the server (a sealed memfd); the guest never runs
    // (-S): realizing the device is what connects it, negotiates and reads its config
    // space, and QMP's query-pci shows what the guest would see.
    let device = format!(
        "{{\"driver\":\"vfio-user-pci\",\"socket\":{{\"path\":\"{}\",\"type\":\"unix\"}}}}",
        server.socket()
    );
    let mut qemu = std::process::Command::new("qemu-system-x86_64")
        .args([
            "-S",
            "-display",
            "none",
            "-nodefaults",
            "-machine",
            "q35,memory-backend=mem",
            "-object",
            "memory-backend-memfd,id=mem,size=256M,share=on",
            "-m",
            "256M",
            "-qmp",
            "stdio",
            "-device",
            &device,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu starts");
    {
        let stdin = qemu.stdin.as_mut().unwrap();
        for cmd in [
            r#"{"execute":"qmp_capabilities"}"#,
            r#"{"execute":"query-pci"}"#,
            r#"{"execute":"quit"}"#,
        ] {
            writeln!(stdin, "{cmd}").unwrap();
        }
    }
    let out = qemu.wait_with_output().unwrap();
    let qmp = String::from_utf8_lossy(&out.stdout);
    let pci: serde_json::Value = qmp
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["return"].is_array())
        .unwrap_or_else(|| {
            panic!(
                "no query-pci answer: {qmp}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let devices = pci["return"][0]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let card = devices
        .iter()
        .find(|d| d["id"]["vendor"] == 0x1234 && d["id"]["device"] == 0xe501)
        .unwrap_or_else(|| panic!("the guest does not see the card: {pci}"));
    let bars = card["regions"].as_array().cloned().unwrap_or_default();
    assert!(
        bars.iter().any(|r| r["bar"] == 0 && r["size"] == 8192),
        "BAR0 of 8 KiB: {card}"
    );
}
