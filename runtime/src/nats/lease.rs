//! A node's lease on one partition, as its log sees it: valid until a deadline the
//! ownership task pushes forward at each renewal. The deadline is taken from when a renewal
//! was *sent*, minus a margin, so it always passes before the server can free the key: a
//! node that was paused past it (SIGSTOP, a frozen VM) refuses its own appends before it
//! learns it lost the partition.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// The process's monotonic epoch: deadlines are milliseconds after it.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn millis(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(*EPOCH).as_millis()).unwrap_or(u64::MAX)
}

/// Whether this node may still write a partition.
#[derive(Debug, Default)]
pub struct Lease {
    deadline_ms: AtomicU64,
    /// Test hook: behave as the owner whatever the deadline says, so only JetStream's
    /// expected-sequence fence stands between a stale owner and the stream.
    ignored: AtomicBool,
}

impl Lease {
    /// A lease valid until `deadline`.
    pub fn until(deadline: Instant) -> Self {
        let lease = Self::default();
        lease.extend(deadline);
        lease
    }

    /// Moves the deadline to `deadline` (never back).
    pub fn extend(&self, deadline: Instant) {
        self.deadline_ms
            .fetch_max(millis(deadline), Ordering::AcqRel);
    }

    /// Ends the lease now: the key was lost or released.
    pub fn revoke(&self) {
        self.deadline_ms.store(0, Ordering::Release);
    }

    /// Skips the deadline from now on (fault injection only).
    pub fn ignore_deadline(&self) {
        self.ignored.store(true, Ordering::Release);
    }

    /// Whether the deadline is still ahead.
    pub fn valid(&self) -> bool {
        self.ignored.load(Ordering::Acquire)
            || millis(Instant::now()) < self.deadline_ms.load(Ordering::Acquire)
    }

    /// How long until the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        let deadline = self.deadline_ms.load(Ordering::Acquire);
        Duration::from_millis(deadline.saturating_sub(millis(Instant::now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_valid_until_its_deadline_and_never_moves_back() {
        let lease = Lease::until(Instant::now() + Duration::from_secs(60));
        assert!(lease.valid());
        lease.extend(Instant::now());
        assert!(lease.remaining() > Duration::from_secs(50), "moved back");
        lease.revoke();
        assert!(!lease.valid());
        let past = Lease::until(Instant::now());
        assert!(!past.valid());
        past.ignore_deadline();
        assert!(past.valid());
    }
}
