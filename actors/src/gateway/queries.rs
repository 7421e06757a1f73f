//! Reads: the topology, entities and named queries, answered from the domains' views.

use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use herald_runtime::{Params, Position, QueryError};

use serde_json::Value;

use super::forward;
use super::positions;
use super::problem::{self, Problem};
use super::state::GatewayState;
use super::streams::log_problem;
use crate::host::{Health, PENDING};
use crate::registry::HostHandle;

/// How long a query waits for a domain to finish appending what it admitted.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// 503: the domain's appends were not stored within [`SETTLE_TIMEOUT`].
fn busy(domain: &str) -> Problem {
    Problem::new(
        problem::DOMAIN_BUSY,
        format!("domain \"{domain}\" is still appending a batch; retry shortly"),
    )
    .with("domain", domain)
    .retry_after(1)
}

/// Reads an answer that shows only durable events: never one taken while the state holds
/// admitted events not yet appended, and only once what it reflects is synced.
async fn settled<T>(
    state: &GatewayState,
    host: &HostHandle,
    domain: &str,
    read: impl Fn() -> (T, u64),
) -> Result<T, Problem> {
    let started = Instant::now();
    loop {
        let rebuilds = host.view.rebuilds();
        let (answer, reflects) = read();
        if reflects != PENDING {
            // With pipelined appends, the state may run ahead of what JetStream has
            // acknowledged: the answer waits until it has.
            match host.bus.log().acknowledged() {
                Some(acked) => {
                    let left = SETTLE_TIMEOUT.saturating_sub(started.elapsed());
                    match tokio::time::timeout(left, acked.wait(reflects)).await {
                        Ok(acked) => acked.map_err(log_problem)?,
                        Err(_) => return Err(busy(domain)),
                    }
                    if host.view.rebuilds() != rebuilds {
                        // Rebuilt meanwhile: the answer may show appends the log refused.
                        continue;
                    }
                }
                None => state
                    .log
                    .durability()
                    .wait(reflects)
                    .await
                    .map_err(log_problem)?,
            }
            return Ok(answer);
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            return Err(busy(domain));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// [`settled`], once the state reflects `reflects`: checked again if the state was
/// rebuilt meanwhile (a refused append takes back what it had reflected).
async fn reflecting<T>(
    state: &GatewayState,
    host: &HostHandle,
    stream: &str,
    reflects: &[Position],
    read: impl Fn() -> (T, u64),
) -> Result<T, Problem> {
    for _ in 0..3 {
        let rebuilds = host.view.rebuilds();
        positions::reflected(state, host, stream, reflects).await?;
        let answer = settled(state, host, stream, &read).await?;
        if reflects.is_empty() || host.view.rebuilds() == rebuilds {
            return Ok(answer);
        }
    }
    Err(busy(stream))
}

/// `GET /v1/domains`: every domain, its types with schemas, ingress and subscriptions.
pub async fn list_domains(state: web::Data<GatewayState>) -> HttpResponse {
    let mut topology = state.catalog.to_json();
    // Each domain also says where it is: starting, ready, failed (and why), or not hosted.
    if let Some(domains) = topology
        .get_mut("domains")
        .and_then(serde_json::Value::as_array_mut)
    {
        for domain in domains.iter_mut() {
            let Some(name) = domain.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            // A partitioned domain reads as its partitions hosted here: the worst of them.
            let health = state
                .layout
                .streams(name)
                .iter()
                .filter_map(|stream| state.hosts.get(*stream).map(|host| host.view.health()))
                .max_by_key(|health| match health {
                    Health::Failed(_) => 2,
                    Health::Starting => 1,
                    _ => 0,
                });
            let (status, reason) = match health {
                Some(Health::Failed(reason)) => ("failed", Some(reason)),
                Some(health) => (health.status(), None),
                None => ("not-hosted", None),
            };
            domain["status"] = status.into();
            if let Some(reason) = reason {
                domain["failure"] = reason.into();
            }
        }
    }
    HttpResponse::Ok().json(topology)
}

/// The positions a read must reflect: the `reflects` parameter (taken out of `params`),
/// else the `Herald-Reflects` header; none when neither is given, or for a domain not in
/// the catalog (its read answers 404 without them).
fn reflects(
    request: &HttpRequest,
    params: &mut Params,
    state: &GatewayState,
    domain: &str,
) -> Result<Vec<Position>, Problem> {
    if state.catalog.description(domain).is_none() {
        return Ok(Vec::new());
    }
    let text = match params.remove(positions::PARAMETER) {
        Some(text) => text,
        None => match request.headers().get(positions::HEADER) {
            Some(value) => value
                .to_str()
                .map_err(|_| {
                    Problem::new(
                        problem::BAD_POSITION,
                        format!("header {} is not ASCII", positions::HEADER),
                    )
                })?
                .to_owned(),
            None => return Ok(Vec::new()),
        },
    };
    positions::parse(&text, state, domain)
}

/// `GET /v1/domains/{domain}/entities/{key}`: answered by the stream the key falls in.
pub async fn entity(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    params: web::Query<Params>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let (domain, key) = path.into_inner();
    let mut params = params.into_inner();
    let reflects = reflects(&request, &mut params, &state, &domain)?;
    let stream = state
        .layout
        .stream_for(&domain, &key)
        .map_or(domain.clone(), str::to_owned);
    let forwarded = at_owner(&state, &stream, || {
        forward::Request::entity(key.clone(), reflects.clone())
    });
    if let Some(answer) = forwarded.await {
        return Ok(HttpResponse::Ok().json(answer?));
    }
    Ok(HttpResponse::Ok().json(entity_here(&state, &stream, &key, &reflects).await?))
}

/// Entities a listing answers per page unless `limit` says otherwise.
const LIST_LIMIT: usize = 100;
/// The most a listing answers per page.
const LIST_LIMIT_MAX: usize = 1000;

/// `GET /v1/domains/{domain}/entities?after=KEY&limit=N`: the domain's entities in key
/// order, `limit` at a time, each partition asked (here or at its owner) and their pages
/// merged; `next` (and a `Link: rel="next"`) names where the next page starts.
pub async fn entities(
    request: HttpRequest,
    path: web::Path<String>,
    params: web::Query<Params>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let domain = path.into_inner();
    let streams = state.layout.streams(&domain).to_vec();
    if streams.is_empty() {
        // The unknown-domain problem, naming the domains there are.
        state.host(&domain)?;
    }
    let mut params = params.into_inner();
    let reflects = reflects(&request, &mut params, &state, &domain)?;
    let limit = match params.get("limit") {
        None => LIST_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    problem::BAD_QUERY_PARAMETER,
                    format!("limit \"{text}\" is not a whole number from 1 to {LIST_LIMIT_MAX}"),
                )
                .with("parameter", "limit")
            })?,
    };
    let after = params.get("after").cloned();
    let asked = streams
        .iter()
        .map(|stream| list_stream(&state, stream, after.as_deref(), limit, &reflects));
    let pages = futures_util::future::join_all(asked)
        .await
        .into_iter()
        .collect::<Result<Vec<Value>, Problem>>()?;
    let mut more = false;
    let mut entities: Vec<Value> = Vec::new();
    for mut page in pages {
        more |= page["more"].as_bool().unwrap_or(false);
        if let Some(items) = page.get_mut("entities").and_then(Value::as_array_mut) {
            entities.append(items);
        }
    }
    entities.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    more |= entities.len() > limit;
    entities.truncate(limit);
    let next = match more {
        true => entities
            .last()
            .and_then(|e| e["key"].as_str())
            .map(str::to_owned),
        false => None,
    };
    let mut response = HttpResponse::Ok();
    if let Some(next) = &next {
        let after: String =
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                .collect();
        response.insert_header((
            "Link",
            format!("</v1/domains/{domain}/entities?after={after}&limit={limit}>; rel=\"next\""),
        ));
    }
    Ok(response.json(serde_json::json!({"entities": entities, "next": next})))
}

