//! `POST /v1/events`: structured, batch and binary CloudEvents in; positions out.
//!
//! Everything a client can get wrong is checked before any domain sees the events: content
//! type, size, JSON, attributes, type and schema, for every event of a batch. Then each
//! owning domain deduplicates, validates against its state and appends. A batch that spans
//! several domains is prepared in every one (in name order, so two batches cannot deadlock)
//! and committed only when all accepted it. A domain whose ingress slots are all taken
//! (see `admission.rs`) answers 429 before anything is sent to any domain.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::{header, StatusCode};
use actix_web::HttpMessage as _;
use actix_web::{web, HttpRequest, HttpResponse};
use herald_config::Scope;
use herald_runtime::catalog::TypeLookupError;
use herald_runtime::cloudevent::{self, BinaryHeaders, EventError, ParsedEvent};
use herald_runtime::hosted::Refusal;
use herald_runtime::Envelope;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::auth::Grant;
use super::body;
use super::forward;
use super::problem::{self, Problem};
use super::state::{GatewayState, HostHandle, Limits};
use super::streams::log_problem;
use super::traces::IngestTrace;
use crate::admission::{self, Slot, Undelivered};
use crate::host::{Committed, Decision, Ingest, IngestError, Outcome, Prepare};

/// Structured mode: one event as a JSON object.
pub const STRUCTURED: &str = "application/cloudevents+json";
/// Batch mode: a JSON array of events.
pub const BATCH: &str = "application/cloudevents-batch+json";
/// Binary mode: `ce-*` headers and the JSON `data` as the body.
pub const BINARY: &str = "application/json";

/// How a client sent its events: it decides the shape of the answer and of error pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    /// One event as CloudEvents JSON.
    Structured,
    /// A JSON array of events.
    Batch,
    /// One event as `ce-*` headers and a JSON body.
    Binary,
}

/// Handles `POST /v1/events`.
pub async fn post_events(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let mut trace = IngestTrace::begin(&request);
    let answer = ingest(&request, payload, &state, &mut trace).await;
    let status = match &answer {
        Ok(response) => response.status().as_u16(),
        Err(problem) => problem.status().as_u16(),
    };
    trace.finish(&state.node, status);
    answer
}

/// [`post_events`] itself; `trace` gets each event's span.
async fn ingest(
    request: &HttpRequest,
    payload: web::Payload,
    state: &GatewayState,
    trace: &mut IngestTrace,
) -> Result<HttpResponse, Problem> {
    let request = request.clone();
    let mode = mode(&request)?;
    let body = body::read(
        &request,
        payload,
        &state.limits.body,
        state.shutdown.clone(),
    )
    .await?;
    let json: Value = serde_json::from_slice(&body).map_err(|error| {
        Problem::new(
            problem::MALFORMED_JSON,
            format!("the body is not valid JSON: {error}"),
        )
        .with("line", error.line())
        .with("column", error.column())
    })?;
    let events = parse(mode, &request, json, &body, &state.limits)?;
    let mut groups: BTreeMap<&'static str, Vec<(usize, Envelope)>> = BTreeMap::new();
    for (index, event) in events.into_iter().enumerate() {
        let at = Locator::new(mode, index);
        // Networked mode takes a type whose domain is hosted elsewhere: it is forwarded.
        let entry = match state.nats {
            Some(_) => state
                .catalog
                .ingress_type_anywhere(&event.envelope.event_type),
            None => state.catalog.ingress_type(&event.envelope.event_type),
        }
        .map_err(|error| type_problem(error, &at))?;
        entry.check_data(&event.data).map_err(|violation| {
            at.locate(
                Problem::new(
                    problem::SCHEMA_VIOLATION,
                    format!("{} (type {})", violation, entry.name),
                ),
                &format!("data{}", violation.pointer),
            )
        })?;
        let stream = route(state, entry.domain, &event.envelope, &at)?;
        let mut envelope = event.envelope;
        // The data was checked against the type's current schema: it is of that version.
        herald_runtime::event::mark_version(&mut envelope, entry.version);
        trace.stamp(&mut envelope, stream);
        groups.entry(stream).or_default().push((index, envelope));
    }
    let grant = request.extensions().get::<Grant>().cloned();
    if let Some(grant) = grant {
        // The token may publish, but perhaps not to every domain this request reaches.
        for (stream, events) in &groups {
            let domain = state
                .layout
                .locate(stream)
                .map_or(*stream, |(domain, _)| domain);
            if !grant.allows(Scope::Publish, Some(domain)) {
                let index = events.first().map_or(0, |(index, _)| *index);
                return Err(Locator::new(mode, index)
                    .locate(grant.forbidden(Scope::Publish, Some(domain)), "type"));
            }
        }
    }
    trace.dispatched();
    if let Some(nats) = &state.nats {
        networked_checks(state, &groups)?;
        if let Some((domain, group)) = groups.iter().next() {
            if !state.hosts.contains_key(domain) {
                let outcomes = forward_ingest(nats, mode, domain, group.clone()).await?;
                return Ok(respond(mode, outcomes));
            }
        }
    }
    let outcomes = dispatch_durable(state, mode, groups).await?;
    Ok(respond(mode, outcomes))
}

