//! The tests' lab: [`espo_harness::netlab`] (network namespaces joined by veth pairs, torn
//! down when dropped — on success, on a failed assertion, on a panic), with every failure
//! a panic naming what failed, its scratch directory under the test target's, and what only
//! tests need.
//!
//! Code runs inside a namespace on a thread that `setns`es into it ([`Lab::run_in`]):
//! std::net sockets opened on that thread live in the namespace. That keeps the traffic
//! generators ordinary Rust in the test itself, with their assertions and timeouts, and
//! needs no helper binary to build and find.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use espo_harness::netlab;
use nix::sched::{CloneFlags, setns};

pub use netlab::Gateway;

/// Why the namespace tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    netlab::skip_reason().map(|why| format!("{why} (CI runs as root)"))
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
    pub inner: netlab::Lab,
    pub dir: PathBuf,
}

/// `result`, or a panic with its error.
fn ok<T>(result: std::io::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        let prefix = netlab::prefix(tag, std::process::id());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("netns-{prefix}"));
        // Left by an earlier run of a process with the same id.
        let _ = std::fs::remove_dir_all(&dir);
        let inner = ok(netlab::Lab::new(
            tag,
            &dir,
            Path::new(env!("CARGO_BIN_EXE_espo")),
        ));
        Lab { inner, dir }
    }

    /// The full name of namespace or interface `short` in this lab.
    pub fn name(&self, short: &str) -> String {
        self.inner.name(short)
    }

    /// Creates namespace `short` with loopback up; returns its full name.
    pub fn ns(&mut self, short: &str) -> String {
        ok(self.inner.ns(short))
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        ok(self.inner.ip(ns, args))
    }

    pub fn sysctl(&self, ns: &str, key: &str, value: &str) {
        ok(self.inner.sysctl(ns, key, value))
    }

    /// A veth pair between `ns_a` (interface `short_a`) and `ns_b` (`short_b`), both up;
    /// returns the two full interface names.
    pub fn link(&self, ns_a: &str, short_a: &str, ns_b: &str, short_b: &str) -> (String, String) {
        ok(self.inner.link(ns_a, short_a, ns_b, short_b))
    }

    /// Adds an address (IPv6 without duplicate address detection, so it is usable at once).
    pub fn addr(&self, ns: &str, dev: &str, cidr: &str) {
        ok(self.inner.addr(ns, dev, cidr))
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
        ok(self.inner.espo_run(ns, name, config))
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
        self.inner.adopt(child);
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
        self.inner.adopt(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "espo card serve did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        socket
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
        ok(self.inner.kill9(gw))
    }

    pub fn log(&self, name: &str) -> String {
        self.inner.log(name)
    }

    /// `espo status` of a running gateway.
    pub fn status(&self, gw: &Gateway) -> String {
        ok(self.inner.status(gw))
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
        ok(self.inner.stop(gw))
    }

    /// Waits (5 s at most) for a gateway to exit; returns its status and what it printed.
    pub fn wait_exit(&self, gw: &Gateway) -> (std::process::ExitStatus, String) {
        ok(self.inner.wait_exit(gw, Duration::from_secs(5)))
    }
}

pub use netlab::esp_in_udp;

/// Sets `key = value` in the `[gateway]` section of a configuration (replacing the line if
/// the key is there).
pub fn set_gateway_field(config: &str, key: &str, value: &str) -> String {
    netlab::set_gateway_field(config, key, value).expect("configuration has no [gateway] section")
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
    netlab::stat(status, direction, name)
        .unwrap_or_else(|| panic!("no {name} on the {direction} line of {status}"))
}

/// The system calls of one direction, from the `system calls: reads R (…), writes W (…)`
/// line under its counters: (reads, writes), 0 for one not shown.
pub fn system_calls(status: &str, direction: &str) -> (u64, u64) {
    netlab::system_calls(status, direction)
        .unwrap_or_else(|| panic!("no {direction} line in {status}"))
}
