//! Verilates the RTL (fpga/rtl/core.f plus the simulation top fpga/rtl/tb/espo_cosim_top.sv)
//! into OUT_DIR and compiles it with the C ABI shim (csrc/shim.cpp) into a static library.
//! Cargo reruns this only when an RTL or shim file changes, so the verilated build is
//! cached in target/ like any other build output. The C++ is compiled at -O1, in parallel
//! (cc's `parallel` feature, under cargo's jobserver): -O2 takes 2.5 times as long to
//! compile the verilated model, which is most of this crate's build, for a simulation that
//! runs in seconds either way.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let rtl = manifest.join("../rtl");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mdir = out.join("verilated");

    let list =
        std::fs::read_to_string(rtl.join("core.f")).expect("fpga/rtl/core.f lists the RTL sources");
    let mut sources: Vec<PathBuf> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| rtl.join(l))
        .collect();
    sources.push(rtl.join("tb/espo_cosim_top.sv"));
    println!("cargo:rerun-if-changed={}", rtl.join("core.f").display());
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    println!("cargo:rerun-if-changed={}", manifest.join("csrc").display());

    let _ = std::fs::remove_dir_all(&mdir);
    let status = Command::new("verilator")
        .args([
            "--cc",
            "-O3",
            "--x-assign",
            "fast",
            "--x-initial",
            "fast",
            "--noassert",
            "-Wall",
        ])
        .args([
            "--top-module",
            "espo_cosim_top",
            "--prefix",
            "Vespo_cosim_top",
        ])
        .arg("-Mdir")
        .arg(&mdir)
        .args(&sources)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run verilator ({e}); install it with `apt-get install -y verilator`")
        });
    assert!(status.success(), "verilator failed on the RTL");

    let root = Command::new("verilator")
        .args(["--getenv", "VERILATOR_ROOT"])
        .output()
        .expect("verilator --getenv VERILATOR_ROOT");
    let root = PathBuf::from(String::from_utf8_lossy(&root.stdout).trim());
    let include = root.join("include");

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(1)
        .debug(false)
        .warnings(false)
        .include(&mdir)
        .include(&include)
        .include(include.join("vltstd"))
        .file(include.join("verilated.cpp"))
        .file(include.join("verilated_threads.cpp"))
        .file(manifest.join("csrc/shim.cpp"));
    for f in cpp_files(&mdir) {
        build.file(f);
    }
    build.compile("espo_rtl_sim");
}

fn cpp_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("verilator output directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cpp"))
        .collect();
    v.sort();
    v
}