/// The stream an ingress event of `domain` goes to: the domain's, or, for a domain spread
/// over partitions, the one its key falls in. There the key is the subject, and a
/// `partitionkey` naming another key is refused: one entity's events could otherwise sit
/// in two partitions and be consumed out of order.
fn route(
    state: &GatewayState,
    domain: &'static str,
    envelope: &Envelope,
    at: &Locator,
) -> Result<&'static str, Problem> {
    if state.layout.partitions(domain) > 1 && envelope.partitionkey != envelope.subject {
        return Err(at.locate(
            Problem::new(problem::PARTITIONKEY_NOT_SUBJECT, format!(
                    "domain \"{domain}\" is spread over partitions by subject, so an event's partitionkey must be its subject (\"{}\") or absent; it is \"{}\"",
                    envelope.subject, envelope.partitionkey
                ),
            )
            .with("domain", domain),
            "partitionkey",
        ));
    }
    Ok(state
        .layout
        .stream_for(domain, &envelope.subject)
        .unwrap_or(domain))
}

/// Dispatches to the hosts, then waits until what they appended is durable: an answer is
/// never sent for events a crash could still take back.
async fn dispatch_durable(
    state: &GatewayState,
    mode: Mode,
    groups: BTreeMap<&'static str, Vec<(usize, Envelope)>>,
) -> Result<Outcomes, Problem> {
    let (outcomes, sync_to) = dispatch(state, mode, groups).await?;
    state
        .log
        .durability()
        .wait(sync_to)
        .await
        .map_err(log_problem)?;
    Ok(outcomes)
}

/// Ingests `group` into `domain` on this node, as for a forwarded request: admitted,
/// validated, appended and durable, or refused.
pub(crate) async fn ingest_here(
    state: &GatewayState,
    mode: Mode,
    domain: &'static str,
    group: Vec<(usize, Envelope)>,
) -> Result<Outcomes, Problem> {
    if let Some(reason) = state.nats_down() {
        return Err(super::problem::nats_down(&reason));
    }
    dispatch_durable(state, mode, BTreeMap::from([(domain, group)])).await
}

/// Sends `group` to the node hosting `domain` and reads back each event's outcome.
async fn forward_ingest(
    nats: &herald_runtime::nats::Nats,
    mode: Mode,
    domain: &str,
    group: Vec<(usize, Envelope)>,
) -> Result<Outcomes, Problem> {
    let (indexes, envelopes): (Vec<usize>, Vec<Envelope>) = group.into_iter().unzip();
    let request = forward::Request::Ingest {
        mode,
        events: envelopes.clone(),
    };
    match forward::ask(nats, domain, &request).await? {
        forward::Reply::Ingested(results) if results.len() == envelopes.len() => {
            let outcomes = results
                .into_iter()
                .map(|(new, position)| match new {
                    true => Outcome::Accepted(position),
                    false => Outcome::Duplicate(position),
                })
                .collect();
            Ok(zip_outcomes(indexes, outcomes, envelopes))
        }
        forward::Reply::Problem {
            status,
            body,
            retry_after,
        } => Err(forward::relayed(status, &body, retry_after)),
        _ => Err(forward::unexpected(
            domain,
            "an answer that does not match the events sent",
        )),
    }
}

