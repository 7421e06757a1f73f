//! Rebuilding a domain's state from the log.
//!
//! A domain's state is a fold over two sequences: its own stream (applied) and its inputs
//! (handled). Each own record says how far the domain had consumed its inputs when it was
//! appended (`Record::consumed`), so replay interleaves them exactly as they happened live:
//! every input at or before `consumed` is handled before the record is applied. Re-running
//! a handler yields the same derived ids, so emitted events already in the log are skipped;
//! any that are not (a crash between handling and appending) are returned to be appended.

use std::sync::Arc;

use crate::envelope::Envelope;
use crate::hosted::HostedDomain;
use crate::log::{EventLog, LogError, Record};

const PAGE: usize = 4096;

/// What a rebuild did.
#[derive(Debug, Default)]
pub struct Replayed {
    /// The last input offset handled; live consumption resumes after it.
    pub cursor: u64,
    /// How many own events were applied.
    pub applied: u64,
    /// How many inputs were handled.
    pub handled: u64,
    /// Emitted events whose ids are not in the log yet, in order, to be appended.
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

/// Replays the log into `domain`, which must be in its initial state.
///
/// `subscribed` tells which records are inputs of the domain; inputs after offset `upto`
/// are left for live consumption. `time` stamps events that turn out to be missing.
pub fn rebuild(
    domain: &mut dyn HostedDomain,
    log: &dyn EventLog,
    subscribed: &dyn Fn(&Envelope) -> bool,
    upto: u64,
    time: &str,
) -> Result<Replayed, ReplayError> {
    let name = domain.name();
    let log_error = |source| ReplayError::Log {
        domain: name.to_owned(),
        source,
    };
    let mut replayed = Replayed::default();
    let mut own = Pages::default();
    let mut inputs = Pages::default();
    let mut own_next_sequence = 1;
    let mut inputs_scanned = 0;
    loop {
        if own.is_empty() && !own.done {
            let page = log
                .read_stream(name, own_next_sequence, PAGE)
                .map_err(log_error)?;
            own_next_sequence += page.len() as u64;
            own.done = page.is_empty();
            own.refill(page);
        }
        if inputs.is_empty() && !inputs.done {
            let batch = log
                .read_after(inputs_scanned, PAGE, subscribed)
                .map_err(log_error)?;
            let exhausted = batch.scanned_to == inputs_scanned;
            inputs_scanned = batch.scanned_to;
            inputs.done = exhausted;
            inputs.refill(batch.records);
            if inputs.is_empty() && !inputs.done {
                continue;
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
            replayed.applied += 1;
        } else {
            let Some(input) = inputs.pop() else { break };
            // A handler that failed live fails the same way here and is skipped the same way.
            if let Ok(emitted) = domain.handle(&input.envelope, time) {
                replayed.missing.extend(
                    emitted
                        .into_iter()
                        .filter(|event| log.find(name, &event.source, &event.id).is_none()),
                );
            }
            replayed.cursor = input.offset;
            replayed.handled += 1;
        }
    }
    Ok(replayed)
}

/// A page of records being consumed front to back.
#[derive(Default)]
struct Pages {
    records: std::collections::VecDeque<Arc<Record>>,
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
