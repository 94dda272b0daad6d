use crate::{Config, ConfigError};
use espo_ike::connection::{LocalAuth, RemoteAuth, StartAction};
use espo_ike::ts::TsSpec;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const PSK: &str = r#"
[[connection]]
name = "site-b"
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.2"
proposals = ["aes128gcm16-prfsha256-x25519", "aes256-sha384-ecp384"]
psk = "a long shared secret of some words"
dpd_delay = 10

[connection.local]
auth = "psk"
id = "gw-a.example.com"

[connection.remote]
auth = "psk"
id = "gw-b.example.com"

[[connection.child]]
name = "net"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16", "10.3.0.0/16[tcp/443]"]
esp_proposals = "aes128gcm16"
start_action = "start"
rekey_time = 600
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("gw.toml"))
}

fn invalid(text: &str) -> (String, &'static str, String) {
    match parse(text).unwrap_err() {
        ConfigError::Invalid {
            entry,
            field,
            message,
            ..
        } => (entry, field, message),
        other => panic!("not an entry error: {other}"),
    }
}

#[test]
fn a_psk_connection_reads_as_written() {
    let c = parse(PSK).unwrap();
    assert_eq!(c.connections.len(), 1);
    let k = &c.connections[0];
    assert_eq!(k.name, "site-b");
    assert_eq!(
        k.remote_addrs,
        vec!["198.51.100.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(k.proposals.len(), 2);
    assert_eq!(k.local_id.as_deref(), Some("gw-a.example.com"));
    assert!(matches!(k.local_auth, LocalAuth::Psk));
    assert!(matches!(k.remote_auth, RemoteAuth::Psk));
    assert_eq!(
        &k.psk.as_ref().unwrap().0[..],
        b"a long shared secret of some words"
    );
    assert_eq!(k.dpd_delay, Duration::from_secs(10));
    assert_eq!(k.local_port, 500);
    let child = &k.children[0];
    assert_eq!(child.remote_ts.len(), 2);
    assert_eq!(child.remote_ts[1].to_string(), "10.3.0.0/16[tcp/443]");
    assert_eq!(child.start_action, StartAction::Start);
    assert_eq!(child.lifetimes.rekey_time, Duration::from_secs(600));
    assert_eq!(child.lifetimes.life_time, Duration::from_secs(660));
    assert_eq!(child.esp_proposals, vec!["aes128gcm16".to_string()]);
    // The secret is never shown.
    assert!(!format!("{k:?}").contains("shared secret"));
}

#[test]
fn defaults_are_strongswans() {
    let text = PSK
        .replace(
            "proposals = [\"aes128gcm16-prfsha256-x25519\", \"aes256-sha384-ecp384\"]\n",
            "",
        )
        .replace("local_ts = [\"10.1.0.0/16\"]\n", "")
        .replace("rekey_time = 600\n", "");
    let c = parse(&text).unwrap();
    let k = &c.connections[0];
    assert_eq!(k.proposals, vec!["default".to_string()]);
    assert!(matches!(k.children[0].local_ts[0], TsSpec::Dynamic { .. }));
    assert_eq!(
        k.children[0].lifetimes.rekey_time,
        Duration::from_secs(3600)
    );
    assert_eq!(k.lifetimes.rekey_time, Duration::from_secs(14400));
    assert_eq!(k.reauth_time, Duration::ZERO, "no reauthentication");
}

#[test]
fn renewal_counts_and_reauthentication_read_as_written() {
    let text = PSK
        .replace("dpd_delay = 10\n", "dpd_delay = 10\nreauth_time = 7200\n")
        .replace(
            "rekey_time = 600\n",
            "rekey_time = 600\nrekey_bytes = 1000000\nlife_bytes = 1500000\nrekey_packets = 5000\n",
        );
    let c = parse(&text).unwrap();
    let k = &c.connections[0];
    assert_eq!(k.reauth_time, Duration::from_secs(7200));
    let l = k.children[0].lifetimes;
    assert_eq!((l.rekey_bytes, l.life_bytes), (1_000_000, 1_500_000));
    // A life count not given is the rekey count and a tenth.
    assert_eq!((l.rekey_packets, l.life_packets), (5000, 5500));
    let (_, field, _) = invalid(&text.replace("life_bytes = 1500000", "life_bytes = 10"));
    assert_eq!(field, "life_bytes");
}

#[test]
fn bad_entries_name_their_field() {
    for (from, to, field, says) in [
        (
            "auth = \"psk\"\nid = \"gw-a",
            "auth = \"eap\"\nid = \"gw-a",
            "local.auth",
            "unknown method",
        ),
        (
            "remote_addrs = \"198.51.100.2\"",
            "remote_addrs = \"far away\"",
            "remote_addrs",
            "not an IPv4",
        ),
        (
            "\"10.3.0.0/16[tcp/443]\"",
            "\"10.3.0.0/16[tcp/http2]\"",
            "remote_ts",
            "not a port",
        ),
        (
            "start_action = \"start\"",
            "start_action = \"later\"",
            "start_action",
            "unknown action",
        ),
        (
            "psk = \"a long shared secret of some words\"",
            "psk = \"short\"",
            "psk",
            "too short",
        ),
        (
            "psk = \"a long shared secret of some words\"",
            "",
            "psk",
            "needs the secret",
        ),
        (
            "rekey_time = 600",
            "rekey_time = 600\nlife_time = 300",
            "life_time",
            "shorter",
        ),
        (
            "name = \"net\"",
            "name = \"net\"\nmode = \"transport\"",
            "",
            "unknown field",
        ),
    ] {
        let text = PSK.replace(from, to);
        assert_ne!(text, PSK, "{from}");
        match parse(&text).unwrap_err() {
            ConfigError::Invalid {
                field: f,
                message,
                entry,
                ..
            } => {
                assert_eq!(f, field, "{to}: {message}");
                assert!(message.contains(says), "{to}: {message}");
                assert!(entry.starts_with("connection[0] (site-b)"), "{entry}");
            }
            ConfigError::Syntax { message, .. } => {
                assert!(
                    field.is_empty() && message.contains(says),
                    "{to}: {message}"
                );
            }
            other => panic!("{other}"),
        }
    }
}

#[test]
fn a_secret_in_a_syntax_error_is_not_shown() {
    let text = PSK.replace(
        "psk = \"a long shared secret of some words\"",
        "psk = \"a long shared secret of some words",
    );
    let e = parse(&text).unwrap_err().to_string();
    assert!(!e.contains("shared secret"), "{e}");
}

#[test]
fn start_needs_the_peers_address() {
    let text = PSK.replace("remote_addrs = \"198.51.100.2\"", "remote_addrs = \"%any\"");
    let (_, field, message) = invalid(&text);
    assert_eq!(field, "remote_addrs", "{message}");
    // A responder for anyone is fine.
    let text = text.replace("start_action = \"start\"", "start_action = \"none\"");
    assert!(parse(&text).unwrap().connections[0].remote_addrs.is_empty());
}

#[test]
fn names_are_unique() {
    let text = format!("{PSK}\n{}", PSK.replace("rekey_time = 600", ""));
    let (entry, field, message) = invalid(&text);
    assert_eq!(
        (entry.as_str(), field),
        ("connection[1] (site-b)", "name"),
        "{message}"
    );
}

#[test]
fn psk_files_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("site-b.psk");
    std::fs::write(&secret, "0x00112233445566778899aabbccddeeff\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf = dir.path().join("gw.toml");
    let text = PSK.replace(
        "psk = \"a long shared secret of some words\"",
        "psk_file = \"site-b.psk\"",
    );
    std::fs::write(&conf, &text).unwrap();
    let e = Config::load(&conf).unwrap_err().to_string();
    assert!(e.contains("psk_file") && e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = Config::load(&conf).unwrap();
    assert_eq!(
        c.connections[0].psk.as_ref().unwrap().0[..4],
        [0x00, 0x11, 0x22, 0x33]
    );
    std::fs::remove_file(&secret).unwrap();
    let e = Config::load(&conf).unwrap_err().to_string();
    assert!(e.contains("site-b.psk"), "{e}");
}

#[test]
fn pubkey_needs_its_files() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["gw-a.pem", "gw-a.key", "ca.pem"] {
        std::fs::write(dir.path().join(f), "-----BEGIN-----\n").unwrap();
    }
    let text = PSK
        .replace("psk = \"a long shared secret of some words\"\n", "")
        .replace(
            "auth = \"psk\"\nid = \"gw-a.example.com\"",
            "auth = \"pubkey\"\nid = \"gw-a.example.com\"\ncerts = \"gw-a.pem\"\nprivate_key = \"gw-a.key\"",
        )
        .replace(
            "auth = \"psk\"\nid = \"gw-b.example.com\"",
            "auth = \"pubkey\"\nid = \"C=CH, O=espo, CN=gw-b\"\ncacerts = [\"ca.pem\"]",
        );
    let conf = dir.path().join("gw.toml");
    std::fs::write(&conf, &text).unwrap();
    let c = Config::load(&conf).unwrap();
    match &c.connections[0].local_auth {
        LocalAuth::Pubkey { certs, private_key } => {
            assert_eq!(certs[0], dir.path().join("gw-a.pem"));
            assert_eq!(*private_key, dir.path().join("gw-a.key"));
        }
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let e = Config::load(&conf).unwrap_err().to_string();
    assert!(e.contains("remote.cacerts") && e.contains("ca.pem"), "{e}");
}

#[test]
fn manual_sas_and_connections_live_side_by_side() {
    let manual = r#"
[[sa]]
spi = 0x1001
protocol = "esp"
mode = "tunnel"
src = "192.0.2.1"
dst = "198.51.100.2"
encryption = "aes-gcm-128"
key = "00112233445566778899aabbccddeeff01020304"

[[policy]]
dir = "out"
src = "10.9.0.0/16"
dst = "10.8.0.0/16"
action = "protect"
sa = [0x1001]
"#;
    let c = parse(&format!("{manual}{PSK}")).unwrap();
    assert_eq!(
        (c.sas.len(), c.policies.len(), c.connections.len()),
        (1, 1, 1)
    );
}

#[test]
fn proposals_are_checked_when_the_configuration_is_read() {
    for (from, to, field, says) in [
        (
            "\"aes256-sha384-ecp384\"]",
            "\"aes256-sha384-ecp384-bogus\"]",
            "proposals",
            "bogus",
        ),
        (
            "\"aes256-sha384-ecp384\"]",
            "\"aes192-sha384-ecp384\"]",
            "proposals",
            "not implemented",
        ),
        (
            "esp_proposals = \"aes128gcm16\"",
            "esp_proposals = \"aes128-sha1\"",
            "esp_proposals",
            "not implemented",
        ),
        (
            "esp_proposals = \"aes128gcm16\"",
            "esp_proposals = \"3des-sha256\"",
            "esp_proposals",
            "3des",
        ),
    ] {
        assert!(PSK.contains(from), "{from}");
        let (entry, f, message) = invalid(&PSK.replace(from, to));
        assert_eq!(f, field, "{to}: {message}");
        assert!(message.contains(says), "{to}: {message}");
        assert!(entry.contains("site-b"), "{entry}");
    }
    // strongSwan's default keyword stays usable for both.
    let text = PSK.replace(
        "esp_proposals = \"aes128gcm16\"",
        "esp_proposals = \"default\"",
    );
    assert!(parse(&text).is_ok());
}
