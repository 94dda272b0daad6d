//! Helpers shared by the integration tests: running the `espo` binary, reading captures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use espo_harness::pcap::{LinkType, Reader};

pub fn espo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_espo"))
}

pub fn run(args: &[&str]) -> Output {
    espo().args(args).output().expect("espo runs")
}

pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors")
}

/// A fresh, empty directory under the target directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The IP packets of a capture (link headers removed).
pub fn ip_packets(path: &Path) -> Vec<Vec<u8>> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = Reader::new(std::io::BufReader::new(file)).expect("readable capture");
    let link = r.header().link_type;
    let mut out = Vec::new();
    while let Some((_, data)) = r.next_record().expect("record") {
        let ip = match link {
            LinkType::Ethernet => {
                let mut off = 14;
                let mut ethertype = u16::from_be_bytes([data[12], data[13]]);
                while ethertype == 0x8100 || ethertype == 0x88a8 {
                    ethertype = u16::from_be_bytes([data[off + 2], data[off + 3]]);
                    off += 4;
                }
                &data[off..]
            }
            _ => data,
        };
        out.push(ip.to_vec());
    }
    out
}

pub fn link_type(path: &Path) -> LinkType {
    let file = std::fs::File::open(path).expect("capture");
    Reader::new(std::io::BufReader::new(file))
        .expect("readable")
        .header()
        .link_type
}

/// Writes `packets` as a raw-IP capture.
pub fn write_raw_capture(path: &Path, packets: &[Vec<u8>]) {
    let file = std::fs::File::create(path).expect("create capture");
    let header = espo_harness::pcap::FileHeader {
        link_type: LinkType::RawIp,
        snap_len: 65535,
        nanosecond: false,
    };
    let mut w =
        espo_harness::pcap::Writer::new(std::io::BufWriter::new(file), header).expect("header");
    for (i, p) in packets.iter().enumerate() {
        w.write_record(i as u32, 0, p).expect("record");
    }
    w.finish().expect("flush");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