/// One stream's page of entities, here or at its owner.
async fn list_stream(
    state: &GatewayState,
    stream: &str,
    after: Option<&str>,
    limit: usize,
    reflects: &[Position],
) -> Result<Value, Problem> {
    let forwarded = at_owner(state, stream, || forward::Request::List {
        after: after.map(str::to_owned),
        limit,
        reflects: reflects.to_vec(),
    });
    if let Some(answer) = forwarded.await {
        return answer;
    }
    list_here(state, stream, after, limit, reflects).await
}

/// A page of entities of a stream hosted here: `{"entities": [{key, entity}], "more"}`.
pub(crate) async fn list_here(
    state: &GatewayState,
    stream: &str,
    after: Option<&str>,
    limit: usize,
    reflects: &[Position],
) -> Result<Value, Problem> {
    let host = state.ready_host(stream)?;
    let (page, more) = reflecting(state, &host, stream, reflects, || {
        host.view.list(after, limit)
    })
    .await?
    .map_err(|error| query_failed(stream, format_args!("listing entities: {error}")))?;
    let entities: Vec<Value> = page
        .into_iter()
        .map(|(key, entity)| serde_json::json!({"key": key, "entity": entity}))
        .collect();
    Ok(serde_json::json!({"entities": entities, "more": more}))
}

