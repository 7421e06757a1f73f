//! Herald's runtime: what a domain author programs against, and the machinery under it.
//!
//! # Layout
//!
//! - [`envelope`]: the CloudEvents 1.0 envelope and the position Herald gives it.
//! - [`codec`]: the one place records are turned into bytes (bincode 2, with a format tag).
//! - [`event`]: the [`Event`] trait a domain's event enum implements, and the [`events!`] macro
//!   that writes it.
//! - [`domain`]: the [`Domain`] trait, the contract of one bounded context.
//! - [`input`]: the [`Input`] trait a domain's input enum implements, and the [`inputs!`]
//!   macro that writes it: the other domains' events it consumes, decoded once.
//! - [`outbox`]: where a handler puts what it emits ([`Outbox`]).
//! - [`ids`]: ids of emitted events, derived from their cause so a re-run repeats them.
//! - [`hosted`]: a domain behind an object-safe interface, so one host actor serves every domain.
//! - [`catalog`]: the topology: every domain's types, schemas, ingress and subscriptions.
//! - [`cloudevent`]: parsing CloudEvents JSON from clients into envelopes, with precise errors.
//! - [`log`]: the event log: its interface, the durable segment-file log, and an in-memory one.
//! - [`nats`]: networked mode: the streams on NATS JetStream, and the node's connection.
//! - [`bus`]: appends to the log and wakes the domains subscribed to what was appended.
//! - [`partition`]: how a domain's state divides over keys, and which partition a key is in.
//! - [`latency`]: the latency histograms behind `/metrics`.
//! - [`replay`]: rebuilding a domain's state from the log.
//! - [`snapshot`]: a domain's state saved with the log positions it reflects.
//! - [`testing`]: given/when/then for testing a domain without a node.
//! - [`trace`]: W3C trace contexts carried by events, and the spans the node records.

pub mod bus;
pub mod catalog;
pub mod cloudevent;
pub mod codec;
pub mod compat;
pub mod deadletter;
pub mod domain;
pub mod envelope;
pub mod event;
pub mod hosted;
pub mod ids;
pub mod input;
pub mod latency;
pub mod log;
pub mod nats;
pub mod outbox;
pub mod partition;
pub mod replay;
pub mod settings;
pub mod snapshot;
pub mod testing;
pub mod timer;
pub mod trace;

pub use domain::{
    answer, keys_after, merge_json, schema_of, Domain, HandleError, Handled, Params, Query,
    QueryError, Rejection,
};
pub use envelope::{Cause, Envelope, Position};
pub use event::{DataError, Event, EventType, Payload};
pub use herald_macros::payload;
pub use hosted::DomainEntry;
pub use input::{Input, NoInput, Seen};
pub use outbox::Outbox;
pub use partition::{InputKey, Partitioning};

// `#[payload]` expands to paths through `::herald_runtime`, which must resolve here too.
extern crate self as herald_runtime;

/// What a domain module needs, in one import: `use herald_runtime::prelude::*;`.
pub mod prelude {
    pub use crate::{
        answer, keys_after, payload, Domain, Event, HandleError, Handled, Input, NoInput, Outbox,
        Params, Partitioning, Payload, Query, QueryError, Rejection, Seen,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
    // Domain state wants a deterministic order (snapshots, queries): the map to reach for.
    pub use std::collections::BTreeMap;
    // A handler's clock (`Outbox::now`) and timers speak these.
    pub use crate::settings::{Settings, SettingsError};
    pub use std::time::Duration;
    pub use time::OffsetDateTime;
}

/// Re-exported so the macros work in crates that do not name these themselves.
#[doc(hidden)]
pub mod __private {
    pub use schemars;
    pub use serde;
    pub use serde_json;
}
