//! Requests to a running gateway's control socket: `espo status`, `espo sa ...` and
//! `espo policy ...` against `espo run`.
//!
//! A request is UTF-8 text of at most [`MAX_REQUEST_BYTES`]: a command line, then — for the
//! commands that add something — SAs or policies in the configuration file's own syntax
//! (`[[sa]]` or `[[policy]]` entries), validated by the same code and with the same messages
//! as the file; the origin named in them is the request's `source` (the file the client
//! read), so that an error reads like a configuration error. Keys arrive in the request
//! and never leave it: no message echoes them.
//!
//! ```text
//! status
//! sa list
//! sa add [source=NAME]                      + [[sa]] entries, each with its dir
//! sa replace SPI [grace=SECONDS] [source=NAME] + one [[sa]] entry
//! sa del SPI [dir=in|out] [dst=ADDRESS]
//! policy list
//! policy add [position=N] [source=NAME]     + [[policy]] entries
//! policy del ID
//! policy set ID SPI[,SPI]
//! ```
//!
//! Numbers are decimal or `0x` hexadecimal. The answer is `ok` or `error` on its first
//! line, then text.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use espo_ipsec::spec::{Direction, PolicySpec, SaSpec, first_shared_aead_key};

use crate::check::{Entry, validate_policy, validate_sa};
use crate::{ConfigError, IntOrString, RawConfig, RawPolicy};

/// The largest request a gateway reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How long an inbound SA that was replaced keeps accepting, unless the request says.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The longest grace period a request may ask for.
pub const MAX_GRACE: Duration = Duration::from_secs(3600);

/// A control request, parsed and — as far as it can be without the running gateway's state
/// — validated.
#[derive(Debug)]
pub enum Request {
    Status,
    SaList,
    /// SAs to add; each states its direction.
    SaAdd(Vec<SaSpec>),
    /// A rekey: `sa` takes the place of SA `old_spi` of the same direction; an inbound old
    /// SA keeps accepting for `grace`.
    SaReplace {
        old_spi: u32,
        sa: Box<SaSpec>,
        grace: Duration,
    },
    SaDel {
        spi: u32,
        dir: Option<Direction>,
        dst: Option<IpAddr>,
    },
    PolicyList,
    /// Policies to add at `position` in their direction's search order (`None`: last).
    PolicyAdd {
        position: Option<usize>,
        policies: PolicyFragment,
    },
    PolicyDel {
        id: u32,
    },
    PolicySet {
        id: u32,
        sas: Vec<u32>,
    },
    /// Key management: every connection with its IKE SAs and CHILD_SAs.
    IkeList,
    /// Start a connection (`espo ike up NAME`).
    IkeUp(String),
    /// Close a connection's IKE SAs and their CHILD_SAs (`espo ike down NAME`).
    IkeDown(String),
    /// Wireshark's ESP and IKEv2 decryption tables for the live SAs (`espo wireshark`);
    /// the answer holds keys: the control socket is root's only.
    Wireshark,
}

/// `[[policy]]` entries of a request: checked against the running gateway's SAs with
/// [`PolicyFragment::validate`].
#[derive(Debug)]
pub struct PolicyFragment {
    source: PathBuf,
    raw: Vec<RawPolicy>,
}

impl PolicyFragment {
    /// The policies, validated as a configuration file's would be against `sas` (the SAs
    /// the gateway holds).
    pub fn validate(&self, sas: &[SaSpec]) -> Result<Vec<PolicySpec>, ConfigError> {
        self.raw
            .iter()
            .enumerate()
            .map(|(i, p)| validate_policy(i, p, sas, &self.source).map_err(crate::redacted))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    #[error("request is not UTF-8 text")]
    NotText,
    #[error("empty request")]
    Empty,
    #[error(
        "unknown command `{0}` (expected status, sa list|add|replace|del, policy list|add|del|set, ike list|up|down, wireshark)"
    )]
    UnknownCommand(String),
    #[error("`{command}`: {message}")]
    Argument {
        command: &'static str,
        message: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A word of the request as messages quote it: at most 12 characters, so that no message
/// carries a long run of whatever was pasted (a key, say).
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(12).collect();
    if text.chars().count() > 12 {
        out.push('…');
    }
    out
}

fn number(text: &str) -> Option<u64> {
    IntOrString::Str(text.to_owned()).to_u64().ok()
}

/// The command line's arguments: positional ones and `key=value` pairs.
struct Args<'a> {
    command: &'static str,
    positional: Vec<&'a str>,
    named: Vec<(&'a str, &'a str)>,
}

