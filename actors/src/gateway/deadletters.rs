//! The dead-letter API: see what each domain parked, and retry or skip it.
//!
//! `GET /v1/deadletters` counts per domain; `GET /v1/deadletters/{domain}` lists the parked
//! inputs with their errors; `POST /v1/deadletters/{domain}/{id}/retry` runs the handler
//! again (after a fix) and `.../skip` gives up on the input; either releases its key, and
//! the inputs that waited behind it are handled in order. Both answer once the release is
//! durable.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use herald_runtime::deadletter;
use serde_json::{json, Value};

use super::problem::Problem;
use super::state::GatewayState;
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

/// `GET /v1/deadletters/{domain}`: the domain's parked inputs.
pub async fn list(
    path: web::Path<String>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let domain = path.into_inner();
    let host = state.host(&domain)?;
    let dead_letters: Vec<Value> = host.view.dead_letters().iter().map(describe).collect();
    Ok(HttpResponse::Ok().json(json!({
        "domain": domain,
        "stream": deadletter::stream(&domain),
        "dead_letters": dead_letters,
    })))
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

async fn release(
    (domain, id): (String, String),
    action: ReleaseAction,
    state: &GatewayState,
) -> Result<HttpResponse, Problem> {
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
                StatusCode::SERVICE_UNAVAILABLE,
                "domain-restarting",
                "Domain restarting",
                format!("domain \"{domain}\" is restarting; retry shortly"),
            )
            .with("domain", domain.as_str())
            .retry_after(1)
        })?;
    let durability = state.log.durability();
    match answer {
        Ok(outcome) => {
            durability.wait(outcome.sync_to).await.map_err(log_problem)?;
            Ok(HttpResponse::Ok().json(json!({
                "domain": domain,
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
        Err(ReleaseError::NotFound { .. }) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-dead-letter",
            "Unknown dead letter",
            format!(
                "domain \"{domain}\" has no parked input \"{id}\"; GET /v1/deadletters/{domain} lists them"
            ),
        )
        .with("domain", domain.as_str())
        .with("id", id.as_str())),
        Err(ReleaseError::StillFailing { error, sync_to, .. }) => {
            durability.wait(sync_to).await.map_err(log_problem)?;
            Err(Problem::new(
                StatusCode::CONFLICT,
                "still-failing",
                "Dead letter failed again",
                format!(
                    "retrying \"{id}\" in domain \"{domain}\" failed again and it stays parked: {error}"
                ),
            )
            .with("domain", domain.as_str())
            .with("id", id.as_str())
            .with("error", error))
        }
        Err(error @ (ReleaseError::Log(_) | ReleaseError::NotReady(_))) => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "release-failed",
            "Release failed",
            format!("{error}; nothing changed, retry shortly"),
        )
        .with("domain", domain.as_str())
        .retry_after(1)),
    }
}
