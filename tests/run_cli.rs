//! `espo run` and `espo status` refusing what they cannot do, with messages that say why —
//! before anything is created, so these need no root.

mod common;

use common::{espo, scratch};

fn example(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    full.to_str().expect("utf-8 path").to_owned()
}

fn stderr_of(args: &[&str]) -> (bool, String) {
    let out = espo().args(args).output().expect("espo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_needs_a_gateway_section() {
    let (ok, err) = stderr_of(&["run", "--config", &example("pcap/gw-a.toml")]);
    assert!(!ok);
    assert!(err.contains("no [gateway] section"), "{err}");
}

#[test]
fn run_refuses_an_engine_it_cannot_run_yet_and_a_missing_outside() {
    let dir = scratch("run_cli_engine");
    let base = std::fs::read_to_string(example("gw-gw/esp/gw-a.toml")).unwrap();
    let model = dir.join("model.toml");
    std::fs::write(
        &model,
        base.replace("engine = \"software\"", "engine = \"model\""),
    )
    .unwrap();
    let (ok, err) = stderr_of(&["run", "--config", model.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("engine `model` is not available in espo run yet"),
        "{err}"
    );

    let no_port = dir.join("no-port.toml");
    let text: String = base
        .lines()
        .filter(|l| !l.starts_with("port"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&no_port, text).unwrap();
    let (ok, err) = stderr_of(&["run", "--config", no_port.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("[gateway] port"), "{err}");
}

#[test]
fn run_reports_configuration_errors_by_field() {
    let dir = scratch("run_cli_config");
    let base = std::fs::read_to_string(example("gw-gw/esp/gw-a.toml")).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        base.replace("status_socket", "mtu = 10\nstatus_socket"),
    )
    .unwrap();
    let (ok, err) = stderr_of(&["run", "--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("[gateway]") && err.contains("`mtu`"), "{err}");
}

#[test]
fn status_says_when_no_gateway_answers() {
    let dir = scratch("run_cli_status");
    let sock = dir.join("nobody.sock");
    let (ok, err) = stderr_of(&["status", "--socket", sock.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("no gateway answers on") && err.contains("is espo run running"),
        "{err}"
    );
}