impl<'a> Args<'a> {
    fn new(
        command: &'static str,
        words: &[&'a str],
        allowed: &[&str],
    ) -> Result<Self, RequestError> {
        let mut args = Args {
            command,
            positional: Vec::new(),
            named: Vec::new(),
        };
        for w in words {
            match w.split_once('=') {
                Some((k, v)) => {
                    if !allowed.contains(&k) {
                        return Err(args.err(format!("unknown argument `{}`", shown(k))));
                    }
                    if args.named.iter().any(|(n, _)| *n == k) {
                        return Err(args.err(format!("`{}` given twice", shown(k))));
                    }
                    args.named.push((k, v));
                }
                None => args.positional.push(w),
            }
        }
        Ok(args)
    }

    fn err(&self, message: impl Into<String>) -> RequestError {
        RequestError::Argument {
            command: self.command,
            message: message.into(),
        }
    }

    fn named(&self, key: &str) -> Option<&'a str> {
        self.named.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Exactly `n` positional arguments, named `what` in messages.
    fn positional(&self, what: &[&str]) -> Result<&[&'a str], RequestError> {
        if self.positional.len() != what.len() {
            return Err(self.err(if what.is_empty() {
                "takes no positional arguments".to_string()
            } else {
                format!("expects {}", what.join(" "))
            }));
        }
        Ok(&self.positional)
    }

    fn spi(&self, text: &str) -> Result<u32, RequestError> {
        number(text)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.err(format!("`{}` is not an SPI (32-bit number)", shown(text))))
    }

    fn source(&self) -> PathBuf {
        PathBuf::from(self.named("source").unwrap_or("request"))
    }
}

impl Request {
    /// Parses a request.
    pub fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| RequestError::NotText)?;
        let (line, body) = text.split_once('\n').unwrap_or((text, ""));
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let (command, rest): (&'static str, &[&str]) = match words.as_slice() {
            [] => return Err(RequestError::Empty),
            ["status", rest @ ..] => ("status", rest),
            ["sa", "list", rest @ ..] => ("sa list", rest),
            ["sa", "add", rest @ ..] => ("sa add", rest),
            ["sa", "replace", rest @ ..] => ("sa replace", rest),
            ["sa", "del", rest @ ..] => ("sa del", rest),
            ["policy", "list", rest @ ..] => ("policy list", rest),
            ["policy", "add", rest @ ..] => ("policy add", rest),
            ["policy", "del", rest @ ..] => ("policy del", rest),
            ["policy", "set", rest @ ..] => ("policy set", rest),
            ["ike", "list", rest @ ..] => ("ike list", rest),
            ["ike", "up", rest @ ..] => ("ike up", rest),
            ["ike", "down", rest @ ..] => ("ike down", rest),
            ["wireshark", rest @ ..] => ("wireshark", rest),
            [first, ..] => {
                return Err(RequestError::UnknownCommand(shown(first)));
            }
        };
        let no_body = |args: &Args| {
            if body.trim().is_empty() {
                Ok(())
            } else {
                Err(args.err("takes no SAs or policies after the command line"))
            }
        };
        match command {
            "status" | "sa list" | "policy list" | "ike list" | "wireshark" => {
                let args = Args::new(command, rest, &[])?;
                args.positional(&[])?;
                no_body(&args)?;
                Ok(match command {
                    "status" => Request::Status,
                    "sa list" => Request::SaList,
                    "ike list" => Request::IkeList,
                    "wireshark" => Request::Wireshark,
                    _ => Request::PolicyList,
                })
            }
            "ike up" | "ike down" => {
                let args = Args::new(command, rest, &[])?;
                let name = args.positional(&["NAME"])?[0].to_owned();
                no_body(&args)?;
                Ok(if command == "ike up" {
                    Request::IkeUp(name)
                } else {
                    Request::IkeDown(name)
                })
            }
            "sa add" => {
                let args = Args::new(command, rest, &["source"])?;
                args.positional(&[])?;
                let sas = sa_entries(body, &args.source(), true)?;
                if sas.is_empty() {
                    return Err(args.err("no [[sa]] entry follows the command line"));
                }
                Ok(Request::SaAdd(sas))
            }
            "sa replace" => {
                let args = Args::new(command, rest, &["source", "grace"])?;
                let old_spi = args.spi(args.positional(&["SPI"])?[0])?;
                let grace = match args.named("grace") {
                    None => DEFAULT_GRACE,
                    Some(g) => number(g)
                        .map(Duration::from_secs)
                        .filter(|g| *g <= MAX_GRACE)
                        .ok_or_else(|| {
                            args.err(format!(
                                "grace `{}` is not a number of seconds from 0 to {}",
                                shown(g),
                                MAX_GRACE.as_secs()
                            ))
                        })?,
                };
                let mut sas = sa_entries(body, &args.source(), false)?;
                if sas.len() != 1 {
                    return Err(args.err(format!(
                        "expects exactly one [[sa]] entry (the new SA), got {}",
                        sas.len()
                    )));
                }
                let sa = Box::new(sas.remove(0));
                if sa.spi == old_spi {
                    return Err(args.err("the new SA needs an SPI of its own"));
                }
                Ok(Request::SaReplace { old_spi, sa, grace })
            }
            "sa del" => {
                let args = Args::new(command, rest, &["dir", "dst"])?;
                let spi = args.spi(args.positional(&["SPI"])?[0])?;
                no_body(&args)?;
                let dir = match args.named("dir") {
                    None => None,
                    Some("in") => Some(Direction::In),
                    Some("out") => Some(Direction::Out),
                    Some(d) => {
                        return Err(args.err(format!("dir `{}`: expected in or out", shown(d))));
                    }
                };
                let dst = args
                    .named("dst")
                    .map(|d| {
                        d.parse::<IpAddr>().map_err(|_| {
                            args.err(format!("dst `{}` is not an IP address", shown(d)))
                        })
                    })
                    .transpose()?;
                Ok(Request::SaDel { spi, dir, dst })
            }
            "policy add" => {
                let args = Args::new(command, rest, &["source", "position"])?;
                args.positional(&[])?;
                let position = args
                    .named("position")
                    .map(|p| {
                        number(p)
                            .and_then(|n| usize::try_from(n).ok())
                            .ok_or_else(|| {
                                args.err(format!("position `{}` is not a number", shown(p)))
                            })
                    })
                    .transpose()?;
                let source = args.source();
                let raw = fragment(body, &source)?;
                if raw.device.is_some() || raw.gateway.is_some() || !raw.sa.is_empty() {
                    return Err(
                        args.err("only [[policy]] entries may follow (add SAs with `espo sa add`)")
                    );
                }
                if raw.policy.is_empty() {
                    return Err(args.err("no [[policy]] entry follows the command line"));
                }
                Ok(Request::PolicyAdd {
                    position,
                    policies: PolicyFragment {
                        source,
                        raw: raw.policy,
                    },
                })
            }
            "policy del" => {
                let args = Args::new(command, rest, &[])?;
                let p = args.positional(&["ID"])?;
                no_body(&args)?;
                let id = policy_id(&args, p[0])?;
                Ok(Request::PolicyDel { id })
            }
            "policy set" => {
                let args = Args::new(command, rest, &[])?;
                let p = args.positional(&["ID", "SPI[,SPI]"])?;
                no_body(&args)?;
                let id = policy_id(&args, p[0])?;
                let sas = p[1]
                    .split(',')
                    .map(|s| args.spi(s.trim()))
                    .collect::<Result<Vec<u32>, _>>()?;
                if sas.is_empty() || sas.len() > 2 {
                    return Err(args.err("a bundle is one or two SAs, innermost first"));
                }
                Ok(Request::PolicySet { id, sas })
            }
            _ => Err(RequestError::UnknownCommand(command.into())),
        }
    }
}

