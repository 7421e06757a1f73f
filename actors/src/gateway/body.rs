//! Reading a request body: its size limit, the node-wide budget of body bytes in memory,
//! and how slowly it may arrive.
//!
//! Headers have actix-http's own timeout; a body has none. Without one, a client that
//! declares a large body and then trickles it (or stops) holds its connection, its worker
//! slot and a `max_connections` slot forever. So each read waits at most `body_timeout`
//! for the next piece, and once that grace has passed the body must keep an average of
//! `body_min_rate` bytes per second (Kestrel's `MinRequestBodyDataRate` works alike). A
//! body too slow is 408 with `Connection: close`; a node shutting down drops it (503).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::{Stream, StreamExt};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::problem::{self, Problem};

/// How bodies are read: the limits from `[http]` and the shared budget.
#[derive(Clone)]
pub struct BodyLimits {
    /// Largest body taken (`max_body_bytes`).
    pub max_bytes: usize,
    /// Longest wait for the next piece, and the grace before `min_rate` applies.
    pub timeout: Duration,
    /// Slowest average rate after the grace, in bytes per second; 0 = no rate check.
    pub min_rate: usize,
    /// Body bytes held at once over all requests (`bodies_in_flight_bytes`).
    pub budget: Arc<Semaphore>,
}

impl BodyLimits {
    /// Limits with a fresh budget of `in_flight_bytes`.
    pub fn new(
        max_bytes: usize,
        timeout: Duration,
        min_rate: usize,
        in_flight_bytes: usize,
    ) -> Self {
        Self {
            max_bytes,
            timeout,
            min_rate,
            budget: Arc::new(Semaphore::new(in_flight_bytes.min(Semaphore::MAX_PERMITS))),
        }
    }
}

/// A body read whole, holding its share of the budget until dropped.
pub struct Body {
    bytes: web::BytesMut,
    _held: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the whole body within `limits`, or answers 413, 408, 503 or 400.
pub async fn read(
    request: &HttpRequest,
    mut payload: web::Payload,
    limits: &BodyLimits,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Body, Problem> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes) {
        return Err(too_large(limits.max_bytes));
    }
    // The budget is taken as bytes arrive, not as declared: a client that only declares a
    // large body holds nothing (its head costs no memory, and the timeout ends it).
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut reserved = 0;
    let mut bytes = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(INITIAL_CAPACITY));
    let started = Instant::now();
    let mut last_piece = started;
    loop {
        let deadline = deadline(limits, started, last_piece, bytes.len());
        let next = tokio::select! {
            // A body that is whole is read, even if shutdown or its deadline came too.
            biased;
            next = payload.next() => next,
            () = tokio::time::sleep_until(deadline) => {
                return Err(too_slow(limits, bytes.len(), declared, started.elapsed()));
            }
            _ = shutdown.wait_for(|stopping| *stopping) => return Err(shutting_down()),
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|error| {
            Problem::new(
                problem::UNREADABLE_BODY,
                format!("the request body could not be read: {error}"),
            )
        })?;
        last_piece = Instant::now();
        let length = bytes.len() + chunk.len();
        if length > limits.max_bytes {
            return Err(too_large(limits.max_bytes));
        }
        if length > reserved {
            // The first bytes reserve the whole declared length: a body admitted once it
            // sends is never refused part-way through by bodies that came later.
            let wanted = declared.map_or(length, |declared| declared.max(length));
            let more = reserve(limits, wanted - reserved)?;
            match held.as_mut() {
                Some(permit) => permit.merge(more),
                None => held = Some(more),
            }
            reserved = wanted;
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body { bytes, _held: held })
}

/// The most allocated for a body before its bytes arrive.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// When the body must have sent more: `timeout` after its last piece, and (past the
/// grace) when its average rate would fall under `min_rate`.
fn deadline(
    limits: &BodyLimits,
    started: Instant,
    last_piece: Instant,
    received: usize,
) -> Instant {
    let idle = last_piece + limits.timeout;
    if limits.min_rate == 0 {
        return idle;
    }
    // The average since `started + timeout` stays at or above `min_rate` until the time
    // it would take to receive what came so far at exactly that rate.
    let earned = Duration::from_secs_f64(received as f64 / limits.min_rate as f64);
    idle.min(started + limits.timeout + earned)
}

fn reserve(limits: &BodyLimits, bytes: usize) -> Result<OwnedSemaphorePermit, Problem> {
    let wanted = u32::try_from(bytes).unwrap_or(u32::MAX);
    Arc::clone(&limits.budget)
        .try_acquire_many_owned(wanted)
        .map_err(|_| {
            Problem::new(problem::BODIES_IN_FLIGHT, format!(
                    "the node holds as many request body bytes as it takes at once ([http] bodies_in_flight_bytes); this body ({bytes} bytes so far) does not fit now: retry shortly"
                ),
            )
            .retry_after(1)
        })
}

fn too_large(limit: usize) -> Problem {
    Problem::new(problem::BODY_TOO_LARGE, format!("the body is over the limit of {limit} bytes ([http] max_body_bytes); split it into smaller batches"),
    )
    .with("limit", limit)
}

fn too_slow(
    limits: &BodyLimits,
    received: usize,
    declared: Option<usize>,
    elapsed: Duration,
) -> Problem {
    let of = declared.map_or(String::new(), |length| format!(" of {length}"));
    Problem::new(problem::BODY_TIMEOUT, format!(
            "the request body arrived too slowly: {received}{of} bytes in {:.1} s; the node waits at most {} s for each piece of a body and, after that, needs at least {} bytes per second ([http] body_timeout, body_min_rate); send the body without pauses",
            elapsed.as_secs_f64(),
            limits.timeout.as_secs_f64(),
            limits.min_rate,
        ),
    )
    .with("received", received)
    .closing()
}

fn shutting_down() -> Problem {
    Problem::new(problem::SHUTTING_DOWN, "the node is shutting down and dropped this request before its body was whole; nothing was appended: send it again, to this node once it is back or to another",
    )
    .retry_after(1)
    .closing()
}

/// An answer's body that holds its request's chunked body until it is written whole.
pub struct HeldBody {
    body: BoxBody,
    _request_body: Rc<RefCell<Payload>>,
}

impl MessageBody for HeldBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Middleware: a request whose chunked body was not read to its end (refused before its
/// body, or answered 408) has its connection closed after the answer. actix-http closes a
/// connection whose request body was left unread only if that body is still held when the
/// answer ends; one the handler dropped it drains, with no timer, so a client trickling
/// chunks would hold the connection forever. The answer's body holds it instead.
pub async fn close_unread(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, HeldBody>>, actix_web::Error> {
    if !request.headers().contains_key(header::TRANSFER_ENCODING) {
        return Ok(next.call(request).await?.map_into_left_body());
    }
    let original = Rc::new(RefCell::new(request.take_payload()));
    let reader = Rc::clone(&original);
    let forwarded: Pin<Box<dyn Stream<Item = Result<web::Bytes, PayloadError>>>> =
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            Pin::new(&mut *reader.borrow_mut()).poll_next(cx)
        }));
    request.set_payload(Payload::from(forwarded));
    // (The request cannot be cloned to answer an error here: cloning it before routing
    // breaks the router. The layers inside answer their refusals as responses.)
    let response = next.call(request).await?;
    Ok(response.map_body(|_, body| {
        EitherBody::right(HeldBody {
            body: body.boxed(),
            _request_body: original,
        })
    }))
}
