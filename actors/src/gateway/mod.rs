//! The HTTP gateway: actix-web behind an actix actor.
//!
//! [`routes`] builds the whole API on a `ServiceConfig`, so it can be served by a real
//! server or called in tests without a socket. [`Gateway`] is the actor that owns the
//! running server and stops it gracefully.

mod auth;
mod body;
mod cluster;
mod console;
mod deadletters;
pub mod forward;
mod health;
pub mod ingest;
mod limits;
mod metrics;
mod openapi;
pub mod positions;
pub(crate) mod problem;
mod queries;
mod state;
mod streams;
mod traces;

use actix::prelude::*;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::web;
use auth::Need;
use herald_config::Scope;

pub use auth::Access;
pub use body::{close_unread, BodyLimits};
pub use limits::{limit, Connections};
pub use metrics::Metrics;
pub use problem::nats_down;
pub use state::{GatewayState, HostHandle, Limits};

/// Registers every route of the HTTP API v1, each with what a token needs to use it.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(
            resource("/v1/events", Need::Scope(Scope::Publish))
                .route(web::post().to(ingest::post_events))
                .default_service(problem::allow_only(Method::POST)),
        )
        .service(
            resource("/v1/domains", Need::Scope(Scope::Query))
                .route(web::get().to(queries::list_domains))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource(
                "/v1/domains/{domain}/entities",
                Need::Domain(Scope::Query, "domain"),
            )
            .route(web::get().to(queries::entities))
            .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource(
                "/v1/domains/{domain}/entities/{key}",
                Need::Domain(Scope::Query, "domain"),
            )
            .route(web::get().to(queries::entity))
            .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource(
                "/v1/domains/{domain}/queries/{name}",
                Need::Domain(Scope::Query, "domain"),
            )
            .route(web::get().to(queries::query))
            .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/v1/cluster", Need::Scope(Scope::Query))
                .route(web::get().to(cluster::cluster))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/v1/streams", Need::Scope(Scope::Query))
                .route(web::get().to(streams::list_streams))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/v1/streams/{stream}/events", Need::Stream("stream"))
                .route(web::get().to(streams::events))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/v1/streams/{stream}/tail", Need::Stream("stream"))
                .route(web::get().to(streams::tail))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/v1/deadletters", Need::Scope(Scope::Admin))
                .route(web::get().to(deadletters::counts))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource(
                "/v1/deadletters/{domain}",
                Need::Domain(Scope::Admin, "domain"),
            )
            .route(web::get().to(deadletters::list))
            .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource(
                "/v1/deadletters/{domain}/{id}/retry",
                Need::Domain(Scope::Admin, "domain"),
            )
            .route(web::post().to(deadletters::retry))
            .default_service(problem::allow_only(Method::POST)),
        )
        .service(
            resource(
                "/v1/deadletters/{domain}/{id}/skip",
                Need::Domain(Scope::Admin, "domain"),
            )
            .route(web::post().to(deadletters::skip))
            .default_service(problem::allow_only(Method::POST)),
        )
        .service(
            resource("/metrics", Need::Metrics)
                .route(web::get().to(metrics::metrics))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            // The topology, as in GET /v1/domains: the same scope.
            resource("/v1/openapi.json", Need::Scope(Scope::Query))
                .route(web::get().to(openapi::openapi))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/console", Need::Open)
                .route(web::get().to(console::page))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/console/console.js", Need::Open)
                .route(web::get().to(console::script))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/console/console.css", Need::Open)
                .route(web::get().to(console::style))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/healthz", Need::Open)
                .route(web::get().to(health::healthz))
                .default_service(problem::allow_only(Method::GET)),
        )
        .service(
            resource("/readyz", Need::Open)
                .route(web::get().to(health::readyz))
                .default_service(problem::allow_only(Method::GET)),
        )
        // A path nothing serves still needs a valid token, as every other does.
        .default_service(web::to(problem::not_found).wrap(auth::require(Need::Token)));
}

/// A resource whose every request, its 405 answers too, first passes [`auth::require`]:
/// access is decided on what the router matched, so there is no spelling of a path that
/// reaches a handler unchecked.
fn resource(
    path: &str,
    need: Need,
) -> actix_web::Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<EitherBody<BoxBody>>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path).wrap(auth::require(need))
}

/// The actor owning the running HTTP server.
pub struct Gateway {
    server: ServerHandle,
}

impl Gateway {
    /// Wraps a started server.
    pub fn new(server: ServerHandle) -> Self {
        Self { server }
    }
}

impl Actor for Gateway {
    type Context = Context<Self>;
}

/// Stops taking requests, finishes those in flight, then answers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopGateway;

impl Handler<StopGateway> for Gateway {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopGateway, _: &mut Self::Context) -> Self::Result {
        let server = self.server.clone();
        Box::pin(async move { server.stop(true).await })
    }
}
