//! Rebuilding a domain's state from the log.
//!
//! A domain's state is a fold over two sequences: its own records (applied) and its inputs
//! (handled). Its own records are its stream and its dead-letter stream (see
//! [`crate::deadletter`]). Each own record says how far the domain had consumed its inputs
//! when it was appended (`Record::consumed`), so replay interleaves them exactly as they
//! happened live: every input at or before `consumed` is handled before the record is
//! applied.
//!
//! Replay handles inputs only up to `upto`, the last own record's `consumed`: the host
//! appends an input's reactions before it handles the next input, so every input before
//! that point had its reactions logged, and no input after it had any. Those later inputs
//! are handled by the host's normal consumption, which appends their reactions. Only the
//! input at `upto` itself may have lost part of its reactions (a torn multi-record append);
//! replay returns those as `missing`, recognised by id.
//!
//! Dead letters replay without running a failing handler again: an input that was parked
//! where it stood is recognised from its `parked` record (read up front) and holds its key;
//! later inputs of a held key wait, as they did live; a `retried` or `skipped` record
//! releases the key, and replay handles the inputs that release let through, in the order
//! the host did, applying each one's reactions from the same append.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use crate::deadletter::{self, DeadLetterRecord, Holds};
use crate::envelope::Envelope;
use crate::hosted::HostedDomain;
use crate::log::{EventLog, LogError, Record, Take, Visibility, Wanted};

const PAGE: usize = 4096;

/// Where a rebuild starts: the initial state or a snapshot's positions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Start {
    /// Inputs at or before this offset are already reflected.
    pub cursor: u64,
    /// Own events up to this sequence are already applied.
    pub own_sequence: u64,
    /// Dead-letter records up to this sequence are already reflected.
    pub dead_sequence: u64,
    /// The keys held at that point.
    pub holds: Holds,
}

/// What a rebuild did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Inputs at or before this offset are reflected; consumption resumes after it.
    pub cursor: u64,
    /// The last own sequence applied.
    pub own_sequence: u64,
    /// The offset of the last own record (event or dead letter) applied (0 if none).
    pub own_offset: u64,
    /// The last dead-letter sequence reflected.
    pub dead_sequence: u64,
    /// How many own events were applied.
    pub applied: u64,
    /// How many inputs were handled.
    pub handled: u64,
    /// The keys held after the last record replayed.
    pub holds: Holds,
    /// Reactions to the input at `upto` that are not in the log, to append now.
    pub missing: Vec<Envelope>,
}

/// Why a rebuild stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The log could not be read.
    #[error("cannot read the log while rebuilding \"{domain}\": {source}")]
    Log {
        /// The domain being rebuilt.
        domain: String,
        /// The log's reason.
        source: LogError,
    },
    /// An own event in the log does not decode: the log and the code disagree.
    #[error("own event {stream}#{sequence} of \"{domain}\" does not decode: {message}")]
    Undecodable {
        /// The domain.
        domain: String,
        /// Its stream.
        stream: String,
        /// The event's sequence.
        sequence: u64,
        /// The decoder's reason.
        message: String,
    },
}

/// How far replay may handle inputs: the `consumed` of the domain's last own record, in
/// its stream or its dead-letter stream.
pub fn replay_limit(log: &dyn EventLog, domain: &str) -> Result<u64, ReplayError> {
    let own = last_consumed(log, domain, domain)?;
    let dead = last_consumed(log, domain, &deadletter::stream(domain))?;
    Ok(own.max(dead))
}

fn last_consumed(log: &dyn EventLog, domain: &str, stream: &str) -> Result<u64, ReplayError> {
    let last = log.sequence_at(stream, log.written());
    if last == 0 {
        return Ok(0);
    }
    let records = log
        .read_stream(stream, last, 1, Visibility::Written)
        .map_err(|source| ReplayError::Log {
            domain: domain.to_owned(),
            source,
        })?;
    Ok(records.first().map_or(0, |record| record.consumed))
}

/// The durable record at node-wide `offset`.
pub fn read_at(log: &dyn EventLog, offset: u64) -> Result<Option<Arc<Record>>, LogError> {
    let batch = log.read_after(offset.saturating_sub(1), 1, &|_| Take::All)?;
    Ok(batch.records.into_iter().find(|r| r.offset == offset))
}

