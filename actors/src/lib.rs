//! The actix actors of a running Herald node.
//!
//! # Layout
//!
//! - [`host`]: the domain host, one generic actor per enabled domain.
//! - [`gateway`]: the HTTP gateway actor (actix-web): ingress, queries, health.
//! - [`node`]: assembles a node from its config and runs it until shutdown.
//! - [`networked`]: what a node adds in networked mode: the NATS connection, one JetStream log per domain.
//! - [`presence`]: networked mode: each node's entry in the presence bucket, behind `/v1/cluster`.
//! - [`supervisor`]: starts domain hosts, and starts them again (state rebuilt) when they stop.

pub mod gateway;
pub mod host;
pub mod networked;
pub mod node;
pub mod presence;
pub mod supervisor;
