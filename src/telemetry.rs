//! What the node tells the outside about itself as it runs: log lines (text, or JSON
//! carrying the node id and the trace id of the step that logged), and trace spans
//! exported over OTLP/HTTP when `[telemetry] otlp_endpoint` is set.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use herald_config::{Config, LogFormat};
use herald_runtime::trace::{self, SpanRecord, SpanSink};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::Attributes;
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

/// How long spans wait in the exporter's queue before they are sent.
const EXPORT_DELAY: Duration = Duration::from_secs(1);

/// Keeps the trace exporter running; flushes what it holds when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("herald: trace spans not all exported at shutdown: {error}");
            }
        }
    }
}

/// Starts logging as `[telemetry]` says, and the trace exporter when an endpoint is set.
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    // RUST_LOG, when set, wins over the config so one run can be made verbose.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.telemetry.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal, so captured logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let registry = tracing_subscriber::registry().with(filter);
    match config.telemetry.format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
            .init(),
        LogFormat::Json => {
            trace::log_trace_ids(true);
            // Only JSON lines read the trace ids this layer keeps.
            registry
                .with(TraceIds)
                .with(tracing_subscriber::fmt::layer().event_format(JsonLine {
                    node: config.node.id.clone(),
                }))
                .init()
        }
    }
    let provider = match &config.telemetry.otlp_endpoint {
        Some(endpoint) => Some(exporter(endpoint, &config.node.id)?),
        None => None,
    };
    Ok(Telemetry { provider })
}

/// The OTLP/HTTP exporter, installed as the runtime's span sink.
fn exporter(endpoint: &str, node: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| anyhow::anyhow!("cannot build the OTLP exporter for {url}: {error}"))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_DELAY)
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name("herald")
        .with_attribute(KeyValue::new("service.instance.id", node.to_owned()))
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_id_generator(GivenIds(RandomIdGenerator::default()))
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    trace::set_sink(Box::new(OtlpSink {
        tracer: provider.tracer("herald"),
    }));
    tracing::info!(endpoint = %url, "exporting trace spans over OTLP/HTTP");
    Ok(provider)
}

/// Turns the runtime's finished spans into OpenTelemetry spans with the same ids.
struct OtlpSink {
    tracer: opentelemetry_sdk::trace::SdkTracer,
}

impl SpanSink for OtlpSink {
    fn record(&self, span: SpanRecord) {
        let trace_id = TraceId::from_bytes(span.context.trace_id.to_be_bytes());
        let builder = self
            .tracer
            .span_builder(span.name)
            .with_kind(SpanKind::Internal)
            .with_start_time(span.start)
            .with_attributes(
                span.attributes
                    .into_iter()
                    .map(|(key, value)| KeyValue::new(key, value)),
            );
        NEXT_IDS.set(Some((
            trace_id,
            SpanId::from_bytes(span.context.span_id.to_be_bytes()),
        )));
        // The parent is known by id only (it may be another node's span): a remote context.
        let parent = match span.parent {
            Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
                trace_id,
                SpanId::from_bytes(parent.to_be_bytes()),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )),
            None => Context::new(),
        };
        let mut otel = self.tracer.build_with_context(builder, &parent);
        NEXT_IDS.set(None);
        otel.end_with_timestamp(span.end);
    }
}

thread_local! {
    /// The ids of the span being built on this thread, for [`GivenIds`].
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Gives the SDK the ids the runtime derived (see `herald_runtime::trace`) instead of
/// random ones: the SDK builds a span on the calling thread, asking its id generator for
/// the span's id (and the trace's, when it has no parent), so [`OtlpSink`] leaves them in
/// a thread-local first. Random ids only if asked outside that (never, in the node).
#[derive(Debug)]
struct GivenIds(RandomIdGenerator);

impl IdGenerator for GivenIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .get()
            .map_or_else(|| self.0.new_trace_id(), |(trace_id, _)| trace_id)
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .get()
            .map_or_else(|| self.0.new_span_id(), |(_, span_id)| span_id)
    }
}

/// The trace id a span was opened with (its `trace_id` field), for the log lines in it.
struct TraceId32(String);

/// Keeps each span's `trace_id` field where [`JsonLine`] finds it.
struct TraceIds;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for TraceIds {
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        let mut found = FindTraceId(None);
        attributes.record(&mut found);
        if let (Some(trace_id), Some(span)) = (found.0, ctx.span(id)) {
            span.extensions_mut().insert(TraceId32(trace_id));
        }
    }
}

struct FindTraceId(Option<String>);

impl Visit for FindTraceId {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "trace_id" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "trace_id" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// One JSON object per line: time, level, target, the node's id, the trace id of the
/// innermost span that has one, the message and the event's fields.
struct JsonLine {
    node: String,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            herald_runtime::envelope::now_rfc3339().into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        line.insert("node".into(), self.node.clone().into());
        let trace_id = ctx.event_scope().and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<TraceId32>().map(|id| id.0.clone()))
        });
        if let Some(trace_id) = trace_id {
            line.insert("trace_id".into(), trace_id.into());
        }
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        line.insert("fields".into(), Value::Object(fields.0));
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values: numbers and booleans as such, the rest as text.
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