/// Replays the log into `domain`, whose own stream is `stream` (its name, or a
/// partition's), and which must hold the state `start` describes.
///
/// Applies every own event after `start.own_sequence` and handles the inputs (records
/// whose type `subscribed` accepts) after `start.cursor` up to offset `upto`. `time` stamps
/// reactions that turn out to be missing.
pub fn rebuild(
    domain: &mut dyn HostedDomain,
    stream: &str,
    log: &dyn EventLog,
    subscribed: Wanted<'_>,
    start: Start,
    upto: u64,
    time: &str,
) -> Result<Replayed, ReplayError> {
    rebuild_reporting(
        domain,
        stream,
        log,
        subscribed,
        start,
        upto,
        time,
        &mut |_| {},
    )
}

/// How far a replay has come, in records: own records read plus input positions passed,
/// of those it will read. Positions, not inputs, so `total` is known before reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Records read so far.
    pub done: u64,
    /// Records to read in all.
    pub total: u64,
}

/// Records replayed between two calls of a [`rebuild_reporting`] report.
const REPORT_EVERY: u64 = 1024;

/// [`rebuild`], calling `report` every [`REPORT_EVERY`] records and once at the end.
#[allow(clippy::too_many_arguments)]
pub fn rebuild_reporting(
    domain: &mut dyn HostedDomain,
    stream: &str,
    log: &dyn EventLog,
    subscribed: Wanted<'_>,
    start: Start,
    upto: u64,
    time: &str,
    report: &mut dyn FnMut(Progress),
) -> Result<Replayed, ReplayError> {
    let name = stream;
    let log_error = |source| ReplayError::Log {
        domain: name.to_owned(),
        source,
    };
    let dead_stream = deadletter::stream(name);
    let parked_in_place = parked_in_place(log, name, &dead_stream)?;
    let mut replayed = Replayed {
        cursor: start.cursor,
        own_sequence: start.own_sequence,
        dead_sequence: start.dead_sequence,
        holds: start.holds,
        ..Replayed::default()
    };
    let mut own = OwnRecords {
        streams: [
            OwnStream::new(name.to_owned(), start.own_sequence),
            OwnStream::new(dead_stream, start.dead_sequence),
        ],
    };
    let written = log.written();
    // A stream whose end cannot be asked now (u64::MAX, networked) counts as nothing to read.
    let to_read = |stream: &str, after: u64| match log.sequence_at(stream, written) {
        u64::MAX => 0,
        last => last.saturating_sub(after),
    };
    let mut progress = Progress {
        done: 0,
        total: to_read(name, start.own_sequence)
            .saturating_add(to_read(&deadletter::stream(name), start.dead_sequence))
            .saturating_add(upto.saturating_sub(start.cursor)),
    };
    let mut own_read = 0u64;
    let mut steps = 0u64;
    let mut inputs = Pages::default();
    let mut inputs_scanned = start.cursor;
    // Ids of own events caused by the input at `upto`: those reactions are logged.
    let mut logged_at_limit = HashSet::new();
    let mut emitted_at_limit = Vec::new();
    loop {
        steps += 1;
        if steps.is_multiple_of(REPORT_EVERY) {
            // Input positions scanned count (a long scan past other domains' records is
            // work too), up to the limit.
            let scanned = inputs_scanned.min(upto).saturating_sub(start.cursor);
            progress.done = own_read.saturating_add(scanned).min(progress.total);
            report(progress);
        }
        own.fill(log).map_err(log_error)?;
        if inputs.is_empty() && !inputs.done {
            if inputs_scanned >= upto {
                inputs.done = true;
            } else {
                let batch = log
                    .read_after(inputs_scanned, PAGE, subscribed)
                    .map_err(log_error)?;
                inputs.done = batch.scanned_to == inputs_scanned;
                inputs_scanned = batch.scanned_to;
                inputs.refill(batch.records);
                if inputs.is_empty() && !inputs.done {
                    continue;
                }
            }
        }
        let next_input = inputs.peek().filter(|input| input.offset <= upto);
        let apply_own = match (own.peek(), next_input) {
            (None, None) => break,
            (Some(record), Some(input)) => record.consumed < input.offset,
            (Some(_), None) => true,
            (None, Some(_)) => false,
        };
        if apply_own {
            let Some(record) = own.pop() else { break };
            own_read += 1;
            if record.consumed == upto && record.envelope.stream == name {
                logged_at_limit.insert(record.envelope.id.clone());
            }
            if record.envelope.stream == name {
                apply_own_event(domain, &record, &mut replayed)?;
                continue;
            }
            let group = own.take_group(log, record.group_rest).map_err(log_error)?;
            own_read += group.len() as u64;
            for member in group.iter().filter(|r| r.consumed == upto) {
                logged_at_limit.insert(member.envelope.id.clone());
            }
            replay_dead_letter(domain, name, log, &record, group, &mut replayed)?;
        } else {
            let Some(input) = inputs.pop() else { break };
            let key = &input.envelope.partitionkey;
            if replayed.holds.wait(key, input.offset) {
                // Held behind a parked input of its key, as it was live.
            } else if let Some(parked) = parked_in_place.get(&input.offset) {
                replayed.holds.park(parked.clone(), VecDeque::new());
            } else if input.offset == upto {
                // A handler that failed live and was not parked (the node died during its
                // retries) fails again here, and is retried live after replay.
                emitted_at_limit = domain.handle(&input.envelope, time).unwrap_or_default();
            } else {
                // Reactions of inputs before the limit are in the log already.
                let _ = domain.rehandle(&input.envelope);
            }
            replayed.cursor = replayed.cursor.max(input.offset);
            replayed.handled += 1;
        }
    }
    replayed.cursor = replayed.cursor.max(upto);
    progress.done = progress.total;
    report(progress);
    replayed.missing = emitted_at_limit
        .into_iter()
        .filter(|event| !logged_at_limit.contains(&event.id))
        .collect();
    Ok(replayed)
}

