use super::*;

const KEY: &str = "00112233445566778899aabbccddeeff01020304";

fn sa(spi: &str, dir: Option<&str>, key: &str) -> String {
    let dir = dir.map(|d| format!("dir = \"{d}\"\n")).unwrap_or_default();
    format!(
        "[[sa]]\nspi = {spi}\n{dir}protocol = \"esp\"\nsrc = \"192.0.2.1\"\ndst = \"192.0.2.2\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\n"
    )
}

fn err(text: &str) -> String {
    Request::parse(text.as_bytes())
        .map(|r| panic!("accepted: {r:?}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn commands_without_a_body() {
    assert!(matches!(Request::parse(b"status"), Ok(Request::Status)));
    assert!(matches!(Request::parse(b"status\n"), Ok(Request::Status)));
    assert!(matches!(Request::parse(b"sa list\n"), Ok(Request::SaList)));
    assert!(matches!(
        Request::parse(b"policy list"),
        Ok(Request::PolicyList)
    ));
    assert!(matches!(
        Request::parse(b"sa del 0x1001 dir=out dst=192.0.2.2"),
        Ok(Request::SaDel {
            spi: 0x1001,
            dir: Some(Direction::Out),
            dst: Some(_)
        })
    ));
    assert!(matches!(
        Request::parse(b"sa del 4097"),
        Ok(Request::SaDel {
            spi: 4097,
            dir: None,
            dst: None
        })
    ));
    assert!(matches!(
        Request::parse(b"policy del 3"),
        Ok(Request::PolicyDel { id: 3 })
    ));
    match Request::parse(b"policy set 2 0x1001,0x1002") {
        Ok(Request::PolicySet { id: 2, sas }) => assert_eq!(sas, [0x1001, 0x1002]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_command_lines_say_what_is_wrong() {
    assert_eq!(err(""), "empty request");
    assert!(err("reboot now").contains("unknown command `reboot`"));
    assert!(err("sa frobnicate").contains("unknown command `sa`"));
    assert!(err("status extra").contains("takes no positional arguments"));
    assert!(err("sa del").contains("expects SPI"));
    assert!(err("sa del 0x1_0000_0000").contains("is not an SPI"));
    assert!(err("sa del 0x100000000").contains("is not an SPI"));
    assert!(err("sa del 1 dir=sideways").contains("expected in or out"));
    assert!(err("sa del 1 dst=nowhere").contains("not an IP address"));
    assert!(err("sa del 1 colour=red").contains("unknown argument `colour`"));
    assert!(err("sa del 1 dir=in dir=out").contains("given twice"));
    assert!(err("policy set 1").contains("expects ID SPI[,SPI]"));
    assert!(err("policy set 1 1,2,3").contains("one or two SAs"));
    assert!(err("policy del x").contains("not a policy id"));
    assert!(err("sa list\n[[sa]]\n").contains("takes no SAs or policies"));
    assert_eq!(
        Request::parse(&vec![b'x'; MAX_REQUEST_BYTES + 1])
            .unwrap_err()
            .to_string(),
        format!("request larger than {MAX_REQUEST_BYTES} bytes")
    );
    assert_eq!(err_bytes(&[0xff, 0xfe]), "request is not UTF-8 text");
}

fn err_bytes(b: &[u8]) -> String {
    Request::parse(b).unwrap_err().to_string()
}

#[test]
fn sa_add_validates_like_the_configuration_file() {
    let text = format!("sa add source=new.toml\n{}", sa("0x2001", Some("in"), KEY));
    match Request::parse(text.as_bytes()) {
        Ok(Request::SaAdd(sas)) => {
            assert_eq!(sas.len(), 1);
            assert_eq!((sas[0].spi, sas[0].dir), (0x2001, Some(Direction::In)));
        }
        other => panic!("{other:?}"),
    }
    let e = err(&format!(
        "sa add source=new.toml\n{}",
        sa("0x2001", None, KEY)
    ));
    assert!(
        e.starts_with("new.toml: sa[0] (spi 0x00002001): field `dir`: missing"),
        "{e}"
    );
    let e = err(&format!("sa add\n{}", sa("0x2001", Some("in"), &KEY[..38])));
    assert!(
        e.starts_with("request: sa[0] (spi 0x00002001): field `key`: expected 20 bytes"),
        "{e}"
    );
    let e = err(&format!(
        "sa add\n{}{}",
        sa("0x2001", Some("in"), KEY),
        sa("0x2002", Some("out"), KEY)
    ));
    assert!(
        e.contains("field `key`: the same key and salt as sa[0]"),
        "{e}"
    );
    let e = err(&format!(
        "sa add\n{}{}",
        sa("0x2001", Some("in"), KEY),
        sa("0x2001", Some("in"), &KEY.replace('0', "1"))
    ));
    assert!(e.contains("two SAs with this SPI"), "{e}");
    assert!(err("sa add\n").contains("no [[sa]] entry"));
    assert!(err("sa add\n[gateway]\ntun = \"x\"\n").contains("not [gateway]"));
    assert!(err("sa add\n[[policy]]\ndir = \"in\"\n").contains("not [[policy]]"));
    assert!(err("sa add\n[[sa]]\nspi = 0x2001\ncolour = \"red\"\n").contains("colour"));
}

#[test]
fn errors_never_show_a_key() {
    let unterminated = format!("sa add\n[[sa]]\nspi = 0x2001\nkey = \"{KEY}\ndir = \"in\"\n");
    let bad_digit = format!(
        "sa add\n{}",
        sa("0x2001", Some("in"), &format!("{}zz", &KEY[..38]))
    );
    let in_other_field = format!("sa add\n[[sa]]\nspi = 0x2001\nprotocol = \"{KEY}\"\n");
    for text in [unterminated, bad_digit, in_other_field] {
        let e = err(&text);
        for at in 0..=(KEY.len() - 16) {
            assert!(!e.contains(&KEY[at..at + 16]), "key bytes in: {e}");
        }
    }
}

#[test]
fn sa_replace_takes_one_sa_and_a_grace_period() {
    let text = format!("sa replace 0x2001 grace=5\n{}", sa("0x2002", None, KEY));
    match Request::parse(text.as_bytes()) {
        Ok(Request::SaReplace { old_spi, sa, grace }) => {
            assert_eq!(
                (old_spi, sa.spi, grace),
                (0x2001, 0x2002, Duration::from_secs(5))
            );
        }
        other => panic!("{other:?}"),
    }
    let text = format!("sa replace 0x2001\n{}", sa("0x2002", Some("out"), KEY));
    assert!(matches!(
        Request::parse(text.as_bytes()),
        Ok(Request::SaReplace {
            grace: DEFAULT_GRACE,
            ..
        })
    ));
    assert!(
        err(&format!("sa replace 0x2002\n{}", sa("0x2002", None, KEY))).contains("SPI of its own")
    );
    assert!(
        err(&format!(
            "sa replace 0x2001 grace=9999\n{}",
            sa("0x2002", None, KEY)
        ))
        .contains("grace")
    );
    assert!(err("sa replace 0x2001\n").contains("exactly one [[sa]] entry"));
    assert!(
        err(&format!(
            "sa replace 0x2001\n{}{}",
            sa("0x2002", None, KEY),
            sa("0x2003", None, &KEY.replace('1', "2"))
        ))
        .contains("got 2")
    );
}

#[test]
fn policy_add_is_checked_against_the_gateways_sas() {
    let body = "[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.9.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n";
    let Ok(Request::PolicyAdd { position, policies }) =
        Request::parse(format!("policy add position=0 source=p.toml\n{body}").as_bytes())
    else {
        panic!("not parsed");
    };
    assert_eq!((position, policies.len()), (Some(0), 1));
    let e = policies.validate(&[]).unwrap_err().to_string();
    assert!(e.starts_with("p.toml: policy[0]: field `sa`"), "{e}");
    let known = crate::Config::parse(&sa("0x1001", Some("out"), KEY), Path::new("k")).unwrap();
    let p = policies.validate(&known.sas).unwrap();
    assert_eq!(
        (p[0].dir, p[0].sa.as_slice()),
        (Direction::Out, &[0x1001][..])
    );
    assert!(err("policy add\n").contains("no [[policy]] entry"));
    assert!(err(&format!("policy add\n{}", sa("0x1001", None, KEY))).contains("only [[policy]]"));
    assert!(err("policy add position=first\n[[policy]]\n").contains("position"));
}

proptest::proptest! {
    /// No request, however broken, makes the parser panic.
    #[test]
    fn arbitrary_requests_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = Request::parse(&bytes);
    }

    #[test]
    fn arbitrary_command_lines_never_panic(line in "(sa|policy|status) [ -~]{0,60}") {
        let _ = Request::parse(line.as_bytes());
    }
}
