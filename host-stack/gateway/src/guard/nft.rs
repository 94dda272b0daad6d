//! The guard table in the kernel, through the `nft` command: installed and replaced in one
//! transaction (`nft -f -`), listed, read (`nft -j list counters`) and deleted.
//!
//! espo talks to nf_tables through `nft` rather than over netlink itself: nft is the
//! reference encoder of nf_tables' netlink messages (expressions, sets, batches), a
//! whole file is one atomic kernel transaction, and the rules espo installs are the
//! readable text `espo guard rules` prints and an administrator can check with
//! `nft list table`. What it costs is one process per operation — at start, at stop, and
//! per `espo status` — and a dependency on the nftables package, which espo names when it
//! is missing.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::Value;

use super::GuardDb;
use super::{GuardError, counter_policy, table_spec};
use espo_config::GatewayConfig;
use espo_ipsec::spec::Direction;

/// nft's words for a table that does not exist (ENOENT).
const NO_SUCH_TABLE: &str = "No such file or directory";
/// Policies of a direction whose counters the guard's status lists each, zeros included.
pub const LISTED_POLICIES: usize = 16;

/// Runs `nft ARGS` with `input` on its standard input; returns its standard output.
fn nft(action: &str, args: &[&str], input: Option<&str>) -> Result<String, GuardError> {
    let mut cmd = Command::new("nft");
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => GuardError::NftMissing,
        _ => GuardError::Spawn {
            action: action.to_owned(),
            source,
        },
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error shows as nft's own complaint about its input below.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| GuardError::Spawn {
            action: action.to_owned(),
            source,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    Err(GuardError::Nft {
        action: action.to_owned(),
        message: if message.is_empty() {
            format!("exit status {}", out.status)
        } else {
            message
        },
    })
}

