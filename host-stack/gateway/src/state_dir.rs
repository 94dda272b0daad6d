//! The state directory (`[gateway] state_dir`): what must outlive a run of espo so that no
//! (key, nonce) pair ever repeats and no recorded packet is accepted twice.
//!
//! One small file per SA and direction, named after them
//! (`sa-out-00001001-192.0.2.2.state`):
//!
//! ```text
//! espo sa state 1
//! dir out
//! spi 0x00001001
//! dst 192.0.2.2
//! fingerprint 5c1f...            (HMAC-SHA-256 under the SA's keys, SaSpec::state_fingerprint)
//! value 1048576
//! ```
//!
//! For an outbound SA `value` is the highest sequence number reserved: numbers up to it may
//! have been sent, so a restart continues after it. For an inbound SA it is the highest
//! sequence number accepted when it was last recorded: after a restart nothing at or below
//! it is accepted. A file is replaced whole — written beside, flushed to disk, renamed over
//! the old one, and the directory flushed — so a crash leaves the old record or the new
//! one, never a mix. A file whose fingerprint is not the SA's (another key under the same
//! SPI) is not used; a file that cannot be read or parsed is an error the caller turns into
//! an SA that neither sends nor accepts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use espo_ipsec::spec::{Direction, SaSpec};
use subtle::ConstantTimeEq;

/// The largest state file read.
const MAX_FILE_BYTES: u64 = 4096;
const MAGIC: &str = "espo sa state 1";

/// Why the state directory or a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state directory {}: {what}", path.display())]
    Dir {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "state directory {}: {what} (it holds what keeps nonces from repeating; make it \
         root's, mode 0700)",
        path.display()
    )]
    Insecure { path: PathBuf, what: String },
    #[error("{}: reading failed", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: not an espo SA state file ({what})", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{}: writing failed", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What a state file says of an SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// No file: the SA starts from its configuration.
    Nothing,
    /// A file left by an SA with the same SPI under another key: not used.
    OtherKey,
    /// The recorded number (outbound: reserved up to; inbound: accepted up to).
    Value(u64),
}

/// Which SA a record belongs to: direction, SPI, destination, and the fingerprint of its
/// keys ([`SaSpec::state_fingerprint`]) — everything a record needs, no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateKey {
    pub dir: Direction,
    pub spi: u32,
    pub dst: std::net::IpAddr,
    fingerprint: [u8; 32],
}

