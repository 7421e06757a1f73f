//! The durable embedded log: append-only segment files with group commit.
//!
//! Appends are serialized by one lock: each is deduplicated, given offsets and sequences,
//! framed and written (`pwrite`) in one go, then indexed. A sync thread makes them durable:
//! it waits until something was written, takes everything written so far, and
//! `fdatasync`s it once, so appends arriving while a sync runs share the next one (group
//! commit). Readers only ever see durable records. Recent records stay in memory, so
//! subscribers close to the head read without touching the disk.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::cache::Cache;
use super::dedup::{self, Dedup, DedupWindow};
use super::durability::{known_synced, Durability, Mark, MarkState, Synced};
use super::frame::{self, Parsed};
use super::index::Index;
use super::segment::{self, Damage, DamageKind};
use super::staged::{Place, Staged};
use super::write_health::WriteHealth;
use super::{EventLog, LogError, Part, ReadBatch, Record, Take, Visibility, Wanted};
use crate::envelope::Position;
use crate::latency;

/// How a [`FileLog`] is set up.
#[derive(Debug, Clone)]
pub struct FileLogOptions {
    /// The directory holding the segment files; created if missing.
    pub dir: PathBuf,
    /// Whether appends are synced to disk before they count as durable.
    pub fsync: bool,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// How far back resent events are recognised.
    pub dedup_window: DedupWindow,
    /// Bytes of the newest records kept in memory for readers near the head.
    pub cache_bytes: usize,
    /// What outside the log shows it was synced to (the newest snapshot): a damaged tail at
    /// or before it is refused as corruption rather than cut as torn.
    pub synced: Option<Synced>,
}

impl FileLogOptions {
    /// Durable defaults for a log in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            fsync: true,
            segment_bytes: 64 << 20,
            dedup_window: DedupWindow::Events(1_000_000),
            cache_bytes: 64 << 20,
            synced: None,
        }
    }
}

/// A log just opened, and the torn tail it cut off, if there was one.
pub struct Opened {
    /// The log, ready for appends.
    pub log: FileLog,
    /// The torn tail truncated on opening.
    pub truncated: Option<Damage>,
}

/// The durable event log in a directory of segment files.
pub struct FileLog {
    dir: PathBuf,
    /// Held for the log's lifetime: one process at a time writes a log directory.
    _lock: DirLock,
    state: RwLock<State>,
    durability: Arc<Durability>,
    /// Whether appends fail now, for logs and readiness.
    write_health: WriteHealth,
    sync: Option<Arc<SyncShared>>,
    sync_thread: Option<JoinHandle<()>>,
    /// Time spent holding the append lock, in nanoseconds, and the events appended: the
    /// serialized cost of an event (see [`FileLog::serialized`]).
    serial_nanos: AtomicU64,
    serial_events: AtomicU64,
}

