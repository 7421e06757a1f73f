//! Snapshots: a domain's state with the log positions it reflects, so a restart replays
//! only the log after them.
//!
//! Files are `<snapshots dir>/<domain>.<offset, 20 digits>.snap`, where the offset is the
//! last log record the state reflects. Each is one frame (length, CRC32C, payload) written
//! atomically: to a temporary file, fsync'd, renamed, then the directory fsync'd. The two
//! newest are kept, so a damaged newest one still leaves an older one to start from.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codec::{self, FormatTag};
use crate::log::{frame, Synced};

/// How many snapshots per domain are kept.
const KEEP: usize = 2;

/// A domain's state and where in the log it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The domain's name.
    pub domain: String,
    /// Every input at or before this node-wide offset was handled.
    pub cursor: u64,
    /// Every own event up to this sequence of the domain's stream was applied.
    pub own_sequence: u64,
    /// The last log offset the state reflects (its cursor or its last own record).
    pub offset: u64,
    /// Every record of the domain's dead-letter stream up to this sequence is reflected.
    pub dead_sequence: u64,
    /// The keys held behind parked inputs.
    pub holds: crate::deadletter::Holds,
    /// The state, as [`crate::hosted::HostedDomain::save_state`] wrote it.
    pub state: Vec<u8>,
}

/// Why a snapshot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("snapshot i/o on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The snapshot could not be encoded.
    #[error("cannot encode the snapshot of \"{domain}\": {message}")]
    Encode {
        /// The domain.
        domain: String,
        /// The codec's reason.
        message: String,
    },
    /// The store could not take or give the snapshot.
    #[error("snapshot store ({location}): {message}")]
    Store {
        /// Where the snapshot goes.
        location: String,
        /// What failed.
        message: String,
    },
}

/// A snapshot that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// Where it is: a file, or an object.
    pub location: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Where a node keeps its domains' snapshots: files in embedded mode, the JetStream object
/// store in networked mode (`crate::nats::ObjectSnapshots`).
pub trait SnapshotStore: Send + Sync + 'static {
    /// Saves `snapshot` atomically (a crash leaves the old one or the new one); answers
    /// where it went. Blocking.
    fn save(&self, snapshot: &Snapshot) -> Result<String, SnapshotError>;
    /// The newest snapshot of `domain` that reads back whole and that `usable` accepts,
    /// and the newer ones passed over. Blocking.
    fn latest(
        &self,
        domain: &str,
        usable: &dyn Fn(&Snapshot) -> Result<(), String>,
    ) -> (Option<Snapshot>, Vec<Unusable>);
    /// Moves a snapshot passed over out of the way, so it is not taken again once the log
    /// grows past it; answers where it went.
    fn set_aside(&self, unusable: &Unusable) -> Option<String>;
}

/// The snapshots directory of a node.
#[derive(Debug, Clone)]
pub struct FileSnapshots {
    dir: PathBuf,
}

impl SnapshotStore for FileSnapshots {
    fn save(&self, snapshot: &Snapshot) -> Result<String, SnapshotError> {
        FileSnapshots::save(self, snapshot).map(|path| path.display().to_string())
    }

    fn latest(
        &self,
        domain: &str,
        usable: &dyn Fn(&Snapshot) -> Result<(), String>,
    ) -> (Option<Snapshot>, Vec<Unusable>) {
        FileSnapshots::latest(self, domain, usable)
    }

    fn set_aside(&self, unusable: &Unusable) -> Option<String> {
        let aside = format!("{}.unusable", unusable.location);
        fs::rename(&unusable.location, &aside).ok().map(|()| aside)
    }
}

impl FileSnapshots {
    /// The store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, SnapshotError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| SnapshotError::Io {
            path: dir.clone(),
            source,
        })?;
        // Temporary files of writes a crash interrupted are never renamed into place.
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Self { dir })
    }

    /// Writes `snapshot` atomically and removes all but the newest few of its domain.
    pub fn save(&self, snapshot: &Snapshot) -> Result<PathBuf, SnapshotError> {
        let payload = codec::encode(FormatTag::SnapshotV2, snapshot).map_err(|error| {
            SnapshotError::Encode {
                domain: snapshot.domain.clone(),
                message: error.to_string(),
            }
        })?;
        let mut bytes = Vec::with_capacity(payload.len() + frame::HEADER_LEN);
        frame::write(&payload, &mut bytes);
        let name = format!("{}.{:020}.snap", snapshot.domain, snapshot.offset);
        let path = self.dir.join(&name);
        // Unique per write: two snapshots of one state in flight never share a file.
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let write = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temporary = self
            .dir
            .join(format!(".{name}.{}.{write}.tmp", std::process::id()));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        let mut file = File::create(&temporary).map_err(io(&temporary))?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io(&temporary))?;
        fs::rename(&temporary, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io(&self.dir))?;
        for (_, old) in self.list(&snapshot.domain).into_iter().skip(KEEP) {
            // Pruning is housekeeping: a file left behind costs disk, not correctness.
            let _ = fs::remove_file(old);
        }
        Ok(path)
    }

    /// The newest snapshot of `domain` that reads back whole and that `usable` accepts,
    /// and every newer file passed over, with the reason.
    pub fn latest(
        &self,
        domain: &str,
        usable: &dyn Fn(&Snapshot) -> Result<(), String>,
    ) -> (Option<Snapshot>, Vec<Unusable>) {
        let mut passed_over = Vec::new();
        for (_, path) in self.list(domain) {
            match read(&path, domain).and_then(|snapshot| {
                usable(&snapshot)?;
                Ok(snapshot)
            }) {
                Ok(snapshot) => return (Some(snapshot), passed_over),
                Err(reason) => passed_over.push(Unusable {
                    location: path.display().to_string(),
                    reason,
                }),
            }
        }
        (None, passed_over)
    }

    /// `domain`'s snapshot files, newest first.
    fn list(&self, domain: &str) -> Vec<(u64, PathBuf)> {
        let prefix = format!("{domain}.");
        let mut files: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let offset = name
                    .strip_prefix(&prefix)?
                    .strip_suffix(".snap")?
                    .parse::<u64>()
                    .ok()?;
                Some((offset, entry.path()))
            })
            .collect();
        files.sort_by_key(|(offset, _)| std::cmp::Reverse(*offset));
        files
    }
}

