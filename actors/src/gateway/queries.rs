//! Reads: the topology, entities and named queries, answered from the domains' views.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use herald_runtime::{Params, QueryError};

use super::problem::Problem;
use super::state::GatewayState;
use super::streams::log_problem;

/// `GET /v1/domains`: every domain, its types with schemas, ingress and subscriptions.
pub async fn list_domains(state: web::Data<GatewayState>) -> HttpResponse {
    HttpResponse::Ok().json(state.catalog.to_json())
}

/// `GET /v1/domains/{domain}/entities/{key}`.
pub async fn entity(
    path: web::Path<(String, String)>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let (domain, key) = path.into_inner();
    let host = state.ready_host(&domain)?;
    let (entity, reflects) = host.view.entity(&key);
    // Never show state a crash could still take back.
    state
        .log
        .durability()
        .wait(reflects)
        .await
        .map_err(log_problem)?;
    match entity {
        Some(entity) => Ok(HttpResponse::Ok().json(entity)),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-entity",
            "Unknown entity",
            format!("domain \"{domain}\" has no entity \"{key}\""),
        )
        .with("domain", domain)
        .with("key", key)),
    }
}

/// `GET /v1/domains/{domain}/queries/{name}?param=value`.
pub async fn query(
    path: web::Path<(String, String)>,
    params: web::Query<Params>,
    state: web::Data<GatewayState>,
) -> Result<HttpResponse, Problem> {
    let (domain, name) = path.into_inner();
    let host = state.ready_host(&domain)?;
    let (answer, reflects) = host.view.query(&name, &params);
    state
        .log
        .durability()
        .wait(reflects)
        .await
        .map_err(log_problem)?;
    match answer {
        Ok(answer) => Ok(HttpResponse::Ok().json(answer)),
        Err(error @ QueryError::UnknownQuery { .. }) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-query",
            "Unknown query",
            format!("domain \"{domain}\": {error}"),
        )
        .with("domain", domain)),
        Err(error @ QueryError::BadParameter { .. }) => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-query-parameter",
            "Bad query parameter",
            format!("domain \"{domain}\": {error}"),
        )
        .with("domain", domain)),
    }
}
