//! The actix actors of a running Herald node.
//!
//! # Layout
//!
//! - [`host`]: the domain host, one generic actor per enabled domain.
//! - [`gateway`]: the HTTP gateway actor (actix-web): ingress, queries, health.
//! - [`node`]: assembles a node from its config and runs it until shutdown.
//! - [`networked`]: what a node adds in networked mode: the NATS connection, and the streams of its domains.
//! - [`ownership`]: networked mode: which node owns which stream (domain or partition), by leases in NATS KV.
//! - [`supervisor`]: starts domain hosts, and starts them again (state rebuilt) when they stop.

pub mod gateway;
pub mod host;
pub mod networked;
pub mod node;
pub mod ownership;
pub mod supervisor;