/// What networked mode refuses before any domain is asked: NATS unreachable (503), and a
/// batch across domains, which JetStream cannot append atomically (422).
fn networked_checks(
    state: &GatewayState,
    groups: &BTreeMap<&'static str, Vec<(usize, Envelope)>>,
) -> Result<(), Problem> {
    if let Some(reason) = state.nats_down() {
        return Err(super::problem::nats_down(&reason));
    }
    let domains: BTreeSet<&str> = groups
        .keys()
        .map(|stream| {
            state
                .layout
                .locate(stream)
                .map_or(*stream, |(domain, _)| domain)
        })
        .collect();
    if groups.len() > 1 && domains.len() == 1 {
        let indexes: BTreeMap<&str, Vec<usize>> = groups
            .iter()
            .map(|(stream, events)| (*stream, events.iter().map(|(index, _)| *index).collect()))
            .collect();
        let domain = domains.iter().next().copied().unwrap_or_default();
        return Err(Problem::new(problem::BATCH_SPANS_PARTITIONS, format!(
                "the batch has events for {} partitions of domain \"{domain}\"; a batch is atomic only within one partition's stream: send one batch per group listed in \"groups\" (event indexes by partition)",
                groups.len()
            ),
        )
        .with("domain", domain)
        .with("groups", json!(indexes)));
    }
    if groups.len() > 1 {
        let domains: Vec<&str> = domains.into_iter().collect();
        return Err(Problem::new(problem::BATCH_SPANS_DOMAINS, format!(
                "the batch has events for domains {}; in networked mode a batch is atomic only within one domain's stream: send one batch per domain",
                domains.join(", ")
            ),
        )
        .with("domains", json!(domains)));
    }
    Ok(())
}

fn mode(request: &HttpRequest) -> Result<Mode, Problem> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        STRUCTURED => Ok(Mode::Structured),
        BATCH => Ok(Mode::Batch),
        BINARY if request.headers().contains_key("ce-specversion") => Ok(Mode::Binary),
        // The type is accepted; what is missing is binary mode's headers.
        BINARY => Err(Problem::new(
            problem::MISSING_BINARY_HEADERS,
            format!(
                "content type {BINARY} is binary mode: the event's attributes go in ce-* headers \
                 (ce-specversion, ce-id, ce-source, ce-type, ce-subject) and only its data in the \
                 body, but this request has no ce-specversion header; to send the whole event as \
                 JSON, use content type {STRUCTURED}"
            ),
        )
        .with("header", "ce-specversion")),
        _ => Err(Problem::new(
            problem::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type \"{content_type}\" is not accepted; send {STRUCTURED} (one event), \
                 {BATCH} (a JSON array of events) or {BINARY} with ce-* headers (binary mode)"
            ),
        )
        .with("accepted", json!([STRUCTURED, BATCH, BINARY]))),
    }
}

fn parse(
    mode: Mode,
    request: &HttpRequest,
    json: Value,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<ParsedEvent>, Problem> {
    let max_batch_events = limits.max_batch_events;
    match mode {
        Mode::Structured | Mode::Binary if body.len() > limits.max_event_bytes => {
            Err(event_too_large(body.len(), limits.max_event_bytes, None))
        }
        Mode::Structured => cloudevent::parse_structured(json)
            .map(|event| vec![event])
            .map_err(|error| event_problem(error, &Locator::new(mode, 0))),
        Mode::Binary => {
            let at = Locator::new(mode, 0);
            let headers = BinaryHeaders::new(
                request
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes())),
            )
            .map_err(|error| event_problem(error, &at))?;
            cloudevent::parse_binary(&headers, json)
                .map(|event| vec![event])
                .map_err(|error| event_problem(error, &Locator::new(mode, 0)))
        }
        Mode::Batch => {
            let Value::Array(items) = json else {
                return Err(Problem::new(
                    problem::BATCH_NOT_ARRAY,
                    format!("a {BATCH} body must be a JSON array of events"),
                ));
            };
            if items.is_empty() {
                return Err(Problem::new(
                    problem::EMPTY_BATCH,
                    "the batch holds no events; send at least one",
                ));
            }
            if items.len() > max_batch_events {
                return Err(Problem::new(problem::BATCH_TOO_LARGE, format!(
                        "the batch holds {} events, over the limit of {max_batch_events} ([http] max_batch_events)",
                        items.len()
                    ),
                )
                .with("limit", max_batch_events));
            }
            check_event_sizes(body, limits.max_event_bytes)?;
            items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    cloudevent::parse_structured(item)
                        .map_err(|error| event_problem(error, &Locator::new(mode, index)))
                })
                .collect()
        }
    }
}