fn apply_own_event(
    domain: &mut dyn HostedDomain,
    record: &Record,
    replayed: &mut Replayed,
) -> Result<(), ReplayError> {
    domain
        .apply(&record.envelope)
        .map_err(|error| ReplayError::Undecodable {
            domain: domain.name().to_owned(),
            stream: record.envelope.stream.clone(),
            sequence: record.envelope.sequence,
            message: error.to_string(),
        })?;
    replayed.own_sequence = record.envelope.sequence;
    replayed.own_offset = record.offset;
    replayed.applied += 1;
    Ok(())
}

/// Parked records of inputs parked where they stood (`consumed` is the input itself), by
/// input offset: replay must hold their key there rather than run the handler.
fn parked_in_place(
    log: &dyn EventLog,
    name: &str,
    dead_stream: &str,
) -> Result<HashMap<u64, deadletter::Parked>, ReplayError> {
    let mut found = HashMap::new();
    let mut from = 1;
    loop {
        let page = log
            .read_stream(dead_stream, from, PAGE, Visibility::Written)
            .map_err(|source| ReplayError::Log {
                domain: name.to_owned(),
                source,
            })?;
        let Some(last) = page.last() else { break };
        from = last.envelope.sequence + 1;
        for record in &page {
            if let Ok(DeadLetterRecord::Parked(parked)) = deadletter::decode(&record.envelope) {
                if record.consumed == parked.input.offset {
                    found.insert(parked.input.offset, parked);
                }
            }
        }
    }
    Ok(found)
}

