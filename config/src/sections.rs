//! One serde struct per `herald.toml` section, each with its defaults.
//!
//! Every section denies unknown fields, so a misspelt key is an error naming the
//! allowed keys rather than a setting that silently does nothing.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// `[node]`: who this node is and where it keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name of this node in logs and metrics; must not be empty.
    #[serde(default = "default_node_id")]
    pub id: String,
    /// Directory for the node's durable state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_node_id() -> String {
    "herald-1".to_owned()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: default_node_id(),
            data_dir: default_data_dir(),
        }
    }
}

/// `[http]`: the ingress server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address as `IP:PORT`; checked by validation, read it with `Config::bind_addr`.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// Largest request body accepted, in bytes; more than zero.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Number of HTTP worker threads; `None` keeps the server's default.
    #[serde(default)]
    pub workers: Option<usize>,
    /// Most events accepted in one batch request; more than zero.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Largest single event, in bytes of its JSON as sent (binary mode: its body); more
    /// than zero. Each event becomes one log record held in memory while it is handled.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Largest total size of a request's header fields, in bytes (each counted as name,
    /// value and 4 bytes of separators); 1024 to 65536.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most client connections open at once; further ones are answered 503 and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest wait for the next piece of a request body, and the grace before
    /// `body_min_rate` applies; a body slower than that is answered 408. 1 s to 10 min.
    #[serde(default = "default_body_timeout", with = "crate::duration")]
    pub body_timeout: Duration,
    /// Slowest average rate, in bytes per second, at which a request body may arrive once
    /// `body_timeout` has passed; 0 turns the rate check off.
    #[serde(default = "default_body_min_rate")]
    pub body_min_rate: usize,
    /// Most bytes of request bodies held at once, over all requests; a body that would go
    /// past it is answered 503 with Retry-After. At least `max_body_bytes`.
    #[serde(default = "default_bodies_in_flight_bytes")]
    pub bodies_in_flight_bytes: usize,
    /// Most SSE tails open at once; more are answered 503 with Retry-After. At least 1.
    #[serde(default = "default_max_tails")]
    pub max_tails: usize,
}

fn default_max_tails() -> usize {
    256
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_body_min_rate() -> usize {
    1024
}

fn default_bodies_in_flight_bytes() -> usize {
    64 * 1024 * 1024
}

/// Shortest allowed `http.body_timeout`.
pub(crate) const MIN_BODY_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest allowed `http.body_timeout`.
pub(crate) const MAX_BODY_TIMEOUT: Duration = Duration::from_secs(600);

fn default_bind() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_max_body_bytes() -> usize {
    1024 * 1024
}

fn default_max_batch_events() -> usize {
    1000
}

fn default_max_event_bytes() -> usize {
    256 * 1024
}

fn default_max_header_bytes() -> usize {
    16 * 1024
}

fn default_max_connections() -> usize {
    1024
}

/// Smallest allowed `http.max_header_bytes`: room for a token and the `ce-*` headers.
pub(crate) const MIN_HEADER_BYTES: usize = 1024;

/// Largest allowed `http.max_header_bytes`. actix-http refuses a request head over its
/// fixed 128 KiB buffer itself (a bare 431 without a problem body); staying at half of it
/// leaves room for the request line, so clients meet this limit, with its problem body.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            bind: default_bind(),
            max_body_bytes: default_max_body_bytes(),
            workers: None,
            max_batch_events: default_max_batch_events(),
            max_event_bytes: default_max_event_bytes(),
            max_header_bytes: default_max_header_bytes(),
            max_connections: default_max_connections(),
            body_timeout: default_body_timeout(),
            body_min_rate: default_body_min_rate(),
            bodies_in_flight_bytes: default_bodies_in_flight_bytes(),
            max_tails: default_max_tails(),
        }
    }
}

/// `[bus]`: how events travel between actors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Which bus implementation carries events.
    #[serde(default)]
    pub kind: BusKind,
    /// The NATS servers and JetStream settings, for `kind = "nats"`.
    #[serde(default)]
    pub nats: crate::nats::NatsConfig,
}

