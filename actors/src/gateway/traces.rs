//! The spans of one `POST /v1/events`: an `ingest` span per event, child of the HTTP
//! `traceparent` when the client sent one (else of the event's own `traceparent`, else
//! the root of a new trace), and its `append` child, from dispatch to the durable answer.
//! Each event is stored with its ingest span as `traceparent`, so its reactions continue
//! the same trace (see `herald_runtime::trace`).

use std::time::SystemTime;

use actix_web::HttpRequest;
use herald_runtime::trace::{self, SpanRecord, TraceContext};
use herald_runtime::Envelope;

/// The request's trace contexts, one per event, and when its phases began.
pub struct IngestTrace {
    /// The client's `traceparent` header, when valid.
    header: Option<TraceContext>,
    started: SystemTime,
    dispatched: Option<SystemTime>,
    events: Vec<Traced>,
}

struct Traced {
    context: TraceContext,
    parent: Option<u64>,
    event_type: String,
    id: String,
    stream: &'static str,
}

impl IngestTrace {
    /// A request's trace, begun now.
    pub fn begin(request: &HttpRequest) -> Self {
        let header = request
            .headers()
            .get("traceparent")
            .and_then(|value| value.to_str().ok())
            .and_then(TraceContext::parse);
        Self {
            header,
            started: SystemTime::now(),
            dispatched: None,
            events: Vec::new(),
        }
    }

    /// Gives `envelope`, bound for `stream`, its ingest span as `traceparent`.
    pub fn stamp(&mut self, envelope: &mut Envelope, stream: &'static str) {
        let parent = self.header.or_else(|| {
            envelope
                .traceparent
                .as_deref()
                .and_then(TraceContext::parse)
        });
        // The parent's span is part of the seed: a client's retry, a new span of its
        // trace, is a span of its own (the stored event keeps the first one's).
        let parent_span = parent.map(|parent| format!("{:016x}", parent.span_id));
        let seed = [
            stream,
            &envelope.source,
            &envelope.id,
            parent_span.as_deref().unwrap_or(""),
        ];
        let context = match parent {
            Some(parent) => parent.child(&seed, "ingest"),
            None => TraceContext::root(&seed),
        };
        envelope.traceparent = Some(context.traceparent());
        if trace::enabled() {
            self.events.push(Traced {
                context,
                parent: parent.map(|parent| parent.span_id),
                event_type: envelope.event_type.clone(),
                id: envelope.id.clone(),
                stream,
            });
        }
    }

    /// The events are checked and go to their hosts (or owners) now.
    pub fn dispatched(&mut self) {
        self.dispatched = Some(SystemTime::now());
    }

    /// Records every span, now that the request is answered with `status`.
    pub fn finish(self, node: &str, status: u16) {
        let end = SystemTime::now();
        for event in self.events {
            let attributes = vec![
                ("cloudevents.event_type", event.event_type),
                ("cloudevents.event_id", event.id),
                ("herald.stream", event.stream.to_owned()),
                ("herald.node", node.to_owned()),
                ("http.response.status_code", status.to_string()),
            ];
            if let Some(dispatched) = self.dispatched {
                trace::record(SpanRecord {
                    name: "append".into(),
                    context: event.context.child(&[], "append"),
                    parent: Some(event.context.span_id),
                    start: dispatched,
                    end,
                    attributes: attributes.clone(),
                });
            }
            trace::record(SpanRecord {
                name: "ingest".into(),
                context: event.context,
                parent: event.parent,
                start: self.started,
                end,
                attributes,
            });
        }
    }
}