/// Replays one dead-letter record, with the rest of its append (`group`).
fn replay_dead_letter(
    domain: &mut dyn HostedDomain,
    name: &str,
    log: &dyn EventLog,
    record: &Record,
    group: Vec<Arc<Record>>,
    replayed: &mut Replayed,
) -> Result<(), ReplayError> {
    let undecodable = |error: deadletter::DeadLetterError| ReplayError::Undecodable {
        domain: name.to_owned(),
        stream: error.stream,
        sequence: error.sequence,
        message: error.message,
    };
    replayed.dead_sequence = record.envelope.sequence;
    replayed.own_offset = record.offset;
    let released = match deadletter::decode(&record.envelope).map_err(undecodable)? {
        DeadLetterRecord::Parked(parked) => {
            // Parked in place (its key is held already) or a failed retry: details only.
            replayed.holds.park(parked, VecDeque::new());
            return replay_group_rest(domain, name, group, replayed);
        }
        DeadLetterRecord::Retried(released) => (released, true),
        DeadLetterRecord::Skipped(released) => (released, false),
    };
    let (released, retried) = released;
    let Some(held) = replayed.holds.release(&released.input.key) else {
        return replay_group_rest(domain, name, group, replayed);
    };
    let mut items: VecDeque<u64> = held.waiting;
    if retried {
        items.push_front(held.parked.input.offset);
    }
    // The append says where the release stopped: an input parked in it holds the key again.
    let mut parked_again = None;
    let mut reactions = VecDeque::new();
    for member in group {
        if member.envelope.stream == name {
            reactions.push_back(member);
        } else {
            replayed.dead_sequence = member.envelope.sequence;
            if let Ok(DeadLetterRecord::Parked(parked)) = deadletter::decode(&member.envelope) {
                parked_again = Some(parked);
            }
        }
    }
    while let Some(offset) = items.pop_front() {
        if let Some(parked) = parked_again.as_ref().filter(|p| p.input.offset == offset) {
            replayed.holds.park(parked.clone(), items);
            break;
        }
        let input = read_at(log, offset).map_err(|source| ReplayError::Log {
            domain: name.to_owned(),
            source,
        })?;
        let Some(input) = input else { continue };
        let _ = domain.rehandle(&input.envelope);
        let position = input.envelope.position();
        while reactions
            .front()
            .and_then(|r| r.envelope.cause.as_ref())
            .is_some_and(|cause| cause.position == position)
        {
            if let Some(reaction) = reactions.pop_front() {
                apply_own_event(domain, &reaction, replayed)?;
            }
        }
    }
    for reaction in reactions {
        apply_own_event(domain, &reaction, replayed)?;
    }
    Ok(())
}

/// Applies the domain's own events among the rest of an append.
fn replay_group_rest(
    domain: &mut dyn HostedDomain,
    name: &str,
    group: Vec<Arc<Record>>,
    replayed: &mut Replayed,
) -> Result<(), ReplayError> {
    for member in group {
        if member.envelope.stream == name {
            apply_own_event(domain, &member, replayed)?;
        } else {
            replayed.dead_sequence = member.envelope.sequence;
        }
    }
    Ok(())
}

/// One own stream being read in sequence order.
struct OwnStream {
    name: String,
    next: u64,
    pages: Pages,
}

impl OwnStream {
    fn new(name: String, after: u64) -> Self {
        Self {
            name,
            next: after + 1,
            pages: Pages::default(),
        }
    }

    fn fill(&mut self, log: &dyn EventLog) -> Result<(), LogError> {
        if self.pages.is_empty() && !self.pages.done {
            let page = log.read_stream(&self.name, self.next, PAGE, Visibility::Written)?;
            self.pages.done = page.is_empty();
            self.next += page.len() as u64;
            self.pages.refill(page);
        }
        Ok(())
    }
}

/// A domain's own streams merged in log order.
struct OwnRecords {
    streams: [OwnStream; 2],
}

impl OwnRecords {
    fn fill(&mut self, log: &dyn EventLog) -> Result<(), LogError> {
        for stream in &mut self.streams {
            stream.fill(log)?;
        }
        Ok(())
    }

    fn next_index(&self) -> Option<usize> {
        let [a, b] = &self.streams;
        match (a.pages.peek(), b.pages.peek()) {
            (None, None) => None,
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(1),
            (Some(x), Some(y)) => Some(if x.offset < y.offset { 0 } else { 1 }),
        }
    }

    fn peek(&self) -> Option<&Arc<Record>> {
        self.next_index()
            .and_then(|index| self.streams[index].pages.peek())
    }

    fn pop(&mut self) -> Option<Arc<Record>> {
        self.next_index()
            .and_then(|index| self.streams[index].pages.pop())
    }

    /// The `count` own records that follow, in log order (the rest of one append).
    fn take_group(&mut self, log: &dyn EventLog, count: u32) -> Result<Vec<Arc<Record>>, LogError> {
        let mut group = Vec::with_capacity(count as usize);
        for _ in 0..count {
            self.fill(log)?;
            match self.pop() {
                Some(record) => group.push(record),
                None => break,
            }
        }
        Ok(group)
    }
}

/// A page of records being consumed front to back.
#[derive(Default)]
struct Pages {
    records: VecDeque<Arc<Record>>,
    done: bool,
}

impl Pages {
    fn refill(&mut self, page: Vec<Arc<Record>>) {
        self.records.extend(page);
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn peek(&self) -> Option<&Arc<Record>> {
        self.records.front()
    }

    fn pop(&mut self) -> Option<Arc<Record>> {
        self.records.pop_front()
    }
}
