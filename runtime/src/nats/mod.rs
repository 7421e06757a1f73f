//! Networked mode: Herald's streams on NATS JetStream, shared by several nodes.
//!
//! [`Nats`] is the node's connection; [`JetStreamDomainLog`] is one domain's log (its
//! streams and its inbox) behind the [`crate::log::EventLog`] interface the host uses in
//! embedded mode; [`JetStreamNodeLog`] is the gateway's read view of every stream. The
//! layout on JetStream is in ARCHITECTURE.md, "Networked mode".

mod coalesce;
mod connection;
mod domain_log;
pub mod layout;
mod lease;
mod node_log;
mod publisher;
mod snapshots;
pub mod streams;
pub mod wire;

pub use coalesce::CoalescedError;
pub use connection::{BusStatus, Nats, NatsAuth, NatsError, NatsSettings, MIN_SERVER};
pub use domain_log::JetStreamDomainLog;
pub use layout::{Input, LayoutError};
pub use lease::Lease;
pub use node_log::JetStreamNodeLog;
pub use snapshots::ObjectSnapshots;
pub use streams::Placement;
