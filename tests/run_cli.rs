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
fn run_refuses_a_card_it_cannot_open_and_a_missing_outside() {
    let dir = scratch("run_cli_engine");
    let base = std::fs::read_to_string(example("gw-gw/esp/gw-a.toml")).unwrap();
    let vfio = dir.join("vfio.toml");
    std::fs::write(
        &vfio,
        base.replace(
            "engine = \"software\"",
            "engine = \"vfio\"\npci = \"0000:03:00.0\"",
        ),
    )
    .unwrap();
    // A card on the bus that is not there: espo says which, and how to find out why.
    let (ok, err) = stderr_of(&["run", "--config", vfio.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("[device] pci: cannot open the card at 0000:03:00.0 through VFIO")
            && err.contains("espo probe"),
        "{err}"
    );

    // The card model needs its port interface, and a local endpoint of every family it
    // must resolve a next hop in.
    let model = base
        .replace("engine = \"software\"", "engine = \"model\"")
        .replace("port = \"eth1\"", "port = \"espo-none9\"");
    let no_iface = dir.join("model.toml");
    std::fs::write(&no_iface, &model).unwrap();
    let (ok, err) = stderr_of(&["run", "--config", no_iface.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("[gateway] port: no interface `espo-none9`"),
        "{err}"
    );
    let v6_hop = dir.join("model-v6-hop.toml");
    std::fs::write(
        &v6_hop,
        model.replace("local = ", "next_hop = \"fe80::1\"\nlocal = "),
    )
    .unwrap();
    let (ok, err) = stderr_of(&["run", "--config", v6_hop.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("[gateway] next_hop: `fe80::1` needs a local IPv6"),
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
