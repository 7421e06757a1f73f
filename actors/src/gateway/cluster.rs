//! `GET /v1/cluster`: the live nodes, the nodes hosting each domain, and which node owns
//! each stream (networked mode: from the owners bucket; embedded mode: this node alone).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::problem::{self, Problem};
use super::state::GatewayState;
use crate::members::{Member, Scan};

/// Lists the nodes, each domain's hosting nodes, and each domain's partitions and owners.
pub async fn cluster(state: web::Data<GatewayState>) -> Result<HttpResponse, Problem> {
    let here = || Member {
        id: state.node.clone(),
        http: state.address.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        domains: crate::registry::hosted(&state.hosts),
        enabled: state
            .catalog
            .hosted()
            .iter()
            .map(|d| (*d).to_owned())
            .collect(),
    };
    let (mode, scan) = match &state.owners {
        Some(owners) => {
            if let Some(reason) = state.nats_down() {
                return Err(super::problem::nats_down(&reason));
            }
            let scan = owners.scan().await.map_err(|error| {
                Problem::new(
                    problem::NATS_UNAVAILABLE,
                    format!("cannot read the cluster's owners bucket: {error}; retry shortly"),
                )
                .retry_after(1)
            })?;
            ("nats", scan)
        }
        None => {
            let member = here();
            let mut scan = Scan::default();
            for stream in member.domains.keys() {
                let claim = crate::members::Claim {
                    node: member.id.clone(),
                    since: 0,
                };
                scan.claims.insert(stream.clone(), (claim, 0));
            }
            scan.members.insert(member.id.clone(), member);
            ("embedded", scan)
        }
    };
    let mut domains: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut partitions: BTreeMap<&str, Value> = BTreeMap::new();
    for domain in state.catalog.names() {
        let mut hosts = Vec::new();
        let mut owners = Vec::new();
        for (partition, stream) in state.layout.streams(domain).iter().enumerate() {
            let owner = scan.claims.get(*stream).map(|(claim, _)| claim);
            let node = owner.map(|claim| claim.node.clone());
            let status = node
                .as_ref()
                .and_then(|node| scan.members.get(node))
                .and_then(|member| member.domains.get(*stream))
                .cloned()
                .unwrap_or_else(|| "unowned".to_owned());
            if let Some(node) = &node {
                if !hosts.contains(node) {
                    hosts.push(node.clone());
                }
            }
            owners.push(json!({
                "partition": partition,
                "stream": stream,
                "node": node,
                "since": owner.map(|claim| claim.since),
                "status": status,
            }));
        }
        hosts.sort();
        domains.insert(domain, hosts);
        partitions.insert(
            domain,
            json!({"count": state.layout.partitions(domain), "owners": owners}),
        );
    }
    let nodes: Vec<&Member> = scan.members.values().collect();
    Ok(HttpResponse::Ok().json(json!({
        "mode": mode,
        "node": state.node,
        "nodes": nodes,
        "domains": domains,
        "partitions": partitions,
    })))
}
