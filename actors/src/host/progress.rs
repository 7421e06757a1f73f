//! How far a host's recovery has come: told in the log at a steady interval, and read by
//! `/readyz` and the console while the host replays (on its own thread, so the gateway
//! reads it from a shared cell rather than asking the busy host).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use herald_runtime::replay::Progress;
use serde::Serialize;
use tracing::info;

/// How often a long replay says where it is in the log.
const LOG_EVERY: Duration = Duration::from_secs(2);

/// A recovery as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoveryReport {
    /// Records replayed so far.
    pub replayed: u64,
    /// Records to replay in all.
    pub total: u64,
    /// Records replayed per second, so far.
    pub per_second: f64,
    /// Seconds left at that rate; `None` before there is a rate.
    pub eta_seconds: Option<f64>,
    /// Whether the replay has ended.
    pub done: bool,
    /// Why it ended without the state, when it failed (the host stops, and is started
    /// again or marked failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    started: Option<Instant>,
    logged: Option<Instant>,
    progress: Progress,
    finished: Option<Duration>,
    failed: Option<String>,
}

/// A host's recovery progress, shared with the gateway.
#[derive(Debug, Clone, Default)]
pub struct RecoveryProgress {
    state: Arc<Mutex<State>>,
}

impl RecoveryProgress {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A replay starts (again, after a restart).
    pub fn start(&self) {
        *self.lock() = State {
            started: Some(Instant::now()),
            ..State::default()
        };
    }

    /// Notes how far the replay of `domain` has come, and says so in the log every
    /// [`LOG_EVERY`].
    pub fn update(&self, domain: &str, progress: Progress) {
        let mut state = self.lock();
        state.progress = progress;
        let now = Instant::now();
        let since = state.logged.or(state.started).unwrap_or(now);
        if now.duration_since(since) >= LOG_EVERY {
            state.logged = Some(now);
            let report = report(&state);
            info!(
                domain,
                replayed = report.replayed,
                total = report.total,
                per_second = report.per_second.round(),
                eta_seconds = report.eta_seconds.map(|eta| eta.round()),
                "replaying the log"
            );
        }
    }

    /// The replay has ended.
    pub fn finish(&self) {
        let mut state = self.lock();
        state.progress.done = state.progress.total;
        state.finished = state.started.map(|started| started.elapsed());
    }

    /// The replay failed with `reason`: it has ended, short of its total.
    pub fn fail(&self, reason: &str) {
        let mut state = self.lock();
        state.finished = state.started.map(|started| started.elapsed());
        state.failed = Some(reason.to_owned());
    }

    /// Where the recovery is; `None` before one started.
    pub fn report(&self) -> Option<RecoveryReport> {
        let state = self.lock();
        state.started.map(|_| report(&state))
    }
}

fn report(state: &State) -> RecoveryReport {
    let elapsed = state
        .finished
        .or_else(|| state.started.map(|started| started.elapsed()))
        .unwrap_or_default()
        .as_secs_f64();
    let Progress { done, total } = state.progress;
    let per_second = match elapsed > 0.0 {
        true => done as f64 / elapsed,
        false => 0.0,
    };
    let eta_seconds = match (state.finished, per_second > 0.0) {
        (Some(_), _) if state.failed.is_some() => None,
        (Some(_), _) => Some(0.0),
        (None, true) => Some(total.saturating_sub(done) as f64 / per_second),
        (None, false) => None,
    };
    RecoveryReport {
        replayed: done,
        total,
        per_second,
        eta_seconds,
        done: state.finished.is_some(),
        failed: state.failed.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_rate_and_time_left_until_finished() {
        let progress = RecoveryProgress::default();
        assert_eq!(progress.report(), None);
        progress.start();
        std::thread::sleep(Duration::from_millis(20));
        progress.update(
            "orders",
            Progress {
                done: 10,
                total: 40,
            },
        );
        let report = progress.report().expect("started");
        assert_eq!(
            (report.replayed, report.total, report.done),
            (10, 40, false)
        );
        assert!(report.per_second > 0.0);
        let eta = report.eta_seconds.expect("a rate");
        assert!((eta - 30.0 / report.per_second).abs() < 1e-6, "{report:?}");
        progress.finish();
        let report = progress.report().expect("started");
        assert_eq!((report.replayed, report.done), (40, true));
        assert_eq!(report.eta_seconds, Some(0.0));
        assert_eq!(report.failed, None);
        progress.start();
        progress.update("orders", Progress { done: 5, total: 40 });
        progress.fail("the log cannot be read");
        let report = progress.report().expect("started");
        assert_eq!((report.replayed, report.done), (5, true));
        assert_eq!(report.failed.as_deref(), Some("the log cannot be read"));
        assert_eq!(report.eta_seconds, None);
    }
}
