//! What a host does when a handler fails: catch it, rebuild, retry with backoff, park.
//!
//! A handler that returns an error or panics may have changed the state half-way, so the
//! host first rebuilds the state from its last snapshot plus the log (to just before the
//! input). It then tries the same input again after a backoff that doubles each time, up to
//! the domain's `retry_attempts`. After the last attempt the input is parked: a record in
//! `deadletter-<domain>` says which input, the error, the attempts and the time; its key is
//! held, so later inputs with that key wait behind it while other keys go on.

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use herald_runtime::deadletter::{self, InputRef, Parked};
use herald_runtime::envelope::now_rfc3339;
use herald_runtime::log::{LogError, Record};
use herald_runtime::HandleError;
use tracing::{error, warn};

use super::inputs::{Stall, STALL_RETRY};
use super::DomainHost;

/// How a domain's failing handlers are retried and parked, from `[domain.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPolicy {
    /// Runs of the handler on one input before it is parked.
    pub attempts: u32,
    /// The wait before the first retry.
    pub backoff: Duration,
    /// The longest wait between retries.
    pub backoff_max: Duration,
    /// Keys that may be held at once before the domain stops consuming.
    pub max_parked_keys: usize,
}

impl Default for FaultPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            max_parked_keys: 1000,
        }
    }
}

impl FaultPolicy {
    /// The wait after the `failures`-th failure: `backoff`, doubling, at most `backoff_max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.backoff
            .saturating_mul(1 << doublings)
            .min(self.backoff_max)
    }
}

/// How a handler failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Its error, or the panic's message.
    pub message: String,
    /// Whether it panicked.
    pub panicked: bool,
}

impl Failure {
    /// The error as recorded in a dead letter.
    pub(crate) fn describe(&self) -> String {
        if self.panicked {
            format!("handler panicked: {}", self.message)
        } else {
            self.message.clone()
        }
    }
}

/// The input the host is retrying, how often it failed so far, and when it is due.
#[derive(Debug, Clone)]
pub(crate) struct Retrying {
    offset: u64,
    failures: u32,
    pub(crate) not_before: Instant,
}

/// Runs a domain call, turning a panic into a [`Failure`] instead of unwinding the actor.
pub(crate) fn guarded<T>(call: impl FnOnce() -> Result<T, HandleError>) -> Result<T, Failure> {
    match caught(call) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failure {
            message: error.to_string(),
            panicked: false,
        }),
        Err(message) => Err(Failure {
            message,
            panicked: true,
        }),
    }
}

/// Runs a domain call; a panic becomes its message.
pub(crate) fn caught<T>(call: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(call)).map_err(|payload| panic_message(payload.as_ref()))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

impl DomainHost {
    /// The handler failed on `record`: rebuild, then retry later or park it.
    pub(super) fn failed(&mut self, record: &Record, failure: Failure) -> Result<(), Stall> {
        let input = &record.envelope;
        let failures = match &self.retrying {
            Some(retrying) if retrying.offset == record.offset => retrying.failures + 1,
            _ => 1,
        };
        let attempts = self.faults.attempts;
        error!(
            domain = self.name(),
            input = %format!("{}#{}", input.stream, input.sequence),
            event_type = %input.event_type,
            key = %input.partitionkey,
            attempt = failures,
            of = attempts,
            error = %failure.describe(),
            "handler failed"
        );
        // The handler may have changed the state before failing: back to the log's state,
        // just before this input.
        self.cursor = record.offset - 1;
        if !self.restore() {
            return Err(Stall::Blocked);
        }
        if failures < attempts {
            let delay = self.faults.delay(failures);
            self.retrying = Some(Retrying {
                offset: record.offset,
                failures,
                not_before: Instant::now() + delay,
            });
            return Err(Stall::Retry(delay));
        }
        if self.holds.len() >= self.faults.max_parked_keys {
            let reason = format!(
                "{} keys are held behind dead letters (max_parked_keys = {}) and input {}#{} fails too; retry or skip dead letters (POST /v1/deadletters/{}/{{id}}/retry or /skip) to resume",
                self.holds.len(),
                self.faults.max_parked_keys,
                input.stream,
                input.sequence,
                self.name()
            );
            error!(domain = self.name(), %reason, "domain stops consuming");
            self.view.set_failure(Some(reason));
            self.blocked = true;
            self.retrying = Some(Retrying {
                offset: record.offset,
                failures: failures - 1,
                not_before: Instant::now(),
            });
            return Err(Stall::Blocked);
        }
        let parked = Parked {
            input: InputRef::of(record),
            error: failure.describe(),
            attempts: failures,
            parked_at: now_rfc3339(),
        };
        let id = parked.input.dead_letter_id();
        match self.park(parked, record.offset, input.traceparent.clone()) {
            Ok(_) => {
                warn!(
                    domain = self.name(),
                    dead_letter = %id,
                    key = %input.partitionkey,
                    "input parked as a dead letter; later inputs with its key wait"
                );
                self.cursor = record.offset;
                self.retrying = None;
                self.publish_positions();
                Ok(())
            }
            Err(error) => {
                error!(domain = self.name(), %error, "cannot park the input; it will be tried again");
                self.retrying = Some(Retrying {
                    offset: record.offset,
                    failures: failures - 1,
                    not_before: Instant::now() + STALL_RETRY,
                });
                Err(Stall::Retry(STALL_RETRY))
            }
        }
    }

    /// Appends a `parked` record (with `consumed`) and holds its key; a key already held
    /// by the same input keeps its queue. Answers the record's offset.
    pub(super) fn park(
        &mut self,
        parked: Parked,
        consumed: u64,
        traceparent: Option<String>,
    ) -> Result<u64, LogError> {
        let envelope = deadletter::parked_envelope(self.name(), &parked, traceparent);
        let stream = deadletter::stream(self.name());
        let records = self.bus.append(&stream, consumed, vec![envelope])?;
        self.note_dead(&records);
        self.holds.park(parked, Default::default());
        self.publish_dead_letters();
        Ok(records.last().map_or(0, |record| record.offset))
    }

    /// Notes appended dead-letter records.
    pub(super) fn note_dead(&mut self, records: &[std::sync::Arc<Record>]) {
        let stream = deadletter::stream(self.name());
        for record in records {
            if record.envelope.stream == stream {
                self.dead_sequence = record.envelope.sequence;
            }
            self.own_offset = self.own_offset.max(record.offset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let policy = FaultPolicy {
            attempts: 10,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            max_parked_keys: 1,
        };
        let delays: Vec<u128> = (1..=5).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn a_panic_becomes_a_failure_with_its_message() {
        let caught = guarded::<()>(|| panic!("boom {}", 7));
        assert_eq!(
            caught,
            Err(Failure {
                message: "boom 7".into(),
                panicked: true
            })
        );
        let failed = guarded::<()>(|| Err(HandleError::new("no")));
        assert_eq!(failed.map_err(|f| f.panicked), Err(false));
    }
}
