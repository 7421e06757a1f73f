//! The log's read API: streams with their subscribers' progress, a stream's events by
//! sequence, and a live tail as server-sent events. Only durable events are served.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::stream;
use herald_runtime::log::{EventLog, Record, Visibility};
use herald_runtime::Envelope;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::problem::{self, Problem};
use super::state::GatewayState;

/// Events per page when the client does not say.
const DEFAULT_LIMIT: u64 = 100;
/// The most events one page may hold.
const MAX_LIMIT: u64 = 1000;
/// How often an idle tail sends a comment, so proxies keep the connection.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// Records a tail reads ahead of what it sent: one, so a tail holds at most one event
/// (those near the head are shared with the log's cache), and `max_tails` bounds them all.
const TAIL_READ_AHEAD: usize = 1;
/// Content type of a JSON array of CloudEvents.
const BATCH_JSON: &str = "application/cloudevents-batch+json";

/// How often a watch of `GET /v1/streams` sends the streams again.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// `GET /v1/streams`: every stream, its last sequence, and each subscriber's progress.
/// With `Accept: text/event-stream`, the same as server-sent events (`event: streams`),
/// once a second until the client leaves: what the console's live view reads.
pub async fn list_streams(
    request: HttpRequest,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let state = state.into_inner();
    if !accepts_event_stream(&request) {
        return Ok(HttpResponse::Ok().json(streams_json(&state)));
    }
    let place = tail_place(&state)?;
    let watch = (place, state, true);
    let body = stream::unfold(watch, |(place, state, first)| async move {
        let mut shutdown = state.shutdown.clone();
        if *shutdown.borrow() {
            return None;
        }
        // A second after the last was sent, however long building it took.
        if !first {
            tokio::select! {
                () = tokio::time::sleep(WATCH_EVERY) => {}
                _ = shutdown.changed() => return None,
            }
        }
        // Networked, the streams' ends are asked of JetStream: off the async worker, as
        // this repeats every second for as long as the watch is open.
        let read = Arc::clone(&state);
        let streams = web::block(move || streams_json(&read)).await.ok()?;
        let chunk = format!("event: streams\ndata: {streams}\n\n");
        Some((
            Ok::<_, Infallible>(Bytes::from(chunk)),
            (place, state, false),
        ))
    });
    Ok(event_stream(body))
}

/// Whether the request's `Accept` takes `text/event-stream` (with a quality above 0).
fn accepts_event_stream(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|parameter| {
                parameter
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/event-stream") && !refused
        })
}

/// A place among `[http] max_tails` for a long-lived response, or 503.
fn tail_place(state: &GatewayState) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
    Arc::clone(&state.tails).try_acquire_owned().map_err(|_| {
        Problem::new(problem::TOO_MANY_TAILS, format!(
                "the node serves as many SSE tails and watches as it takes at once ([http] max_tails = {}); retry shortly, or poll without Accept: text/event-stream",
                state.limits.max_tails
            ),
        )
        .retry_after(1)
    })
}

/// A `text/event-stream` answer of `body`, kept from caches and proxy buffers.
fn event_stream(
    body: impl futures_util::Stream<Item = Result<Bytes, Infallible>> + 'static,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header(("x-accel-buffering", HeaderValue::from_static("no")))
        .streaming(body)
}

/// The body of `GET /v1/streams`.
fn streams_json(state: &GatewayState) -> Value {
    let log = &state.log;
    let mut last: BTreeMap<String, u64> = state
        .hosted_streams()
        .into_iter()
        .map(|stream| (stream.to_owned(), 0))
        .collect();
    last.extend(log.streams());
    let streams: Vec<Value> = last
        .into_iter()
        .map(|(stream, last_sequence)| {
            let origin = state
                .layout
                .locate(&stream)
                .map_or(stream.as_str(), |(d, _)| d);
            // Each host of a subscriber (a domain, or each of its partitions) has its cursor.
            let subscribers: Vec<Value> = state
                .catalog
                .subscribers_of(origin)
                .into_iter()
                .flat_map(|domain| {
                    let hosts = state.layout.streams(domain);
                    hosts
                        .iter()
                        .map(move |host| (domain, *host, hosts.len() > 1))
                })
                .filter_map(|(domain, host_stream, partitioned)| {
                    let host = state.hosts.get(host_stream)?;
                    // Read after `last_sequence`: more may have become durable since.
                    let consumed = log
                        .sequence_at(&stream, host.view.cursor())
                        .min(last_sequence);
                    let mut subscriber = json!({
                        "domain": domain,
                        "consumed": consumed,
                        "lag": last_sequence.saturating_sub(consumed),
                    });
                    if partitioned {
                        subscriber["stream"] = json!(host_stream);
                    }
                    Some(subscriber)
                })
                .collect();
            json!({
                "stream": stream,
                "last_sequence": last_sequence,
                "subscribers": subscribers,
            })
        })
        .collect();
    // Networked mode has no node-wide offset: `head` is null there.
    let head = state.nats.is_none().then(|| log.head());
    json!({ "streams": streams, "head": head })
}

