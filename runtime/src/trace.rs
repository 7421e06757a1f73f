//! Traces across reactions: W3C trace contexts carried by events, and the spans the node
//! records of an ingest, its append, and each reaction.
//!
//! Every event stored carries its own `traceparent`, whose span is the one that produced
//! it: the ingest span for an event a client posted, an emit span (a child of the handling
//! span) for a reaction. So a reaction's handling is the child of its input's span, and an
//! order's whole saga is one trace. Span ids are derived from event ids rather than drawn
//! at random: a reaction handled again after a crash gets the same ids, and nothing here
//! needs a source of randomness.
//!
//! Spans leave the node through a [`SpanSink`] the binary installs when
//! `[telemetry] otlp_endpoint` is set; without one, recording a span costs a check.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::SystemTime;

use xxhash_rust::xxh3::Xxh3;

use crate::envelope::Envelope;

/// A W3C trace context: which trace, which span in it, and whether it is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace's id; never zero.
    pub trace_id: u128,
    /// The span's id; never zero.
    pub span_id: u64,
    /// Whether the trace is sampled (flag `01`).
    pub sampled: bool,
}

impl TraceContext {
    /// Parses a `traceparent` value (version `00`, or a later version's first four
    /// fields); `None` when it is not one, so a bad header starts a new trace instead.
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        // Version ff is invalid; version 00 has exactly four fields.
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace's root context, its ids derived from `seed` (the parts that name it).
    pub fn root(seed: &[&str]) -> Self {
        let hash = hash(seed, "root");
        Self {
            trace_id: hash.digest128().max(1),
            span_id: hash.digest().max(1),
            sampled: true,
        }
    }

    /// A child span of this one, its id derived from `seed` and `what` it is.
    pub fn child(&self, seed: &[&str], what: &str) -> Self {
        Self {
            span_id: hash(seed, what).digest().max(1),
            ..*self
        }
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }

    /// The trace id as 32 hex digits, as log lines and tracing backends show it.
    pub fn trace_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// The span of `domain` handling `input`: a child of the input's own span (a root when
/// the input carries none), and that parent.
pub fn handling(domain: &str, input: &Envelope) -> (TraceContext, Option<TraceContext>) {
    let seed = [domain, input.stream.as_str(), &input.source, &input.id];
    match input.traceparent.as_deref().and_then(TraceContext::parse) {
        Some(parent) => (parent.child(&seed, "handle"), Some(parent)),
        None => (TraceContext::root(&seed), None),
    }
}

/// The span that emitted event `id` while `handle` ran: what the event carries.
pub fn emitting(handle: &TraceContext, id: &str) -> TraceContext {
    handle.child(&[id], "emit")
}

/// One domain's handling of one input, traced: its context, worked out once, and when it
/// began. Begun only when a trace is wanted ([`wanted`]).
pub struct Handling {
    domain: &'static str,
    /// The handling's own span.
    pub context: TraceContext,
    parent: Option<TraceContext>,
    start: SystemTime,
}

impl Handling {
    /// `domain` starts handling `input`; `None` when no trace is wanted.
    pub fn begin(domain: &'static str, input: &Envelope) -> Option<Self> {
        wanted().then(|| {
            let (context, parent) = handling(domain, input);
            Self {
                domain,
                context,
                parent,
                start: SystemTime::now(),
            }
        })
    }

    /// Records the handling, ended now, and a span per event it emitted (once they are
    /// stored), each a child of the handling; nothing unless spans are exported.
    pub fn record<'a>(&self, input: &Envelope, emitted: impl IntoIterator<Item = &'a Envelope>) {
        if !enabled() {
            return;
        }
        let (domain, handle, end) = (self.domain, self.context, SystemTime::now());
        for event in emitted {
            record(SpanRecord {
                name: "emit".into(),
                context: emitting(&handle, &event.id),
                parent: Some(handle.span_id),
                start: self.start,
                end,
                attributes: vec![
                    ("herald.domain", domain.to_owned()),
                    ("cloudevents.event_type", event.event_type.clone()),
                    ("cloudevents.event_id", event.id.clone()),
                ],
            });
        }
        record(SpanRecord {
            name: "handle".into(),
            context: handle,
            parent: self.parent.map(|parent| parent.span_id),
            start: self.start,
            end,
            attributes: vec![
                ("herald.domain", domain.to_owned()),
                ("cloudevents.event_type", input.event_type.clone()),
                ("cloudevents.event_id", input.id.clone()),
                ("herald.stream", input.stream.clone()),
                ("herald.sequence", input.sequence.to_string()),
            ],
        });
    }
}

