//! The live database against an engine that applies every change at once (the software
//! engine's halves behind a lock), with the state directory in a temporary directory.

use std::collections::BTreeSet;
use std::path::Path;

use espo_config::Config;
use espo_config::control::Request;
use espo_ipsec::engine::{Inbound, Outbound};

use super::*;
use crate::software::{inbound_sa, outbound_sa};
use crate::state_dir::StateDir;

pub(crate) struct TestEngine {
    pub(crate) out: Mutex<Outbound>,
    pub(crate) inn: Mutex<Inbound>,
}

impl Engine for TestEngine {
    fn add_sa(&self, sa: &SaSpec, dir: Direction, how: Install) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => lock(&self.out).add_sa(outbound_sa(sa, &how)?).map(drop)?,
            Direction::In => lock(&self.inn).add_sa(inbound_sa(sa, &how)?).map(drop)?,
        }
        Ok(())
    }
    fn remove_sa(&self, spi: u32, dir: Direction, dst: IpAddr) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => lock(&self.out).remove_sa(spi).map(drop)?,
            Direction::In => lock(&self.inn).remove_sa(spi, Some(dst)).map(drop)?,
        }
        Ok(())
    }
    fn replace_sa(
        &self,
        old: u32,
        dir: Direction,
        new: &SaSpec,
        how: Install,
    ) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => lock(&self.out)
                .replace_sa(old, outbound_sa(new, &how)?)
                .map(drop)?,
            Direction::In => lock(&self.inn)
                .replace_sa(old, None, inbound_sa(new, &how)?)
                .map(drop)?,
        }
        Ok(())
    }
    fn add_policy(
        &self,
        p: &PolicySpec,
        id: PolicyId,
        position: Option<usize>,
    ) -> Result<(), EngineChangeError> {
        match p.dir {
            Direction::Out => lock(&self.out).add_policy(p, id, position)?,
            Direction::In => lock(&self.inn).add_policy(p, id, position)?,
        }
        Ok(())
    }
    fn remove_policy(&self, dir: Direction, id: PolicyId) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => lock(&self.out).remove_policy(id).map(drop)?,
            Direction::In => lock(&self.inn).remove_policy(id).map(drop)?,
        }
        Ok(())
    }
    fn set_bundle(
        &self,
        dir: Direction,
        id: PolicyId,
        spis: &[u32],
    ) -> Result<(), EngineChangeError> {
        match dir {
            Direction::Out => lock(&self.out).set_bundle(id, spis)?,
            Direction::In => lock(&self.inn).set_bundle(id, spis)?,
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct TestRoutes(Vec<Cidr>);

impl Routes for TestRoutes {
    fn add(&mut self, dst: Cidr) -> Result<(), String> {
        self.0.push(dst);
        Ok(())
    }
    fn remove(&mut self, dst: Cidr) {
        self.0.retain(|r| *r != dst);
    }
}

const K1: &str = "0101010101010101010101010101010101010101";
const K2: &str = "0202020202020202020202020202020202020202";
pub(crate) const K3: &str = "0303030303030303030303030303030303030303";
pub(crate) const K4: &str = "0404040404040404040404040404040404040404";

fn sa_text(spi: &str, dir: &str, src: &str, dst: &str, key: &str) -> String {
    format!(
        "[[sa]]\nspi = {spi}\ndir = \"{dir}\"\nprotocol = \"esp\"\nsrc = \"{src}\"\ndst = \"{dst}\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\n"
    )
}

/// A gateway at 192.0.2.1 with SA 0x1001 out and 0x2001 in, and a policy each way.
fn config() -> Config {
    let text = format!(
        "{}{}[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.2.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n[[policy]]\ndir = \"in\"\nsrc = \"10.2.0.0/16\"\ndst = \"10.1.0.0/16\"\naction = \"protect\"\nsa = [0x2001]\n",
        sa_text("0x1001", "out", "192.0.2.1", "192.0.2.2", K1),
        sa_text("0x2001", "in", "192.0.2.2", "192.0.2.1", K2),
    );
    Config::parse(&text, Path::new("gw.toml")).unwrap()
}

pub(crate) struct Rig {
    pub(crate) config: Config,
    pub(crate) engine: TestEngine,
    pub(crate) keeper: Mutex<Keeper>,
    pub(crate) routes: TestRoutes,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) fn rig() -> Rig {
    let config = config();
    let engine = config.software_engine().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keeper = Mutex::new(Keeper::new(StateDir::open(dir.path()).unwrap()));
    Rig {
        engine: TestEngine {
            out: Mutex::new(engine.outbound),
            inn: Mutex::new(engine.inbound),
        },
        config,
        keeper,
        routes: TestRoutes::default(),
        _dir: dir,
    }
}

pub(crate) fn live<'a>(
    config: &'a Config,
    engine: &'a TestEngine,
    keeper: &'a Mutex<Keeper>,
    routes: &'a mut TestRoutes,
) -> Live<'a> {
    let sas = config
        .sas
        .iter()
        .map(|s| CatalogSa {
            spec: s.clone(),
            dir: s.dir.unwrap(),
            retire: None,
            state_error: None,
        })
        .collect();
    Live::new(
        sas,
        &config.policies,
        engine,
        Some(keeper),
        routes,
        Instant::now(),
    )
}

