//! The actix actors of a running Herald node. The binary uses `node` (and `error`); the
//! problem catalogue ([`PROBLEM_KINDS`]) is public for documents and tests; the rest is
//! this crate's own.
//!
//! # Layout (each module uses only those listed above it, `node` uses them all)
//!
//! - `admission`: each host's ingress slots (backpressure).
//! - `host`: the domain host, one generic actor per stream (a domain or a partition).
//! - `registry`: the running hosts (mailbox, view, slots, bus).
//! - `members`: networked mode: the KV bucket of members and stream owners.
//! - `gateway`: the HTTP gateway actor (actix-web): ingress, queries, health.
//! - `error`: why a node could not start.
//! - `networked`: what a node adds in networked mode: the NATS connection, and the streams of its domains.
//! - `supervisor`: starts hosts, and starts them again (state rebuilt) when they stop.
//! - `ownership`: networked mode: which node owns which stream (domain or partition), by leases in NATS KV.
//! - `node`: assembles a node from its config and runs it until shutdown.

mod admission;
pub mod error;
mod gateway;
mod host;
mod members;
mod networked;
pub mod node;
mod ownership;
mod registry;
mod supervisor;

pub use gateway::problem::{Kind as ProblemKind, KINDS as PROBLEM_KINDS};
