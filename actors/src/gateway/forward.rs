//! Forwarding between nodes in networked mode: a node that does not own a stream (a domain,
//! or one partition of it) sends its ingress and queries to the one that does, through
//! NATS request-reply on `<prefix>.rpc.<stream>` (queue group `<prefix>-<stream>`, so one
//! owner answers while a hand-off briefly overlaps), as bincode frames. While a stream has
//! no owner (it is moving), the request is asked again with backoff, within
//! `request_timeout`. The entry node has already checked the client (auth, limits, schema);
//! the hosting node admits, validates and appends as for its own clients, so the single
//! writer holds. Refusals travel as status and problem body and are rendered unchanged.
//! Requests for one stream sent while others are on their way travel together as one
//! batch frame (`Nats::request_coalesced`); the owner handles a batch's requests at once,
//! so its host takes them as one group, and answers each as it would alone.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web;
use futures_util::StreamExt;
use herald_runtime::codec::{self, FormatTag};
use herald_runtime::nats::{BusStatus, CoalescedError, Nats};
use herald_runtime::{Envelope, Params, Position};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::ingest::{self, Mode};
use super::problem::{self, Problem};
use super::queries;
use super::state::GatewayState;
use crate::host::Outcome;

/// What an entry node asks of a hosting node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Ingress events for the domain, with the request's mode (for error pointers).
    Ingest {
        /// How the client sent them.
        mode: Mode,
        /// The events, checked against their schemas.
        events: Vec<Envelope>,
    },
    /// `GET /v1/domains/{domain}/entities/{key}`.
    Entity {
        /// The key.
        key: String,
    },
    /// `GET /v1/domains/{domain}/queries/{name}`.
    Query {
        /// The query's name.
        name: String,
        /// Its parameters.
        params: Params,
    },
    /// [`Request::Entity`] once the state reflects `reflects` (variants added last, so a
    /// request without positions reads as before).
    EntityReflecting {
        /// The key.
        key: String,
        /// The positions to reflect.
        reflects: Vec<Position>,
    },
    /// `GET /v1/domains/{domain}/entities`: one stream's page.
    List {
        /// Keys after this one.
        after: Option<String>,
        /// At most this many.
        limit: usize,
        /// The positions to reflect.
        reflects: Vec<Position>,
    },
    /// [`Request::Query`] once the state reflects `reflects`.
    QueryReflecting {
        /// The query's name.
        name: String,
        /// Its parameters.
        params: Params,
        /// The positions to reflect.
        reflects: Vec<Position>,
    },
}

impl Request {
    /// An entity read, with the positions it must reflect (none: the plain variant, as
    /// older nodes know it).
    pub fn entity(key: String, reflects: Vec<Position>) -> Self {
        match reflects.is_empty() {
            true => Self::Entity { key },
            false => Self::EntityReflecting { key, reflects },
        }
    }

    /// A named query, with the positions it must reflect.
    pub fn query(name: String, params: Params, reflects: Vec<Position>) -> Self {
        match reflects.is_empty() {
            true => Self::Query { name, params },
            false => Self::QueryReflecting {
                name,
                params,
                reflects,
            },
        }
    }
}

/// What the hosting node answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Each event's position, and whether it was new (`true`) or a duplicate.
    Ingested(Vec<(bool, Position)>),
    /// A query's answer, as JSON text.
    Answer(Vec<u8>),
    /// A refusal: HTTP status, problem body (JSON text), `Retry-After`.
    Problem {
        /// The status.
        status: u16,
        /// The problem+json body.
        body: Vec<u8>,
        /// Seconds to wait before retrying, if any.
        retry_after: Option<u32>,
    },
}

/// The subject stream `stream`'s owner answers on.
pub fn subject(prefix: &str, stream: &str) -> String {
    format!("{prefix}.rpc.{stream}")
}