/// The newest log offset any snapshot in `dir` reflects, as evidence that the log was
/// synced up to it: a snapshot is saved only once the log is durable up to its offset.
/// Reads file names only (the name is given when the snapshot is saved, so even one whose
/// bytes rotted since shows it), and creates or changes nothing; `None` when there is no
/// snapshot or no directory. Files set aside (`.unusable`, `.cut`) do not count.
pub fn newest_reflected(dir: &Path) -> Option<Synced> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (_, offset) = name.strip_suffix(".snap")?.rsplit_once('.')?;
            Some((offset.parse::<u64>().ok()?, entry.path()))
        })
        .max()
        .map(|(offset, path)| Synced {
            offset,
            shown_by: format!("snapshot {}", path.display()),
        })
}

fn read(path: &Path, domain: &str) -> Result<Snapshot, String> {
    let bytes = fs::read(path).map_err(|error| format!("cannot read it: {error}"))?;
    // A state may be far larger than one record: the file's own length bounds the frame.
    let payload = match frame::parse_up_to(&bytes, u32::MAX) {
        frame::Parsed::Whole { payload, size } if size == bytes.len() => payload,
        frame::Parsed::Whole { size, .. } => {
            return Err(format!("{} bytes follow its frame", bytes.len() - size))
        }
        frame::Parsed::Bad(reason) => return Err(reason),
        frame::Parsed::Incomplete | frame::Parsed::Zeros => {
            return Err("the file is incomplete".into())
        }
    };
    let snapshot: Snapshot =
        codec::decode(FormatTag::SnapshotV2, payload).map_err(|error| error.to_string())?;
    if snapshot.domain != domain {
        return Err(format!(
            "it holds domain \"{}\", not \"{domain}\"",
            snapshot.domain
        ));
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(offset: u64) -> Snapshot {
        Snapshot {
            domain: "orders".into(),
            cursor: offset,
            own_sequence: offset / 2,
            offset,
            dead_sequence: 0,
            holds: Default::default(),
            state: vec![1, 2, 3],
        }
    }

    #[test]
    fn the_newest_whole_snapshot_wins_and_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileSnapshots::open(dir.path()).unwrap();
        for offset in [10, 20, 30] {
            store.save(&snapshot(offset)).unwrap();
        }
        assert_eq!(store.list("orders").len(), 2);
        let (found, passed) = store.latest("orders", &|_| Ok(()));
        assert_eq!(found, Some(snapshot(30)));
        assert!(passed.is_empty());

        let newest = dir.path().join(format!("orders.{:020}.snap", 30));
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&newest, bytes).unwrap();
        let (found, passed) = store.latest("orders", &|_| Ok(()));
        assert_eq!(found, Some(snapshot(20)));
        assert!(passed[0].reason.contains("checksum"), "{passed:?}");

        let (found, passed) = store.latest("orders", &|s| {
            if s.offset > 5 {
                Err("ahead of the log".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(found, None);
        assert_eq!(passed.len(), 2);
    }

    #[test]
    fn the_newest_reflected_offset_is_read_from_names_across_domains() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(newest_reflected(&dir.path().join("missing")), None);
        let store = FileSnapshots::open(dir.path()).unwrap();
        assert_eq!(newest_reflected(dir.path()), None);
        store.save(&snapshot(20)).unwrap();
        store
            .save(&Snapshot {
                domain: "payments".into(),
                ..snapshot(35)
            })
            .unwrap();
        let set_aside = dir.path().join(format!("orders.{:020}.snap.unusable", 90));
        fs::write(&set_aside, b"x").unwrap();
        let newest = newest_reflected(dir.path()).unwrap();
        assert_eq!(newest.offset, 35);
        assert!(newest.shown_by.contains("payments."), "{}", newest.shown_by);
    }
}