/// The event bus implementations; written lowercase in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process bus: every domain runs inside this node.
    #[default]
    Embedded,
    /// NATS JetStream: nodes share streams through NATS (networked mode).
    Nats,
}

/// `[log]`: the durable event log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Whether appends are fsync'd before they are acknowledged; default `always`.
    #[serde(default)]
    pub fsync: FsyncPolicy,
    /// Size in bytes at which a segment file is closed and a new one started; default
    /// 64 MiB, allowed 4096 (4 KiB) to 4294967296 (4 GiB).
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// How far back resent events are recognised: a count of most recent events, or an
    /// age; default one million events.
    #[serde(default = "default_dedup_window")]
    pub dedup_window: DedupWindow,
    /// Snapshot a domain after this many events were handled or applied since its last
    /// snapshot; 0 = never by count; default 10000.
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every: u64,
    /// Snapshot a domain at least this often when it changed; zero = never by time;
    /// default 60 s.
    #[serde(default = "default_snapshot_interval", with = "crate::duration")]
    pub snapshot_interval: Duration,
    /// Bytes of the newest records kept in memory for readers near the head (subscribers,
    /// tails); default 64 MiB, at least 1 MiB. Counted by size, so large events cannot
    /// grow it.
    #[serde(default = "default_cache_bytes")]
    pub cache_bytes: usize,
}

/// Smallest allowed `log.cache_bytes`: 1 MiB.
pub(crate) const MIN_CACHE_BYTES: usize = 1024 * 1024;

fn default_cache_bytes() -> usize {
    64 * 1024 * 1024
}

/// Smallest allowed `log.segment_bytes`: 4 KiB.
pub(crate) const MIN_SEGMENT_BYTES: u64 = 4096;

/// Largest allowed `log.segment_bytes`: 4 GiB.
pub(crate) const MAX_SEGMENT_BYTES: u64 = 4 * 1024 * 1024 * 1024;

fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_dedup_window() -> DedupWindow {
    DedupWindow::Events(1_000_000)
}

fn default_snapshot_every() -> u64 {
    10_000
}

fn default_snapshot_interval() -> Duration {
    Duration::from_secs(60)
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::default(),
            segment_bytes: default_segment_bytes(),
            dedup_window: default_dedup_window(),
            snapshot_every: default_snapshot_every(),
            snapshot_interval: default_snapshot_interval(),
            cache_bytes: default_cache_bytes(),
        }
    }
}

/// `log.fsync` values; written lowercase in the file: `"always"` or `"never"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Every append reaches the disk before it is acknowledged.
    #[default]
    Always,
    /// Appends are left to the operating system to write; a crash can lose acknowledged events.
    Never,
}

/// `log.dedup_window`: how far back a resent event is recognised as a duplicate.
///
/// In the file an integer is a count of events and a string is a duration such as
/// `"24h"`; a string of only digits (what an environment variable may deliver) is a
/// count too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupWindow {
    /// The most recent this many events.
    Events(u64),
    /// The events appended within this long.
    Age(Duration),
}

/// The accepted `log.dedup_window` forms, for the end of an error message.
const DEDUP_WINDOW_FORMS: &str =
    "use a count of events such as 1000000, or a duration such as \"24h\", \"30m\", \"90s\", \"7d\" or \"500ms\"";

impl DedupWindow {
    /// Reads the string form: only digits is a count, anything else a duration.
    fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        if !trimmed.is_empty() && trimmed.bytes().all(|byte| byte.is_ascii_digit()) {
            return trimmed
                .parse::<u64>()
                .map(DedupWindow::Events)
                .map_err(|_| format!("{text:?} is too many events; {DEDUP_WINDOW_FORMS}"));
        }
        crate::duration::parse(trimmed)
            .map(DedupWindow::Age)
            .map_err(|_| {
                format!(
                    "{text:?} is neither a count of events nor a duration; {DEDUP_WINDOW_FORMS}"
                )
            })
    }

    /// The value as it is written in the file: `1000` or `"24h"`.
    pub(crate) fn to_toml(self) -> String {
        match self {
            DedupWindow::Events(count) => count.to_string(),
            DedupWindow::Age(age) => format!("{:?}", crate::duration::format(age)),
        }
    }

    /// Whether the window covers nothing, which [`crate::Config::validate`] rejects.
    pub(crate) fn is_empty(self) -> bool {
        match self {
            DedupWindow::Events(count) => count == 0,
            DedupWindow::Age(age) => age.is_zero(),
        }
    }
}

