//! Durable timers: a domain schedules one of its own events for later, and the log holds
//! the schedule.
//!
//! A handler calls [`crate::Outbox::schedule`] (or `cancel`); the host appends that as a
//! `herald.timer.scheduled` (or `herald.timer.cancelled`) record in the domain's own
//! stream, with the input's other reactions and an id derived the same way. Applying those
//! records keeps the domain's [`Timers`]: pending timers by name, snapshotted with the
//! state. When one is due the host appends its event, whose cause is the schedule record
//! and whose id is derived from it, so a timer fires once however often the node dies
//! between its time and the append. Applying the fired event removes the timer. Replay
//! rebuilds the table from the same records, so a restarted host, or the node that takes a
//! partition over, fires what is still pending.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::envelope::{Cause, Envelope, Position};
use crate::ids;

/// Type of the record that schedules a timer.
pub const SCHEDULED: &str = "herald.timer.scheduled";
/// Type of the record that cancels one.
pub const CANCELLED: &str = "herald.timer.cancelled";
/// The CloudEvents extension attribute that names the timer an event fired from.
pub const FIRED_BY: &str = "heraldtimer";

/// Whether `event_type` is one of the timer records a host writes in a domain's stream.
pub fn is_timer_record(event_type: &str) -> bool {
    event_type == SCHEDULED || event_type == CANCELLED
}

/// What a handler asked of the timers, in order, beside the events it emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerRequest<E> {
    /// Fire `event` at or after `at`, under `name` (replacing a pending timer of that name).
    Schedule {
        /// The timer's name, unique within the domain (or partition).
        name: String,
        /// When it may fire.
        at: OffsetDateTime,
        /// What it appends when it fires.
        event: E,
    },
    /// Drop the pending timer `name`, if there is one.
    Cancel {
        /// The timer's name.
        name: String,
    },
}

/// `data` of a `herald.timer.scheduled` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduledData {
    /// The timer's name.
    pub name: String,
    /// When it may fire (RFC 3339).
    pub at: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's subject (its key).
    pub subject: String,
    /// The event's `data`.
    pub data: serde_json::Value,
    /// The payload version `data` has (absent: 1).
    #[serde(default = "first_version", skip_serializing_if = "is_first_version")]
    pub version: u32,
}

fn first_version() -> u32 {
    1
}

fn is_first_version(version: &u32) -> bool {
    *version == 1
}

/// `data` of a `herald.timer.cancelled` record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CancelledData {
    /// The timer's name.
    pub name: String,
    /// Why it was dropped when it came due (the domain refused its event); absent when a
    /// handler cancelled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a timer record cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timer record {stream}#{sequence} does not decode: {reason}")]
pub struct TimerRecordError {
    /// Its stream.
    pub stream: String,
    /// Its sequence.
    pub sequence: u64,
    /// serde's reason.
    pub reason: String,
}

/// One pending timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// When it may fire, in Unix nanoseconds.
    pub at_nanos: i128,
    /// Where its schedule record is: the fired event's cause.
    pub scheduled_at: Position,
    /// The schedule record's source and id (the rest of the cause).
    pub source: String,
    /// The schedule record's id.
    pub id: String,
    /// The event's type.
    pub event_type: String,
    /// The event's subject.
    pub subject: String,
    /// The event's `data` (JSON text).
    pub data: Vec<u8>,
    /// The payload version of `data`.
    pub version: u32,
}

/// A domain's pending timers, kept from its own records and saved in its snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timers {
    by_name: BTreeMap<String, Pending>,
    /// (when, name), to find the next due without a scan.
    by_time: BTreeSet<(i128, String)>,
}

impl Timers {
    /// How many are pending.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether timer `name` is pending.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The subject of pending timer `name`.
    pub fn subject_of(&self, name: &str) -> Option<&str> {
        self.by_name.get(name).map(|p| p.subject.as_str())
    }

    /// When the earliest pending timer may fire.
    pub fn next_due(&self) -> Option<OffsetDateTime> {
        let (at, _) = self.by_time.first()?;
        OffsetDateTime::from_unix_timestamp_nanos(*at).ok()
    }

    /// Applies a timer record of the domain's own stream.
    pub fn apply_record(&mut self, record: &Envelope) -> Result<(), TimerRecordError> {
        let error = |reason: String| TimerRecordError {
            stream: record.stream.clone(),
            sequence: record.sequence,
            reason,
        };
        if record.event_type == SCHEDULED {
            let data: ScheduledData =
                serde_json::from_slice(&record.data).map_err(|e| error(e.to_string()))?;
            let at = OffsetDateTime::parse(&data.at, &Rfc3339)
                .map_err(|e| error(format!("at \"{}\": {e}", data.at)))?;
            self.remove(&data.name);
            let at_nanos = at.unix_timestamp_nanos();
            self.by_time.insert((at_nanos, data.name.clone()));
            self.by_name.insert(
                data.name,
                Pending {
                    at_nanos,
                    scheduled_at: record.position(),
                    source: record.source.clone(),
                    id: record.id.clone(),
                    event_type: data.event_type,
                    subject: data.subject,
                    data: serde_json::to_vec(&data.data).unwrap_or_default(),
                    version: data.version,
                },
            );
        } else {
            let data: CancelledData =
                serde_json::from_slice(&record.data).map_err(|e| error(e.to_string()))?;
            self.remove(&data.name);
        }
        Ok(())
    }

    /// Notes an applied event of the domain: one a timer fired ends that timer.
    pub fn note_applied(&mut self, event: &Envelope) {
        let Some((_, name)) = event.extensions.iter().find(|(key, _)| key == FIRED_BY) else {
            return;
        };
        let fired_this = match (self.by_name.get(name), &event.cause) {
            (Some(pending), Some(cause)) => cause.position == pending.scheduled_at,
            _ => false,
        };
        if fired_this {
            self.remove(&name.clone());
        }
    }

