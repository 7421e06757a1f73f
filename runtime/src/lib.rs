//! Herald's runtime: what a domain author programs against, and the machinery under it.
//!
//! # Layout
//!
//! - [`envelope`]: the CloudEvents 1.0 envelope and the position Herald gives it.
//! - [`codec`]: the one place records are turned into bytes (bincode 2, with a format tag).
//! - [`event`]: the [`Event`] trait a domain's event enum implements, and the [`events!`] macro
//!   that writes it.
//! - [`domain`]: the [`Domain`] trait, the contract of one bounded context.
//! - [`outbox`]: what a handler receives ([`Incoming`]) and where it emits ([`Outbox`]).
//! - [`ids`]: ids of emitted events, derived from their cause so a re-run repeats them.
//! - [`hosted`]: a domain behind an object-safe interface, so one host actor serves every domain.
//! - [`catalog`]: the topology: every domain's types, schemas, ingress and subscriptions.
//! - [`cloudevent`]: parsing CloudEvents JSON from clients into envelopes, with precise errors.
//! - [`log`]: the event log: its interface, the durable segment-file log, and an in-memory one.
//! - [`nats`]: networked mode: the streams on NATS JetStream, and the node's connection.
//! - [`bus`]: appends to the log and wakes the domains subscribed to what was appended.
//! - [`partition`]: how a domain's state divides over keys, and which partition a key is in.
//! - [`replay`]: rebuilding a domain's state from the log.
//! - [`snapshot`]: a domain's state saved with the log positions it reflects.
//! - [`testing`]: given/when/then for testing a domain without a node.

pub mod bus;
pub mod catalog;
pub mod cloudevent;
pub mod codec;
pub mod deadletter;
pub mod domain;
pub mod envelope;
pub mod event;
pub mod hosted;
pub mod ids;
pub mod log;
pub mod nats;
pub mod outbox;
pub mod partition;
pub mod replay;
pub mod snapshot;
pub mod testing;

pub use domain::{merge_json, Domain, HandleError, Params, QueryError, Rejection};
pub use envelope::{Cause, Envelope, Position};
pub use event::{DataError, Event, EventType};
pub use hosted::DomainEntry;
pub use outbox::{Incoming, Outbox};
pub use partition::{InputKey, Partitioning};

/// Re-exported so the [`events!`] macro works in crates that do not name these themselves.
#[doc(hidden)]
pub mod __private {
    pub use schemars;
    pub use serde_json;
}