/// 413 for one event over `[http] max_event_bytes`; `index` is its place in a batch.
fn event_too_large(size: usize, limit: usize, index: Option<usize>) -> Problem {
    let which = index.map_or("the event".to_owned(), |index| {
        format!("event {index} of the batch")
    });
    let problem = Problem::new(problem::EVENT_TOO_LARGE, format!(
            "{which} is {size} bytes, over the limit of {limit} bytes per event ([http] max_event_bytes); \
             make it smaller, for example by storing large content elsewhere and sending a reference"
        ),
    )
    .with("limit", limit)
    .with("size", size);
    match index {
        Some(index) => problem
            .with("index", index)
            .with("pointer", format!("/{index}")),
        None => problem,
    }
}

/// Refuses a batch holding an event over `limit` bytes (as sent), naming the first one.
fn check_event_sizes(body: &[u8], limit: usize) -> Result<(), Problem> {
    // No event can be larger than the whole body: the usual case costs nothing.
    if body.len() <= limit {
        return Ok(());
    }
    // A second, borrowing pass over a body already known to be a JSON array: each item's
    // exact text, so the size reported is the size the client sent.
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_slice(body) {
        Ok(items) => items,
        Err(_) => return Ok(()),
    };
    match items.iter().position(|item| item.get().len() > limit) {
        Some(index) => Err(event_too_large(
            items[index].get().len(),
            limit,
            Some(index),
        )),
        None => Ok(()),
    }
}

/// Says where in the request a problem is: the batch index and a JSON pointer.
struct Locator {
    mode: Mode,
    index: usize,
}

impl Locator {
    fn new(mode: Mode, index: usize) -> Self {
        Self { mode, index }
    }

    /// Adds `index` (batches), `pointer` and `attribute`; `path` is relative to the event.
    fn locate(&self, problem: Problem, path: &str) -> Problem {
        let attribute = path.split('/').next().unwrap_or(path).to_owned();
        let pointer = match self.mode {
            Mode::Batch => format!("/{}/{path}", self.index),
            Mode::Structured | Mode::Binary => format!("/{path}"),
        };
        let problem = problem
            .with("attribute", attribute)
            .with("pointer", pointer);
        match self.mode {
            Mode::Batch => {
                let detail = format!("event {} of the batch: ", self.index);
                problem.with("index", self.index).prefix_detail(&detail)
            }
            Mode::Structured | Mode::Binary => problem,
        }
    }
}

fn event_problem(error: EventError, at: &Locator) -> Problem {
    let kind = match &error {
        EventError::NotAnObject { .. } => problem::NOT_AN_OBJECT,
        EventError::Missing { .. } => problem::MISSING_ATTRIBUTE,
        EventError::Empty { .. } => problem::EMPTY_ATTRIBUTE,
        EventError::WrongType { .. } => problem::WRONG_ATTRIBUTE_TYPE,
        EventError::SpecVersion(_) => problem::UNSUPPORTED_SPECVERSION,
        EventError::DataContentType(_) | EventError::Base64Data => problem::UNSUPPORTED_DATA,
        EventError::Time(_) => problem::INVALID_TIME,
        EventError::ReservedSource(_) => problem::RESERVED_SOURCE,
        EventError::Extension { .. } => problem::INVALID_EXTENSION,
        EventError::HeaderNotText { .. } => problem::INVALID_HEADER,
        EventError::RepeatedHeader { .. } => problem::REPEATED_HEADER,
    };
    let problem = Problem::new(kind, error.to_string());
    match error.attribute() {
        Some(attribute) => at.locate(problem, attribute),
        None if at.mode == Mode::Batch => problem
            .with("index", at.index)
            .with("pointer", format!("/{}", at.index)),
        None => problem,
    }
}

fn type_problem(error: TypeLookupError, at: &Locator) -> Problem {
    let problem = match &error {
        TypeLookupError::Unknown { known, .. } => {
            Problem::new(problem::UNKNOWN_TYPE, error.to_string())
                .with("ingress_types", known.clone())
        }
        TypeLookupError::NotIngress { domain, .. } => {
            Problem::new(problem::NOT_INGRESS, error.to_string()).with("domain", domain.clone())
        }
        TypeLookupError::NotHosted { domain, .. } => {
            Problem::new(problem::DOMAIN_NOT_HOSTED, error.to_string())
                .with("domain", domain.clone())
        }
    };
    at.locate(problem, "type")
}

