//! Segment files: `<first offset, 20 digits>.seg` under the log directory, a 16-byte
//! header (magic, first offset), then framed records with dense offsets. [`walk`] reads
//! every segment in order and checks every frame, and [`Walked::judge`] weighs a damaged
//! tail against what shows how far the log was synced: they serve both opening the log and
//! the `herald log verify|repair` tools, so both judge damage the same way.

use std::fs;
use std::path::{Path, PathBuf};

use super::durability::Synced;
use super::frame::{self, Parsed};
use super::{LogError, Record};

/// First bytes of every segment file.
pub const MAGIC: [u8; 8] = *b"HERALDS1";
/// Bytes before the first record: magic and first offset (u64 LE).
pub const HEADER_LEN: u64 = 16;
const EXTENSION: &str = "seg";

/// The file name of the segment whose first record has `first` as offset.
pub fn file_name(first: u64) -> String {
    format!("{first:020}.{EXTENSION}")
}

/// The header of the segment starting at `first`.
pub fn header(first: u64) -> [u8; HEADER_LEN as usize] {
    let mut header = [0; HEADER_LEN as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..].copy_from_slice(&first.to_le_bytes());
    header
}

/// Decodes one record from a frame's payload.
pub fn decode(payload: &[u8]) -> Result<Record, String> {
    super::staged::decode(payload).map_err(|error| error.to_string())
}

/// Whether damage can be a write cut short by a crash, or is something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    /// An incomplete last record with nothing valid after it, past everything known to
    /// have been synced: a crash mid-write. Opening the log truncates it.
    Torn,
    /// Bad bytes where good records were (or follow), or a record known to have been synced
    /// that is damaged or missing: opening refuses the log.
    Corrupt,
}

/// The first damage found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The damaged segment.
    pub file: PathBuf,
    /// Where in it the first bad byte is; every record before it is good.
    pub byte: u64,
    /// Torn tail or corruption.
    pub kind: DamageKind,
    /// What is wrong, in words.
    pub reason: String,
    /// Segments after the damaged one, which the log cannot reach past the damage.
    pub later: Vec<PathBuf>,
}

impl Damage {
    /// The error opening a log with this damage gives.
    pub fn to_error(&self) -> LogError {
        LogError::Corrupt {
            file: self.file.clone(),
            byte: self.byte,
            reason: self.reason.clone(),
        }
    }
}

/// One segment as found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its path.
    pub path: PathBuf,
    /// Bytes up to the end of its last good record.
    pub good_len: u64,
    /// Its length on disk.
    pub file_len: u64,
    /// How many good records it holds.
    pub records: u64,
}

/// What [`walk`] found.
#[derive(Debug, Default)]
pub struct Walked {
    /// The segments up to and including a damaged one, in order.
    pub segments: Vec<Found>,
    /// The first damage, if any.
    pub damage: Option<Damage>,
    /// The offset the next appended record gets.
    pub next_offset: u64,
}

impl Walked {
    /// Judges what [`walk`] found against how far the log is known to have been synced: a
    /// record at or before `synced` was acknowledged, so a tail that looks torn there is
    /// damage, and a log that ends cleanly before it has lost records. Either refuses the
    /// log; only a tail past everything known synced stays a torn tail.
    pub fn judge(&mut self, dir: &Path, synced: Option<&Synced>) {
        let Some(synced) = synced else {
            return;
        };
        let first_lost = self.next_offset;
        if synced.offset < first_lost {
            return;
        }
        match &mut self.damage {
            Some(damage) if damage.kind == DamageKind::Torn => {
                damage.kind = DamageKind::Corrupt;
                damage.reason = format!(
                    "{}; yet {} shows the log was synced up to offset {}, so the record at offset {first_lost} was acknowledged: this is damage, not a write cut short",
                    damage.reason, synced.shown_by, synced.offset
                );
            }
            Some(_) => {}
            None => {
                let (file, byte) = match self.segments.last() {
                    Some(found) => (found.path.clone(), found.file_len),
                    None => (dir.join(file_name(1)), 0),
                };
                self.damage = Some(Damage {
                    file,
                    byte,
                    kind: DamageKind::Corrupt,
                    reason: format!(
                        "the log ends at offset {}, yet {} shows it was synced up to offset {}: acknowledged records from offset {first_lost} on are missing (a file cut short or a segment removed)",
                        first_lost - 1,
                        synced.shown_by,
                        synced.offset
                    ),
                    later: Vec::new(),
                });
            }
        }
    }
}

/// The segment files in `dir`, by first offset; other files (such as cut-off parts kept
/// by `repair`) are left alone.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let entries = fs::read_dir(dir).map_err(|error| LogError::io(dir, &error))?;
    let mut segments = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| LogError::io(dir, &error))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
            continue;
        }
        let first = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<u64>().ok())
            .ok_or_else(|| LogError::Corrupt {
                file: path.clone(),
                byte: 0,
                reason: "a .seg file whose name is not a 20-digit offset; move it out of the log directory".into(),
            })?;
        segments.push((first, path));
    }
    segments.sort();
    Ok(segments)
}

