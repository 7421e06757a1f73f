//! The `herald` binary: the example saga's domains on Herald's command line.

/// mimalloc rather than the system allocator: replay and ingest allocate many small
/// strings, and glibc's allocator spent most of a replay consolidating them (4x slower).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // The test builds' fault switches can change a test domain's wiring, so they are read
    // before anything checks it.
    #[cfg(feature = "fault-injection")]
    herald_domains::faults::arm_from_env();
    herald::main(herald_domains::all)
}
