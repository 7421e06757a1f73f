//! Test-only domains with fault hooks, compiled only with the `fault-injection` feature.
//!
//! They exist so the end-to-end tests can make a handler panic, fail or crawl inside a real
//! node. The hooks are process-wide switches set once at start from the environment
//! ([`arm_from_env`]), so a test flips them by restarting the node with other variables.
//! Reading a switch is the one impurity these domains allow themselves; it is constant for
//! the life of the process, so replay within one run stays deterministic.

pub mod faulty;
pub mod feeder;
pub mod laggard;
pub mod scales;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static CLEARED: AtomicBool = AtomicBool::new(false);
static SLOW_MICROS: AtomicU64 = AtomicU64::new(0);
static CRASHED: AtomicBool = AtomicBool::new(false);
static MISWIRED_SUBSCRIPTION: AtomicBool = AtomicBool::new(false);

/// Variable that, set to `1`, clears the faults: marked events are handled normally.
pub const CLEARED_VAR: &str = "HERALD_TEST_FAULTS_CLEARED";
/// Variable giving how long `laggard` spends on each input, in microseconds.
pub const SLOW_VAR: &str = "HERALD_TEST_SLOW_MICROS";

/// Variable that, set to `subscription`, registers the laggard consuming `feeder.Fedd`, a
/// type no registered domain owns, for the tests of the wiring check. (An ingress type that
/// is not the domain's own can no longer be written: `events!` marks them.)
pub const MISWIRE_VAR: &str = "HERALD_TEST_MISWIRE";

/// Reads the switches from the environment; the binary calls it once at start, before it
/// checks the wiring.
pub fn arm_from_env() {
    let cleared = std::env::var(CLEARED_VAR).is_ok_and(|value| value == "1");
    CLEARED.store(cleared, Ordering::Relaxed);
    let slow = std::env::var(SLOW_VAR)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    SLOW_MICROS.store(slow, Ordering::Relaxed);
    let miswire = std::env::var(MISWIRE_VAR).unwrap_or_default();
    MISWIRED_SUBSCRIPTION.store(miswire.trim() == "subscription", Ordering::Relaxed);
}

/// Whether marked events are handled normally.
pub fn cleared() -> bool {
    CLEARED.load(Ordering::Relaxed)
}

/// True the first time it is called in this process: for faults that strike once.
pub fn first_crash() -> bool {
    !CRASHED.swap(true, Ordering::Relaxed)
}

/// How long `laggard` spends per input.
pub fn slowness() -> std::time::Duration {
    std::time::Duration::from_micros(SLOW_MICROS.load(Ordering::Relaxed))
}

/// Whether `laggard` consumes a misspelt type.
pub fn miswired_subscription() -> bool {
    MISWIRED_SUBSCRIPTION.load(Ordering::Relaxed)
}