struct Segment {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

struct State {
    segments: Vec<Segment>,
    index: Index,
    dedup: Dedup,
    /// The newest records, bounded by bytes.
    cache: Cache,
    written: u64,
    segment_bytes: u64,
    scratch: Vec<u8>,
}

/// What the sync thread is asked to make durable.
#[derive(Default)]
struct SyncRequest {
    /// Everything up to this offset was written.
    written: u64,
    /// Files written since the last sync.
    dirty: Vec<Arc<File>>,
    stop: bool,
}

struct SyncShared {
    request: Mutex<SyncRequest>,
    wake: Condvar,
}

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One read call returns at most this many bytes of records (but always at least one
/// record): whatever the `limit` in records, a page of large events stays small in memory
/// (a host's turn, a replay page, a tail's read-ahead, a page of the read API).
const PAGE_BYTES: u64 = 1 << 20;

/// The offsets one read returns, within its byte budget.
#[derive(Default)]
struct Page {
    offsets: Vec<u64>,
    bytes: u64,
}

impl Page {
    /// Adds the record at `offset` (`size` bytes) unless the page is full; `false` when full.
    fn take(&mut self, offset: u64, size: u32) -> bool {
        if !self.offsets.is_empty() && self.bytes + u64::from(size) > PAGE_BYTES {
            return false;
        }
        self.offsets.push(offset);
        self.bytes += u64::from(size);
        true
    }
}

/// Reads larger than this are split; gaps larger than this are not read through.
const SPAN_BYTES: u64 = 4 << 20;
const GAP_BYTES: u64 = 64 << 10;

impl FileLog {
    /// Opens (or creates) the log in `options.dir`, checking every record: a torn tail is
    /// truncated with a warning; any other damage is an error naming file and byte, and so
    /// is a damaged or missing tail that the durable mark or `options.synced` shows was
    /// synced (nothing is changed then).
    pub fn open(options: FileLogOptions) -> Result<Opened, LogError> {
        let dir = options.dir.clone();
        fs::create_dir_all(&dir).map_err(|error| LogError::io(&dir, &error))?;
        let lock = DirLock::take(&dir)?;
        let mut index = Index::default();
        let mut dedup = Dedup::new(options.dedup_window, 1);
        let mut cache = Cache::new(options.cache_bytes);
        let now = now_ms();
        let previous_mark = Mark::read(&dir);
        let mut walked = segment::walk(&dir, &mut |segment, pos, size, record| {
            index.push(&record, segment as u32, pos, size);
            let envelope = &record.envelope;
            let key = dedup::key(&envelope.stream, &envelope.source, &envelope.id);
            if let dedup::Claim::Seen(_) = dedup.claim(key, record.appended_ms) {
                // Only a hash collision gets here: appends refuse real duplicates.
                dedup.take_over(key, record.appended_ms);
            }
            dedup.evict(now);
            cache.push(Arc::new(record), size as usize);
        })?;
        walked.judge(&dir, known_synced(&dir, options.synced.as_ref()).as_ref());
        let mut truncated = None;
        if let Some(damage) = walked.damage {
            if damage.kind != DamageKind::Torn || !damage.later.is_empty() {
                return Err(damage.to_error());
            }
            cut_torn_tail(&damage)?;
            warn!(
                file = %damage.file.display(),
                offset = damage.byte,
                reason = %damage.reason,
                "truncated a torn tail of the event log (a write cut short by a crash; it was never acknowledged)"
            );
            truncated = Some(damage);
        }
        let mut segments = Vec::new();
        for found in &walked.segments {
            let len = found.good_len.max(segment::HEADER_LEN);
            segments.push(Segment {
                path: found.path.clone(),
                file: Arc::new(open_rw(&found.path)?),
                len,
            });
        }
        let written = walked.next_offset - 1;
        if segments.is_empty() {
            segments.push(create_segment(&dir, 1)?);
        }
        let mark = Mark::open(&dir)?;
        let opening_mark = if options.fsync {
            // Everything on disk counts as durable from here on, including what a killed run
            // wrote but never synced: sync it before anything (a snapshot, the mark) says so.
            let active = &segments[segments.len() - 1];
            active
                .file
                .sync_data()
                .map_err(|error| LogError::io(&active.path, &error))?;
            MarkState {
                synced: written,
                unsynced_run: false,
            }
        } else {
            // On disk before any snapshot of unsynced records can be: from now on a
            // snapshot proves nothing about what reached the disk.
            MarkState {
                synced: previous_mark.map_or(0, |m| m.synced.min(written)),
                unsynced_run: true,
            }
        };
        if previous_mark != Some(opening_mark) {
            mark.write_synced(opening_mark)?;
        }
        let durability = Arc::new(Durability::new(written));
        let state = State {
            segments,
            index,
            dedup,
            cache,
            written,
            segment_bytes: options.segment_bytes,
            scratch: Vec::new(),
        };
        let (sync, sync_thread) = if options.fsync {
            let shared = Arc::new(SyncShared {
                request: Mutex::new(SyncRequest {
                    written,
                    ..SyncRequest::default()
                }),
                wake: Condvar::new(),
            });
            let thread = spawn_syncer(Arc::clone(&shared), Arc::clone(&durability), mark)?;
            (Some(shared), Some(thread))
        } else {
            (None, None)
        };
        Ok(Opened {
            log: Self {
                dir,
                _lock: lock,
                state: RwLock::new(state),
                durability,
                write_health: WriteHealth::default(),
                sync,
                sync_thread,
                serial_nanos: AtomicU64::new(0),
                serial_events: AtomicU64::new(0),
            },
            truncated,
        })
    }

    /// How long appends have held the log's lock so far, and how many events they appended:
    /// the part of an append no two hosts can do at once (what a criterion bench divides).
    pub fn serialized(&self) -> (Duration, u64) {
        (
            Duration::from_nanos(self.serial_nanos.load(Ordering::Relaxed)),
            self.serial_events.load(Ordering::Relaxed),
        )
    }

    /// The directory of the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn visible(&self, state: &State) -> u64 {
        self.durability.durable().min(state.written)
    }
}

impl Drop for FileLog {
    fn drop(&mut self) {
        if let Some(sync) = &self.sync {
            sync.request
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stop = true;
            sync.wake.notify_all();
        }
        if let Some(thread) = self.sync_thread.take() {
            // The thread syncs what is pending before it stops.
            let _ = thread.join();
        }
    }
}

impl State {
    fn active(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn cached(&self, offset: u64) -> Option<&Arc<Record>> {
        self.cache.get(offset)
    }

    /// The records at `offsets` (ascending), from memory or in as few reads as possible.
    fn load(&self, offsets: &[u64]) -> Result<Vec<Arc<Record>>, LogError> {
        let mut records = Vec::with_capacity(offsets.len());
        let mut i = 0;
        while i < offsets.len() {
            if let Some(record) = self.cached(offsets[i]) {
                records.push(Arc::clone(record));
                i += 1;
                continue;
            }
            let first = self.loc(offsets[i])?;
            let mut end = first.pos + u64::from(first.size);
            let mut j = i + 1;
            while j < offsets.len() && self.cached(offsets[j]).is_none() {
                let next = self.loc(offsets[j])?;
                let next_end = next.pos + u64::from(next.size);
                if next.segment != first.segment
                    || next.pos < end
                    || next.pos - end > GAP_BYTES
                    || next_end - first.pos > SPAN_BYTES
                {
                    break;
                }
                end = next_end;
                j += 1;
            }
            let segment = &self.segments[first.segment as usize];
            READ_BUFFER.with(|buffer| -> Result<(), LogError> {
                // One buffer per thread, reused: a fresh multi-megabyte allocation per read
                // makes the allocator consolidate every small chunk freed since the last.
                let mut bytes = buffer.borrow_mut();
                bytes.resize((end - first.pos) as usize, 0);
                segment
                    .file
                    .read_exact_at(&mut bytes, first.pos)
                    .map_err(|error| LogError::io(&segment.path, &error))?;
                for &offset in &offsets[i..j] {
                    let loc = self.loc(offset)?;
                    let start = (loc.pos - first.pos) as usize;
                    let frame_bytes = &bytes[start..start + loc.size as usize];
                    records.push(Arc::new(decode_frame(frame_bytes, &segment.path, loc.pos)?));
                }
                if bytes.capacity() > SPAN_BYTES as usize * 2 {
                    bytes.shrink_to(SPAN_BYTES as usize);
                }
                Ok(())
            })?;
            i = j;
        }
        Ok(records)
    }

    fn loc(&self, offset: u64) -> Result<super::index::Loc, LogError> {
        self.index
            .loc(offset)
            .ok_or_else(|| LogError::Unavailable(format!("offset {offset} is not in the log")))
    }

    /// The record of `(stream, source, id)` if it is in the window.
    fn find(&self, key: dedup::Key, stream: &str, source: &str, id: &str) -> Option<Arc<Record>> {
        let offset = self.dedup.get(key)?;
        let record = self.load(&[offset]).ok()?.pop()?;
        let envelope = &record.envelope;
        (envelope.stream == stream && envelope.source == source && envelope.id == id)
            .then_some(record)
    }

    fn roll(&mut self, dir: &Path) -> Result<(), LogError> {
        // The closed segment is synced first, so a crash can never leave a newer segment
        // on disk behind a gap in the older one.
        let closed = self.active();
        closed
            .file
            .sync_data()
            .map_err(|error| LogError::io(&closed.path, &error))?;
        let segment = create_segment(dir, self.written + 1)?;
        self.segments.push(segment);
        Ok(())
    }
}

fn decode_frame(bytes: &[u8], path: &Path, pos: u64) -> Result<Record, LogError> {
    let corrupt = |reason: String| LogError::Corrupt {
        file: path.to_path_buf(),
        byte: pos,
        reason,
    };
    match frame::parse(bytes) {
        Parsed::Whole { payload, .. } => segment::decode(payload).map_err(corrupt),
        Parsed::Bad(reason) => Err(corrupt(reason)),
        Parsed::Incomplete | Parsed::Zeros => Err(corrupt("record is incomplete".into())),
    }
}

/// Whether the log's directory takes a write again: 64 KiB written, synced and removed
/// (room for a typical append, so a nearly full disk does not flip readiness back and forth).
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let path = dir.join("PROBE");
    let written = File::create(&path).and_then(|file| {
        file.write_all_at(&[0; 64 * 1024], 0)?;
        file.sync_data()
    });
    let _ = fs::remove_file(&path);
    written
}

impl FileLog {
    /// The append itself; `append_all` notes its outcome for the write health.
    fn append_parts(&self, parts: Vec<Part>) -> Result<Vec<Vec<Arc<Record>>>, LogError> {
        let total: usize = parts.iter().map(|part| part.events.len()).sum();
        if total == 0 {
            return Ok(parts.iter().map(|_| Vec::new()).collect());
        }
        if let Some(reason) = self.durability.failure() {
            return Err(LogError::Unavailable(format!(
                "a sync failed earlier ({reason}); restart the node to recover from the log"
            )));
        }
        // Everything that does not need the lock is done by the appending thread: encoding,
        // checksums, hashes. Hosts of different domains and partitions do it in parallel.
        let mut staged_parts = Vec::with_capacity(parts.len());
        for part in parts {
            let mut events = Vec::with_capacity(part.events.len());
            for envelope in part.events {
                let staged = Staged::new(&part.stream, envelope)
                    .map_err(|error| LogError::Unavailable(error.to_string()))?;
                let size = staged.frame_len() as u64;
                if size > u64::from(frame::MAX_PAYLOAD) {
                    // A frame the reader would refuse must never be written.
                    return Err(LogError::TooLarge {
                        size,
                        max: frame::MAX_PAYLOAD,
                    });
                }
                events.push(staged);
            }
            staged_parts.push((part.stream, part.consumed, events));
        }
        let locked = Instant::now();
        let mut evicted = Vec::new();
        let mut guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let appended = self.place(&mut guard, staged_parts, total, &mut evicted);
        drop(guard);
        self.serial_nanos.fetch_add(
            u64::try_from(locked.elapsed().as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if appended.is_ok() {
            self.serial_events
                .fetch_add(total as u64, Ordering::Relaxed);
        }
        drop(evicted);
        appended
    }

    /// The serialized part of an append, under the lock: deduplication, offsets and
    /// sequences, headers, one copy into the write buffer, one write, the index.
    fn place(
        &self,
        state: &mut State,
        parts: Vec<(String, u64, Vec<Staged>)>,
        total: usize,
        evicted: &mut Vec<Arc<Record>>,
    ) -> Result<Vec<Vec<Arc<Record>>>, LogError> {
        let first_offset = state.written + 1;
        let appended_ms = now_ms();
        let first_sequences: Vec<u64> = parts
            .iter()
            .map(|(stream, _, _)| state.index.next_sequence(stream))
            .collect();
        // Where the n-th event of the call sits: its part and its index in it.
        let places: Vec<(usize, usize)> = parts
            .iter()
            .enumerate()
            .flat_map(|(p, (_, _, events))| (0..events.len()).map(move |i| (p, i)))
            .collect();
        // Claim every event's key for its offset; a held key is a duplicate if the record
        // holding it is the same event (earlier in this call or in the log).
        let mut claimed = 0;
        for &(p, i) in &places {
            let stream = parts[p].0.as_str();
            let staged = &parts[p].2[i];
            let event = &staged.envelope;
            let key = staged.dedup_key;
            let held_at = match state.dedup.claim(key, appended_ms) {
                dedup::Claim::New => {
                    claimed += 1;
                    continue;
                }
                dedup::Claim::Seen(offset) => offset,
            };
            let original = if held_at >= first_offset {
                let (hp, hi) = places[(held_at - first_offset) as usize];
                let held = &parts[hp].2[hi].envelope;
                (parts[hp].0 == stream && held.source == event.source && held.id == event.id).then(
                    || Position {
                        stream: stream.to_owned(),
                        sequence: first_sequences[hp] + hi as u64,
                    },
                )
            } else {
                let loaded = match state.load(&[held_at]) {
                    Ok(records) => records,
                    Err(error) => {
                        // Unsure whether it is a duplicate: refuse rather than risk it.
                        state.dedup.unclaim(claimed);
                        return Err(error);
                    }
                };
                loaded
                    .into_iter()
                    .next()
                    .filter(|record| {
                        let held = &record.envelope;
                        held.stream == stream && held.source == event.source && held.id == event.id
                    })
                    .map(|record| record.envelope.position())
            };
            if let Some(position) = original {
                state.dedup.unclaim(claimed);
                return Err(LogError::Duplicate {
                    event_source: event.source.clone(),
                    id: event.id.clone(),
                    position,
                });
            }
            // A hash collision with another event: this one takes the key over.
            state.dedup.take_over(key, appended_ms);
            claimed += 1;
        }
        if state.active().len >= state.segment_bytes {
            if let Err(error) = state.roll(&self.dir) {
                state.dedup.unclaim(claimed);
                return Err(error);
            }
        }
        let segment_index = (state.segments.len() - 1) as u32;
        let base = state.active().len;
        let mut scratch = std::mem::take(&mut state.scratch);
        scratch.clear();
        // Per part, each record with where it lands: position, frame size, key hash.
        type Landed = (Arc<Record>, u64, u32, u32);
        let mut records: Vec<Vec<Landed>> = Vec::with_capacity(parts.len());
        let mut offset = first_offset;
        for ((_, consumed, events), first_sequence) in parts.into_iter().zip(first_sequences) {
            let mut part_records = Vec::with_capacity(events.len());
            for (i, staged) in events.into_iter().enumerate() {
                let pos = base + scratch.len() as u64;
                let key_hash = staged.key_hash;
                let record = staged.write(
                    Place {
                        offset,
                        consumed,
                        appended_ms,
                        // One write holds the whole call; this lets opening tell a call cut short.
                        group_rest: (first_offset + total as u64 - 1 - offset) as u32,
                        sequence: first_sequence + i as u64,
                    },
                    &mut scratch,
                );
                offset += 1;
                let size = (base + scratch.len() as u64 - pos) as u32;
                part_records.push((Arc::new(record), pos, size, key_hash));
            }
            records.push(part_records);
        }
        let active = state.active();
        let written = active.file.write_all_at(&scratch, base);
        if let Err(error) = written {
            // Leave no partial call behind: the next append starts where this one did.
            let _ = active.file.set_len(base);
            let error = LogError::io(&active.path, &error);
            state.scratch = scratch;
            state.dedup.unclaim(claimed);
            return Err(error);
        }
        active.len += scratch.len() as u64;
        let file = Arc::clone(&active.file);
        state.scratch = scratch;
        state.dedup.evict(appended_ms);
        let mut appended = Vec::with_capacity(records.len());
        for part_records in records {
            let mut part_appended = Vec::with_capacity(part_records.len());
            for (record, pos, size, key_hash) in part_records {
                state
                    .index
                    .push_hashed(&record, segment_index, pos, size, key_hash);
                state
                    .cache
                    .push_evicting(Arc::clone(&record), size as usize, evicted);
                part_appended.push(record);
            }
            appended.push(part_appended);
        }
        state.written = offset - 1;
        let written = state.written;
        match &self.sync {
            Some(sync) => {
                let mut request = sync.request.lock().unwrap_or_else(PoisonError::into_inner);
                request.written = written;
                if !request.dirty.iter().any(|f| Arc::ptr_eq(f, &file)) {
                    request.dirty.push(file);
                }
                drop(request);
                sync.wake.notify_one();
            }
            None => self.durability.advance(written),
        }
        Ok(appended)
    }
}

impl EventLog for FileLog {
    fn append_all(&self, parts: Vec<Part>) -> Result<Vec<Vec<Arc<Record>>>, LogError> {
        let started = Instant::now();
        let appended = self.append_parts(parts);
        latency::observe_since(&latency::latencies().append, started);
        self.write_health.note(&appended);
        appended
    }

    fn write_failure(&self) -> Option<String> {
        self.durability
            .failure()
            .map(|reason| {
                format!("a sync failed ({reason}); restart the node to recover from the log")
            })
            .or_else(|| {
                self.write_health
                    .failure_or_probe(|| probe_write(&self.dir))
            })
    }

    fn find(&self, stream: &str, source: &str, id: &str) -> Result<Option<Arc<Record>>, LogError> {
        Ok(self
            .read()
            .find(dedup::key(stream, source, id), stream, source, id))
    }

    fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
        visibility: Visibility,
    ) -> Result<Vec<Arc<Record>>, LogError> {
        let state = self.read();
        let visible = match visibility {
            Visibility::Durable => self.visible(&state),
            Visibility::Written => state.written,
        };
        let mut page = Page::default();
        for &offset in state
            .index
            .stream(stream)
            .iter()
            .skip(from.saturating_sub(1) as usize)
            .take(limit)
            .take_while(|&&offset| offset <= visible)
        {
            if !page.take(offset, state.loc(offset)?.size) {
                break;
            }
        }
        state.load(&page.offsets)
    }

    fn read_after(
        &self,
        offset: u64,
        limit: usize,
        wanted: Wanted<'_>,
    ) -> Result<ReadBatch, LogError> {
        let state = self.read();
        let visible = self.visible(&state);
        let mut decided: Vec<Option<Take>> = vec![None; state.index.kinds()];
        let mut page = Page::default();
        let mut scanned_to = offset;
        let mut next = offset + 1;
        while next <= visible && page.offsets.len() < limit {
            let loc = state.loc(next)?;
            let kind = loc.kind;
            let take =
                *decided[kind as usize].get_or_insert_with(|| wanted(state.index.kind_name(kind)));
            if take.accepts(loc.key_hash) && !page.take(next, loc.size) {
                break;
            }
            scanned_to = next;
            next += 1;
        }
        Ok(ReadBatch {
            records: state.load(&page.offsets)?,
            scanned_to,
        })
    }

    fn head(&self) -> u64 {
        self.visible(&self.read())
    }

    fn written(&self) -> u64 {
        self.read().written
    }

    fn streams(&self) -> Vec<(String, u64)> {
        let state = self.read();
        state.index.streams_at(self.visible(&state))
    }

    fn sequence_at(&self, stream: &str, offset: u64) -> u64 {
        self.read().index.sequence_at(stream, offset)
    }

    fn durability(&self) -> &Durability {
        &self.durability
    }
}

fn spawn_syncer(
    shared: Arc<SyncShared>,
    durability: Arc<Durability>,
    mark: Mark,
) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new()
        .name("herald-log-sync".into())
        .spawn(move || sync_loop(&shared, &durability, &mark))
        .map_err(|error| LogError::Unavailable(format!("cannot start the sync thread: {error}")))
}

/// Syncs whatever was written since the last sync, until asked to stop; records each step
/// in the durable mark, and syncs the mark when it stops.
fn sync_loop(shared: &SyncShared, durability: &Durability, mark: &Mark) {
    let mut mark_failed = false;
    loop {
        let (target, dirty) = {
            let mut request = shared
                .request
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            while request.written <= durability.durable() && !request.stop {
                request = shared
                    .wake
                    .wait(request)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if request.written <= durability.durable() {
                if let Err(error) = mark.sync() {
                    warn!(file = %mark.path().display(), %error, "cannot sync the log's durable mark");
                }
                return;
            }
            (request.written, std::mem::take(&mut request.dirty))
        };
        let started = Instant::now();
        for file in &dirty {
            if let Err(error) = file.sync_data() {
                // After a failed fsync the kernel may have dropped the dirty pages: nothing
                // written since the last good sync can be promised. Stop acknowledging.
                error!(%error, "fdatasync of the event log failed; the node stops acknowledging events");
                durability.fail(error.to_string());
                return;
            }
        }
        latency::observe_since(&latency::latencies().fsync, started);
        // Before the acknowledgements (a write of 20 bytes, not synced), so whatever a
        // kill leaves shows every acknowledged record as synced. The mark is evidence for
        // the next start, not a step of this one: a failure only weakens that evidence, so
        // it is told once.
        let recorded = mark.write(MarkState {
            synced: target,
            unsynced_run: false,
        });
        if let (Err(error), false) = (recorded, mark_failed) {
            mark_failed = true;
            warn!(file = %mark.path().display(), %error, "cannot record the durable offset in the log's durable mark; a damaged tail may be taken for a torn one");
        }
        durability.advance(target);
    }
}

fn open_rw(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| LogError::io(path, &error))
}

/// Creates the segment whose first record will have offset `first`, durably.
fn create_segment(dir: &Path, first: u64) -> Result<Segment, LogError> {
    let path = dir.join(segment::file_name(first));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|error| LogError::io(&path, &error))?;
    file.write_all_at(&segment::header(first), 0)
        .and_then(|()| file.sync_all())
        .map_err(|error| LogError::io(&path, &error))?;
    sync_dir(dir)?;
    Ok(Segment {
        path,
        file: Arc::new(file),
        len: segment::HEADER_LEN,
    })
}

