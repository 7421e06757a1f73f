//! `GET /v1/cluster`: the live nodes and the domains each hosts (networked mode: from the
//! presence bucket; embedded mode: this node alone).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::problem::Problem;
use super::state::GatewayState;
use crate::presence::{self, Member};

/// Lists the nodes and, for every known domain, the nodes hosting it.
pub async fn cluster(state: web::Data<GatewayState>) -> Result<HttpResponse, Problem> {
    let (mode, members) = match &state.nats {
        Some(nats) => {
            if let Some(reason) = state.nats_down() {
                return Err(crate::networked::nats_down(&reason));
            }
            let members = presence::members(nats).await.map_err(|error| {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "nats-unavailable",
                    "NATS unavailable",
                    format!("cannot read the cluster's presence bucket: {error}; retry shortly"),
                )
                .retry_after(1)
            })?;
            ("nats", members)
        }
        None => {
            let here = Member {
                id: state.node.clone(),
                http: state.address.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                domains: state
                    .hosts
                    .iter()
                    .map(|host| {
                        (
                            (*host.key()).to_owned(),
                            host.view.health().status().to_owned(),
                        )
                    })
                    .collect(),
            };
            ("embedded", vec![here])
        }
    };
    let mut domains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(listed) = state.catalog.to_json()["domains"].as_array() {
        for domain in listed {
            if let Some(name) = domain["name"].as_str() {
                domains.insert(name.to_owned(), Vec::new());
            }
        }
    }
    for member in &members {
        for domain in member.domains.keys() {
            domains
                .entry(domain.clone())
                .or_default()
                .push(member.id.clone());
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "mode": mode,
        "node": state.node,
        "nodes": members,
        "domains": domains,
    })))
}