impl StateKey {
    pub fn of(sa: &SaSpec, dir: Direction) -> StateKey {
        StateKey {
            dir,
            spi: sa.spi,
            dst: sa.dst,
            fingerprint: sa.state_fingerprint(dir),
        }
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens the directory, creating it (mode 0700) if missing. A directory others can
    /// write to, or that belongs to someone other than root or espo's own user, is refused.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|source| StateError::Dir {
                    path: path.to_owned(),
                    what: "cannot create it",
                    source,
                })?;
        }
        let meta = fs::metadata(path).map_err(|source| StateError::Dir {
            path: path.to_owned(),
            what: "cannot read it",
            source,
        })?;
        if !meta.is_dir() {
            return Err(StateError::Insecure {
                path: path.to_owned(),
                what: "not a directory".into(),
            });
        }
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(StateError::Insecure {
                path: path.to_owned(),
                what: format!(
                    "mode {:03o} lets others write to it",
                    meta.permissions().mode() & 0o777
                ),
            });
        }
        let euid = nix::unistd::geteuid().as_raw();
        if meta.uid() != 0 && meta.uid() != euid {
            return Err(StateError::Insecure {
                path: path.to_owned(),
                what: format!("it belongs to user {}", meta.uid()),
            });
        }
        Ok(StateDir {
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file of an SA's record.
    pub fn file_of(&self, key: &StateKey) -> PathBuf {
        self.path.join(format!(
            "sa-{}-{:08x}-{}.state",
            key.dir.name(),
            key.spi,
            key.dst
        ))
    }

    /// What the directory records for an SA.
    pub fn load(&self, key: &StateKey) -> Result<Recorded, StateError> {
        let path = self.file_of(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recorded::Nothing),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|source| StateError::Read {
                path: path.clone(),
                source,
            })?;
        let corrupt = |what: &str| StateError::Corrupt {
            path: path.clone(),
            what: what.into(),
        };
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(corrupt("too large"));
        }
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(corrupt("unknown first line"));
        }
        let mut fields = [None::<&str>; 5];
        const NAMES: [&str; 5] = ["dir", "spi", "dst", "fingerprint", "value"];
        for line in lines {
            let (name, value) = line
                .split_once(' ')
                .ok_or_else(|| corrupt("a line without a value"))?;
            let i = NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| corrupt("an unknown field"))?;
            if fields[i].replace(value).is_some() {
                return Err(corrupt("a field given twice"));
            }
        }
        let [Some(d), Some(spi), Some(dst), Some(fp), Some(value)] = fields else {
            return Err(corrupt("a field is missing"));
        };
        if d != key.dir.name() || spi != format!("{:#010x}", key.spi) || dst != key.dst.to_string()
        {
            return Err(corrupt("it names another SA"));
        }
        let value: u64 = value
            .parse()
            .map_err(|_| corrupt("value is not a number"))?;
        let fp = decode_hex32(fp).ok_or_else(|| corrupt("fingerprint is not 64 hex digits"))?;
        if !bool::from(fp.ct_eq(&key.fingerprint)) {
            return Ok(Recorded::OtherKey);
        }
        Ok(Recorded::Value(value))
    }

    /// Records `value` for an SA, durably: when this returns `Ok`, the record survives a
    /// crash or a power cut.
    pub fn store(&self, key: &StateKey, value: u64) -> Result<(), StateError> {
        let path = self.file_of(key);
        let write_err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let (tmp, f) = self.write_beside(key, value, &path)?;
        f.sync_all().map_err(write_err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(write_err)?;
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(write_err)?;
        Ok(())
    }

    /// [`store`](Self::store) for many SAs at once (a gateway's start): every record is
    /// written beside its file, the file system is flushed once (`syncfs`), each is renamed
    /// over its file, and the directory is flushed once — two flushes for all of them
    /// instead of two each. When this returns `Ok` every record survives a crash; on an
    /// error, each file holds its old record or its new one.
    pub fn store_all(&self, records: &[(StateKey, u64)]) -> Result<(), StateError> {
        let mut written = Vec::with_capacity(records.len());
        for (key, value) in records {
            let path = self.file_of(key);
            let (tmp, _) = self.write_beside(key, *value, &path)?;
            written.push((tmp, path));
        }
        let dir_err = |what, source| StateError::Dir {
            path: self.path.clone(),
            what,
            source,
        };
        let dir = File::open(&self.path).map_err(|e| dir_err("cannot open it", e))?;
        nix::unistd::syncfs(&dir)
            .map_err(|e| dir_err("flushing its file system failed", e.into()))?;
        for (tmp, path) in &written {
            fs::rename(tmp, path).map_err(|source| StateError::Write {
                path: path.clone(),
                source,
            })?;
        }
        dir.sync_all()
            .map_err(|e| dir_err("flushing it failed", e))?;
        Ok(())
    }

    /// Writes an SA's record beside its file `path` (not yet flushed); returns where, and
    /// the file.
    fn write_beside(
        &self,
        key: &StateKey,
        value: u64,
        path: &Path,
    ) -> Result<(PathBuf, File), StateError> {
        let fp: String = key.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!(
            "{MAGIC}\ndir {}\nspi {:#010x}\ndst {}\nfingerprint {fp}\nvalue {value}\n",
            key.dir.name(),
            key.spi,
            key.dst
        );
        let tmp = path.with_extension("state.new");
        let write_err = |source| StateError::Write {
            path: path.to_owned(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(write_err)?;
        f.write_all(text.as_bytes()).map_err(write_err)?;
        Ok((tmp, f))
    }

    /// Forgets an SA's record (its key is retired for good: a rekey replaced it).
    pub fn remove(&self, key: &StateKey) {
        let _ = fs::remove_file(self.file_of(key));
    }
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let b = text.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