/// `GET /v1/domains/{domain}/queries/{name}?param=value`. A domain spread over partitions
/// is asked in every partition, and answers for the whole domain: the partitions' answers
/// combined by its `Domain::merge`. Any partition that cannot answer fails the query: never
/// a partial answer.
pub async fn query(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    params: web::Query<Params>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let (domain, name) = path.into_inner();
    let mut params = params.into_inner();
    let reflects = reflects(&request, &mut params, &state, &domain)?;
    let streams = state.layout.streams(&domain).to_vec();
    if streams.len() > 1 {
        let asked = streams
            .iter()
            .map(|stream| query_stream(&state, stream, &name, &params, &reflects));
        let answers = futures_util::future::join_all(asked)
            .await
            .into_iter()
            .collect::<Result<Vec<Value>, Problem>>()?;
        // Every registered domain is in the catalog; the default merge is only a fallback.
        let merged = match state.catalog.description(&domain) {
            Some(description) => (description.merge)(&name, answers),
            None => answers
                .into_iter()
                .reduce(herald_runtime::merge_json)
                .unwrap_or_default(),
        };
        return Ok(HttpResponse::Ok().json(merged));
    }
    Ok(HttpResponse::Ok().json(query_stream(&state, &domain, &name, &params, &reflects).await?))
}

/// A named query of one stream, here or at its owner.
async fn query_stream(
    state: &GatewayState,
    stream: &str,
    name: &str,
    params: &Params,
    reflects: &[Position],
) -> Result<Value, Problem> {
    let forwarded = at_owner(state, stream, || {
        forward::Request::query(name.to_owned(), params.clone(), reflects.to_vec())
    });
    if let Some(answer) = forwarded.await {
        return answer;
    }
    query_here(state, stream, name, params, reflects).await
}

/// The answer of `stream`'s owner to `request`, when that is another node (networked
/// mode); `None` when the stream is answered here.
async fn at_owner(
    state: &GatewayState,
    stream: &str,
    request: impl FnOnce() -> forward::Request,
) -> Option<Result<Value, Problem>> {
    let nats = remote(state, stream)?;
    let reply = forward::ask(nats, stream, &request()).await;
    Some(reply.and_then(|reply| forward::answer(reply, stream)))
}

/// 500 `query-failed`: the domain could not answer `what` (its answer does not encode).
fn query_failed(domain: &str, what: impl std::fmt::Display) -> Problem {
    Problem::new(
        problem::QUERY_FAILED,
        format!("domain \"{domain}\", {what}"),
    )
    .with("domain", domain)
}

/// In networked mode, the NATS connection to forward on when `stream` is a known stream
/// not hosted here.
fn remote<'a>(state: &'a GatewayState, stream: &str) -> Option<&'a herald_runtime::nats::Nats> {
    let nats = state.nats.as_deref()?;
    let known = state.layout.locate(stream).is_some();
    (known && !state.hosts.contains_key(stream)).then_some(nats)
}

/// An entity of a domain hosted here.
pub(crate) async fn entity_here(
    state: &GatewayState,
    domain: &str,
    key: &str,
    reflects: &[Position],
) -> Result<Value, Problem> {
    let host = state.ready_host(domain)?;
    let entity = reflecting(state, &host, domain, reflects, || host.view.entity(key))
        .await?
        .map_err(|error| query_failed(domain, format_args!("entity \"{key}\": {error}")))?;
    entity.ok_or_else(|| {
        Problem::new(
            problem::UNKNOWN_ENTITY,
            format!("domain \"{domain}\" has no entity \"{key}\""),
        )
        .with("domain", domain)
        .with("key", key)
    })
}

/// A named query of a domain hosted here.
pub(crate) async fn query_here(
    state: &GatewayState,
    domain: &str,
    name: &str,
    params: &Params,
    reflects: &[Position],
) -> Result<Value, Problem> {
    let host = state.ready_host(domain)?;
    let answer = reflecting(state, &host, domain, reflects, || {
        host.view.query(name, params)
    })
    .await?;
    match answer {
        Ok(answer) => Ok(answer),
        Err(error @ QueryError::UnknownQuery { .. }) => Err(Problem::new(
            problem::UNKNOWN_QUERY,
            format!("domain \"{domain}\": {error}"),
        )
        .with("domain", domain)),
        Err(error @ QueryError::BadParameter { .. }) => Err(Problem::new(
            problem::BAD_QUERY_PARAMETER,
            format!("domain \"{domain}\": {error}"),
        )
        .with("domain", domain)),
        Err(error @ QueryError::Unencodable { .. }) => Err(query_failed(
            domain,
            format_args!("query \"{name}\": {error}"),
        )),
    }
}