impl Serialize for DedupWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            DedupWindow::Events(count) => serializer.serialize_u64(count),
            DedupWindow::Age(age) => crate::duration::serialize(&age, serializer),
        }
    }
}

impl<'de> Deserialize<'de> for DedupWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WindowVisitor;

        impl Visitor<'_> for WindowVisitor {
            type Value = DedupWindow;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter
                    .write_str("a count of events such as 1000000 or a duration such as \"24h\"")
            }

            fn visit_u64<E: de::Error>(self, count: u64) -> Result<DedupWindow, E> {
                Ok(DedupWindow::Events(count))
            }

            fn visit_i64<E: de::Error>(self, count: i64) -> Result<DedupWindow, E> {
                u64::try_from(count)
                    .map(DedupWindow::Events)
                    .map_err(|_| E::custom(format!("{count} is negative; {DEDUP_WINDOW_FORMS}")))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<DedupWindow, E> {
                DedupWindow::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(WindowVisitor)
    }
}

/// `[domains]`: which registered domains this node runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainsConfig {
    /// Domain names to start; empty means every registered domain.
    ///
    /// Accepts a list or a comma-separated string, so an environment variable such as
    /// `HERALD_DOMAINS__ENABLED=orders,analytics` works.
    #[serde(default, deserialize_with = "string_or_list")]
    pub enabled: Vec<String>,
    /// A domain host restarted this many times within `restart_window` is marked failed
    /// instead of being restarted again; more than zero.
    #[serde(default = "default_restart_limit")]
    pub restart_limit: u32,
    /// The window `restart_limit` counts restarts in; default 60 s.
    #[serde(default = "default_restart_window", with = "crate::duration")]
    pub restart_window: Duration,
    /// Partitions of a domain keyed by key (`Partitioning::ByKey`) without its own
    /// `[domain.<name>] partitions`; 1 to 256. Absent: embedded mode uses the machine's cores
    /// (or what the data dir was laid out with), networked mode 1.
    #[serde(default)]
    pub partitions: Option<u32>,
}

/// The most partitions a domain may have.
pub const MAX_PARTITIONS: u32 = 256;

fn default_restart_limit() -> u32 {
    5
}

fn default_restart_window() -> Duration {
    Duration::from_secs(60)
}

impl Default for DomainsConfig {
    fn default() -> Self {
        Self {
            enabled: Vec::new(),
            restart_limit: default_restart_limit(),
            restart_window: default_restart_window(),
            partitions: None,
        }
    }
}

/// `[domain.<name>]`: tuning for one domain's actors, and the domain's own settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DomainSettings {
    /// Ingress requests the domain holds (queued or being handled) before further ones are
    /// answered 429; more than zero.
    #[serde(default = "default_mailbox_capacity")]
    pub mailbox_capacity: usize,
    /// Times a handler runs on one input before the input is parked as a dead letter;
    /// at least 1.
    #[serde(default = "default_retry_attempts")]
    pub retry_attempts: u32,
    /// The wait before the first retry; each later one waits twice as long as the last.
    #[serde(default = "default_retry_backoff", with = "crate::duration")]
    pub retry_backoff: Duration,
    /// The longest wait between two retries.
    #[serde(default = "default_retry_backoff_max", with = "crate::duration")]
    pub retry_backoff_max: Duration,
    /// Keys that may be held behind parked inputs at once; one more and the domain stops
    /// consuming (failed) until an operator retries or skips a dead letter.
    #[serde(default = "default_max_parked_keys")]
    pub max_parked_keys: usize,
    /// Partitions of this domain (networked mode; only for a domain keyed by key);
    /// `[domains] partitions` when absent.
    #[serde(default)]
    pub partitions: Option<u32>,
    /// Every other key: the domain's own settings (`payment_timeout` for orders), which
    /// the domain reads and checks (`Domain::configure`), naming any key it does not take.
    #[serde(flatten, default)]
    pub options: std::collections::BTreeMap<String, figment::value::Value>,
}

