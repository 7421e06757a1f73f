//! The loyalty service's domains: one module per domain.

pub mod loyalty;
