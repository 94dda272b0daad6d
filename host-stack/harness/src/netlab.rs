//! A lab of network namespaces joined by veth pairs, for measurements and tests of `espo
//! run` between real Linux network stacks: built on demand, torn down when dropped (every
//! process it started killed, every namespace deleted). Names carry a tag and the process
//! id, so labs of different processes coexist; nothing is configured outside the
//! namespaces (veth ends are created directly inside them), so no traffic leaves.
//!
//! Everything is done with `ip` (iproute2) and `sysctl`; a command that fails is an error
//! naming the command and what it printed.
//!
//! The topologies ([`gateway_to_gateway`] and the others) are addressed as the
//! configurations in examples/ expect:
//!
//! ```text
//! gateway-to-gateway:  hA ── gwA ══ gwB ── hB     10.1.0.0/16, fd00:1::/48 | 10.2.0.0/16, fd00:2::/48
//! server-to-gateway:        srv ══ gw ── hB       srv's inner address 10.9.0.1 (on its TUN)
//! server-to-server:        srvA ══ srvB           inner = outer: 192.0.2.1 <-> 192.0.2.2
//! ```
//! `══` is the outside link (192.0.2.0/24, IPv6 off so that only tunnel traffic and ARP
//! cross it).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a started gateway has to answer on its status socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a lab cannot be built here, if it cannot: not root, no TUN device, no `ip`.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root: network namespaces, TUN devices and raw sockets need root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) is not installed".into()),
    }
}

/// What the names of the namespaces and interfaces of a lab tagged `tag` in process `pid`
/// start with (the process id keeps labs of different processes apart).
pub fn prefix(tag: &str, pid: u32) -> String {
    format!("{tag}{}", pid % 100_000)
}

/// Runs `cmd`; its standard output, or an error naming the command and its complaint.
pub fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The lab: its namespaces, the processes it started, and a scratch directory for their
/// configurations, logs and sockets.
pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    children: Mutex<Vec<Child>>,
    dir: PathBuf,
    espo: PathBuf,
}

/// A gateway the lab started (`espo run`, or another program taking `--config`).
#[derive(Debug)]
pub struct Gateway {
    /// Its status socket.
    pub socket: PathBuf,
    pub pid: u32,
    index: usize,
}

impl Gateway {
    /// The gateway of the lab that runs under `name` now (after restarts, the latest): a
    /// handle for `espo status` and the control commands only.
    pub fn at(lab: &Lab, name: &str) -> Gateway {
        Gateway {
            socket: lab.dir.join(format!("{name}.sock")),
            pid: 0,
            index: usize::MAX,
        }
    }
}

