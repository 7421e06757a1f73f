//! Rebuilding a domain's state from the log.
//!
//! A domain's state is a fold over two sequences: its own stream (applied) and its inputs
//! (handled). Each own record says how far the domain had consumed its inputs when it was
//! appended (`Record::consumed`), so replay interleaves them exactly as they happened live:
//! every input at or before `consumed` is handled before the record is applied.
//!
//! Replay handles inputs only up to `upto`, the last own record's `consumed`: the host
//! appends an input's reactions before it handles the next input, so every input before
//! that point had its reactions logged, and no input after it had any. Those later inputs
//! are handled by the host's normal consumption, which appends their reactions. Only the
//! input at `upto` itself may have lost part of its reactions (a torn multi-record append);
//! replay returns those as `missing`, recognised by id.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::envelope::Envelope;
use crate::hosted::HostedDomain;
use crate::log::{EventLog, LogError, Record, Visibility};

const PAGE: usize = 4096;

/// Where a rebuild starts: the initial state (0, 0) or a snapshot's positions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Start {
    /// Inputs at or before this offset are already reflected.
    pub cursor: u64,
    /// Own events up to this sequence are already applied.
    pub own_sequence: u64,
}

/// What a rebuild did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Inputs at or before this offset are reflected; consumption resumes after it.
    pub cursor: u64,
    /// The last own sequence applied.
    pub own_sequence: u64,
    /// The offset of the last own event applied (0 if none).
    pub own_offset: u64,
    /// How many own events were applied.
    pub applied: u64,
    /// How many inputs were handled.
    pub handled: u64,
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

/// How far replay may handle inputs: the `consumed` of the domain's last own record.
pub fn replay_limit(log: &dyn EventLog, domain: &str) -> Result<u64, ReplayError> {
    let last = log.sequence_at(domain, log.written());
    if last == 0 {
        return Ok(0);
    }
    let records = log
        .read_stream(domain, last, 1, Visibility::Written)
        .map_err(|source| ReplayError::Log {
            domain: domain.to_owned(),
            source,
        })?;
    Ok(records.first().map_or(0, |record| record.consumed))
}

/// Replays the log into `domain`, which must hold the state `start` describes.
///
/// Applies every own event after `start.own_sequence` and handles the inputs (records
/// whose type `subscribed` accepts) after `start.cursor` up to offset `upto`. `time` stamps
/// reactions that turn out to be missing.
pub fn rebuild(
    domain: &mut dyn HostedDomain,
    log: &dyn EventLog,
    subscribed: &dyn Fn(&str) -> bool,
    start: Start,
    upto: u64,
    time: &str,
) -> Result<Replayed, ReplayError> {
    let name = domain.name();
    let log_error = |source| ReplayError::Log {
        domain: name.to_owned(),
        source,
    };
    let mut replayed = Replayed {
        cursor: start.cursor,
        own_sequence: start.own_sequence,
        ..Replayed::default()
    };
    let mut own = Pages::default();
    let mut inputs = Pages::default();
    let mut inputs_scanned = start.cursor;
    // Ids of own events caused by the input at `upto`: those reactions are logged.
    let mut logged_at_limit = HashSet::new();
    let mut emitted_at_limit = Vec::new();
    loop {
        if own.is_empty() && !own.done {
            let page = log
                .read_stream(
                    name,
                    start.own_sequence + 1 + own.len_read(),
                    PAGE,
                    Visibility::Written,
                )
                .map_err(log_error)?;
            own.done = page.is_empty();
            own.refill(page);
        }
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
            domain
                .apply(&record.envelope)
                .map_err(|error| ReplayError::Undecodable {
                    domain: name.to_owned(),
                    stream: record.envelope.stream.clone(),
                    sequence: record.envelope.sequence,
                    message: error.to_string(),
                })?;
            if record.consumed == upto {
                logged_at_limit.insert(record.envelope.id.clone());
            }
            replayed.own_sequence = record.envelope.sequence;
            replayed.own_offset = record.offset;
            replayed.applied += 1;
        } else {
            let Some(input) = inputs.pop() else { break };
            // A handler that failed live fails the same way here and is skipped the same way.
            if input.offset == upto {
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
    replayed.missing = emitted_at_limit
        .into_iter()
        .filter(|event| !logged_at_limit.contains(&event.id))
        .collect();
    Ok(replayed)
}

/// A page of records being consumed front to back.
#[derive(Default)]
struct Pages {
    records: VecDeque<Arc<Record>>,
    read: u64,
    done: bool,
}

impl Pages {
    fn refill(&mut self, page: Vec<Arc<Record>>) {
        self.read += page.len() as u64;
        self.records.extend(page);
    }

    fn len_read(&self) -> u64 {
        self.read
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