fn ingest_problem(error: IngestError, domain: &str, mode: Mode, indexes: &[usize]) -> Problem {
    match error {
        IngestError::Refused { index, refusal } => {
            let at = Locator::new(mode, indexes.get(index).copied().unwrap_or(index));
            match refusal {
                Refusal::Rejected(rejection) => at.locate(
                    Problem::new(problem::REJECTED, rejection.reason,
                    )
                    .with("domain", domain),
                    "data",
                ),
                Refusal::SubjectMismatch { .. } => at.locate(
                    Problem::new(problem::SUBJECT_MISMATCH, refusal.to_string(),
                    ),
                    "subject",
                ),
                Refusal::Data(error) => at.locate(
                    Problem::new(problem::SCHEMA_VIOLATION, error.to_string(),
                    ),
                    "data",
                ),
            }
        }
        IngestError::Panicked { index, message } => {
            let at = Locator::new(mode, indexes.get(index).copied().unwrap_or(index));
            at.locate(
                Problem::new(problem::DOMAIN_PANICKED, format!("domain \"{domain}\" panicked admitting the event: {message}; nothing was appended; this is a bug in the domain"),
                )
                .with("domain", domain),
                "data",
            )
        }
        IngestError::Log(message) => Problem::new(problem::LOG_UNAVAILABLE, format!("domain \"{domain}\": {message}; the events may or may not have been appended: resend them (a resend is recognised by source and id)"),
        )
        .retry_after(1),
        IngestError::NotReady(_) => Problem::new(problem::DOMAIN_NOT_READY, format!(
                "{error}; nothing was appended, retry shortly",
                error = error
            ),
        )
        .with("domain", domain)
        .retry_after(1),
        IngestError::IdConflict(conflict) => {
            let request_index = |index: usize| indexes.get(index).copied().unwrap_or(index);
            Locator::new(mode, request_index(conflict.index))
                .locate(super::problem::id_conflict(&conflict, request_index), "id")
        }
    }
}

/// The answer for an ingress message the host never answered.
fn undelivered_problem(undelivered: Undelivered, domain: &str, host: &HostHandle) -> Problem {
    match undelivered {
        Undelivered::Full => host.admission.overloaded(domain).into(),
        Undelivered::Gone => host_gone(domain),
    }
}

/// The longest an ingress request waits for its host's answer.
const HOST_ANSWER: std::time::Duration = std::time::Duration::from_secs(20);

/// 504: the host did not answer within [`HOST_ANSWER`].
fn host_late(domain: &str) -> Problem {
    Problem::new(problem::DOMAIN_TIMEOUT, format!("domain \"{domain}\" did not answer within {HOST_ANSWER:?}; an event may or may not have been appended: re-sending it is safe (it is deduplicated by source and id)"),
    )
    .with("domain", domain)
    .retry_after(1)
}

fn host_gone(domain: &str) -> Problem {
    Problem::new(
        problem::DOMAIN_UNAVAILABLE,
        format!("domain \"{domain}\" is not running (stopping or restarting); retry later"),
    )
    .with("domain", domain)
    .retry_after(1)
}

/// Each event's request index, outcome and envelope.
pub(crate) type Outcomes = Vec<(usize, Outcome, Envelope)>;

