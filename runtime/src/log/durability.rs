//! When written records become durable: a watch for callers awaiting their own records,
//! and listeners (the bus) told of every step so they can wake subscribers. And what is
//! left on disk to show how far the log was synced (its durable mark, a snapshot), so that
//! opening it can tell a write cut short from damage to acknowledged records.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;
use tracing::warn;

use super::LogError;

/// Called with the new durable offset each time it advances.
pub type DurableListener = Box<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, Clone, Default)]
struct Progress {
    durable: u64,
    /// Set once a sync failed: nothing written after the last durable offset is safe.
    failed: Option<Arc<str>>,
}

/// The durable offset of a log, to read, await, or be told about.
pub struct Durability {
    sender: watch::Sender<Progress>,
    listeners: RwLock<Vec<DurableListener>>,
}

impl Durability {
    /// Starts at `durable`: what was on disk when the log opened.
    pub fn new(durable: u64) -> Self {
        Self {
            sender: watch::Sender::new(Progress {
                durable,
                failed: None,
            }),
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// The last durable offset.
    pub fn durable(&self) -> u64 {
        self.sender.borrow().durable
    }

    /// Why the log stopped syncing, if it did.
    pub fn failure(&self) -> Option<String> {
        self.sender.borrow().failed.as_deref().map(str::to_owned)
    }

    /// Registers `listener` to be called after every advance.
    pub fn listen(&self, listener: DurableListener) {
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Resolves once `offset` is durable; fails if the log cannot make it so.
    pub fn wait(&self, offset: u64) -> impl Future<Output = Result<(), LogError>> + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let reached = receiver
                .wait_for(|p| p.durable >= offset || p.failed.is_some())
                .await
                .map(|p| (p.durable >= offset, p.failed.clone()));
            match reached {
                Ok((true, _)) => Ok(()),
                Ok((false, failed)) => Err(LogError::Unavailable(format!(
                    "offset {offset} was written but could not be synced: {}",
                    failed.as_deref().unwrap_or("unknown")
                ))),
                Err(_) => Err(LogError::Unavailable("the event log was closed".into())),
            }
        }
    }

    /// Resolves with the durable offset once it is past `offset`.
    pub fn after(&self, offset: u64) -> impl Future<Output = Result<u64, LogError>> + 'static {
        let wait = self.wait(offset.saturating_add(1));
        let receiver = self.sender.subscribe();
        async move {
            wait.await?;
            let durable = receiver.borrow().durable;
            Ok(durable)
        }
    }

    pub(crate) fn advance(&self, to: u64) {
        let advanced = self.sender.send_if_modified(|progress| {
            if to > progress.durable {
                progress.durable = to;
                true
            } else {
                false
            }
        });
        if advanced {
            for listener in self
                .listeners
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                listener(to);
            }
        }
    }

    pub(crate) fn fail(&self, reason: String) {
        self.sender.send_modify(|progress| {
            progress.failed.get_or_insert_with(|| reason.into());
        });
    }
}

/// Something durable that shows the log was once synced up to `offset`: every record at or
/// before it was acknowledged, so damage to one is corruption, never a torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Every record up to this node-wide offset was on disk.
    pub offset: u64,
    /// What shows it, naming the file (`snapshot /data/snapshots/orders.….snap`).
    pub shown_by: String,
}

impl Synced {
    /// The one of `a` and `b` reaching further.
    pub fn furthest(a: Option<Synced>, b: Option<Synced>) -> Option<Synced> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.offset > a.offset { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// The durable mark's file in the log directory.
const MARK_FILE: &str = "DURABLE";
const MARK_MAGIC: [u8; 4] = *b"HDM1";
const MARK_LEN: usize = 20;

/// What the durable mark says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MarkState {
    /// The last offset a sync made durable.
    pub(crate) synced: u64,
    /// A node ran on this log with fsync off since: "durable" meant only "written", so a
    /// snapshot proves nothing about what reached the disk.
    pub(crate) unsynced_run: bool,
}

/// The log's durable mark, `log/DURABLE`: 20 bytes (magic, the last synced offset, a flag,
/// CRC32C) rewritten in place by the sync thread after each sync, without an fsync of its
/// own. It is written only after the records it names were synced, so whatever version of
/// it reaches the disk names records that are there: a lower bound, never an overstatement.
/// A process kill keeps its latest value (the page cache survives), a power loss at worst an
/// older one, and a clean stop syncs it. One small `pwrite` per group commit costs next to
/// nothing beside the `fdatasync` it follows.
pub(crate) struct Mark {
    path: PathBuf,
    file: File,
}

impl Mark {
    /// What the mark of the log in `dir` says; `None` when there is none, or when it does
    /// not read back (with a warning: it is evidence, not something the log needs).
    pub(crate) fn read(dir: &Path) -> Option<MarkState> {
        let path = dir.join(MARK_FILE);
        let bytes = std::fs::read(&path).ok()?;
        let state = (bytes.len() == MARK_LEN && bytes[..4] == MARK_MAGIC)
            .then(|| {
                let crc = u32::from_le_bytes(bytes[16..20].try_into().ok()?);
                (crc32c::crc32c(&bytes[..16]) == crc).then(|| MarkState {
                    synced: u64::from_le_bytes(bytes[4..12].try_into().unwrap_or([0; 8])),
                    unsynced_run: bytes[12] & 1 == 1,
                })
            })
            .flatten();
        if state.is_none() {
            warn!(file = %path.display(), "the log's durable mark does not read back; ignoring it");
        }
        state
    }

    /// Opens (or creates) the mark of the log in `dir` for writing.
    pub(crate) fn open(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join(MARK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|error| LogError::io(&path, &error))?;
        Ok(Self { path, file })
    }

    /// Where the mark is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `state`, in place (a 20-byte write; a torn one fails its CRC and is ignored).
    pub(crate) fn write(&self, state: MarkState) -> std::io::Result<()> {
        let mut bytes = [0u8; MARK_LEN];
        bytes[..4].copy_from_slice(&MARK_MAGIC);
        bytes[4..12].copy_from_slice(&state.synced.to_le_bytes());
        bytes[12] = u8::from(state.unsynced_run);
        let crc = crc32c::crc32c(&bytes[..16]);
        bytes[16..].copy_from_slice(&crc.to_le_bytes());
        self.file.write_all_at(&bytes, 0)
    }

    /// Records `state` and waits until it is on disk.
    pub(crate) fn write_synced(&self, state: MarkState) -> Result<(), LogError> {
        self.write(state)
            .and_then(|()| self.file.sync_data())
            .map_err(|error| LogError::io(&self.path, &error))
    }

    /// Waits until the last state written is on disk.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

/// How far the log in `dir` is known to have been synced: its durable mark, and `outside`
/// (the newest snapshot), which counts only if no run without fsync wrote to the log since
/// the mark was last synced (such a run calls records durable before they are on disk).
pub(crate) fn known_synced(dir: &Path, outside: Option<&Synced>) -> Option<Synced> {
    let mark = Mark::read(dir);
    let from_mark = mark.filter(|m| m.synced > 0).map(|m| Synced {
        offset: m.synced,
        shown_by: format!("the durable mark {}", dir.join(MARK_FILE).display()),
    });
    let outside = outside.filter(|_| !mark.is_some_and(|m| m.unsynced_run));
    Synced::furthest(from_mark, outside.cloned())
}