/// Sends `request` to the node owning `domain` (a stream: the domain's, or one of its
/// partitions'); a refusal comes back as the problem the owner answered, and no owner
/// (503, once retries ran out) or no answer in time (504) as their own.
pub async fn ask(nats: &Nats, domain: &str, request: &Request) -> Result<Reply, Problem> {
    let frame = codec::encode(FormatTag::ForwardRequestV1, request).map_err(|error| {
        Problem::new(
            problem::FORWARD_UNENCODABLE,
            format!("cannot encode the request for domain \"{domain}\": {error}"),
        )
    })?;
    if let BusStatus::Down(reason) = &*nats.status().borrow() {
        return Err(super::problem::nats_down(reason));
    }
    let settings = nats.settings();
    let subject = subject(&settings.prefix, domain);
    let timeout = settings.request_timeout;
    let message = nats
        // Ingress is small and quick to answer: it travels in batches. Reads may be
        // neither, and one slow read must not hold the answers of a batch.
        .request_coalesced(&subject, frame, matches!(request, Request::Ingest { .. }))
        .await
        .map_err(|error| match error {
            CoalescedError::NoResponders => Problem::new(problem::DOMAIN_NOT_HOSTED, format!("no node hosts \"{domain}\" now (none enables it, or it is moving between nodes); retry later (nothing was appended)"),
            )
            .with("domain", domain)
            .retry_after(1),
            CoalescedError::TimedOut => Problem::new(problem::DOMAIN_TIMEOUT, format!("the node hosting domain \"{domain}\" did not answer within {timeout:?}; an event may or may not have been appended: re-sending it is safe (it is deduplicated by source and id)"),
            )
            .with("domain", domain)
            .retry_after(1),
            CoalescedError::Other(error) => Problem::new(problem::NATS_UNAVAILABLE, format!("cannot reach the node hosting domain \"{domain}\": {error}; retry shortly"),
            )
            .retry_after(1),
        })?;
    codec::decode(FormatTag::ForwardReplyV1, &message).map_err(|error| {
        Problem::new(problem::FORWARD_FAILED, format!("the node hosting domain \"{domain}\" answered a frame that does not decode: {error}; are both nodes the same version?"),
        )
    })
}

/// Turns a reply that should be a query's answer into it.
pub fn answer(reply: Reply, domain: &str) -> Result<Value, Problem> {
    match reply {
        Reply::Answer(json) => {
            serde_json::from_slice(&json).map_err(|error| unexpected(domain, &error.to_string()))
        }
        Reply::Problem {
            status,
            body,
            retry_after,
        } => Err(relayed(status, &body, retry_after)),
        Reply::Ingested(_) => Err(unexpected(domain, "an ingest answer to a query")),
    }
}

/// A problem answered by another node, rendered as it was.
pub fn relayed(status: u16, body: &[u8], retry_after: Option<u32>) -> Problem {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut problem = Problem::relayed(status);
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
        for (key, value) in fields {
            problem = problem.with(&key, value);
        }
    }
    match retry_after {
        Some(seconds) => problem.retry_after(seconds),
        None => problem,
    }
}

/// An answer of the wrong kind.
pub fn unexpected(domain: &str, what: &str) -> Problem {
    Problem::new(
        problem::FORWARD_FAILED,
        format!("the node hosting domain \"{domain}\" answered {what}"),
    )
}

fn problem_reply(problem: &Problem) -> Reply {
    Reply::Problem {
        status: problem.status().as_u16(),
        body: problem.body().to_string().into_bytes(),
        retry_after: problem.retry_after_seconds(),
    }
}

/// Answers forwarded requests for one stream while it is held; dropping it unsubscribes.
pub struct Serving {
    subscription: tokio::task::JoinHandle<()>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.subscription.abort();
    }
}

