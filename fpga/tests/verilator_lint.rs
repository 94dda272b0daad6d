//! The generated SystemVerilog package passes `verilator --lint-only -Wall`.

use std::path::Path;
use std::process::Command;

#[test]
fn espo_pkg_passes_verilator_lint() {
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("rtl/espo_pkg.sv");
    let output = match Command::new("verilator")
        .arg("--lint-only")
        .arg("-Wall")
        .arg(&pkg)
        .output()
    {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run verilator ({e}): install it with `apt-get install -y verilator` (tests/run.sh does this on CI)"
        ),
    };
    assert!(
        output.status.success(),
        "verilator --lint-only -Wall {} failed:\n{}{}",
        pkg.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The RTL core (the sources fpga/rtl/core.f lists) passes `verilator --lint-only -Wall`.
#[test]
fn rtl_core_passes_verilator_lint() {
    let rtl = Path::new(env!("CARGO_MANIFEST_DIR")).join("rtl");
    let list = std::fs::read_to_string(rtl.join("core.f")).expect("fpga/rtl/core.f");
    let files: Vec<_> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| rtl.join(l))
        .collect();
    assert!(files.len() > 5, "core.f lists the core's sources");
    let output = Command::new("verilator")
        .args(["--lint-only", "-Wall", "--top-module", "espo_core"])
        .args(&files)
        .output()
        .expect("verilator runs (tests/run.sh installs it)");
    assert!(
        output.status.success(),
        "verilator --lint-only -Wall on the core failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