/// The table's current text (`nft list table`), or `None` when it is not installed.
pub fn table_text(table: &str) -> Result<Option<String>, GuardError> {
    let spec = table_spec(table);
    match nft(
        &format!("list table {spec}"),
        &["list", "table", "inet", table],
        None,
    ) {
        Ok(text) => Ok(Some(text)),
        Err(GuardError::Nft { message, .. }) if message.contains(NO_SUCH_TABLE) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the table is installed: `nft list tables`, whose answer is as short with a
/// thousand rules as with none.
fn table_exists(table: &str) -> Result<bool, GuardError> {
    let listed = nft("list tables", &["list", "tables", "inet"], None)?;
    let line = format!("table inet {table}");
    Ok(listed.lines().any(|l| l.trim() == line))
}

/// Applies an nft file as one transaction.
fn apply(action: &str, text: &str) -> Result<(), GuardError> {
    nft(action, &["-f", "-"], Some(text)).map(drop)
}

/// Deletes the table; `false` when it was not there.
pub fn delete(table: &str) -> Result<bool, GuardError> {
    let action = format!("delete table {}", table_spec(table));
    match nft(&action, &["delete", "table", "inet", table], None) {
        Ok(_) => Ok(true),
        Err(GuardError::Nft { message, .. }) if message.contains(NO_SUCH_TABLE) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Packets counted by each of the table's named counters, in the kernel's order.
pub fn counters(table: &str) -> Result<Vec<(String, u64)>, GuardError> {
    let action = format!("list the counters of table {}", table_spec(table));
    let text = nft(
        &action,
        &["-j", "list", "counters", "table", "inet", table],
        None,
    )?;
    parse_counters(&text).map_err(|message| GuardError::Answer { action, message })
}

/// Reads `nft -j list counters` output: `{"nftables": [{"counter": {"name", "packets"}}]}`.
pub fn parse_counters(json: &str) -> Result<Vec<(String, u64)>, String> {
    let root: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = root
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no `nftables` array")?;
    let mut out = Vec::new();
    for counter in items.iter().filter_map(|i| i.get("counter")) {
        let name = counter.get("name").and_then(Value::as_str);
        let packets = counter.get("packets").and_then(Value::as_u64);
        match (name, packets) {
            (Some(n), Some(p)) => out.push((n.to_owned(), p)),
            _ => return Err(format!("a counter without name or packets: {counter}")),
        }
    }
    Ok(out)
}

/// The guard of a running `espo run`. Dropping it leaves the table in place — a crash
/// must not open the way for cleartext; [`Guard::remove`] takes it away on a clean stop.
#[derive(Debug)]
pub struct Guard {
    table: String,
    /// The table this one replaced (an earlier espo's that did not stop cleanly), as nft
    /// listed it, to put back should this start fail.
    previous: Option<String>,
    /// The rules last applied: an update to the same rules is not made (a rekey changes
    /// SPIs, which no rule names), so the table and its counters stay as they are.
    applied: Mutex<String>,
}

impl Guard {
    /// Installs the guard for the SAs and policies of `db` on outside interface `port`,
    /// replacing a table of the same name in the same transaction.
    pub fn install(db: &GuardDb, gw: &GatewayConfig, port: &str) -> Result<Guard, GuardError> {
        let rules = super::ruleset(db, gw, port)?;
        let previous = table_text(&rules.table)?;
        apply(
            &format!("install table {}", table_spec(&rules.table)),
            &rules.replace_transaction(),
        )?;
        Ok(Guard {
            table: rules.table,
            previous,
            applied: Mutex::new(rules.text),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Replaces the rules with those of `db` (the SAs or policies changed), in one
    /// transaction: the old rules hold until the new ones do. Rules the same as those in
    /// place are left alone (counters kept) while the table is there; a table deleted by
    /// hand since is put back.
    pub fn update(&self, db: &GuardDb, gw: &GatewayConfig, port: &str) -> Result<(), GuardError> {
        let rules = super::ruleset(db, gw, port)?;
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if kernel_part(&applied).eq(kernel_part(&rules.text)) && table_exists(&self.table)? {
            return Ok(());
        }
        apply(
            &format!("update table {}", table_spec(&rules.table)),
            &rules.replace_transaction(),
        )?;
        *applied = rules.text;
        Ok(())
    }

    /// Removes the table (a clean stop).
    pub fn remove(self) -> Result<(), GuardError> {
        delete(&self.table).map(drop)
    }

    /// Undoes [`Guard::install`] after a start that failed: the table it replaced comes
    /// back (it still guards for the espo that left it), or the table goes.
    pub fn undo(self) -> Result<(), GuardError> {
        let spec = table_spec(&self.table);
        match &self.previous {
            Some(text) => apply(
                &format!("put back table {spec}"),
                &format!("table {spec} {{ }}\ndelete table {spec}\n{text}"),
            ),
            None => delete(&self.table).map(drop),
        }
    }
}

/// What of a ruleset's text the kernel holds: all but the comment lines (nft keeps none;
/// the header names where the rules came from, the configuration or the live database).
fn kernel_part(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.lines().filter(|l| !l.trim_start().starts_with('#'))
}

/// What the guard of one espo instance is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardState {
    /// Installed, with the packets each policy's counter has dropped.
    Installed {
        counters: Vec<(String, u64)>,
    },
    NotInstalled,
}

impl GuardState {
    pub fn read(table: &str) -> Result<GuardState, GuardError> {
        match counters(table) {
            Ok(counters) => Ok(GuardState::Installed { counters }),
            Err(GuardError::Nft { message, .. }) if message.contains(NO_SUCH_TABLE) => {
                Ok(GuardState::NotInstalled)
            }
            Err(e) => Err(e),
        }
    }

    /// Packets dropped in one direction, in all.
    pub fn dropped(&self, dir: Direction) -> u64 {
        match self {
            GuardState::Installed { counters } => counters
                .iter()
                .filter(|(name, _)| counter_policy(name).is_some_and(|(d, _)| d == dir))
                .map(|(_, n)| n)
                .sum(),
            GuardState::NotInstalled => 0,
        }
    }

    /// The guard's lines of `espo status` and `espo guard status`: each direction's drops,
    /// and per policy — each of up to [`LISTED_POLICIES`] in a direction, beyond that each
    /// that dropped a packet and a count of the others.
    pub fn render(&self, table: &str) -> String {
        let spec = table_spec(table);
        let GuardState::Installed { counters } = self else {
            return format!(
                "guard: table {spec} is not installed: nothing keeps cleartext of the protected \
                 traffic off the outside interface\n"
            );
        };
        let mut out = format!("guard: table {spec} installed (nftables)\n");
        for (dir, name) in [(Direction::In, "inbound"), (Direction::Out, "outbound")] {
            let of_dir: Vec<(usize, u64)> = counters
                .iter()
                .filter_map(|(c, n)| match counter_policy(c) {
                    Some((d, index)) if d == dir => Some((index, *n)),
                    _ => None,
                })
                .collect();
            // Every policy while they are few; of a long database (a hub's), those that
            // dropped anything, and how many did not.
            let all = of_dir.len() <= LISTED_POLICIES;
            let mut per_policy: Vec<String> = of_dir
                .iter()
                .filter(|&&(_, n)| all || n > 0)
                .map(|(index, n)| format!("policy[{index}] {n}"))
                .collect();
            let quiet = of_dir.len() - per_policy.len();
            if quiet > 0 {
                per_policy.push(format!("{quiet} other policies 0"));
            }
            out.push_str(&format!(
                "  {name} cleartext dropped: {} packets",
                self.dropped(dir)
            ));
            if !per_policy.is_empty() {
                out.push_str(&format!(" ({})", per_policy.join(", ")));
            }
            out.push('\n');
        }
        out
    }
}

/// The guard's lines of `espo status` for the gateway of `gw`: its state and counters, or
/// why they could not be read.
pub fn status_text(gw: &GatewayConfig) -> String {
    let table = super::table_name(&gw.tun);
    match GuardState::read(&table) {
        Ok(state) => state.render(&table),
        Err(e) => format!("guard: reading table {} failed: {e}\n", table_spec(&table)),
    }
}
