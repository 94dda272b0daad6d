use std::os::unix::fs::PermissionsExt;

use super::*;
use espo_ipsec::crypto::{EncryptionAlgorithm, SecretKey};
use espo_ipsec::spec::{DfMode, Lifetime, SaMode, SaProtocol};

fn sa(spi: u32, key_byte: u8) -> SaSpec {
    SaSpec {
        spi,
        dir: None,
        protocol: SaProtocol::Esp,
        mode: SaMode::Tunnel,
        src: [192, 0, 2, 1].into(),
        dst: [192, 0, 2, 2].into(),
        encryption: Some(EncryptionAlgorithm::AesGcm128),
        key: Some(SecretKey::new(vec![key_byte; 20])),
        integrity: None,
        integrity_key: None,
        esn: false,
        seq: 0,
        replay_window: 64,
        udp_encap: None,
        ttl: 64,
        df: DfMode::Copy,
        lifetime: Lifetime::default(),
    }
}

#[test]
fn a_record_comes_back_for_its_sa_and_key_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(&tmp.path().join("state")).unwrap();
    let a = StateKey::of(&sa(0x1001, 7), Direction::Out);
    assert_eq!(dir.load(&a).unwrap(), Recorded::Nothing);
    dir.store(&a, 1 << 20).unwrap();
    dir.store(&a, 2 << 20).unwrap();
    assert_eq!(dir.load(&a).unwrap(), Recorded::Value(2 << 20));
    assert_eq!(
        dir.load(&StateKey::of(&sa(0x1001, 7), Direction::In))
            .unwrap(),
        Recorded::Nothing,
        "each direction has its own record"
    );
    assert_eq!(
        dir.load(&StateKey::of(&sa(0x1001, 8), Direction::Out))
            .unwrap(),
        Recorded::OtherKey,
        "the same SPI under another key"
    );
    let text = fs::read_to_string(dir.file_of(&a)).unwrap();
    assert!(!text.contains("0707070707"), "no key bytes in the file");
    let mode = fs::metadata(dir.file_of(&a)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(
        !dir.file_of(&a).with_extension("state.new").exists(),
        "no temporary file left behind"
    );
}

#[test]
fn a_broken_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = StateDir::open(tmp.path()).unwrap();
    let a = StateKey::of(&sa(0x1001, 7), Direction::In);
    let path = dir.file_of(&a);
    dir.store(&a, 99).unwrap();
    let good = fs::read_to_string(&path).unwrap();
    for (broken, why) in [
        (String::new(), "unknown first line"),
        (
            good.replace("value 99", "value ninety"),
            "value is not a number",
        ),
        (good.replace("dir in", "dir out"), "names another SA"),
        (good.replace("value 99\n", ""), "a field is missing"),
        (format!("{good}value 100\n"), "given twice"),
        (
            good.replace("fingerprint ", "fingerprint zz"),
            "fingerprint",
        ),
        (format!("{good}{}", "x".repeat(5000)), "too large"),
    ] {
        fs::write(&path, &broken).unwrap();
        let e = dir.load(&a).unwrap_err().to_string();
        assert!(
            e.contains(why) && e.contains(&path.display().to_string()),
            "{e}"
        );
    }
}

#[test]
fn a_directory_others_can_write_to_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let open = tmp.path().join("open");
    fs::create_dir(&open).unwrap();
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let e = StateDir::open(&open).unwrap_err().to_string();
    assert!(e.contains("lets others write"), "{e}");
    let file = tmp.path().join("file");
    fs::write(&file, "").unwrap();
    assert!(StateDir::open(&file).is_err());
}