/// `GET /v1/streams/{stream}/events?from=SEQ&limit=N`: a page of events, in order.
pub async fn events(
    path: web::Path<String>,
    request: HttpRequest,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let (stream, last, query) = stream_request(&state, path, &request)?;
    let from = number(&query, "from", 1, 1, u64::MAX)?;
    let limit = number(&query, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)?;
    let upcast = match query.get("upcast").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::new(
                problem::BAD_QUERY_PARAMETER,
                format!("upcast \"{other}\" is neither true nor false"),
            )
            .with("parameter", "upcast"))
        }
    };
    let records = state
        .log
        .read_stream(&stream, from, limit as usize, Visibility::Durable)
        .map_err(log_problem)?;
    let events = records
        .iter()
        .map(|record| match upcast {
            true => upcast_json(&state, &record.envelope),
            false => Ok(record.envelope.to_cloudevent_json()),
        })
        .collect::<Result<Vec<Value>, Problem>>()?;
    let mut response = HttpResponse::Ok();
    response.content_type(BATCH_JSON);
    if let Some(next) = records.last().map(|r| r.envelope.sequence + 1) {
        if next <= last {
            let upcast = if upcast { "&upcast=true" } else { "" };
            response.insert_header((
                header::LINK,
                format!(
                    "</v1/streams/{stream}/events?from={next}&limit={limit}{upcast}>; rel=\"next\""
                ),
            ));
        }
    }
    Ok(response.body(Value::Array(events).to_string()))
}

/// `envelope` as a CloudEvent with `data` in its type's current layout (an event stored at
/// an older version upcast, as its domain and consumers see it), `heraldversion` saying
/// which.
fn upcast_json(state: &GatewayState, envelope: &Envelope) -> Result<Value, Problem> {
    let Some(entry) = state.catalog.event_type(&envelope.event_type) else {
        // Herald's own records (timers, dead letters) have no versions.
        return Ok(envelope.to_cloudevent_json());
    };
    let stored = herald_runtime::event::stored_version(envelope);
    let upgraded = (entry.upgrade)(stored, &envelope.data).map_err(|error| {
        Problem::new(
            problem::QUERY_FAILED,
            format!(
                "{}#{} cannot be upcast from version {stored}: {error}",
                envelope.stream, envelope.sequence
            ),
        )
    })?;
    let Some(data) = upgraded else {
        return Ok(envelope.to_cloudevent_json());
    };
    let mut current = envelope.clone();
    current.data = data;
    herald_runtime::event::mark_version(&mut current, entry.version);
    Ok(current.to_cloudevent_json())
}

/// `GET /v1/streams/{stream}/tail?from=SEQ`: events as server-sent events, then every new
/// one as it becomes durable. `Last-Event-ID` (a sequence) resumes after it.
pub async fn tail(
    path: web::Path<String>,
    request: HttpRequest,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let (stream, last, query) = stream_request(&state, path, &request)?;
    let resume = match request.headers().get("last-event-id") {
        Some(value) => {
            let text = value.to_str().unwrap_or("");
            let id = text.trim().parse::<u64>().map_err(|_| {
                Problem::new(problem::BAD_LAST_EVENT_ID, format!("Last-Event-ID \"{text}\" is not a sequence number; send the id of the last event received"),
                )
                .with("header", "Last-Event-ID")
            })?;
            Some(id.checked_add(1).ok_or_else(|| {
                Problem::new(
                    problem::BAD_LAST_EVENT_ID,
                    format!("Last-Event-ID \"{text}\" is past any sequence a stream can reach"),
                )
                .with("header", "Last-Event-ID")
            })?)
        }
        None => None,
    };
    let from = match resume {
        Some(next) => next,
        None => number(&query, "from", last + 1, 1, u64::MAX)?,
    };
    let place = tail_place(&state)?;
    let tail = Tail {
        _place: place,
        log: Arc::clone(&state.log),
        stream,
        next: from,
        buffer: VecDeque::new(),
        shutdown: state.shutdown.clone(),
    };
    let body = stream::unfold(tail, |mut tail| async move {
        tail.next_chunk()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), tail))
    });
    Ok(event_stream(body))
}

