//! The checked-in generated files must match what the generator produces now.

use std::path::Path;

const HOW: &str =
    "regenerate with `cargo run -p espo-fpga --bin espo-fpga-gen` and commit the result";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn espo_pkg_sv_is_up_to_date() {
    let path = root().join("rtl/espo_pkg.sv");
    let on_disk =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; {HOW}", path.display()));
    assert!(
        on_disk == espo_fpga::generate::sv_package(),
        "{} is stale: {HOW}",
        path.display()
    );
}

#[test]
fn datasheet_tables_are_up_to_date() {
    let path = root().join("README.md");
    let on_disk =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fresh = espo_fpga::generate::update_readme(&on_disk).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        on_disk == fresh,
        "the generated tables in {} are stale: {HOW}",
        path.display()
    );
}