/// An exclusive lock on a log directory (`flock` on its `LOCK` file), released when
/// dropped or when the process dies, so a crash never leaves it stale.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of the log in `dir`, or says who may hold it.
    pub fn take(dir: &Path) -> Result<Self, LogError> {
        let path = dir.join("LOCK");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|error| LogError::io(&path, &error))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked {
                dir: dir.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(error)) => Err(LogError::io(&path, &error)),
        }
    }
}

/// Makes a directory's entries (new or renamed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|error| LogError::io(dir, &error))
}

/// Cuts a torn tail off: the file ends after its last whole record.
fn cut_torn_tail(damage: &Damage) -> Result<(), LogError> {
    let file = open_rw(&damage.file)?;
    let io = |error: std::io::Error| LogError::io(&damage.file, &error);
    if damage.byte < segment::HEADER_LEN {
        // The header itself was cut short; the name says what it must hold.
        let first = damage
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(1);
        file.set_len(0).map_err(io)?;
        file.write_all_at(&segment::header(first), 0).map_err(io)?;
    } else {
        file.set_len(damage.byte).map_err(io)?;
    }
    file.sync_all().map_err(io)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudevent::parse_structured;
    use crate::envelope::Envelope;
    use serde_json::json;

    fn event(id: &str, event_type: &str) -> Envelope {
        parse_structured(json!({
            "specversion": "1.0", "id": id, "source": "/t", "type": event_type,
            "subject": "k", "data": {"n": id}
        }))
        .unwrap()
        .envelope
    }

    fn open(dir: &Path, fsync: bool, segment_bytes: u64) -> Opened {
        FileLog::open(FileLogOptions {
            fsync,
            segment_bytes,
            cache_bytes: 2048,
            ..FileLogOptions::new(dir.join("log"))
        })
        .unwrap()
    }

    #[test]
    fn records_survive_reopening_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), false, 4096).log;
            for n in 0..100 {
                let stream = if n % 3 == 0 { "b" } else { "a" };
                let kind = if n % 3 == 0 { "b.Y" } else { "a.X" };
                log.append(stream, n, vec![event(&n.to_string(), kind)])
                    .unwrap();
            }
        }
        let segments = segment::list(&dir.path().join("log")).unwrap();
        assert!(
            segments.len() > 1,
            "expected several segments, got {segments:?}"
        );
        let opened = open(dir.path(), true, 4096);
        assert!(opened.truncated.is_none());
        let log = opened.log;
        assert_eq!(log.head(), 100);
        assert_eq!(log.streams(), vec![("a".into(), 66), ("b".into(), 34)]);
        let b = log.read_stream("b", 2, 3, Visibility::Durable).unwrap();
        assert_eq!(
            b.iter().map(|r| r.envelope.id.as_str()).collect::<Vec<_>>(),
            ["3", "6", "9"]
        );
        let only_b = log.read_after(0, 1000, &|t| (t == "b.Y").into()).unwrap();
        assert_eq!(only_b.records.len(), 34);
        assert_eq!(only_b.scanned_to, 100);
        assert_eq!(log.sequence_at("a", 4), 2);
        let found = log.find("a", "/t", "1").unwrap().unwrap();
        assert_eq!(found.envelope.sequence, 1);
        let err = log.append("a", 0, vec![event("2", "a.X")]).unwrap_err();
        assert!(matches!(err, LogError::Duplicate { position, .. } if position.sequence == 2));
    }

    #[test]
    fn appends_become_durable_through_the_sync_thread() {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), true, 1 << 20).log;
        let records = log
            .append("a", 0, vec![event("1", "a.X"), event("2", "a.X")])
            .unwrap();
        assert_eq!(log.written(), 2);
        let wait = log.durability().wait(records[1].offset);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(wait)
            .unwrap();
        assert_eq!(log.head(), 2);
        let err = log
            .append("a", 0, vec![event("3", "a.X"), event("3", "a.X")])
            .unwrap_err();
        assert!(matches!(err, LogError::Duplicate { position, .. } if position.sequence == 3));
        assert_eq!(log.written(), 2);
    }

    #[test]
    fn a_torn_tail_is_cut_and_damage_before_it_refuses_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), false, 1 << 20).log;
            for n in 0..5 {
                log.append("a", 0, vec![event(&n.to_string(), "a.X")])
                    .unwrap();
            }
        }
        let path = dir.path().join("log").join(segment::file_name(1));
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let opened = open(dir.path(), false, 1 << 20);
        let damage = opened.truncated.clone().expect("a torn tail");
        assert_eq!(damage.kind, DamageKind::Torn);
        assert_eq!(opened.log.head(), 4);
        opened.log.append("a", 0, vec![event("9", "a.X")]).unwrap();
        drop(opened);

        let mut bytes = fs::read(&path).unwrap();
        bytes[segment::HEADER_LEN as usize + 12] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        let Err(error) = FileLog::open(FileLogOptions::new(dir.path().join("log"))) else {
            panic!("a log damaged in the middle must not open");
        };
        assert!(
            matches!(&error, LogError::Corrupt { byte, .. } if *byte == segment::HEADER_LEN),
            "{error}"
        );
        assert!(error.to_string().contains("herald log repair"), "{error}");
    }

    #[test]
    fn an_append_cut_short_is_dropped_whole() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path(), false, 1 << 20).log;
            log.append("a", 0, vec![event("1", "a.X")]).unwrap();
            log.append_all(vec![
                Part {
                    stream: "a".into(),
                    consumed: 0,
                    events: vec![event("2", "a.X")],
                },
                Part {
                    stream: "b".into(),
                    consumed: 0,
                    events: vec![event("3", "b.Y")],
                },
            ])
            .unwrap();
        }
        let path = dir.path().join("log").join(segment::file_name(1));
        let bytes = fs::read(&path).unwrap();
        // The crash came after the first record of the two-part append was written.
        fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let opened = open(dir.path(), false, 1 << 20);
        let damage = opened
            .truncated
            .clone()
            .expect("the cut append is reported");
        assert!(
            damage.reason.contains("1 of its 2 records"),
            "{}",
            damage.reason
        );
        assert_eq!(opened.log.head(), 1);
        assert_eq!(opened.log.streams(), vec![("a".into(), 1)]);
        assert!(opened.log.find("a", "/t", "2").unwrap().is_none());
    }
}