/// Answers forwarded requests for `stream`, hosted here, until the returned [`Serving`]
/// is dropped.
pub fn serve(state: web::Data<GatewayState>, nats: Arc<Nats>, stream: &'static str) -> Serving {
    let prefix = nats.settings().prefix.clone();
    let subject = subject(&prefix, stream);
    // The subscription lives on the NATS thread, whose runtime outlives the node's:
    // dropped anywhere else at shutdown, it would need a runtime that is gone.
    let (requests, mut incoming) = tokio::sync::mpsc::channel::<async_nats::Message>(1024);
    let subscription = {
        let client = nats.client().clone();
        let subject = subject.clone();
        let group = format!("{prefix}-{stream}");
        nats.spawn(async move {
            let mut subscription = match client.queue_subscribe(subject, group).await {
                Ok(subscription) => subscription,
                Err(error) => {
                    warn!(stream, %error, "cannot answer forwarded requests");
                    return;
                }
            };
            while let Some(message) = subscription.next().await {
                if requests.send(message).await.is_err() {
                    return;
                }
            }
        })
    };
    actix_rt::spawn(async move {
        info!(stream, %subject, "answering forwarded requests");
        while let Some(message) = incoming.recv().await {
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            let state = state.clone();
            let nats = Arc::clone(&nats);
            actix_rt::spawn(async move {
                let Some(frame) = answer_frame(&state, stream, &message.payload).await else {
                    return;
                };
                let client = nats.client().clone();
                let sent = nats
                    .spawn(async move { client.publish(reply_to, frame.into()).await })
                    .await;
                if !matches!(sent, Ok(Ok(()))) {
                    debug!(stream, "cannot send a forwarded reply");
                }
            });
        }
    });
    Serving { subscription }
}

/// The answer frame to a forwarded frame: a batch's answers, all handled at once (so the
/// host takes them as one group), or one request's answer.
async fn answer_frame(state: &GatewayState, stream: &'static str, frame: &[u8]) -> Option<Vec<u8>> {
    let encoded = match frame.first() {
        Some(&tag) if tag == FormatTag::ForwardBatchV1 as u8 => {
            let frames: Vec<Vec<u8>> = match codec::decode(FormatTag::ForwardBatchV1, frame) {
                Ok(frames) => frames,
                Err(error) => {
                    warn!(stream, %error, "a forwarded batch does not decode; not answered");
                    return None;
                }
            };
            let replies = futures_util::future::join_all(
                frames.iter().map(|frame| handle(state, stream, frame)),
            )
            .await;
            let frames: Result<Vec<Vec<u8>>, _> = replies
                .iter()
                .map(|reply| codec::encode(FormatTag::ForwardReplyV1, reply))
                .collect();
            frames.and_then(|frames| codec::encode(FormatTag::ForwardBatchReplyV1, &frames))
        }
        _ => codec::encode(
            FormatTag::ForwardReplyV1,
            &handle(state, stream, frame).await,
        ),
    };
    match encoded {
        Ok(frame) => Some(frame),
        Err(error) => {
            warn!(stream, %error, "cannot encode a forwarded reply");
            None
        }
    }
}

async fn handle(state: &GatewayState, domain: &'static str, frame: &[u8]) -> Reply {
    let request: Request = match codec::decode(FormatTag::ForwardRequestV1, frame) {
        Ok(request) => request,
        Err(error) => {
            return problem_reply(&Problem::new(problem::BAD_FORWARDED_REQUEST, format!("a forwarded request for domain \"{domain}\" does not decode: {error}; are both nodes the same version?"),
            ))
        }
    };
    match request {
        Request::Ingest { mode, events } => {
            let group = events.into_iter().enumerate().collect();
            match ingest::ingest_here(state, mode, domain, group).await {
                Ok(outcomes) => Reply::Ingested(
                    outcomes
                        .into_iter()
                        .map(|(_, outcome, _)| match outcome {
                            Outcome::Accepted(position) => (true, position),
                            Outcome::Duplicate(position) => (false, position),
                        })
                        .collect(),
                ),
                Err(problem) => problem_reply(&problem),
            }
        }
        Request::Entity { key } => {
            answer_reply(queries::entity_here(state, domain, &key, &[]).await)
        }
        Request::EntityReflecting { key, reflects } => {
            answer_reply(queries::entity_here(state, domain, &key, &reflects).await)
        }
        Request::Query { name, params } => {
            answer_reply(queries::query_here(state, domain, &name, &params, &[]).await)
        }
        Request::List {
            after,
            limit,
            reflects,
        } => answer_reply(
            queries::list_here(state, domain, after.as_deref(), limit, &reflects).await,
        ),
        Request::QueryReflecting {
            name,
            params,
            reflects,
        } => answer_reply(queries::query_here(state, domain, &name, &params, &reflects).await),
    }
}

fn answer_reply(answer: Result<serde_json::Value, Problem>) -> Reply {
    match answer {
        Ok(value) => Reply::Answer(value.to_string().into_bytes()),
        Err(problem) => problem_reply(&problem),
    }
}
