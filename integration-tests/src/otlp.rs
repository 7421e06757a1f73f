//! An OTLP/HTTP trace receiver for the tests: listens on a free port, takes
//! `POST /v1/traces` bodies in OTLP's protobuf encoding (the official message types), and
//! keeps every span it received, as a collector would before storing them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

/// One span as received, ids in hex as tracing backends show them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The span's name (`ingest`, `append`, `handle`, `emit`).
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; empty for a trace's root.
    pub parent_span_id: String,
    /// String attributes, by key.
    pub attributes: Vec<(String, String)>,
    /// The resource's `service.instance.id` (the node id).
    pub node: String,
}

impl ReceivedSpan {
    /// The value of string attribute `key`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver, running until dropped with the test process.
pub struct OtlpReceiver {
    port: u16,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

impl OtlpReceiver {
    /// Starts listening on a free loopback port.
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().expect("local address").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        std::thread::spawn(move || {
            for connection in listener.incoming().flatten() {
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || serve(connection, &kept));
            }
        });
        Self { port, spans }
    }

    /// The base URL to give a node as `[telemetry] otlp_endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Serves one keep-alive connection: each request's body is decoded and its spans kept.
fn serve(connection: TcpStream, kept: &Mutex<Vec<ReceivedSpan>>) {
    let _ = connection.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match connection.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(connection);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, answer) = match request_line.starts_with("POST /v1/traces ") {
            true => match ExportTraceServiceRequest::decode(body.as_slice()) {
                Ok(request) => {
                    let mut spans = kept.lock().unwrap_or_else(|e| e.into_inner());
                    spans.extend(flatten(request));
                    (
                        "200 OK",
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
                Err(_) => ("400 Bad Request", Vec::new()),
            },
            false => ("404 Not Found", Vec::new()),
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&answer).is_err() {
            return;
        }
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    let text = |value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match value
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let node = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|kv| kv.key == "service.instance.id")
            .map(|kv| text(&kv.value))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                out.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                        .collect(),
                    node: node.clone(),
                });
            }
        }
    }
    out
}