/// The keys of `[domain.<name>]` that the runtime itself reads, for "did you mean".
pub const RUNTIME_DOMAIN_KEYS: &[&str] = &[
    "mailbox_capacity",
    "retry_attempts",
    "retry_backoff",
    "retry_backoff_max",
    "max_parked_keys",
    "partitions",
];

fn default_mailbox_capacity() -> usize {
    1024
}

fn default_retry_attempts() -> u32 {
    5
}

fn default_retry_backoff() -> Duration {
    Duration::from_millis(100)
}

fn default_retry_backoff_max() -> Duration {
    Duration::from_secs(5)
}

fn default_max_parked_keys() -> usize {
    1000
}

impl Default for DomainSettings {
    fn default() -> Self {
        Self {
            mailbox_capacity: default_mailbox_capacity(),
            retry_attempts: default_retry_attempts(),
            retry_backoff: default_retry_backoff(),
            retry_backoff_max: default_retry_backoff_max(),
            max_parked_keys: default_max_parked_keys(),
            partitions: None,
            options: std::collections::BTreeMap::new(),
        }
    }
}

/// `[telemetry]`: what the node logs and how.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// A tracing `EnvFilter` directive such as `info` or `herald=debug,actix=warn`.
    #[serde(default = "default_level")]
    pub level: String,
    /// Whether log lines are human-readable text or JSON objects.
    #[serde(default)]
    pub format: LogFormat,
    /// Where to export trace spans over OTLP/HTTP (protobuf), such as
    /// `http://localhost:4318`; spans go to `/v1/traces` under it. None: no export.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: LogFormat::default(),
            otlp_endpoint: None,
        }
    }
}

/// Log line formats; written lowercase in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Reads a list of names from a list or a comma-separated string, trimming each name
/// and dropping empty ones (so `"orders, ,analytics,"` is two names).
pub(crate) fn string_or_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct NamesVisitor;

    impl<'de> Visitor<'de> for NamesVisitor {
        type Value = Vec<String>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a list of names or a comma-separated string of names")
        }

        fn visit_str<E: de::Error>(self, names: &str) -> Result<Self::Value, E> {
            Ok(tidy(names.split(',')))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                names.push(name);
            }
            Ok(tidy(names.iter().map(String::as_str)))
        }
    }

    fn tidy<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
        names
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    }

    deserializer.deserialize_any(NamesVisitor)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::DedupWindow;

    #[test]
    fn dedup_window_strings() {
        assert_eq!(DedupWindow::parse("1000"), Ok(DedupWindow::Events(1000)));
        assert_eq!(DedupWindow::parse(" 42 "), Ok(DedupWindow::Events(42)));
        assert_eq!(
            DedupWindow::parse("24h"),
            Ok(DedupWindow::Age(Duration::from_secs(86_400)))
        );
        for text in ["soon", "", "-3", "99999999999999999999999"] {
            let Err(message) = DedupWindow::parse(text) else {
                panic!("{text:?} parsed");
            };
            assert!(message.starts_with(&format!("{text:?} ")), "{message}");
            assert!(message.contains("1000000"), "{message}");
        }
    }

    #[test]
    fn dedup_window_is_written_as_read() {
        assert_eq!(DedupWindow::Events(0).to_toml(), "0");
        assert_eq!(
            DedupWindow::Age(Duration::from_secs(90)).to_toml(),
            "\"1m 30s\""
        );
        assert!(DedupWindow::Age(Duration::ZERO).is_empty());
        assert!(!DedupWindow::Events(1).is_empty());
    }
}
