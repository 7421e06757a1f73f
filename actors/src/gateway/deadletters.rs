//! The dead-letter API: see what each domain parked, and retry or skip it.
//!
//! `GET /v1/deadletters` counts per domain (per partition stream); `GET
//! /v1/deadletters/{domain}` lists the parked inputs with their errors (all partitions of a
//! domain run here); `POST /v1/deadletters/{domain}/{id}/retry` runs the handler
//! again (after a fix) and `.../skip` gives up on the input; either releases its key, and
//! the inputs that waited behind it are handled in order. Both answer once the release is
//! durable.

use actix_web::{web, HttpResponse};
use herald_runtime::deadletter;
use serde_json::{json, Value};

use super::problem::{self, Problem};
use super::state::{GatewayState, HostHandle};
use super::streams::log_problem;
use crate::host::{DeadLetter, Release, ReleaseAction, ReleaseError};

/// `GET /v1/deadletters`: parked inputs and waiting inputs per hosted domain.
pub async fn counts(state: web::Data<GatewayState>) -> HttpResponse {
    let mut domains: Vec<Value> = state
        .hosts
        .iter()
        .map(|host| {
            let dead_letters = host.view.dead_letters();
            let waiting: usize = dead_letters.iter().map(|d| d.waiting).sum();
            json!({
                "domain": *host.key(),
                "stream": deadletter::stream(host.key()),
                "parked": dead_letters.len(),
                "waiting": waiting,
            })
        })
        .collect();
    domains.sort_by(|a, b| a["domain"].as_str().cmp(&b["domain"].as_str()));
    HttpResponse::Ok().json(json!({ "domains": domains }))
}

/// `GET /v1/deadletters/{domain}`: the domain's parked inputs. A domain whose partitions
/// all run here (embedded mode) lists them all, each naming its partition's `stream`;
/// networked, name one partition (`orders-p3`) on its owner.
pub async fn list(
    path: web::Path<String>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let domain = path.into_inner();
    if let Some(partitions) = local_partitions(&state, &domain) {
        let dead_letters: Vec<Value> = partitions
            .iter()
            .flat_map(|(stream, host)| {
                host.view
                    .dead_letters()
                    .iter()
                    .map(|dead_letter| {
                        let mut described = describe(dead_letter);
                        described["stream"] = json!(deadletter::stream(stream));
                        described
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        return Ok(HttpResponse::Ok().json(json!({
            "domain": domain,
            "streams": partitions.iter().map(|(stream, _)| deadletter::stream(stream)).collect::<Vec<_>>(),
            "dead_letters": dead_letters,
        })));
    }
    let host = state.host(&domain)?;
    let dead_letters: Vec<Value> = host.view.dead_letters().iter().map(describe).collect();
    Ok(HttpResponse::Ok().json(json!({
        "domain": domain,
        "stream": deadletter::stream(&domain),
        "dead_letters": dead_letters,
    })))
}

/// The partition hosts of `domain` when it has several and all run on this node.
fn local_partitions(state: &GatewayState, domain: &str) -> Option<Vec<(&'static str, HostHandle)>> {
    let streams = state.layout.streams(domain);
    if streams.len() < 2 {
        return None;
    }
    streams
        .iter()
        .map(|stream| Some((*stream, state.hosts.get(*stream)?.value().clone())))
        .collect()
}

fn describe(dead_letter: &DeadLetter) -> Value {
    let parked = &dead_letter.parked;
    json!({
        "id": parked.input.dead_letter_id(),
        "input": parked.input,
        "error": parked.error,
        "attempts": parked.attempts,
        "parked_at": parked.parked_at,
        "waiting": dead_letter.waiting,
    })
}

/// `POST /v1/deadletters/{domain}/{id}/retry`.
pub async fn retry(
    path: web::Path<(String, String)>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    release(path.into_inner(), ReleaseAction::Retry, &state).await
}

/// `POST /v1/deadletters/{domain}/{id}/skip`.
pub async fn skip(
    path: web::Path<(String, String)>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    release(path.into_inner(), ReleaseAction::Skip, &state).await
}

/// The partition stream of `domain` that parked `id`. None did: 404 `unknown-dead-letter`
/// naming the domain, unless a partition is still recovering (its dead letters are not
/// known yet), which answers as that partition.
fn parking_partition(
    state: &GatewayState,
    partitions: &[(&'static str, HostHandle)],
    domain: &str,
    id: &str,
) -> Result<String, Problem> {
    let parked_by = partitions.iter().find(|(_, host)| {
        host.view
            .dead_letters()
            .iter()
            .any(|dead_letter| dead_letter.parked.input.dead_letter_id() == id)
    });
    if let Some((stream, _)) = parked_by {
        return Ok((*stream).to_owned());
    }
    if let Some((stream, _)) = partitions.iter().find(|(_, host)| !host.view.is_ready()) {
        state.ready_host(stream)?;
    }
    Err(unknown_dead_letter(domain, id))
}

fn unknown_dead_letter(domain: &str, id: &str) -> Problem {
    Problem::new(problem::UNKNOWN_DEAD_LETTER, format!(
            "domain \"{domain}\" has no parked input \"{id}\"; GET /v1/deadletters/{domain} lists them"
        ),
    )
    .with("domain", domain)
    .with("id", id)
}

async fn release(
    (domain, id): (String, String),
    action: ReleaseAction,
    state: &GatewayState,
) -> Result<HttpResponse, Problem> {
    // A partitioned domain named whole: the partition that parked `id` releases it. The
    // answers name the domain as the client did, and the partition stream as `stream`.
    let named = domain;
    let domain = match local_partitions(state, &named) {
        Some(partitions) => parking_partition(state, &partitions, &named, &id)?,
        None => named.clone(),
    };
    let host = state.ready_host(&domain)?;
    let answer = host
        .addr
        .send(Release {
            id: id.clone(),
            action,
        })
        .await
        .map_err(|_| {
            Problem::new(
                problem::DOMAIN_RESTARTING,
                format!("domain \"{domain}\" is restarting; retry shortly"),
            )
            .with("domain", domain.as_str())
            .retry_after(1)
        })?;
    let durability = state.log.durability();
    match answer {
        Ok(outcome) => {
            durability
                .wait(outcome.sync_to)
                .await
                .map_err(log_problem)?;
            Ok(HttpResponse::Ok().json(json!({
                "domain": named,
                "stream": domain,
                "id": id,
                "action": match action {
                    ReleaseAction::Retry => "retried",
                    ReleaseAction::Skip => "skipped",
                },
                "handled": outcome.handled,
                "parked_again": outcome.parked_again,
                "still_waiting": outcome.still_waiting,
            })))
        }
        Err(ReleaseError::NotFound { .. }) => Err(unknown_dead_letter(&named, &id)),
        Err(ReleaseError::StillFailing { error, sync_to, .. }) => {
            durability.wait(sync_to).await.map_err(log_problem)?;
            Err(Problem::new(problem::STILL_FAILING, format!(
                    "retrying \"{id}\" in domain \"{domain}\" failed again and it stays parked: {error}"
                ),
            )
            .with("domain", domain.as_str())
            .with("id", id.as_str())
            .with("error", error))
        }
        Err(error @ (ReleaseError::Log(_) | ReleaseError::NotReady(_))) => Err(Problem::new(
            problem::RELEASE_FAILED,
            format!("{error}; nothing changed, retry shortly"),
        )
        .with("domain", domain.as_str())
        .retry_after(1)),
    }
}
