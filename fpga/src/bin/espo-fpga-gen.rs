//! Regenerates `fpga/rtl/espo_pkg.sv` and the generated tables of `fpga/README.md` from
//! the espo-fpga definitions. With `--check`, only reports whether they are stale.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sv_path = root.join("rtl/espo_pkg.sv");
    let readme_path = root.join("README.md");
    let readme = match std::fs::read_to_string(&readme_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("espo-fpga-gen: cannot read {}: {e}", readme_path.display());
            return ExitCode::FAILURE;
        }
    };
    let new_readme = match espo_fpga::generate::update_readme(&readme) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("espo-fpga-gen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let new_sv = espo_fpga::generate::sv_package();
    let old_sv = std::fs::read_to_string(&sv_path).unwrap_or_default();
    let stale = [
        (sv_path.as_path(), old_sv != new_sv),
        (readme_path.as_path(), readme != new_readme),
    ];
    if check {
        let mut ok = true;
        for (p, s) in stale {
            if s {
                eprintln!("stale: {}", p.display());
                ok = false;
            }
        }
        return if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    for (path, text) in [(&sv_path, &new_sv), (&readme_path, &new_readme)] {
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("espo-fpga-gen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
