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
