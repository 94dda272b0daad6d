//! A lab of network namespaces joined by veth pairs, built for one test and torn down when
//! it is dropped — on success, on a failed assertion, on a panic. Names carry a per-test
//! tag and the process id, so tests run in parallel; nothing is configured outside the
//! namespaces (veth ends are created directly inside them), so no traffic leaves.
//!
//! Code runs inside a namespace on a thread that `setns`es into it ([`Lab::run_in`]):
//! std::net sockets opened on that thread live in the namespace. That keeps the traffic
//! generators ordinary Rust in the test itself, with their assertions and timeouts, and
//! needs no helper binary to build and find.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Why the namespace tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some(
            "not root: network namespaces, TUN devices and raw sockets need root (CI runs as root)"
                .into(),
        );
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) is not installed".into()),
    }
}

/// Returns a lab, or prints why the test is skipped and returns `None`.
macro_rules! lab_or_skip {
    ($tag:expr) => {
        match lab::skip_reason() {
            Some(why) => {
                eprintln!("skipped: {why}");
                return;
            }
            None => lab::Lab::new($tag),
        }
    };
}
pub(crate) use lab_or_skip;

pub struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    gateways: std::sync::Mutex<Vec<Child>>,
    pub dir: PathBuf,
}

/// A running `espo run`.
pub struct Gateway {
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

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let prefix = format!("{tag}{}", std::process::id() % 100_000);
        assert!(
            prefix.len() <= 11,
            "interface names must stay within 15 characters"
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-{prefix}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        // It holds the gateways' status sockets: espo refuses a directory others can write.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("scratch dir mode");
        Lab {
            prefix,
            namespaces: Vec::new(),
            gateways: std::sync::Mutex::new(Vec::new()),
            dir,
        }
    }

    /// The full name of namespace or interface `short` in this lab.
    pub fn name(&self, short: &str) -> String {
        format!("{}{short}", self.prefix)
    }