/// Reads every segment in `dir` in order, checks every frame, and hands each good record
/// to `visit` with its segment index, byte position and frame size. Stops at the first
/// damage, which it classifies and reports rather than skipping.
pub fn walk(
    dir: &Path,
    visit: &mut dyn FnMut(usize, u64, u32, Record),
) -> Result<Walked, LogError> {
    let listed = list(dir)?;
    let mut walked = Walked {
        next_offset: 1,
        ..Walked::default()
    };
    for (index, (first, path)) in listed.iter().enumerate() {
        let mut reader = Reader::open(path)?;
        let last = index + 1 == listed.len();
        let mut found = Found {
            path: path.clone(),
            good_len: 0,
            file_len: reader.len as u64,
            records: 0,
        };
        let (records, stop) = if *first != walked.next_offset {
            let reason = format!(
                "segment starts at offset {first} but the log's next offset is {}: a segment is missing or misnamed",
                walked.next_offset
            );
            (0, Some((0, DamageKind::Corrupt, reason)))
        } else {
            // Records of one append are handed on only once the whole append is read.
            let mut group: Vec<(u64, u32, Record)> = Vec::new();
            let scanned = scan(&mut reader, *first, last, &mut |pos, size, record| {
                let complete = record.group_rest == 0;
                group.push((pos, size, record));
                if complete {
                    for (pos, size, record) in group.drain(..) {
                        visit(index, pos, size, record);
                    }
                }
            })?;
            match group.first() {
                None => scanned,
                Some((start, _, record)) => {
                    let expected = u64::from(record.group_rest) + 1;
                    let what = format!(
                        "the last append is incomplete: {} of its {expected} records were written",
                        group.len()
                    );
                    let stop = match scanned.1 {
                        Some((bad, DamageKind::Corrupt, reason)) => (
                            *start,
                            DamageKind::Corrupt,
                            format!("{reason} (at byte {bad}, in the append that starts here)"),
                        ),
                        _ if last => (*start, DamageKind::Torn, what),
                        _ => (
                            *start,
                            DamageKind::Corrupt,
                            format!("{what}, in a segment that is not the last"),
                        ),
                    };
                    (scanned.0 - group.len() as u64, Some(stop))
                }
            }
        };
        found.good_len = match &stop {
            Some((byte, _, _)) => *byte,
            None => reader.len as u64,
        };
        found.records = records;
        walked.segments.push(found);
        walked.next_offset = first + records;
        if let Some((byte, kind, reason)) = stop {
            walked.damage = Some(Damage {
                file: path.clone(),
                byte,
                kind,
                reason,
                later: listed[index + 1..].iter().map(|(_, p)| p.clone()).collect(),
            });
            break;
        }
    }
    Ok(walked)
}

type Stop = (u64, DamageKind, String);

/// Checks one segment's header and frames, visiting good records; answers how many were
/// good and, at the first bad byte, where it is and whether it can be a torn tail.
fn scan(
    reader: &mut Reader,
    first: u64,
    last: bool,
    visit: &mut dyn FnMut(u64, u32, Record),
) -> Result<(u64, Option<Stop>), LogError> {
    let mut good = 0;
    match scan_frames(reader, first, last, &mut |pos, size, record| {
        good += 1;
        visit(pos, size, record);
    }) {
        Ok(()) => Ok((good, None)),
        Err(Halt::Damage(stop)) => Ok((good, Some(stop))),
        Err(Halt::Read(error)) => Err(error),
    }
}

/// How much of a segment is read at a time when walking it.
const READ_CHUNK: usize = 1 << 20;

/// A segment file read front to back in pieces: a walk holds the frame it looks at (and,
/// at damage, the rest of the file to judge it), never a whole segment of up to 4 GiB.
struct Reader {
    file: fs::File,
    path: PathBuf,
    /// Bytes of the file from `start` on.
    buffer: Vec<u8>,
    start: usize,
    /// The file's length when opened.
    len: usize,
}

impl Reader {
    fn open(path: &Path) -> Result<Self, LogError> {
        let file = fs::File::open(path).map_err(|error| LogError::io(path, &error))?;
        let len = file
            .metadata()
            .map_err(|error| LogError::io(path, &error))?
            .len();
        Ok(Self {
            file,
            path: path.to_path_buf(),
            buffer: Vec::new(),
            start: 0,
            len: usize::try_from(len).unwrap_or(usize::MAX),
        })
    }

