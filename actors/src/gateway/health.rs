//! `GET /healthz` (the process answers) and `GET /readyz` (every domain has caught up).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::problem::{self, Problem};
use super::state::GatewayState;
use crate::host::{Health, RecoveryReport};

/// Liveness: answering at all is the signal.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: 200 when every hosted domain takes events, else 503 naming those still
/// starting and those failed (with why); both say how far each host's replay came.
pub async fn readyz(state: web::Data<GatewayState>) -> Result<HttpResponse, Problem> {
    if let Some(reason) = state.nats_down() {
        return Err(Problem::new(problem::NATS_UNAVAILABLE, reason).retry_after(1));
    }
    if let Some(reason) = state.log.write_failure() {
        return Err(Problem::new(problem::LOG_UNWRITABLE, format!("appends to the event log fail: {reason}; free space or fix the directory: the node is ready again once an append, or a probe write it tries at most once a second, succeeds"),
        )
        .retry_after(1));
    }
    if !state.claimed.load(std::sync::atomic::Ordering::Acquire) {
        return Err(Problem::new(
            problem::NOT_READY,
            "claiming this node's streams from the cluster; retry shortly",
        )
        .retry_after(1));
    }
    // A host whose lease ran out (NATS away past it) cannot take events until renewed.
    let health: BTreeMap<&str, Health> = state
        .hosts
        .iter()
        .map(|host| match host.bus.log().writable() {
            true => (*host.key(), host.view.health()),
            false => (*host.key(), Health::Starting),
        })
        .collect();
    let domains: BTreeMap<&str, &str> = health
        .iter()
        .map(|(name, health)| (*name, health.status()))
        .collect();
    let failed: BTreeMap<&str, &str> = health
        .iter()
        .filter_map(|(name, health)| match health {
            Health::Failed(reason) => Some((*name, reason.as_str())),
            _ => None,
        })
        .collect();
    let waiting: Vec<&str> = health
        .iter()
        .filter(|(_, health)| **health == Health::Starting)
        .map(|(name, _)| *name)
        .collect();
    // Each host's replay: while it runs, how far, how fast and how long is left.
    let recovery: BTreeMap<&str, RecoveryReport> = state
        .hosts
        .iter()
        .filter_map(|host| Some((*host.key(), host.view.recovery()?)))
        .collect();
    if waiting.is_empty() && failed.is_empty() {
        return Ok(HttpResponse::Ok()
            .json(json!({"status": "ready", "domains": domains, "recovery": recovery})));
    }
    let mut detail = Vec::new();
    if !failed.is_empty() {
        let names: Vec<&str> = failed.keys().copied().collect();
        detail.push(format!("domains failed: {}", names.join(", ")));
    }
    if !waiting.is_empty() {
        detail.push(format!("domains not ready yet: {}", waiting.join(", ")));
    }
    Err(Problem::new(problem::NOT_READY, detail.join("; "))
        .with("domains", json!(domains))
        .with("failed", json!(failed))
        .with("recovery", json!(recovery))
        .retry_after(1))
}
