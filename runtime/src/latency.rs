//! Latency histograms for `/metrics`: how long ingest answers, appends, syncs, handlers and
//! forwards take.
//!
//! Process-wide rather than handed around, because the places measured sit deep in threads
//! (the log's sync thread, the NATS publisher) that hold no handle on the gateway; a node
//! is one process. The histograms are prometheus-client's (an observation takes a short
//! write lock), with an encoder whose output the gateway appends to its own exposition.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::exponential_buckets;
pub use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The label of a per-domain histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DomainLabel {
    /// The domain's name.
    pub domain: String,
}

type ByDomain = Family<DomainLabel, Histogram, fn() -> Histogram>;

/// Every latency the node measures.
pub struct Latencies {
    /// From a `POST /v1/events` request's arrival to its answer.
    pub ingest: Histogram,
    /// One append: written to the segment file (embedded, before its fsync), or
    /// acknowledged by JetStream (networked).
    pub append: Histogram,
    /// One sync round of the embedded log: fdatasync of every segment file written since
    /// the last (usually one).
    pub fsync: Histogram,
    /// One forwarded batch of requests, until the owning node answers (networked mode).
    pub forward: Histogram,
    handler: ByDomain,
    registry: Registry,
}

/// 50 µs doubling to about 6.5 s: an fsync on a fast disk to a forward behind a failover.
fn buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Latencies {
    fn new() -> Self {
        let ingest = buckets();
        let append = buckets();
        let fsync = buckets();
        let forward = buckets();
        let handler = ByDomain::new_with_constructor(buckets as fn() -> Histogram);
        let mut registry = Registry::default();
        registry.register(
            "herald_ingest_answer_seconds",
            "Time from a POST /v1/events request's arrival to its answer",
            ingest.clone(),
        );
        registry.register(
            "herald_log_append_seconds",
            "Time for one append to the log: written (embedded, fsync apart) or acknowledged (NATS)",
            append.clone(),
        );
        registry.register(
            "herald_log_fsync_seconds",
            "Time for one sync round of the embedded log (fdatasync of each segment file written since the last)",
            fsync.clone(),
        );
        registry.register(
            "herald_domain_handler_seconds",
            "Time a domain's handler takes for one input, by domain",
            handler.clone(),
        );
        registry.register(
            "herald_forward_seconds",
            "Time for one batch of requests forwarded to the node owning their stream",
            forward.clone(),
        );
        Self {
            ingest,
            append,
            fsync,
            forward,
            handler,
            registry,
        }
    }

    /// The handler histogram of `domain`, to keep: looked up once, observed per input.
    pub fn handler(&self, domain: &str) -> Histogram {
        self.handler
            .get_or_create(&DomainLabel {
                domain: domain.to_owned(),
            })
            .clone()
    }

    /// Appends every histogram in the Prometheus text format.
    pub fn encode(&self, out: &mut String) {
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

/// The node's latencies.
pub fn latencies() -> &'static Latencies {
    static LATENCIES: LazyLock<Latencies> = LazyLock::new(Latencies::new);
    &LATENCIES
}

/// Observes the seconds since `start` in `histogram`.
pub fn observe_since(histogram: &Histogram, start: Instant) {
    observe(histogram, start.elapsed());
}

/// Observes `elapsed` in `histogram`.
pub fn observe(histogram: &Histogram, elapsed: Duration) {
    histogram.observe(elapsed.as_secs_f64());
}