/// The hash of `what` and the parts of `seed`, each after a byte no UTF-8 text holds, so
/// ("ab", "c") and ("a", "bc") differ.
fn hash(seed: &[&str], what: &str) -> Xxh3 {
    let mut hasher = Xxh3::new();
    hasher.update(what.as_bytes());
    for part in seed {
        hasher.update(&[0xff]);
        hasher.update(part.as_bytes());
    }
    hasher
}

/// One finished span, as the node hands it to the [`SpanSink`].
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// What was done: `ingest`, `append`, `handle`, `emit`.
    pub name: Cow<'static, str>,
    /// Its trace and its own span id.
    pub context: TraceContext,
    /// Its parent's span id; `None` for a trace's root.
    pub parent: Option<u64>,
    /// When it started.
    pub start: SystemTime,
    /// When it ended.
    pub end: SystemTime,
    /// Its attributes (`herald.domain`, `cloudevents.event_id`, ...).
    pub attributes: Vec<(&'static str, String)>,
}

/// Where finished spans go: the binary's OTLP exporter.
pub trait SpanSink: Send + Sync {
    /// Takes one finished span; must not block.
    fn record(&self, span: SpanRecord);
}

static SINK: OnceLock<Box<dyn SpanSink>> = OnceLock::new();

/// Installs the node's span sink; only the first call takes effect (one per process).
pub fn set_sink(sink: Box<dyn SpanSink>) -> bool {
    SINK.set(sink).is_ok()
}

/// Whether spans are exported: callers skip building them when not.
pub fn enabled() -> bool {
    SINK.get().is_some()
}

static LOGGED: AtomicBool = AtomicBool::new(false);

/// Says that log lines show trace ids (JSON logs), so a handling step opens a tracing span
/// with its trace id even when no span is exported.
pub fn log_trace_ids(on: bool) {
    LOGGED.store(on, Ordering::Relaxed);
}

/// Whether a handling step should know its trace: spans exported, or trace ids logged.
pub fn wanted() -> bool {
    enabled() || LOGGED.load(Ordering::Relaxed)
}

/// Hands a finished span to the sink, if there is one and its trace is sampled.
pub fn record(span: SpanRecord) {
    if let (Some(sink), true) = (SINK.get(), span.context.sampled) {
        sink.record(span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C_EXAMPLE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn parses_and_writes_the_w3c_example() {
        let context = TraceContext::parse(W3C_EXAMPLE).expect("valid");
        assert_eq!(context.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(context.span_id, 0xb7ad6b7169203331);
        assert!(context.sampled);
        assert_eq!(context.traceparent(), W3C_EXAMPLE);
        assert_eq!(context.trace_hex(), "0af7651916cd43dd8448eb211c80319c");
    }

    #[test]
    fn refuses_what_is_not_a_traceparent() {
        for bad in [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version may add fields after the four it shares with 00.
        assert!(TraceContext::parse(
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-more"
        )
        .is_some_and(|context| !context.sampled));
    }

    #[test]
    fn children_keep_the_trace_and_derive_their_span_from_the_seed() {
        let parent = TraceContext::parse(W3C_EXAMPLE).expect("valid");
        let child = parent.child(&["event-1"], "emit");
        assert_eq!(child.trace_id, parent.trace_id);
        assert_ne!(child.span_id, parent.span_id);
        assert_eq!(
            child,
            parent.child(&["event-1"], "emit"),
            "derived, not drawn"
        );
        assert_ne!(child.span_id, parent.child(&["event-2"], "emit").span_id);
        assert_ne!(child.span_id, parent.child(&["event-1"], "handle").span_id);
        assert_ne!(
            parent.child(&["ab", "c"], "emit").span_id,
            parent.child(&["a", "bc"], "emit").span_id
        );
        let root = TraceContext::root(&["/src", "event-1"]);
        assert_eq!(root, TraceContext::root(&["/src", "event-1"]));
        assert_ne!(
            root.trace_id,
            TraceContext::root(&["/src", "event-2"]).trace_id
        );
    }
}
