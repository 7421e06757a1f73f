//! `herald log verify|repair`: the log's files checked (and, on request, cut back to the
//! last good record) while the node is stopped. Judges damage exactly as opening does,
//! weighing a damaged tail against the same evidence of how far the log was synced.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::durability::{known_synced, Mark, MarkState, Synced};
use super::file::sync_dir;
use super::segment::{self, Damage};
use super::{LogError, Record};

/// What a check of the log directory found.
#[derive(Debug, Default)]
pub struct LogCheck {
    /// Each segment read: path, good records, bytes on disk.
    pub segments: Vec<(PathBuf, u64, u64)>,
    /// Good records in all.
    pub records: u64,
    /// Good records per stream.
    pub streams: BTreeMap<String, u64>,
    /// The first damage, if any.
    pub damage: Option<Damage>,
}

/// Reads and checks every record of the log in `dir` (the `log` directory), weighing a
/// damaged tail against the log's own durable mark only; see [`check_with`].
pub fn check(dir: &Path) -> Result<LogCheck, LogError> {
    check_with(dir, None)
}

/// Reads and checks every record of the log in `dir`, weighing a damaged tail against its
/// durable mark and `outside`, what else shows how far it was synced (the newest snapshot:
/// [`crate::snapshot::newest_reflected`]): the judgement opening the log with the same
/// evidence makes.
pub fn check_with(dir: &Path, outside: Option<&Synced>) -> Result<LogCheck, LogError> {
    let mut streams = BTreeMap::new();
    let mut walked = segment::walk(dir, &mut |_, _, _, record| {
        *streams.entry(record.envelope.stream).or_insert(0) += 1;
    })?;
    walked.judge(dir, known_synced(dir, outside).as_ref());
    Ok(LogCheck {
        segments: walked
            .segments
            .iter()
            .map(|s| (s.path.clone(), s.records, s.file_len))
            .collect(),
        records: walked.next_offset - 1,
        streams,
        damage: walked.damage,
    })
}

/// Hands every good record of the log in `dir` to `visit`, in log order, reading the
/// files only; answers the first damage, which ends the walk.
pub fn each_record(dir: &Path, visit: &mut dyn FnMut(&Record)) -> Result<Option<Damage>, LogError> {
    let walked = segment::walk(dir, &mut |_, _, _, record| visit(&record))?;
    Ok(walked.damage)
}

/// What [`repair`] did.
#[derive(Debug, Default)]
pub struct Repaired {
    /// The damage it found, if any; `None` means the log was clean and nothing changed.
    pub damage: Option<Damage>,
    /// Where the bytes cut from the damaged segment were kept; `None` when there were none
    /// (records found missing rather than damaged).
    pub kept_tail: Option<PathBuf>,
    /// Later segments moved aside (renamed with a `.cut` suffix).
    pub moved: Vec<PathBuf>,
    /// Good records left in the log.
    pub records: u64,
}

/// Cuts the log in `dir` back to the last good record, judging damage as [`check`] does.
pub fn repair(dir: &Path) -> Result<Repaired, LogError> {
    repair_with(dir, None)
}

/// Cuts the log in `dir` back to the last good record, judging damage as [`check_with`]
/// does. Nothing is deleted: the cut bytes go to `<segment>.cut-<byte>` and later segments
/// are renamed `<segment>.cut`. The durable mark is lowered to the records kept, so the
/// node accepts the shorter log; snapshots past them are the caller's to move aside.
pub fn repair_with(dir: &Path, outside: Option<&Synced>) -> Result<Repaired, LogError> {
    let found = check_with(dir, outside)?;
    let Some(damage) = found.damage else {
        return Ok(Repaired {
            records: found.records,
            ..Repaired::default()
        });
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error: std::io::Error| LogError::io(&path, &error)
    };
    // Records found missing name the end of the last segment, or a first one not there.
    let bytes = match fs::read(&damage.file) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io(&damage.file)(error)),
    };
    let cut_at = usize::try_from(damage.byte)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let mut kept_tail = None;
    if cut_at < bytes.len() {
        let kept = PathBuf::from(format!("{}.cut-{}", damage.file.display(), damage.byte));
        // Written whole each time, so an interrupted repair can simply be run again.
        let mut keep = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&kept)
            .map_err(io(&kept))?;
        keep.write_all(&bytes[cut_at..])
            .and_then(|()| keep.sync_all())
            .map_err(io(&kept))?;
        kept_tail = Some(kept);
    }
    let mut moved = Vec::new();
    for later in &damage.later {
        let aside = PathBuf::from(format!("{}.cut", later.display()));
        fs::rename(later, &aside).map_err(io(later))?;
        moved.push(aside);
    }
    if damage.byte < segment::HEADER_LEN {
        // Nothing of the segment is usable: move it aside too (its bytes are kept above).
        match fs::remove_file(&damage.file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(&damage.file)(error))
            }
            _ => {}
        }
    } else if cut_at < bytes.len() {
        let file = OpenOptions::new()
            .write(true)
            .open(&damage.file)
            .map_err(io(&damage.file))?;
        file.set_len(damage.byte)
            .and_then(|()| file.sync_all())
            .map_err(io(&damage.file))?;
    }
    sync_dir(dir)?;
    let records = segment::walk(dir, &mut |_, _, _, _| {})?.next_offset - 1;
    // The mark may name records just cut; left as it is, it would refuse the shorter log.
    if let Some(mark) = Mark::read(dir).filter(|mark| mark.synced > records) {
        Mark::open(dir)?.write_synced(MarkState {
            synced: records,
            ..mark
        })?;
    }
    Ok(Repaired {
        damage: Some(damage),
        kept_tail,
        moved,
        records,
    })
}
