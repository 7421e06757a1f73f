//! Whether appends to the log fail now (disk full, a read-only or vanished directory),
//! so the node says so: in its log, rate-limited, and in `/readyz`, until one succeeds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::{error, info};

use super::LogError;

/// At most one error line per this long while appends keep failing.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The log's write health: the fast path is one atomic load per append.
#[derive(Default)]
pub(crate) struct WriteHealth {
    failing: AtomicBool,
    state: Mutex<Failing>,
}

#[derive(Default)]
struct Failing {
    /// The latest failure, as the operator should read it.
    reason: Option<String>,
    since: Option<Instant>,
    failures: u64,
    logged_at: Option<Instant>,
    unlogged: u64,
    probed_at: Option<Instant>,
}

/// At most one probe write per this long while appends fail.
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl WriteHealth {
    /// Notes the outcome of an append: only failures of the disk count (a duplicate, a
    /// record too large or a fenced writer are answers, not faults).
    pub(crate) fn note<T>(&self, outcome: &Result<T, LogError>) {
        match outcome {
            Ok(_) => self.succeeded(),
            Err(error @ LogError::Io { .. }) => self.failed(error),
            Err(_) => {}
        }
    }

    fn failed(&self, error: &LogError) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failures += 1;
        state.since.get_or_insert(now);
        state.reason = Some(error.to_string());
        self.failing.store(true, Ordering::Release);
        let due = state
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if due {
            error!(
                %error,
                failures = state.failures,
                not_logged = state.unlogged,
                "cannot append to the event log; clients get 503 and the node is not ready until an append succeeds"
            );
            state.logged_at = Some(now);
            state.unlogged = 0;
        } else {
            state.unlogged += 1;
        }
    }

    fn succeeded(&self) {
        if !self.failing.load(Ordering::Acquire) {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.recover(
            &mut state,
            "appends to the event log succeed again; the node is ready",
        );
    }

    fn recover(&self, state: &mut Failing, message: &str) {
        let since = state.since.map_or(Duration::ZERO, |since| since.elapsed());
        info!(
            failures = state.failures,
            seconds = since.as_secs(),
            "{message}"
        );
        *state = Failing::default();
        self.failing.store(false, Ordering::Release);
    }

    /// Why appends fail now, if they do; while they do, first tries `probe` (a small write
    /// and sync beside the log, at most once a second), and a probe that succeeds clears
    /// the failure: a node no client sends to (it is not ready) still becomes ready again
    /// once the disk has room.
    pub(crate) fn failure_or_probe(
        &self,
        probe: impl FnOnce() -> std::io::Result<()>,
    ) -> Option<String> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        let due = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let due = state.probed_at.is_none_or(|at| at.elapsed() >= PROBE_EVERY);
            if due {
                state.probed_at = Some(Instant::now());
            }
            due
        };
        // Probed without the lock: appends noting their outcome never wait for its sync.
        let probed = due && probe().is_ok();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if probed && self.failing.load(Ordering::Acquire) {
            self.recover(
                &mut state,
                "a probe write to the event log's directory succeeds again; the node is ready",
            );
            return None;
        }
        state.reason.clone()
    }
}
