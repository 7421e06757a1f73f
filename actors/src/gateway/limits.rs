//! Limits every request meets before routing: open connections (503) and header size
//! (431). The middleware also counts the answers to `POST /v1/events` for `/metrics`.
//!
//! actix-web's own `max_connections` only stops accepting, so clients past it hang in the
//! kernel's backlog without an answer. Instead each connection takes a slot when it opens
//! ([`Connections::on_connect`], called by the server for every accepted connection) and
//! keeps it in its extensions, which actix drops with the connection; a connection opened
//! past the limit is refused: every request on it gets 503 with `Retry-After` and
//! `Connection: close`, but health and readiness probes, which are answered (and the
//! connection closed): a node busy with clients is alive, and an orchestrator must not
//! restart it for that.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderMap;
use actix_web::http::{ConnectionType, Method};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use herald_runtime::latency;

use super::problem::{self, Problem};
use super::state::GatewayState;

/// Seconds a refused connection is asked to wait before trying again.
const RETRY_AFTER_SECONDS: u32 = 1;

/// The node's open client connections, against `[http] max_connections`.
#[derive(Debug)]
pub struct Connections {
    open: AtomicUsize,
    limit: usize,
    refused: AtomicU64,
}

/// What a connection got when it opened; kept in its extensions for its lifetime.
#[derive(Debug)]
enum ConnectionSlot {
    /// Within the limit; frees its place when the connection closes.
    Admitted { _open: OpenConnection },
    /// Past the limit: its requests are answered 503.
    Refused,
}

/// A counted open connection; dropping it (the connection closed) uncounts it.
#[derive(Debug)]
struct OpenConnection(Arc<Connections>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// A counter refusing connections past `limit`.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            limit,
            refused: AtomicU64::new(0),
        })
    }

    /// Counts a new connection, or marks it refused when `limit` are open; for
    /// `HttpServer::on_connect`.
    pub fn on_connect(self: &Arc<Self>, extensions: &mut Extensions) {
        // Increment only while under the limit, atomically: no check-then-add race.
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .is_ok();
        let slot = if admitted {
            ConnectionSlot::Admitted {
                _open: OpenConnection(Arc::clone(self)),
            }
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            ConnectionSlot::Refused
        };
        extensions.insert(slot);
    }

    /// Connections open and admitted now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Connections refused since the node started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// The size of the header fields as they came on the wire: each `name: value\r\n`.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn too_many_connections(limit: usize) -> Problem {
    Problem::new(
        problem::TOO_MANY_CONNECTIONS,
        format!(
            "the node already serves {limit} connections ([http] max_connections); this one is \
             closed, reconnect after {RETRY_AFTER_SECONDS} s or reuse a connection"
        ),
    )
    .with("limit", limit)
    .retry_after(RETRY_AFTER_SECONDS)
}

fn headers_too_large(size: usize, limit: usize) -> Problem {
    Problem::new(
        problem::HEADERS_TOO_LARGE,
        format!(
            "the request's header fields take {size} bytes, over the limit of {limit} bytes \
             ([http] max_header_bytes); send fewer or shorter headers"
        ),
    )
    .with("limit", limit)
    .with("size", size)
}

/// Middleware, outermost: refuses requests on a connection past the limit (503) and
/// requests with oversized headers (431), and counts every answer to `POST /v1/events`.
pub async fn limit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<GatewayState>>().cloned() else {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let ingress = request.method() == Method::POST && request.path() == "/v1/events";
    let started = std::time::Instant::now();
    let refused = matches!(
        request.conn_data::<ConnectionSlot>(),
        Some(ConnectionSlot::Refused)
    );
    let probe = matches!(request.path(), "/healthz" | "/readyz");
    let size = header_bytes(request.headers());
    let problem = if refused && !probe {
        Some(too_many_connections(state.connections.limit()))
    } else if size > state.limits.max_header_bytes {
        Some(headers_too_large(size, state.limits.max_header_bytes))
    } else {
        None
    };
    let mut response = match problem {
        Some(problem) => request
            .into_response(problem.error_response())
            .map_into_right_body(),
        None => next.call(request).await?.map_into_left_body(),
    };
    if refused {
        // Close it, so the client's next try opens a connection that may fit.
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    if ingress {
        state.metrics.count_ingress(response.status());
        latency::observe_since(&latency::latencies().ingest, started);
    }
    Ok(response)
}
