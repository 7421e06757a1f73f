//! Herald as a library: the whole `herald` command line (`run`, `check-config`,
//! `log tail|verify|repair`, `schema show|check`) for a service's own domains.
//!
//! A service registers its domains and hands them to [`main`]:
//!
//! ```no_run
//! use herald_runtime::DomainEntry;
//!
//! fn domains() -> Vec<DomainEntry> {
//!     herald_domains::saga() // and DomainEntry::of::<MyDomain>() for each of its own
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     herald::main(domains)
//! }
//! ```
//!
//! The allocator is the binary's to choose: the `herald` binary and the template service
//! use mimalloc (`#[global_allocator]`), much faster than glibc's for a node's many small
//! strings.

mod cli;
mod log_tools;
mod schema_tools;
mod telemetry;

pub use cli::{main, Registry};