    /// The timers due at `now`, earliest first, with their names.
    pub fn due(&self, now: OffsetDateTime) -> Vec<(&str, &Pending)> {
        let now = now.unix_timestamp_nanos();
        self.by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, name)| self.by_name.get(name).map(|p| (name.as_str(), p)))
            .collect()
    }

    fn remove(&mut self, name: &str) {
        if let Some(old) = self.by_name.remove(name) {
            self.by_time.remove(&(old.at_nanos, name.to_owned()));
        }
    }
}

impl Pending {
    /// The record that fires this timer, `name`: its event, appended to `stream` of
    /// `domain`, stamped `time`, caused by the schedule record and with an id derived from
    /// it, so every attempt to fire it is the same event.
    pub fn fired(&self, domain: &str, stream: &str, name: &str, time: &str) -> Envelope {
        let mut fired = self.record(
            domain,
            stream,
            time,
            0,
            (self.event_type.clone(), self.data.clone()),
        );
        fired
            .extensions
            .push((FIRED_BY.to_owned(), name.to_owned()));
        crate::event::mark_version(&mut fired, self.version);
        fired
    }

    /// The record that drops this timer, `name`, unfired, because the domain refused its
    /// event when it came due (`reason`): a cancel record with an id of its own.
    pub fn refused(
        &self,
        domain: &str,
        stream: &str,
        name: &str,
        reason: &str,
        time: &str,
    ) -> Envelope {
        let data = serde_json::to_vec(&serde_json::json!({"name": name, "reason": reason}))
            .unwrap_or_default();
        self.record(domain, stream, time, 1, (CANCELLED.to_owned(), data))
    }

    fn record(
        &self,
        domain: &str,
        stream: &str,
        time: &str,
        index: usize,
        (event_type, data): (String, Vec<u8>),
    ) -> Envelope {
        let cause = Cause {
            source: self.source.clone(),
            id: self.id.clone(),
            position: self.scheduled_at.clone(),
        };
        let of = ids::Derived {
            domain,
            stream,
            cause: &cause,
            index,
            time,
        };
        ids::derived_envelope(of, event_type, self.subject.clone(), data)
    }
}

/// The `data` of a schedule record.
pub fn scheduled_data(
    name: &str,
    at: OffsetDateTime,
    (event_type, version): (&str, u32),
    subject: &str,
    data: &[u8],
) -> Vec<u8> {
    let record = ScheduledData {
        name: name.to_owned(),
        at: at.format(&Rfc3339).unwrap_or_default(),
        event_type: event_type.to_owned(),
        subject: subject.to_owned(),
        data: serde_json::from_slice(data).unwrap_or(serde_json::Value::Null),
        version,
    };
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The `data` of a cancel record.
pub fn cancelled_data(name: &str) -> Vec<u8> {
    serde_json::to_vec(&CancelledData {
        name: name.to_owned(),
        reason: None,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{JSON_CONTENT_TYPE, SPEC_VERSION};

    fn record(event_type: &str, data: Vec<u8>, sequence: u64) -> Envelope {
        Envelope {
            id: format!("id-{sequence}"),
            source: "/herald/domains/orders".into(),
            specversion: SPEC_VERSION.into(),
            event_type: event_type.into(),
            subject: "o-1".into(),
            time: "2026-01-01T00:00:00Z".into(),
            datacontenttype: JSON_CONTENT_TYPE.into(),
            data,
            partitionkey: "o-1".into(),
            traceparent: None,
            extensions: Vec::new(),
            cause: None,
            stream: "orders".into(),
            sequence,
        }
    }

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    #[test]
    fn a_timer_is_due_at_its_time_fires_once_and_a_cancel_or_replacement_drops_it() {
        let mut timers = Timers::default();
        let data = br#"{"order_id":"o-1","reason":"late"}"#;
        let schedule = record(
            SCHEDULED,
            scheduled_data(
                "pay:o-1",
                at(100),
                ("orders.OrderCancelled", 1),
                "o-1",
                data,
            ),
            1,
        );
        timers.apply_record(&schedule).unwrap();
        assert_eq!(timers.next_due(), Some(at(100)));
        assert!(timers.due(at(99)).is_empty());
        let fire = |now, time| -> Vec<Envelope> {
            timers
                .due(now)
                .into_iter()
                .map(|(name, pending)| pending.fired("orders", "orders", name, time))
                .collect()
        };
        let fired = fire(at(100), "t");
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].data, data.to_vec());
        assert_eq!(
            fired[0].cause.as_ref().unwrap().position,
            schedule.position()
        );
        // The same id however often it is computed: a crash before the append fires it once.
        assert_eq!(fired[0].id, fire(at(500), "u")[0].id);
        timers.note_applied(&fired[0]);
        assert!(timers.is_empty());

        timers.apply_record(&schedule).unwrap();
        timers
            .apply_record(&record(CANCELLED, cancelled_data("pay:o-1"), 2))
            .unwrap();
        assert!(timers.is_empty());

        timers.apply_record(&schedule).unwrap();
        let later = record(
            SCHEDULED,
            scheduled_data(
                "pay:o-1",
                at(200),
                ("orders.OrderCancelled", 1),
                "o-1",
                data,
            ),
            3,
        );
        timers.apply_record(&later).unwrap();
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next_due(), Some(at(200)));
        // An event fired by the replaced schedule does not end its successor.
        timers.note_applied(&fired[0]);
        assert_eq!(timers.len(), 1);
    }
}
