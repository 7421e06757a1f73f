//! `GET /metrics`: the node's state in the Prometheus text format (version 0.0.4).
//!
//! Most figures are read at scrape time from what the node already keeps (the log's head
//! and streams, each domain's cursor and ingress slots, the open connections); only the
//! answers to `POST /v1/events` are counted as they happen, in [`Metrics`]. Those families
//! are written by hand, escaped as the format says, rather than through a metrics crate
//! whose registry would hold copies of values that live elsewhere. Latency histograms are
//! prometheus-client's ([`herald_runtime::latency`]), appended at the end.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use super::state::{GatewayState, HostHandle};
use crate::host::Health;
use herald_runtime::latency;

/// The content type of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counters of what happened, as opposed to state read at scrape time.
#[derive(Debug)]
pub struct Metrics {
    /// Answers to `POST /v1/events`, indexed by status code minus 100.
    ingress: Vec<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            ingress: (100..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Metrics {
    /// Counts one answer to `POST /v1/events`.
    pub fn count_ingress(&self, status: StatusCode) {
        if let Some(counter) = self
            .ingress
            .get(usize::from(status.as_u16()).wrapping_sub(100))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every status answered at least once, with its count, in status order.
    fn ingress_counts(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.ingress
            .iter()
            .enumerate()
            .map(|(index, counter)| (index + 100, counter.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
    }
}

/// Handles `GET /metrics`.
pub async fn metrics(state: web::Data<GatewayState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(PROMETHEUS_TEXT)
        .body(render(&state))
}

/// One metric family with a sample per domain: name, type, help, and how to read it.
type DomainFamily<'a> = (&'a str, &'a str, &'a str, &'a dyn Fn(&HostHandle) -> u64);

fn render(state: &GatewayState) -> String {
    let mut out = Exposition::default();
    // Networked mode has no node-wide offset: JetStream orders each stream on its own.
    if state.nats.is_none() {
        out.family(
            "herald_log_head_offset",
            "gauge",
            "Node-wide offset of the last durable record in the event log.",
        );
        out.sample("herald_log_head_offset", &[], state.log.head());
    }

    out.family(
        "herald_stream_events_total",
        "counter",
        "Events appended to each stream (its last sequence).",
    );
    let mut streams = state.log.streams();
    streams.sort();
    for (stream, last_sequence) in &streams {
        out.sample(
            "herald_stream_events_total",
            &[("stream", stream)],
            *last_sequence,
        );
    }

    let mut hosts: Vec<_> = state
        .hosts
        .iter()
        .map(|host| (*host.key(), host.value().clone()))
        .collect();
    hosts.sort_by_key(|(name, _)| *name);
    let per_domain: [DomainFamily; 7] = [
        (
            "herald_domain_lag_records",
            "gauge",
            "Inputs a domain has not handled yet (the head of its inputs minus its cursor).",
            &|host| host.bus.log().head().saturating_sub(host.view.cursor()),
        ),
        (
            "herald_domain_ready",
            "gauge",
            "1 when the domain has recovered and takes events, else 0.",
            &|host| u64::from(host.view.is_ready()),
        ),
        (
            "herald_domain_failed",
            "gauge",
            "1 when the domain failed (restart loop, or too many parked keys), else 0.",
            &|host| u64::from(matches!(host.view.health(), Health::Failed(_))),
        ),
        (
            "herald_domain_dead_letters",
            "gauge",
            "Inputs parked as dead letters, one per held key.",
            &|host| host.view.dead_letters().len() as u64,
        ),
        (
            "herald_domain_ingress_in_flight",
            "gauge",
            "Ingress requests queued for or being handled by the domain's host.",
            &|host| host.admission.in_flight() as u64,
        ),
        (
            "herald_domain_ingress_capacity",
            "gauge",
            "Ingress requests the domain may hold before answering 429 (mailbox_capacity).",
            &|host| host.admission.capacity() as u64,
        ),
        (
            "herald_domain_ingress_refused_total",
            "counter",
            "Ingress requests answered 429 because the domain held mailbox_capacity requests.",
            &|host| host.admission.refused(),
        ),
    ];
    // A partition's samples say its domain and partition; a whole domain's, its name.
    let labels: Vec<Vec<(&str, String)>> = hosts
        .iter()
        .map(|(stream, _)| match state.layout.locate(stream) {
            Some((domain, partition)) if state.layout.partitions(domain) > 1 => vec![
                ("domain", domain.to_owned()),
                ("partition", partition.to_string()),
            ],
            _ => vec![("domain", (*stream).to_owned())],
        })
        .collect();
    for (name, kind, help, value) in per_domain {
        out.family(name, kind, help);
        for ((_, host), labels) in hosts.iter().zip(&labels) {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(key, value)| (*key, value.as_str()))
                .collect();
            out.sample(name, &labels, value(host));
        }
    }

    out.family(
        "herald_ingress_requests_total",
        "counter",
        "Answers to POST /v1/events, by HTTP status.",
    );
    for (status, count) in state.metrics.ingress_counts() {
        out.sample(
            "herald_ingress_requests_total",
            &[("status", &status.to_string())],
            count,
        );
    }

    out.family(
        "herald_http_open_connections",
        "gauge",
        "Client connections open and admitted.",
    );
    out.sample(
        "herald_http_open_connections",
        &[],
        state.connections.open() as u64,
    );
    out.family(
        "herald_http_max_connections",
        "gauge",
        "Connections admitted at most ([http] max_connections).",
    );
    out.sample(
        "herald_http_max_connections",
        &[],
        state.connections.limit() as u64,
    );
    out.family(
        "herald_http_refused_connections_total",
        "counter",
        "Connections opened past max_connections, answered 503 and closed.",
    );
    out.sample(
        "herald_http_refused_connections_total",
        &[],
        state.connections.refused(),
    );

    if let Some(bytes) = resident_memory_bytes() {
        out.family(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        out.sample("process_resident_memory_bytes", &[], bytes);
    }
    latency::latencies().encode(&mut out.text);
    out.text
}

/// The process's resident set size from `/proc/self/status` (`VmRSS`, in kB); `None`
/// where there is no such file.
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

/// A text exposition being written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// The `# HELP` and `# TYPE` lines that start a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample line: `name{label="value",...} value`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_and_escaped_as_the_text_format_says() {
        let mut out = Exposition::default();
        out.family("herald_x_total", "counter", "Line one\\two\nthree.");
        out.sample("herald_x_total", &[], 3);
        out.sample(
            "herald_x_total",
            &[("stream", "a\"b\\c\nd"), ("status", "429")],
            7,
        );
        assert_eq!(
            out.text,
            "# HELP herald_x_total Line one\\\\two\\nthree.\n\
             # TYPE herald_x_total counter\n\
             herald_x_total 3\n\
             herald_x_total{stream=\"a\\\"b\\\\c\\nd\",status=\"429\"} 7\n"
        );
    }

    #[test]
    fn ingress_counts_only_statuses_seen() {
        let metrics = Metrics::default();
        metrics.count_ingress(StatusCode::ACCEPTED);
        metrics.count_ingress(StatusCode::ACCEPTED);
        metrics.count_ingress(StatusCode::TOO_MANY_REQUESTS);
        let counts: Vec<(usize, u64)> = metrics.ingress_counts().collect();
        assert_eq!(counts, vec![(202, 2), (429, 1)]);
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(resident_memory_bytes().is_some_and(|bytes| bytes > 0));
        }
    }
}
