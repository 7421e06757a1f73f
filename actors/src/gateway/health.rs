//! `GET /healthz` (the process answers) and `GET /readyz` (every domain has caught up).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::problem::Problem;
use super::state::GatewayState;

/// Liveness: answering at all is the signal.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when every hosted domain takes events, else 503 naming those that do not.
pub async fn readyz(state: web::Data<GatewayState>) -> Result<HttpResponse, Problem> {
    let domains: BTreeMap<&str, &str> = state
        .hosts
        .iter()
        .map(|host| {
            let status = if host.view.is_ready() {
                "ready"
            } else {
                "starting"
            };
            (*host.key(), status)
        })
        .collect();
    let waiting: Vec<&str> = domains
        .iter()
        .filter(|(_, status)| **status != "ready")
        .map(|(name, _)| *name)
        .collect();
    if waiting.is_empty() {
        return Ok(HttpResponse::Ok().json(json!({"status": "ready", "domains": domains})));
    }
    Err(Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        "Not ready",
        format!("domains not ready yet: {}", waiting.join(", ")),
    )
    .with("domains", json!(domains))
    .retry_after(1))
}