fn policy_id(args: &Args, text: &str) -> Result<u32, RequestError> {
    number(text)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| args.err(format!("`{}` is not a policy id", shown(text))))
}

/// The body as configuration text, with espo's redacted syntax errors.
fn fragment(body: &str, source: &Path) -> Result<RawConfig, ConfigError> {
    crate::parse_raw(body, source)
}

/// The `[[sa]]` entries of a request body, each validated as in a file, no two with one
/// SPI and destination or one AEAD key; `need_dir`: each must state its direction.
fn sa_entries(body: &str, source: &Path, need_dir: bool) -> Result<Vec<SaSpec>, RequestError> {
    let raw = fragment(body, source)?;
    let only = |what: &str| RequestError::Argument {
        command: if need_dir { "sa add" } else { "sa replace" },
        message: format!("only [[sa]] entries may follow, not {what}"),
    };
    if raw.device.is_some() {
        return Err(only("[device]"));
    }
    if raw.gateway.is_some() {
        return Err(only("[gateway]"));
    }
    if !raw.policy.is_empty() {
        return Err(only("[[policy]] (add those with `espo policy add`)"));
    }
    let mut sas = Vec::with_capacity(raw.sa.len());
    for (i, s) in raw.sa.iter().enumerate() {
        let sa = validate_sa(i, s, source).map_err(crate::redacted)?;
        let entry = Entry::new(source, format!("sa[{i}] (spi {:#010x})", sa.spi));
        if need_dir && sa.dir.is_none() {
            return Err(entry
                .err(
                    "dir",
                    "missing: an SA added to a running gateway states its direction (in or out)",
                )
                .into());
        }
        if sas
            .iter()
            .any(|o: &SaSpec| o.spi == sa.spi && o.dst == sa.dst)
        {
            return Err(entry
                .err(
                    "spi",
                    "the request has two SAs with this SPI and destination",
                )
                .into());
        }
        sas.push(sa);
    }
    if let Some((j, i)) = first_shared_aead_key(&sas) {
        let entry = Entry::new(source, format!("sa[{i}] (spi {:#010x})", sas[i].spi));
        return Err(entry
            .err(
                "key",
                format!(
                    "the same key and salt as sa[{j}] (spi {:#010x}): two SAs under one AEAD key repeat nonces; give each SA its own key",
                    sas[j].spi
                ),
            )
            .into());
    }
    Ok(sas)
}

#[cfg(test)]
mod tests;
