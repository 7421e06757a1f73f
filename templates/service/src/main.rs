//! The loyalty service: the example saga's domains and loyalty, on Herald's command line
//! (`run`, `check-config`, `log ...`).

use herald_runtime::DomainEntry;

/// mimalloc, as the `herald` binary: replay and ingest allocate many small strings, which
/// glibc's allocator handles several times slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every domain this service hosts: one line per domain.
fn domains() -> Vec<DomainEntry> {
    let mut domains = herald_domains::saga();
    domains.push(DomainEntry::of::<loyalty_service::loyalty::Loyalty>());
    domains
}

fn main() -> std::process::ExitCode {
    herald::main(domains)
}
