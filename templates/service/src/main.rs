//! The loyalty service: the example saga's domains and loyalty, on Herald's command line
//! (`run`, `check-config`, `log ...`).

use herald_runtime::DomainEntry;

/// Every domain this service hosts: one line per domain.
fn domains() -> Vec<DomainEntry> {
    let mut domains = herald_domains::saga();
    domains.push(DomainEntry::of::<loyalty_service::loyalty::Loyalty>());
    domains
}

fn main() -> std::process::ExitCode {
    herald::main(domains)
}