/// One client's tail: where it is, what was read ahead, and the node's shutdown signal.
struct Tail {
    /// Its place among `max_tails`, freed when the response ends.
    _place: tokio::sync::OwnedSemaphorePermit,
    log: Arc<dyn EventLog>,
    stream: String,
    next: u64,
    buffer: VecDeque<Arc<Record>>,
    shutdown: watch::Receiver<bool>,
}

impl Tail {
    /// The next bytes to send; `None` ends the response (node shutting down).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            if let Some(record) = self.buffer.pop_front() {
                self.next = record.envelope.sequence + 1;
                return Some(Bytes::from(sse_event(&record)));
            }
            let head = self.log.head();
            match self.log.read_stream(
                &self.stream,
                self.next,
                TAIL_READ_AHEAD,
                Visibility::Durable,
            ) {
                Ok(records) if !records.is_empty() => {
                    self.buffer.extend(records);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    // End the stream: the client reconnects with Last-Event-ID and resumes.
                    tracing::warn!(stream = %self.stream, %error, "tail ended: cannot read the log");
                    return None;
                }
            }
            let advanced = self.log.durability().after(head);
            tokio::select! {
                result = advanced => {
                    if result.is_err() {
                        return None;
                    }
                }
                () = tokio::time::sleep(KEEPALIVE) => return Some(Bytes::from_static(b": keepalive\n\n")),
                _ = self.shutdown.changed() => return None,
            }
        }
    }
}

fn sse_event(record: &Record) -> String {
    let envelope = &record.envelope;
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        envelope.sequence,
        envelope.event_type,
        envelope.to_cloudevent_json()
    )
}

/// What every per-stream request starts with: the stream named in the path (404 if there
/// is none such), its last sequence, and the parsed query string.
fn stream_request(
    state: &GatewayState,
    path: web::Path<String>,
    request: &HttpRequest,
) -> Result<(String, u64, BTreeMap<String, String>), Problem> {
    let stream = path.into_inner();
    let last = known_stream(state, &stream)?;
    let query = parse_query(request.query_string())?;
    Ok((stream, last, query))
}

/// The stream's last sequence, or 404 naming the streams there are.
fn known_stream(state: &GatewayState, stream: &str) -> Result<u64, Problem> {
    let streams = state.log.streams();
    if let Some((_, last)) = streams.iter().find(|(name, _)| name == stream) {
        return Ok(*last);
    }
    let hosted = state.hosted_streams();
    if hosted.contains(&stream) {
        return Ok(0);
    }
    let mut known: Vec<String> = hosted
        .into_iter()
        .map(str::to_owned)
        .chain(streams.into_iter().map(|(name, _)| name))
        .collect();
    known.sort();
    known.dedup();
    Err(Problem::new(
        problem::UNKNOWN_STREAM,
        format!(
            "unknown stream \"{stream}\"; streams are: {}",
            known.join(", ")
        ),
    )
    .with("stream", stream))
}

fn parse_query(query: &str) -> Result<BTreeMap<String, String>, Problem> {
    web::Query::<BTreeMap<String, String>>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|error| {
            Problem::new(
                problem::BAD_QUERY_STRING,
                format!("the query string does not parse: {error}"),
            )
        })
}

fn number(
    query: &BTreeMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, Problem> {
    let Some(text) = query.get(name) else {
        return Ok(default);
    };
    match text.parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => {
            let range = if max == u64::MAX {
                format!("a whole number of at least {min}")
            } else {
                format!("a whole number from {min} to {max}")
            };
            Err(Problem::new(
                problem::BAD_QUERY_PARAMETER,
                format!("query parameter \"{name}\" is \"{text}\"; it must be {range}"),
            )
            .with("parameter", name))
        }
    }
}

/// 503 for a log that cannot serve or sync.
pub fn log_problem(error: herald_runtime::log::LogError) -> Problem {
    Problem::new(problem::LOG_UNAVAILABLE, format!("{error}; retry later")).retry_after(1)
}