    /// The file's bytes from `pos` on: at least `want` of them, or all to the end of the
    /// file if fewer. Positions only move forward; what lies before `pos` is let go.
    fn at(&mut self, pos: usize, want: usize) -> Result<&[u8], LogError> {
        use std::os::unix::fs::FileExt;
        if pos - self.start >= READ_CHUNK {
            let keep_from = (pos - self.start).min(self.buffer.len());
            self.buffer.drain(..keep_from);
            self.start += keep_from;
        }
        let have_end = self.start + self.buffer.len();
        let want_end = pos.saturating_add(want).min(self.len);
        if have_end < want_end {
            let read_end = want_end
                .max(have_end.saturating_add(READ_CHUNK))
                .min(self.len);
            let old = self.buffer.len();
            self.buffer.resize(old + (read_end - have_end), 0);
            self.file
                .read_exact_at(&mut self.buffer[old..], have_end as u64)
                .map_err(|error| LogError::io(&self.path, &error))?;
        }
        Ok(self.buffer.get(pos - self.start..).unwrap_or_default())
    }
}

/// Why a segment's walk stopped early: damage in it, or the file could not be read.
enum Halt {
    Damage(Stop),
    Read(LogError),
}

impl From<Stop> for Halt {
    fn from(stop: Stop) -> Self {
        Self::Damage(stop)
    }
}

impl From<LogError> for Halt {
    fn from(error: LogError) -> Self {
        Self::Read(error)
    }
}

fn scan_frames(
    reader: &mut Reader,
    first: u64,
    last: bool,
    visit: &mut dyn FnMut(u64, u32, Record),
) -> Result<(), Halt> {
    let torn_or_corrupt = |what: String| {
        if last {
            (DamageKind::Torn, what)
        } else {
            (
                DamageKind::Corrupt,
                format!("{what}, in a segment that is not the last"),
            )
        }
    };
    let header = reader.at(0, HEADER_LEN as usize)?;
    if header.len() < HEADER_LEN as usize {
        let (kind, reason) = torn_or_corrupt(format!(
            "segment header is incomplete ({} of {HEADER_LEN} bytes)",
            header.len()
        ));
        return Err((0, kind, reason).into());
    }
    if header[..8] != MAGIC {
        return Err((
            0,
            DamageKind::Corrupt,
            "not a Herald segment: the magic bytes are wrong".into(),
        )
            .into());
    }
    let named = u64::from_le_bytes(header[8..16].try_into().unwrap_or([0; 8]));
    if named != first {
        return Err((
            8,
            DamageKind::Corrupt,
            format!("header says the segment starts at offset {named}, its name says {first}"),
        )
            .into());
    }
    let mut pos = HEADER_LEN as usize;
    let mut expected = first;
    while pos < reader.len {
        // Read just this frame when its length says it fits in the file; anything else
        // (zeros, a length past the end) is judged on all that is left, as it always was.
        let length = reader
            .at(pos, frame::HEADER_LEN)?
            .first_chunk::<4>()
            .copied();
        let need = match length {
            Some(len) => {
                let len = u32::from_le_bytes(len);
                let end = pos
                    .saturating_add(frame::HEADER_LEN)
                    .saturating_add(len as usize);
                match len {
                    0 => usize::MAX,
                    len if len > frame::MAX_PAYLOAD => frame::HEADER_LEN,
                    _ if end > reader.len => usize::MAX,
                    len => frame::HEADER_LEN + len as usize,
                }
            }
            None => usize::MAX,
        };
        let rest = reader.at(pos, need)?;
        match frame::parse(rest) {
            Parsed::Whole { payload, size } => {
                let record = decode(payload).map_err(|reason| {
                    (
                        pos as u64,
                        DamageKind::Corrupt,
                        format!("record does not decode: {reason}"),
                    )
                })?;
                if record.offset != expected {
                    return Err((
                        pos as u64,
                        DamageKind::Corrupt,
                        format!(
                            "record has offset {} where {expected} was expected",
                            record.offset
                        ),
                    )
                        .into());
                }
                visit(pos as u64, size as u32, record);
                pos += size;
                expected += 1;
            }
            Parsed::Incomplete if !frame::any_valid_after(rest) => {
                let (kind, reason) = torn_or_corrupt(format!(
                    "incomplete record: the file ends {} bytes into it",
                    rest.len()
                ));
                return Err((pos as u64, kind, reason).into());
            }
            Parsed::Incomplete => {
                return Err((
                    pos as u64,
                    DamageKind::Corrupt,
                    "record length runs past the end of the file, yet valid records follow".into(),
                )
                    .into())
            }
            Parsed::Zeros => {
                let (kind, reason) = torn_or_corrupt(format!(
                    "{} zero bytes where a record should be",
                    rest.len()
                ));
                return Err((pos as u64, kind, reason).into());
            }
            Parsed::Bad(reason) => return Err((pos as u64, DamageKind::Corrupt, reason).into()),
        }
    }
    Ok(())
}