fn ask(db: &mut Live, text: &str) -> Reply {
    db.handle(Request::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
}

pub(crate) fn out_spis(e: &TestEngine) -> BTreeSet<u32> {
    lock(&e.out).sas().iter().map(|s| s.params.spi).collect()
}

pub(crate) fn in_spis(e: &TestEngine) -> BTreeSet<u32> {
    lock(&e.inn).sas().iter().map(|s| s.params.spi).collect()
}

#[test]
fn sas_are_added_checked_against_those_held_and_reserved_durably() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let reply = ask(
        &mut db,
        &format!(
            "sa add\n{}",
            sa_text("0x1002", "out", "192.0.2.1", "192.0.2.2", K3)
        ),
    );
    assert!(reply.ok, "{reply:?}");
    let dup = ask(
        &mut db,
        &format!(
            "sa add\n{}",
            sa_text("0x1002", "in", "192.0.2.2", "192.0.2.2", K4)
        ),
    );
    assert!(!dup.ok && dup.text.contains("already exists"), "{dup:?}");
    let same_key = ask(
        &mut db,
        &format!(
            "sa add\n{}",
            sa_text("0x2002", "in", "192.0.2.2", "192.0.2.1", K1)
        ),
    );
    assert!(
        !same_key.ok && same_key.text.contains("same key and salt as sa 0x00001001"),
        "{same_key:?}"
    );
    assert!(!same_key.text.contains(&K1[..16]), "no key in the answer");
    drop(db);
    assert_eq!(out_spis(&r.engine), [0x1001, 0x1002].into());
    assert_eq!(
        in_spis(&r.engine),
        [0x2001].into(),
        "nothing of a refused request"
    );
    let e = lock(&r.engine.out);
    let added = e.sas().iter().find(|s| s.params.spi == 0x1002).unwrap();
    assert_eq!(
        added.reservation().limit(),
        crate::keeper::BLOCK,
        "reserved on disk first"
    );
}

#[test]
fn an_outbound_replace_switches_the_policy_and_forgets_the_old_key() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    // The old SA's record exists once it was started.
    let old_key = crate::state_dir::StateKey::of(&r_config_sa(0x1001), Direction::Out);
    lock(&r.keeper)
        .start(&r_config_sa(0x1001), Direction::Out)
        .unwrap();
    let path = lock(&r.keeper).dir().file_of(&old_key);
    assert!(path.exists());
    let reply = ask(
        &mut db,
        &format!(
            "sa replace 0x1001\n{}",
            sa_text("0x1003", "out", "192.0.2.1", "192.0.2.2", K3)
        ),
    );
    assert!(reply.ok, "{reply:?}");
    assert!(db.policy_list().contains("0x00001003"));
    assert!(!db.sa_list().contains("0x00001001"));
    assert!(!path.exists(), "a rekeyed-away key's record goes");
    drop(db);
    assert_eq!(out_spis(&r.engine), [0x1003].into());
}

fn r_config_sa(spi: u32) -> SaSpec {
    config().sa(spi).unwrap().clone()
}

#[test]
fn an_inbound_replace_keeps_the_old_sa_until_its_grace_period_ends() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let reply = ask(
        &mut db,
        &format!(
            "sa replace 0x2001 grace=5\n{}",
            sa_text("0x2003", "in", "192.0.2.2", "192.0.2.1", K3)
        ),
    );
    assert!(
        reply.ok && reply.text.contains("retires in 5 s"),
        "{reply:?}"
    );
    assert!(db.sa_list().contains("retiring"));
    let again = ask(
        &mut db,
        &format!(
            "sa replace 0x2001\n{}",
            sa_text("0x2004", "in", "192.0.2.2", "192.0.2.1", K4)
        ),
    );
    assert!(
        !again.ok && again.text.contains("already being replaced"),
        "{again:?}"
    );
    db.tick(Instant::now());
    assert_eq!(in_spis(&r.engine), [0x2001, 0x2003].into(), "both accept");
    db.tick(Instant::now() + Duration::from_secs(6));
    assert_eq!(in_spis(&r.engine), [0x2003].into(), "the old one retired");
    assert!(db.policy_list().contains("0x00002003"));
    assert!(db.status_lines().contains("retired"));
}