/// One domain's part of a request: its host and its events with their request indexes.
type Group = (&'static str, HostHandle, Vec<(usize, Envelope)>);

async fn dispatch(
    state: &GatewayState,
    mode: Mode,
    groups: BTreeMap<&'static str, Vec<(usize, Envelope)>>,
) -> Result<(Outcomes, u64), Problem> {
    let mut prepared: Vec<Group> = Vec::new();
    for (domain, group) in groups {
        prepared.push((domain, state.host(domain)?, group));
    }
    // A slot in every domain the request reaches, before any is sent anything: one full
    // domain refuses the whole request with 429, and nothing is prepared or appended.
    let mut slots: Vec<Slot> = Vec::new();
    for (domain, host, _) in &prepared {
        slots.push(host.admission.admit(domain)?);
    }
    if prepared.len() == 1 {
        let (domain, host, group) = prepared.remove(0);
        let slot = slots.remove(0);
        let (indexes, envelopes): (Vec<usize>, Vec<Envelope>) = group.into_iter().unzip();
        let ingest = Ingest {
            events: envelopes.clone(),
        };
        // Bounded, so a client hears before its own timeout: a host waiting out a NATS
        // outage answers when it can, to nobody.
        let asked = tokio::time::timeout(HOST_ANSWER, admission::ask(&host.addr, ingest, slot))
            .await
            .map_err(|_| host_late(domain))?;
        let Committed { outcomes, sync_to } = asked
            .map_err(|undelivered| undelivered_problem(undelivered, domain, &host))?
            .map_err(|error| ingest_problem(error, domain, mode, &indexes))?;
        return Ok((zip_outcomes(indexes, outcomes, envelopes), sync_to));
    }
    // Phase one: every domain validates and holds; any refusal aborts them all.
    let mut decisions = Vec::new();
    let mut parts = Vec::new();
    for ((domain, host, group), slot) in prepared.iter().zip(slots) {
        let (indexes, envelopes): (Vec<usize>, Vec<Envelope>) = group.iter().cloned().unzip();
        let (decide, decision) = oneshot::channel();
        let prepare = Prepare {
            events: envelopes,
            decision,
        };
        let refusal = match admission::ask(&host.addr, prepare, slot).await {
            Ok(Ok(part)) => {
                parts.push(part);
                None
            }
            Ok(Err(error)) => Some(ingest_problem(error, domain, mode, &indexes)),
            Err(undelivered) => Some(undelivered_problem(undelivered, domain, host)),
        };
        if let Some(problem) = refusal {
            for sender in decisions.drain(..) {
                let _ = oneshot::Sender::send(sender, Decision::Abort);
            }
            return Err(problem);
        }
        decisions.push(decide);
    }
    // Phase two: all accepted, so every part is appended in one write (all or nothing,
    // even if the node dies mid-way), then each host learns its records.
    let records = match state.log.append_all(parts) {
        Ok(records) => records,
        Err(error) => {
            for sender in decisions {
                let _ = oneshot::Sender::send(sender, Decision::Abort);
            }
            return Err(log_problem(error));
        }
    };
    let mut replies = Vec::new();
    for (decide, records) in decisions.into_iter().zip(records) {
        let (reply, answer) = oneshot::channel();
        let _ = decide.send(Decision::Commit(records, reply));
        replies.push(answer);
    }
    let mut outcomes = Vec::new();
    let mut sync_to = 0;
    for ((domain, _, group), answer) in prepared.into_iter().zip(replies) {
        let (indexes, envelopes): (Vec<usize>, Vec<Envelope>) = group.into_iter().unzip();
        let committed = answer
            .await
            .map_err(|_| host_gone(domain))?
            .map_err(|error| ingest_problem(error, domain, mode, &indexes))?;
        sync_to = sync_to.max(committed.sync_to);
        outcomes.extend(zip_outcomes(indexes, committed.outcomes, envelopes));
    }
    outcomes.sort_by_key(|(index, _, _)| *index);
    Ok((outcomes, sync_to))
}

fn zip_outcomes(indexes: Vec<usize>, outcomes: Vec<Outcome>, envelopes: Vec<Envelope>) -> Outcomes {
    indexes
        .into_iter()
        .zip(outcomes)
        .zip(envelopes)
        .map(|((index, outcome), envelope)| (index, outcome, envelope))
        .collect()
}

fn describe(outcome: &Outcome, envelope: &Envelope) -> Value {
    let position = outcome.position();
    json!({
        "id": envelope.id,
        "source": envelope.source,
        "stream": position.stream,
        "sequence": position.sequence,
        "status": match outcome {
            Outcome::Accepted(_) => "accepted",
            Outcome::Duplicate(_) => "duplicate",
        },
    })
}

fn respond(mode: Mode, outcomes: Outcomes) -> HttpResponse {
    let any_accepted = outcomes
        .iter()
        .any(|(_, outcome, _)| matches!(outcome, Outcome::Accepted(_)));
    // 202: accepted into the log; 200: every event was already there.
    let status = if any_accepted {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = match mode {
        Mode::Batch => json!({
            "results": outcomes
                .iter()
                .map(|(_, outcome, envelope)| describe(outcome, envelope))
                .collect::<Vec<_>>()
        }),
        Mode::Structured | Mode::Binary => outcomes
            .first()
            .map(|(_, outcome, envelope)| describe(outcome, envelope))
            .unwrap_or(Value::Null),
    };
    HttpResponse::build(status).json(body)
}
