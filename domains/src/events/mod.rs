//! The example's event types, one module per owning domain.
//!
//! Domains share these types, never each other's behaviour: a domain module imports the
//! events it emits and consumes from here, and no domain module imports another.

pub mod inventory;
pub mod orders;
pub mod payments;
pub mod shipping;
