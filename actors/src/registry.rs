//! The registry of running hosts: each hosted stream's mailbox, published view, ingress
//! slots and bus. The supervisor fills it as hosts start and stop; the gateway, the
//! ownership loop and the metrics read it. It sits below all of them, so none of them
//! needs another to reach a host.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::Addr;
use dashmap::DashMap;
use herald_runtime::bus::Bus;
use herald_runtime::partition::Inputs;

use crate::admission::Admission;
use crate::host::{DomainHost, DomainView};

/// Stream (a domain's, or a partition's) to its running host; a dashmap so hosts can come
/// and go while requests read it.
pub type Hosts = DashMap<&'static str, HostHandle>;

/// How the node reaches one running host.
#[derive(Clone)]
pub struct HostHandle {
    /// The host's mailbox, for ingress.
    pub addr: Addr<DomainHost>,
    /// The host's published state, for queries.
    pub view: DomainView,
    /// The host's ingress slots: a full set answers 429.
    pub admission: Arc<Admission>,
    /// The bus the host consumes from: its inputs' head, for lag.
    pub bus: Arc<Bus>,
    /// Which records of the log are the host's inputs (types, and a partition's keys).
    pub inputs: Arc<Inputs>,
    /// Which start of a host this is (node-wide count), so a late stop signal of an
    /// earlier host for the same stream is not taken for this one's.
    pub started: u64,
}

/// The streams `hosts` holds, each with its one-word status: what a member entry says.
pub fn hosted(hosts: &Hosts) -> BTreeMap<String, String> {
    hosts
        .iter()
        .map(|host| {
            (
                (*host.key()).to_owned(),
                host.view.health().status().to_owned(),
            )
        })
        .collect()
}