impl Lab {
    /// An empty lab named by `tag` (at most 6 characters: interface names stay within 15),
    /// its scratch directory `dir` (created, or an empty one; made mode 0700: it holds
    /// status sockets, and espo refuses a directory others can write; a directory with
    /// anything in it is refused, never emptied), `espo` the binary its gateways run.
    pub fn new(tag: &str, dir: &Path, espo: &Path) -> io::Result<Lab> {
        let prefix = prefix(tag, std::process::id());
        if prefix.len() > 11 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("lab tag {tag:?} too long: interface names must stay within 15 characters"),
            ));
        }
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", dir.display()));
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{}: not empty (the lab needs a directory of its own)",
                            dir.display()
                        ),
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(named)?
            }
            Err(e) => return Err(named(e)),
        }
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Lab {
            prefix,
            namespaces: Vec::new(),
            children: Mutex::new(Vec::new()),
            dir: dir.to_path_buf(),
            espo: espo.to_path_buf(),
        })
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The espo binary the lab's gateways run.
    pub fn espo(&self) -> &Path {
        &self.espo
    }

    /// The full name of namespace or interface `short` in this lab.
    pub fn name(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    /// Creates namespace `short` with loopback up; returns its full name.
    pub fn ns(&mut self, short: &str) -> io::Result<String> {
        let name = self.name(short);
        // A namespace left behind by a killed run of a process with the same id.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run(Command::new("ip").args(["netns", "add", &name]))?;
        self.namespaces.push(name.clone());
        self.ip(&name, &["link", "set", "lo", "up"])?;
        // No duplicate address detection on the interfaces made later: their link-local
        // addresses are usable at once instead of after a second or two.
        self.sysctl(&name, "net.ipv6.conf.default.accept_dad", "0")?;
        self.sysctl(&name, "net.ipv6.conf.all.accept_dad", "0")?;
        Ok(name)
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> io::Result<String> {
        run(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> io::Result<()> {
        run(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("{key}={value}"),
        ]))
        .map(drop)
    }

    /// A veth pair between `ns_a` (interface `short_a`) and `ns_b` (`short_b`), both up;
    /// returns the two full interface names.
    pub fn link(
        &self,
        ns_a: &str,
        short_a: &str,
        ns_b: &str,
        short_b: &str,
    ) -> io::Result<(String, String)> {
        let (a, b) = (self.name(short_a), self.name(short_b));
        run(Command::new("ip").args([
            "link", "add", &a, "netns", ns_a, "type", "veth", "peer", "name", &b, "netns", ns_b,
        ]))?;
        self.ip(ns_a, &["link", "set", &a, "up"])?;
        self.ip(ns_b, &["link", "set", &b, "up"])?;
        Ok((a, b))
    }

    /// Adds an address (IPv6 without duplicate address detection, so it is usable at once).
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) -> io::Result<()> {
        if cidr.contains(':') {
            self.ip(ns, &["addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            self.ip(ns, &["addr", "add", cidr, "dev", dev])?;
        }
        Ok(())
    }

    /// Takes `child` into the lab, which kills it when dropped; returns its index.
    pub fn adopt(&self, child: Child) -> usize {
        let mut children = self.children();
        children.push(child);
        children.len() - 1
    }

    /// Starts `espo run` in `ns` on `config` and waits until it answers; see
    /// [`start_gateway`](Self::start_gateway).
    pub fn espo_run(&self, ns: &str, name: &str, config: &str) -> io::Result<Gateway> {
        let espo = self.espo.clone();
        self.start_gateway(ns, name, config, &espo, &["run"])
    }

    /// Starts `program ARGS... --config FILE` in `ns` on `config` (TOML text; its
    /// `status_socket` and `state_dir` are replaced by ones in the lab's directory, the
    /// same across restarts of the same `name`) and waits until its status socket answers.
    /// Its standard error goes to `NAME.log` in the lab's directory.
    pub fn start_gateway(
        &self,
        ns: &str,
        name: &str,
        config: &str,
        program: &Path,
        args: &[&str],
    ) -> io::Result<Gateway> {
        let socket = self.dir.join(format!("{name}.sock"));
        let config = set_gateway_field(
            config,
            "status_socket",
            &format!("\"{}\"", socket.display()),
        )
        .and_then(|c| {
            set_gateway_field(
                &c,
                "state_dir",
                &format!("\"{}\"", self.dir.join(format!("{name}-state")).display()),
            )
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the configuration of gateway {name} has no [gateway] section"),
            )
        })?;
        // Mode 0600: it holds the SAs' keys.
        let path = self.dir.join(format!("{name}.toml"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(config.as_bytes())?;
        let log = File::create(self.dir.join(format!("{name}.log")))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting gateway {name}: {e}")))?;
        let pid = child.id();
        let index = self.adopt(child);
        let gw = Gateway { socket, pid, index };
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&gw.socket).is_ok() {
                return Ok(gw);
            }
            if let Ok(Some(status)) = self.children()[gw.index].try_wait() {
                return Err(io::Error::other(format!(
                    "gateway {name} exited with {status}: {}",
                    self.log(name)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "gateway {name} did not come up within {} s: {}",
                START_TIMEOUT.as_secs(),
                self.log(name)
            ),
        ))
    }

    /// What gateway `name` wrote to its standard error so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// `espo status` of a running gateway.
    pub fn status(&self, gw: &Gateway) -> io::Result<String> {
        run(Command::new(&self.espo)
            .args(["status", "--socket"])
            .arg(&gw.socket))
    }

    /// Stops a gateway with SIGTERM and returns what it printed (the final counters); an
    /// error when it does not exit within 5 s or exits with a failure.
    pub fn stop(&self, gw: &Gateway) -> io::Result<String> {
        kill(Pid::from_raw(gw.pid as i32), Signal::SIGTERM).map_err(io::Error::from)?;
        let (status, out) = self.wait_exit(gw, Duration::from_secs(5))?;
        if !status.success() {
            return Err(io::Error::other(format!("espo run exited with {status}")));
        }
        Ok(out)
    }

    /// Kills a gateway with SIGKILL (no clean-up of its own) and reaps it.
    pub fn kill9(&self, gw: &Gateway) -> io::Result<()> {
        kill(Pid::from_raw(gw.pid as i32), Signal::SIGKILL).map_err(io::Error::from)?;
        if let Some(child) = self.children().get_mut(gw.index) {
            let _ = child.wait();
        }
        Ok(())
    }

    /// Waits (`timeout` at most) for a gateway to exit; its status and what it printed.
    pub fn wait_exit(&self, gw: &Gateway, timeout: Duration) -> io::Result<(ExitStatus, String)> {
        let mut children = self.children();
        let child = children.get_mut(gw.index).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "not a gateway this lab started")
        })?;
        // Read while it runs: a gateway whose final report fills the pipe would otherwise
        // wait for a reader that waits for it to exit.
        let reader = child.stdout.take().map(|mut stdout| {
            std::thread::spawn(move || {
                let mut out = String::new();
                let _ = stdout.read_to_string(&mut out);
                out
            })
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait()? {
                Some(status) => break status,
                None if Instant::now() > deadline => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("gateway {} did not exit within {timeout:?}", gw.pid),
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let out = reader.and_then(|r| r.join().ok()).unwrap_or_default();
        Ok((status, out))
    }

    fn children(&self) -> MutexGuard<'_, Vec<Child>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.children().iter_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Debian's charon (strongswan-charon), with its userspace ESP (kernel-libipsec: a TUN
/// device of its own, ESP always in UDP 4500).
pub const CHARON: &str = "/usr/lib/ipsec/charon";

/// A strongSwan daemon (charon) in a namespace of the lab: a private /run (its pid file's
/// path is compiled in), its own vici socket, strongswan.conf and swanctl directory under
/// the lab's directory. Stopped with SIGTERM when dropped (it then removes its TUN device
/// and routes), killed if it does not go within 3 s.
pub struct Swan {
    dir: PathBuf,
    child: Option<Child>,
}

impl Swan {
    /// Starts charon in `ns` with `swanctl_conf` (swanctl.conf text) and loads it; its
    /// files go to `NAME/` in the lab's directory.
    pub fn start(lab: &Lab, ns: &str, name: &str, swanctl_conf: &str) -> io::Result<Swan> {
        if !Path::new(CHARON).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{CHARON} missing (Debian: strongswan-charon strongswan-swanctl libcharon-extra-plugins)"
                ),
            ));
        }
        let dir = lab.dir.join(name);
        for sub in [
            "x509", "x509ca", "private", "pubkey", "rsa", "ecdsa", "pkcs8",
        ] {
            std::fs::create_dir_all(dir.join("swanctl").join(sub))?;
        }
        let vici = dir.join("charon.vici");
        std::fs::write(
            dir.join("strongswan.conf"),
            format!(
                "charon {{
  load_modular = no
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints gmp sha1 sha2 hmac aes gcm kdf kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = yes
  retransmit_tries = 3
  filelog {{
    swan {{
      path = {log}
      time_format = %T
      append = no
      flush_line = yes
      default = 1
      ike = 2
      chd = 2
      cfg = 2
    }}
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
  plugins {{
    vici {{
      socket = unix://{vici}
    }}
  }}
}}
swanctl {{
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints gmp
}}
",
                log = dir.join("charon.log").display(),
                vici = vici.display()
            ),
        )?;
        let mut conf = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join("swanctl/swanctl.conf"))?;
        conf.write_all(swanctl_conf.as_bytes())?;
        let out = File::create(dir.join("charon.stdout"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg("env")
            .arg(format!(
                "STRONGSWAN_CONF={}",
                dir.join("strongswan.conf").display()
            ))
            .args([
                "sh",
                "-c",
                &format!("mount -t tmpfs -o mode=0755 swan-run /run && exec {CHARON}"),
            ])
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("starting charon in {ns}: {e}")))?;
        let swan = Swan {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while !swan.swanctl(&["--stats"])?.0 {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("charon did not come up: {}", swan.log()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let (ok, out) = swan.swanctl(&["--load-all"])?;
        if !ok {
            return Err(io::Error::other(format!("swanctl --load-all: {out}")));
        }
        Ok(swan)
    }

    /// `swanctl ARGS` against this charon (30 s at most): whether it succeeded, and what
    /// it printed.
    pub fn swanctl(&self, args: &[&str]) -> io::Result<(bool, String)> {
        let out = Command::new("timeout")
            .arg("30")
            .arg("swanctl")
            .args(args)
            .arg("--uri")
            .arg(format!("unix://{}", self.dir.join("charon.vici").display()))
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .env("SWANCTL_DIR", self.dir.join("swanctl"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("swanctl: {e}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok((out.status.success(), text))
    }

    /// charon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    /// The IKE and CHILD_SAs charon lists (`swanctl --list-sas`).
    pub fn sas(&self) -> io::Result<String> {
        Ok(self.swanctl(&["--list-sas"])?.1)
    }

    /// The process id of charon (`ip netns exec`, `env` and `sh` exec into it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills charon with SIGKILL (no clean-up of its own) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Swan {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM lets charon remove its TUN device and routes.
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Namespaces and the outside link of a topology.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Namespace of the left tunnel endpoint and the name of its outside interface.
    pub left: String,
    pub left_out: String,
    pub right: String,
    pub right_out: String,
    /// The hosts behind the endpoints (the endpoint itself for a server).
    pub left_host: String,
    pub right_host: String,
}

fn outside_link(lab: &mut Lab, left: &str, right: &str) -> io::Result<(String, String)> {
    let (l, r) = lab.link(left, "w0", right, "w1")?;
    for (ns, dev) in [(left, &l), (right, &r)] {
        lab.sysctl(ns, &format!("net.ipv6.conf.{dev}.disable_ipv6"), "1")?;
    }
    lab.addr(left, &l, "192.0.2.1/24")?;
    lab.addr(right, &r, "192.0.2.2/24")?;
    Ok((l, r))
}

/// A host behind a gateway: `site` is 1 or 2 (10.{site}.0.0/24, fd00:{site}::/64).
pub fn host_behind(lab: &mut Lab, gw: &str, host: &str, site: u8, short: &str) -> io::Result<()> {
    let (g, h) = lab.link(gw, &format!("{short}g"), host, &format!("{short}h"))?;
    lab.addr(gw, &g, &format!("10.{site}.0.1/24"))?;
    lab.addr(gw, &g, &format!("fd00:{site}::1/64"))?;
    lab.addr(host, &h, &format!("10.{site}.0.2/24"))?;
    lab.addr(host, &h, &format!("fd00:{site}::2/64"))?;
    lab.ip(
        host,
        &["route", "add", "default", "via", &format!("10.{site}.0.1")],
    )?;
    let via6 = format!("fd00:{site}::1");
    lab.ip(host, &["-6", "route", "add", "default", "via", &via6])?;
    lab.sysctl(gw, "net.ipv4.ip_forward", "1")?;
    lab.sysctl(gw, "net.ipv6.conf.all.forwarding", "1")
}

/// hA ── gwA ══ gwB ── hB; with `card`, gwB's outside interface is left without an
/// address (the card's port: espo answers ARP for 192.0.2.2 itself).
fn gateways(lab: &mut Lab, card: bool) -> io::Result<Topology> {
    let (ha, gwa, gwb, hb) = (lab.ns("hA")?, lab.ns("gwA")?, lab.ns("gwB")?, lab.ns("hB")?);
    let (l, r) = if card {
        let (l, r) = lab.link(&gwa, "w0", &gwb, "w1")?;
        lab.sysctl(&gwa, &format!("net.ipv6.conf.{l}.disable_ipv6"), "1")?;
        lab.addr(&gwa, &l, "192.0.2.1/24")?;
        (l, r)
    } else {
        outside_link(lab, &gwa, &gwb)?
    };
    host_behind(lab, &gwa, &ha, 1, "a")?;
    host_behind(lab, &gwb, &hb, 2, "b")?;
    Ok(Topology {
        left: gwa,
        left_out: l,
        right: gwb,
        right_out: r,
        left_host: ha,
        right_host: hb,
    })
}

pub fn gateway_to_gateway(lab: &mut Lab) -> io::Result<Topology> {
    gateways(lab, false)
}

/// Gateway-to-gateway with gwB on the card: its outside interface belongs to the card and
/// has no address (espo answers ARP for 192.0.2.2 itself).
pub fn gateway_to_gateway_card(lab: &mut Lab) -> io::Result<Topology> {
    gateways(lab, true)
}

pub fn server_to_gateway(lab: &mut Lab) -> io::Result<Topology> {
    let (srv, gw, hb) = (lab.ns("srv")?, lab.ns("gw")?, lab.ns("hB")?);
    let (l, r) = outside_link(lab, &srv, &gw)?;
    host_behind(lab, &gw, &hb, 2, "b")?;
    Ok(Topology {
        left: srv.clone(),
        left_out: l,
        right: gw,
        right_out: r,
        left_host: srv,
        right_host: hb,
    })
}

/// Two servers, each its own host: `a` with outside interface `l`, `b` with `r`.
fn servers(a: String, l: String, b: String, r: String) -> Topology {
    Topology {
        left: a.clone(),
        left_out: l,
        right: b.clone(),
        right_out: r,
        left_host: a,
        right_host: b,
    }
}

pub fn server_to_server(lab: &mut Lab) -> io::Result<Topology> {
    let (a, b) = (lab.ns("srvA")?, lab.ns("srvB")?);
    let (l, r) = outside_link(lab, &a, &b)?;
    Ok(servers(a, l, b, r))
}

/// Server-to-server over IPv6: 2001:db8::1 <-> 2001:db8::2 (inner = outer).
pub fn server_to_server_v6(lab: &mut Lab) -> io::Result<Topology> {
    let (a, b) = (lab.ns("srvA")?, lab.ns("srvB")?);
    let (l, r) = lab.link(&a, "w0", &b, "w1")?;
    lab.addr(&a, &l, "2001:db8::1/64")?;
    lab.addr(&b, &r, "2001:db8::2/64")?;
    Ok(servers(a, l, b, r))
}

/// An espo `[[connection]]` (IKEv2, pre-shared key `psk`) named `name` from 192.0.2.1
/// (site 10.1.0.0/16) to 192.0.2.2 (site 10.2.0.0/16), AES-GCM-128 for IKE and ESP, its
/// CHILD_SA `net` started as `start` says (`start`, `none`, `trap`).
pub fn espo_psk_connection(name: &str, psk: &str, start: &str) -> String {
    format!(
        "[[connection]]
name = \"{name}\"
local_addrs = \"192.0.2.1\"
remote_addrs = \"192.0.2.2\"
proposals = [\"aes128gcm16-prfsha256-x25519\"]
psk = \"{psk}\"

[connection.local]
auth = \"psk\"
id = \"192.0.2.1\"

[connection.remote]
auth = \"psk\"
id = \"192.0.2.2\"

[[connection.child]]
name = \"net\"
local_ts = [\"10.1.0.0/16\"]
remote_ts = [\"10.2.0.0/16\"]
esp_proposals = [\"aes128gcm16\"]
start_action = \"{start}\"
"
    )
}

/// A configuration of AES-GCM-128 SAs with each of them carried in UDP, port 4500 both
/// ways (RFC 3948).
pub fn esp_in_udp(config: &str) -> String {
    config.replace(
        "encryption = \"aes-gcm-128\"",
        "encryption = \"aes-gcm-128\"\nudp_encap = { src_port = 4500, dst_port = 4500 }",
    )
}

/// Sets `key = value` in the `[gateway]` section of a configuration (replacing the line if
/// the key is there); `None` when it has no such section.
pub fn set_gateway_field(config: &str, key: &str, value: &str) -> Option<String> {
    let mut out = String::new();
    let mut in_gateway = false;
    let mut done = false;
    for line in config.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            if in_gateway && !done {
                out.push_str(&format!("{key} = {value}\n"));
                done = true;
            }
            in_gateway = trimmed == "[gateway]";
        }
        if in_gateway && trimmed.starts_with(&format!("{key} ")) {
            out.push_str(&format!("{key} = {value}\n"));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if in_gateway && !done {
        out.push_str(&format!("{key} = {value}\n"));
        done = true;
    }
    done.then_some(out)
}

/// A counter of one direction's line of `espo status` (`outbound: 12 received, 11
/// forwarded (...)`); `None` when there is no such line or counter.
pub fn stat(status: &str, direction: &str, name: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{direction}:")))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches(',') == name)
        .and_then(|w| w[0].parse().ok())
}

/// The system calls of one direction, from the `system calls: reads R (…), writes W (…)`
/// line under its counters in `espo status`: (reads, writes), 0 for one not shown; `None`
/// when there is no line for `direction`.
pub fn system_calls(status: &str, direction: &str) -> Option<(u64, u64)> {
    let lines: Vec<&str> = status.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{direction}:")))?;
    let line = lines[at + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .find_map(|l| l.trim().strip_prefix("system calls:"))
        .unwrap_or("");
    let after = |word: &str| -> u64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == word)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(0)
    };
    Some((after("reads"), after("writes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_fields_are_replaced_or_added_in_their_section() {
        let config = "[device]\nengine = \"software\"\n\n[gateway]\nport = \"eth1\"\nmtu = 1400\n\n[[sa]]\nspi = 1\n";
        let set = set_gateway_field(config, "mtu", "1300").unwrap();
        assert!(set.contains("mtu = 1300\n") && !set.contains("mtu = 1400"));
        let added = set_gateway_field(config, "workers", "1").unwrap();
        let gateway = added.find("[gateway]").unwrap();
        let sa = added.find("[[sa]]").unwrap();
        let at = added.find("workers = 1").unwrap();
        assert!(gateway < at && at < sa, "added inside [gateway]: {added}");
        // The section last in the file.
        let last = set_gateway_field("[gateway]\nport = \"x\"\n", "workers", "2").unwrap();
        assert!(last.ends_with("workers = 2\n"), "{last}");
        assert_eq!(set_gateway_field("[device]\n", "mtu", "1"), None);
    }

    #[test]
    fn status_counters_and_system_calls_are_read() {
        let status = "outbound: 12 received, 11 forwarded (900 bytes), 1 dropped\n  \
                      system calls: reads 4 (3.0 packets each), writes 2 (5.5 packets each)\n\
                      inbound: 7 received, 7 forwarded (500 bytes)\n";
        assert_eq!(stat(status, "outbound", "received"), Some(12));
        assert_eq!(stat(status, "outbound", "forwarded"), Some(11));
        assert_eq!(stat(status, "inbound", "forwarded"), Some(7));
        assert_eq!(stat(status, "inbound", "bogus"), None);
        assert_eq!(stat(status, "sideways", "received"), None);
        assert_eq!(system_calls(status, "outbound"), Some((4, 2)));
        assert_eq!(system_calls(status, "inbound"), Some((0, 0)));
        assert_eq!(system_calls(status, "sideways"), None);
    }
}