#[test]
fn an_sa_in_use_stays_and_policies_come_and_go_with_their_routes() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let e = ask(&mut db, "sa del 0x1001");
    assert!(!e.ok && e.text.contains("in use by policy 0"), "{e:?}");
    let p = "[[policy]]\ndir = \"out\"\nsrc = \"10.1.0.0/16\"\ndst = \"10.9.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n";
    let added = ask(&mut db, &format!("policy add position=0\n{p}"));
    assert!(
        added.ok && added.text.contains("added policy 2"),
        "{added:?}"
    );
    let wrong_way = ask(
        &mut db,
        "policy add\n[[policy]]\ndir = \"in\"\nsrc = \"10.9.0.0/16\"\ndst = \"10.1.0.0/16\"\naction = \"protect\"\nsa = [0x1001]\n",
    );
    assert!(
        !wrong_way.ok && wrong_way.text.contains("not an in SA"),
        "{wrong_way:?}"
    );
    let list = db.policy_list();
    let first_out = list.lines().nth(1).unwrap();
    assert!(first_out.starts_with("2 "), "put first: {list}");
    assert!(
        ask(&mut db, "policy set 2 0x2001")
            .text
            .contains("not an out SA")
    );
    assert!(ask(&mut db, "policy del 2").ok);
    assert!(!ask(&mut db, "policy del 2").ok);
    assert!(ask(&mut db, "policy del 0").ok);
    assert!(
        ask(&mut db, "sa del 0x1001").ok,
        "no policy names it any more"
    );
    assert!(db.sa_list().lines().all(|l| !l.contains("0x00001001")));
    drop(db);
    assert_eq!(
        r.routes.0,
        Vec::<Cidr>::new(),
        "the routes of both out policies went with them"
    );
    assert_eq!(out_spis(&r.engine), BTreeSet::new());
}

#[test]
fn no_list_shows_a_key() {
    let mut r = rig();
    let db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let text = format!("{}{}{}", db.sa_list(), db.policy_list(), db.status_lines());
    for k in [K1, K2] {
        assert!(!text.contains(&k[..16]), "{text}");
    }
    assert!(
        text.contains("aes-gcm-128") && text.contains("192.0.2.1 -> 192.0.2.2"),
        "{text}"
    );
}

pub(crate) fn negotiated(
    spi_in: u32,
    spi_out: u32,
    key_in: &str,
    key_out: &str,
) -> ([SaSpec; 2], Vec<PolicySpec>) {
    use espo_ike::child::{DirectionKeys, NegotiatedChild};
    use espo_ike::ts::TsSpec;
    let ts = |s: &str| match s.parse::<TsSpec>().unwrap() {
        TsSpec::Range(r) => r,
        TsSpec::Dynamic { .. } => unreachable!(),
    };
    let keys = |k: &str| DirectionKeys {
        key: espo_ipsec::crypto::SecretKey::from_hex(k).unwrap(),
        integrity_key: None,
    };
    let child = NegotiatedChild {
        spi_in,
        spi_out,
        encryption: espo_ipsec::crypto::EncryptionAlgorithm::AesGcm128,
        integrity: None,
        esn: false,
        keys_in: keys(key_in),
        keys_out: keys(key_out),
        local: "192.0.2.1".parse().unwrap(),
        remote: "192.0.2.2".parse().unwrap(),
        encap: None,
        local_ts: vec![ts("10.1.7.0/24")],
        remote_ts: vec![ts("10.2.7.0/24")],
        replay_window: 64,
        lifetime: Default::default(),
    };
    (child.sa_specs().unwrap(), child.policy_specs().unwrap())
}

#[test]
fn a_negotiated_child_sa_goes_in_front_and_leaves_no_state_behind() {
    let mut r = rig();
    let mut db = live(&r.config, &r.engine, &r.keeper, &mut r.routes);
    let (sas, policies) = negotiated(0xc001, 0xd001, K3, K4);
    let ids = db.install_negotiated(sas, policies, "site-b/net").unwrap();
    assert_eq!(ids.len(), 2);
    assert!(in_spis(&r.engine).contains(&0xc001));
    assert!(out_spis(&r.engine).contains(&0xd001));
    assert_eq!(db.policies(Direction::Out)[0].id, ids[0]);
    assert_eq!(db.policies(Direction::In)[0].id, ids[1]);
    assert_eq!(db.policies(Direction::Out)[0].spec.sa, vec![0xd001]);
    // Fresh keys: no state file was written for them.
    let files: Vec<_> = std::fs::read_dir(r._dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| !f.contains("c001") && !f.contains("d001")),
        "{files:?}"
    );
    // The same SPIs or keys again are refused, and nothing of the attempt stays.
    let before = db.policies(Direction::Out).len();
    let (sas, policies) = negotiated(
        0xc002,
        0xd002,
        K3,
        "0505050505050505050505050505050505050505",
    );
    assert!(db.install_negotiated(sas, policies, "again").is_err());
    assert_eq!(db.policies(Direction::Out).len(), before);
    assert!(!in_spis(&r.engine).contains(&0xc002));
    assert!(!out_spis(&r.engine).contains(&0xd002));
    db.uninstall_negotiated(
        (0xc001, "192.0.2.1".parse().unwrap()),
        (0xd001, "192.0.2.2".parse().unwrap()),
        &ids,
        "site-b/net",
    );
    assert!(!in_spis(&r.engine).contains(&0xc001));
    assert!(!out_spis(&r.engine).contains(&0xd001));
    assert!(
        db.policies(Direction::Out)
            .iter()
            .all(|p| !ids.contains(&p.id))
    );
    // The configured tunnel is untouched.
    assert!(out_spis(&r.engine).contains(&0x1001) && in_spis(&r.engine).contains(&0x2001));
}
