//! Keys never reach the terminal, not even in a configuration error: every command that
//! reads a configuration (`espo pcap`, `espo status --config`, `espo run --config`,
//! `espo demo --config-a/-b`) on files with syntax errors around a key, keys of the wrong
//! type and keys that are not hex. None of them may print 8 consecutive bytes of a key.
//! (`espo run` fails on the configuration before it needs root.)

mod common;

use std::path::{Path, PathBuf};

use common::{espo, scratch};

const GCM_KEY: &str = "6b3a91c04de27f5518a0cc73e9d2b84f1c07a5e3";
const HMAC_KEY: &str = "d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6";
/// A key written as a TOML integer (decimal digits).
const DECIMAL_KEY: &str = "8734512098347561";

const HEAD: &str =
    "[[sa]]\nspi = 0x1001\nprotocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\n";

/// Configurations that must be refused, each with the secrets it holds.
fn broken() -> Vec<(&'static str, String, Vec<&'static str>)> {
    let gcm = |rest: &str| format!("{HEAD}encryption = \"aes-gcm-128\"\n{rest}");
    let cbc = |rest: &str| {
        format!(
            "{HEAD}encryption = \"aes-cbc-128\"\nkey = \"{}\"\nintegrity = \"hmac-sha256-128\"\n{rest}",
            &HMAC_KEY[..32]
        )
    };
    vec![
        (
            "unterminated-key",
            gcm(&format!("key = \"{GCM_KEY}\n")),
            vec![GCM_KEY],
        ),
        (
            "unterminated-key-then-more",
            gcm(&format!("key = \"{GCM_KEY}\nreplay_window = 64\n")),
            vec![GCM_KEY],
        ),
        (
            "bad-value-after-key",
            gcm(&format!(
                "key = \"{GCM_KEY}\"\nreplay_window = sixty-four\n"
            )),
            vec![GCM_KEY],
        ),
        (
            "garbage-after-key-same-line",
            gcm(&format!("key = \"{GCM_KEY}\" replay_window = 64\n")),
            vec![GCM_KEY],
        ),
        (
            "key-in-unclosed-inline-table",
            gcm(&format!(
                "lifetime = {{ key = \"{GCM_KEY}\", soft_packets = \n"
            )),
            vec![GCM_KEY],
        ),
        (
            "unterminated-multiline-key",
            gcm(&format!("key = \"\"\"{GCM_KEY}\nreplay_window = 64\n")),
            vec![GCM_KEY],
        ),
        (
            "literal-key-bad-escape-before",
            gcm(&format!("key = '{GCM_KEY}'\nsrc_port = \"\\q\"\n")),
            vec![GCM_KEY],
        ),
        (
            "integrity-key-unterminated",
            cbc(&format!("integrity_key = \"{HMAC_KEY}\n")),
            vec![HMAC_KEY, &HMAC_KEY[..32]],
        ),
        (
            "integer-key",
            gcm(&format!("key = {DECIMAL_KEY}\n")),
            vec![DECIMAL_KEY],
        ),
        (
            "key-not-hex",
            gcm(&format!(
                "key = \"{}x{}\"\n",
                &GCM_KEY[..20],
                &GCM_KEY[21..]
            )),
            vec![GCM_KEY],
        ),
        (
            "key-too-short",
            gcm(&format!("key = \"{}\"\n", &GCM_KEY[..38])),
            vec![GCM_KEY],
        ),
        (
            "unknown-psk-field",
            gcm(&format!(
                "key = \"{GCM_KEY}\"\npreshared_key = \"{HMAC_KEY}\"\n"
            )),
            vec![GCM_KEY, HMAC_KEY],
        ),
    ]
}

/// Every run of 8 bytes of `secret` (16 hex digits; for decimal keys, 8 digits).
fn windows(secret: &str) -> Vec<String> {
    let w = if secret.bytes().all(|b| b.is_ascii_digit()) {
        8
    } else {
        16
    };
    (0..=secret.len().saturating_sub(w))
        .map(|i| secret[i..i + w].to_ascii_lowercase())
        .collect()
}

fn assert_no_secret(what: &str, output: &str, secrets: &[&str]) {
    let lower = output.to_ascii_lowercase();
    for s in secrets {
        for w in windows(s) {
            assert!(
                !lower.contains(&w),
                "{what}: key bytes `{w}` in the output:\n{output}"
            );
        }
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn no_command_prints_key_bytes_of_a_broken_configuration() {
    let dir = scratch("config-secrets");
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/gw-b.toml");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pcap/plain.pcap");
    for (name, text, secrets) in broken() {
        let path: PathBuf = dir.join(format!("{name}.toml"));
        std::fs::write(&path, &text).unwrap();
        let out = dir.join(format!("{name}.pcap"));
        let commands: Vec<Vec<&str>> = vec![
            vec!["pcap", "encap", "--config", s(&path), s(&capture), s(&out)],
            vec![
                "pcap",
                "decap",
                "--engine",
                "model",
                "--config",
                s(&path),
                s(&capture),
                s(&out),
            ],
            vec!["status", "--config", s(&path)],
            vec!["run", "--config", s(&path)],
            vec![
                "demo",
                "--config-a",
                s(&path),
                "--config-b",
                s(&good),
                "--packets",
                "1",
            ],
        ];
        for args in commands {
            let o = espo().args(&args).output().expect("espo runs");
            let stdout = String::from_utf8_lossy(&o.stdout);
            let stderr = String::from_utf8_lossy(&o.stderr);
            let what = format!("{name}: espo {}", args[..2].join(" "));
            assert!(!o.status.success(), "{what}: refused");
            assert!(
                stderr.contains(&format!("{name}.toml")),
                "{what}: the error names the file:\n{stderr}"
            );
            assert_no_secret(&what, &stdout, &secrets);
            assert_no_secret(&what, &stderr, &secrets);
        }
    }
}

#[test]
fn a_syntax_error_still_says_where_and_what() {
    let dir = scratch("config-secrets-where");
    let path = dir.join("gw.toml");
    std::fs::write(
        &path,
        format!("{HEAD}encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\nreplay_window = 64\n"),
    )
    .unwrap();
    let o = espo()
        .args(["status", "--config", s(&path)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("gw.toml: line 7, column"), "{err}");
    assert!(err.contains("key = <redacted>"), "{err}");
    // The error is printed once, not once more as its own cause.
    assert_eq!(err.matches("line 7").count(), 1, "{err}");

    // Away from keys, the line is shown as it is, with a caret under the column.
    std::fs::write(
        &path,
        format!("{HEAD}encryption = \"aes-gcm-128\"\nkey = \"{GCM_KEY}\"\nprotocol = esp\n"),
    )
    .unwrap();
    let o = espo()
        .args(["status", "--config", s(&path)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("gw.toml: line 8, column 12"), "{err}");
    assert!(err.contains("protocol = esp"), "{err}");
    assert!(err.contains("^"), "{err}");
}