    /// Creates namespace `short` with loopback up; returns its full name.
    pub fn ns(&mut self, short: &str) -> String {
        let name = self.name(short);
        // A namespace left behind by a killed run of a process with the same id.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run(Command::new("ip").args(["netns", "add", &name]));
        self.namespaces.push(name.clone());
        self.ip(&name, &["link", "set", "lo", "up"]);
        // No duplicate address detection on the interfaces made later: their link-local
        // addresses are usable at once instead of after a second or two.
        self.sysctl(&name, "net.ipv6.conf.default.accept_dad", "0");
        self.sysctl(&name, "net.ipv6.conf.all.accept_dad", "0");
        name
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        run(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "sysctl",
            "-qw",
            &format!("{key}={value}"),
        ]));
    }

    /// A veth pair between `ns_a` (interface `short_a`) and `ns_b` (`short_b`), both up;
    /// returns the two full interface names.
    pub fn link(&self, ns_a: &str, short_a: &str, ns_b: &str, short_b: &str) -> (String, String) {
        let (a, b) = (self.name(short_a), self.name(short_b));
        run(Command::new("ip").args([
            "link", "add", &a, "netns", ns_a, "type", "veth", "peer", "name", &b, "netns", ns_b,
        ]));
        self.ip(ns_a, &["link", "set", &a, "up"]);
        self.ip(ns_b, &["link", "set", &b, "up"]);
        (a, b)
    }

    /// Adds an address (IPv6 without duplicate address detection, so it is usable at once).
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ip(ns, &["addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.ip(ns, &["addr", "add", cidr, "dev", dev]);
        }
    }

    /// Runs `f` on a thread inside namespace `ns` and returns its result.
    pub fn run_in<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Starts `espo run` in `ns` on `config` (TOML text; its status_socket is replaced by
    /// one in the lab's directory) and waits until it answers `espo status`.
    pub fn espo_run(&self, ns: &str, name: &str, config: &str) -> Gateway {
        self.start_gateway(
            ns,
            name,
            config,
            Path::new(env!("CARGO_BIN_EXE_espo")),
            &["run"],
        )
    }

    /// Starts `espo card serve` (the card model as a vfio-user device, in its own process;
    /// sockets are not in a network namespace) and waits until it listens; its socket and
    /// process id.
    pub fn card_server(&self, name: &str) -> (PathBuf, u32) {
        let socket = self.dir.join(format!("{name}-card"));
        let log = File::create(self.dir.join(format!("{name}-card.log"))).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_espo"))
            .args(["card", "serve", "--socket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("espo card serve starts");
        let pid = child.id();
        self.gateways().push(child);
        let mut port = socket.clone().into_os_string();
        port.push(".port");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() || !Path::new(&port).exists() {
            assert!(Instant::now() < deadline, "espo card serve did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        (socket, pid)
    }

    /// Starts `espo card serve --port IFACE` in `ns`: the card model served over vfio-user,
    /// its Ethernet port attached to interface `iface` there (the card's port is its own:
    /// the gateway opens no socket on it); waits until it listens and returns its socket.
    pub fn card_server_on(&self, ns: &str, name: &str, iface: &str) -> PathBuf {
        let socket = self.dir.join(format!("{name}-card"));
        let log = File::create(self.dir.join(format!("{name}-card.log"))).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(env!("CARGO_BIN_EXE_espo"))
            .args(["card", "serve", "--port", iface, "--socket"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("espo card serve starts");
        self.gateways().push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "espo card serve did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        socket
    }

    /// Starts `program ARGS... --config FILE` in `ns` — `espo run`, or a bench's own
    /// gateway — and waits until its status socket answers.
    pub fn start_gateway(
        &self,
        ns: &str,
        name: &str,
        config: &str,
        program: &Path,
        args: &[&str],
    ) -> Gateway {
        let socket = self.dir.join(format!("{name}.sock"));
        let config = set_gateway_field(
            config,
            "status_socket",
            &format!("\"{}\"", socket.display()),
        );
        // Each gateway keeps its SA state (sequence reservations, replay marks) in the lab,
        // the same directory across restarts of the same name.
        let config = set_gateway_field(
            &config,
            "state_dir",
            &format!("\"{}\"", self.dir.join(format!("{name}-state")).display()),
        );
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, config).expect("config written");
        let log = File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("gateway starts");
        let pid = child.id();
        let index = {
            let mut gateways = self.gateways();
            gateways.push(child);
            gateways.len() - 1
        };
        let gw = Gateway { socket, pid, index };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&gw.socket).is_ok() {
                return gw;
            }
            let exited = self.gateways()[gw.index].try_wait();
            if let Ok(Some(status)) = exited {
                panic!("gateway exited with {status}: {}", self.log(name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("gateway did not come up within 10 s: {}", self.log(name));
    }

    /// Runs `espo ARGS... --socket SOCKET` against a running gateway: whether it succeeded,
    /// its stdout and its stderr.
    pub fn espo(&self, gw: &Gateway, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_espo"))
            .args(args)
            .arg("--socket")
            .arg(&gw.socket)
            .output()
            .expect("espo runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Kills a gateway with SIGKILL (no clean-up of its own) and reaps it.
    pub fn kill9(&self, gw: &Gateway) {
        kill(Pid::from_raw(gw.pid as i32), Signal::SIGKILL).expect("SIGKILL delivered");
        let _ = self.gateways()[gw.index].wait();
    }

    fn gateways(&self) -> std::sync::MutexGuard<'_, Vec<Child>> {
        self.gateways.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// `espo status` of a running gateway.
    pub fn status(&self, gw: &Gateway) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_espo"))
            .args(["status", "--socket"])
            .arg(&gw.socket)
            .output()
            .expect("espo status runs");
        assert!(
            out.status.success(),
            "espo status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `espo status` until `pred` holds (5 s at most); returns the last text.
    pub fn status_until(&self, gw: &Gateway, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.status(gw);
            if pred(&text) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops a gateway with SIGTERM and returns what it printed (the final counters).
    pub fn stop(&self, gw: &Gateway) -> String {
        kill(Pid::from_raw(gw.pid as i32), Signal::SIGTERM).expect("SIGTERM delivered");
        let (status, out) = self.wait_exit(gw);
        assert!(status.success(), "espo run exited with {status}");
        out
    }

    /// Waits (5 s at most) for a gateway to exit; returns its status and what it printed.
    pub fn wait_exit(&self, gw: &Gateway) -> (std::process::ExitStatus, String) {
        let mut gateways = self.gateways();
        let child = &mut gateways[gw.index];
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match child.try_wait().expect("wait") {
                Some(status) => break status,
                None if Instant::now() > deadline => panic!("espo run did not exit within 5 s"),
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        (status, out)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.gateways().iter_mut() {
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

/// A configuration of AES-GCM-128 SAs with each of them carried in UDP, port 4500 both
/// ways (RFC 3948).
pub fn esp_in_udp(config: &str) -> String {
    config.replace(
        "encryption = \"aes-gcm-128\"",
        "encryption = \"aes-gcm-128\"\nudp_encap = { src_port = 4500, dst_port = 4500 }",
    )
}

/// Sets `key = value` in the `[gateway]` section of a configuration (replacing the line if
/// the key is there).
pub fn set_gateway_field(config: &str, key: &str, value: &str) -> String {
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
    assert!(done, "configuration has no [gateway] section");
    out
}

/// An example configuration from examples/, with its outside interface set.
pub fn example(path: &str, outside: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    set_gateway_field(&text, "port", &format!("\"{outside}\""))
}

/// A counter of one direction's line (`outbound: 12 received, 11 forwarded (...)`).
pub fn stat(status: &str, direction: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{direction}:")))
        .unwrap_or_else(|| panic!("no {direction} line in {status}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1].trim_end_matches(',') == name)
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// The system calls of one direction, from the `system calls: reads R (…), writes W (…)`
/// line under its counters: (reads, writes), 0 for one not shown.
pub fn system_calls(status: &str, direction: &str) -> (u64, u64) {
    let lines: Vec<&str> = status.lines().collect();
    let Some(at) = lines
        .iter()
        .position(|l| l.starts_with(&format!("{direction}:")))
    else {
        panic!("no {direction} line in {status}");
    };
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
    (after("reads"), after("writes"))
}
