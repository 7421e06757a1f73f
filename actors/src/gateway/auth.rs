//! Bearer-token access control: who may publish, query, administer or read metrics, and on
//! which domains.
//!
//! Access is decided after routing, by a middleware on each resource ([`require`]) that
//! says what the resource [`Need`]s, on the path parameters as the router matched and
//! decoded them, exactly as the handler will read them. A path has many spellings
//! (`/%761/...`, `%2F`, `;` parameters): deciding on the raw path would let one of them
//! reach a handler the token may not use.
//!
//! Secrets are kept only as SHA-256 digests and compared in constant time against every
//! token (no early exit), so neither timing nor a memory dump gives them away; neither
//! the secret nor the `Authorization` header is ever logged.

use std::collections::BTreeMap;
use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header;
use actix_web::{web, HttpMessage, ResponseError};
use futures_util::future::LocalBoxFuture;
use herald_config::{Credential, Scope};
use herald_runtime::partition::Layout;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::{self, Problem};
use super::state::GatewayState;

/// One accepted token, without its secret.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The token's name, for logs.
    pub name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
    domains: Vec<String>,
}

impl Grant {
    /// Whether the token may do `scope` on `domain` (`None`: not about one domain).
    pub fn allows(&self, scope: Scope, domain: Option<&str>) -> bool {
        self.scopes.contains(&scope)
            && match domain {
                Some(domain) => self.domains.is_empty() || self.domains.iter().any(|d| d == domain),
                None => true,
            }
    }

    /// 403 for a request this token may not make.
    pub fn forbidden(&self, scope: Scope, domain: Option<&str>) -> Problem {
        let on = domain.map_or(String::new(), |d| format!(" on domain \"{d}\""));
        let action = match scope {
            Scope::Metrics => "read metrics".to_owned(),
            other => other.to_string(),
        };
        Problem::new(
            problem::FORBIDDEN,
            format!(
                "token \"{}\" may not {action}{on}; it needs the \"{scope}\" scope{}",
                self.name,
                if domain.is_some() {
                    " for that domain"
                } else {
                    ""
                }
            ),
        )
        .with("scope", scope.to_string())
    }
}

/// The tokens a node accepts; `None` in the state when auth is off.
#[derive(Debug, Clone)]
pub struct Access {
    grants: Vec<Grant>,
    metrics_open: bool,
}

impl Access {
    /// Whether `/metrics` is served without a token.
    pub fn metrics_open(&self) -> bool {
        self.metrics_open
    }

    /// Access for these credentials; `metrics_open` serves `/metrics` without a token.
    pub fn new(credentials: &[Credential], metrics_open: bool) -> Self {
        Self {
            metrics_open,
            grants: credentials
                .iter()
                .map(|credential| Grant {
                    name: credential.name.clone(),
                    digest: Sha256::digest(credential.secret.as_bytes()).into(),
                    scopes: credential.scopes.clone(),
                    domains: credential.domains.clone(),
                })
                .collect(),
        }
    }

    /// The grant of the bearer token in `authorization`, or 401.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<&Grant, Problem> {
        let Some(value) = authorization else {
            return Err(unauthorized(
                "this request needs a bearer token: send `Authorization: Bearer <token>`",
            ));
        };
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let mut found = None;
        for grant in &self.grants {
            // Every token is compared, whatever matched before, in constant time each.
            if bool::from(grant.digest.ct_eq(&digest)) {
                found = Some(grant);
            }
        }
        found.ok_or_else(|| unauthorized("the bearer token is not valid"))
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(problem::UNAUTHORIZED, detail)
}

/// Dead-letter streams (`deadletter-<stream>`) are operators' business: admin scope.
const DEAD_LETTER_PREFIX: &str = "deadletter-";

/// What a resource asks of a request's token. Path parameters are named as in the
/// resource's path (`{domain}`, `{stream}`) and read decoded, as its handler reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health and readiness.
    Open,
    /// A valid token, whatever its scopes: a path nothing serves.
    Token,
    /// The `metrics` scope, or nothing with `[auth] metrics_open`.
    Metrics,
    /// The scope, not about one domain (listings; a publish, whose domains ingest checks
    /// once the events are parsed).
    Scope(Scope),
    /// The scope on the domain named by the parameter: a domain, or one of its partition
    /// streams (`orders-p3` is `orders`).
    Domain(Scope, &'static str),
    /// Reading the stream named by the parameter: `query` on its domain, or `admin` on it
    /// for its dead-letter stream (`deadletter-orders`, `deadletter-orders-p3`).
    Stream(&'static str),
}

/// What one request needs, once its path parameters are known.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Nothing,
    Token,
    Scope(Scope, Option<String>),
}

impl Need {
    /// What a request with these decoded path parameters needs; `Err` names a parameter
    /// the resource does not have (a bug in `routes`, refused rather than let through).
    fn requirement(
        self,
        params: &BTreeMap<String, String>,
        layout: &Layout,
        metrics_open: bool,
    ) -> Result<Requirement, &'static str> {
        let param = |name: &'static str| params.get(name).map(String::as_str).ok_or(name);
        Ok(match self {
            Self::Open => Requirement::Nothing,
            Self::Token => Requirement::Token,
            Self::Metrics if metrics_open => Requirement::Nothing,
            Self::Metrics => Requirement::Scope(Scope::Metrics, None),
            Self::Scope(scope) => Requirement::Scope(scope, None),
            Self::Domain(scope, name) => {
                Requirement::Scope(scope, Some(owning_domain(layout, param(name)?).to_owned()))
            }
            Self::Stream(name) => {
                let stream = param(name)?;
                let (scope, named) = match stream.strip_prefix(DEAD_LETTER_PREFIX) {
                    Some(parked) => (Scope::Admin, parked),
                    None => (Scope::Query, stream),
                };
                Requirement::Scope(scope, Some(owning_domain(layout, named).to_owned()))
            }
        })
    }
}

/// The domain a client-named domain or stream belongs to: a partition stream's domain
/// (as ingest maps a group's stream), else the name itself, which a token limited to
/// domains matches only if it is one of them.
fn owning_domain<'a>(layout: &'a Layout, name: &'a str) -> &'a str {
    layout.locate(name).map_or(name, |(domain, _)| domain)
}

/// Resource middleware: checks what `need` asks before the resource's routes (and its
/// 405 answer) run, and leaves the grant in the request's extensions. Off without `[auth]`.
pub fn require(need: Need) -> Require {
    Require { need }
}

/// The middleware factory [`require`] builds.
#[derive(Debug, Clone, Copy)]
pub struct Require {
    need: Need,
}

impl<S, B> Transform<S, ServiceRequest> for Require
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequireService {
            service,
            need: self.need,
        }))
    }
}

/// The service [`Require`] wraps a resource in.
#[derive(Debug)]
pub struct RequireService<S> {
    service: S,
    need: Need,
}

impl<S, B> Service<ServiceRequest> for RequireService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        match decide(self.need, &request) {
            Ok(grant) => {
                if let Some(grant) = grant {
                    request.extensions_mut().insert(grant);
                }
                let answer = self.service.call(request);
                Box::pin(async move { answer.await.map(ServiceResponse::map_into_left_body) })
            }
            Err(problem) => {
                let response = problem.error_response();
                Box::pin(ready(Ok(request
                    .into_response(response)
                    .map_into_right_body())))
            }
        }
    }
}

/// The grant a request may go on with (`None`: auth off, or nothing needed), or the 401
/// or 403 to answer.
fn decide(need: Need, request: &ServiceRequest) -> Result<Option<Grant>, Problem> {
    let Some(state) = request.app_data::<web::Data<GatewayState>>() else {
        return Ok(None);
    };
    let Some(access) = state.access.as_deref() else {
        return Ok(None);
    };
    let requirement = decoded_params(request)
        .and_then(|params| {
            need.requirement(&params, &state.layout, access.metrics_open)
                .map_err(|name| format!("it has no path parameter \"{name}\""))
        })
        .map_err(|why| {
            Problem::new(
                problem::ACCESS_UNDECIDABLE,
                format!(
                    "access to {} cannot be decided: {why}; this is a bug in the gateway's routes",
                    request.path()
                ),
            )
        })?;
    if requirement == Requirement::Nothing {
        return Ok(None);
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let grant = access.authenticate(authorization)?;
    match requirement {
        Requirement::Scope(scope, domain) if !grant.allows(scope, domain.as_deref()) => {
            Err(grant.forbidden(scope, domain.as_deref()))
        }
        _ => Ok(Some(grant.clone())),
    }
}

/// The matched path parameters by name, each decoded as `web::Path` decodes it for the
/// handler (which reads them in this same order).
fn decoded_params(request: &ServiceRequest) -> Result<BTreeMap<String, String>, String> {
    let path = request.match_info();
    let values: Vec<String> = path.load().map_err(|error| error.to_string())?;
    Ok(path
        .iter()
        .map(|(name, _)| name.to_owned())
        .zip(values)
        .collect())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn check(need: Need, params: &[(&str, &str)], expected: Requirement) {
        let layout = Layout::new([("inventory", 1), ("orders", 6)]);
        let params = params
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        assert_eq!(
            need.requirement(&params, &layout, false),
            Ok(expected),
            "{need:?} with {params:?}"
        );
    }

    fn scope(scope: Scope, domain: &str) -> Requirement {
        Requirement::Scope(scope, Some(domain.to_owned()))
    }

    #[test]
    fn a_named_domain_or_stream_is_checked_as_its_owning_domain() {
        let stream = Need::Stream("stream");
        let entity = Need::Domain(Scope::Query, "domain");
        let release = Need::Domain(Scope::Admin, "domain");
        check(
            stream,
            &[("stream", "inventory")],
            scope(Scope::Query, "inventory"),
        );
        check(
            stream,
            &[("stream", "orders-p3")],
            scope(Scope::Query, "orders"),
        );
        check(
            stream,
            &[("stream", "deadletter-inventory")],
            scope(Scope::Admin, "inventory"),
        );
        check(
            stream,
            &[("stream", "deadletter-orders-p3")],
            scope(Scope::Admin, "orders"),
        );
        // Unknown names stay as they are: only an unlimited token gets past, to a 404.
        check(stream, &[("stream", "nope")], scope(Scope::Query, "nope"));
        check(
            stream,
            &[("stream", "deadletter-")],
            scope(Scope::Admin, ""),
        );
        check(
            entity,
            &[("domain", "orders")],
            scope(Scope::Query, "orders"),
        );
        check(
            entity,
            &[("domain", "orders-p5")],
            scope(Scope::Query, "orders"),
        );
        check(
            entity,
            &[("domain", "orders/x")],
            scope(Scope::Query, "orders/x"),
        );
        check(
            release,
            &[("domain", "orders-p0"), ("id", "x")],
            scope(Scope::Admin, "orders"),
        );
    }

    #[test]
    fn a_parameter_the_resource_lacks_is_refused_not_waved_through() {
        let layout = Layout::default();
        let params = BTreeMap::from([("domian".to_owned(), "orders".to_owned())]);
        for need in [Need::Domain(Scope::Query, "domain"), Need::Stream("domain")] {
            assert_eq!(need.requirement(&params, &layout, false), Err("domain"));
        }
    }

    #[test]
    fn metrics_open_opens_only_metrics() {
        let layout = Layout::default();
        let params = BTreeMap::new();
        let requirement = |need: Need, open| need.requirement(&params, &layout, open);
        assert_eq!(requirement(Need::Metrics, true), Ok(Requirement::Nothing));
        assert_eq!(
            requirement(Need::Metrics, false),
            Ok(Requirement::Scope(Scope::Metrics, None))
        );
        assert_eq!(requirement(Need::Token, true), Ok(Requirement::Token));
        assert_eq!(requirement(Need::Open, false), Ok(Requirement::Nothing));
    }

    #[test]
    fn parameters_are_read_by_name_and_fully_decoded() {
        let request = TestRequest::default()
            .param("domain", "or%64ers")
            .param("id", "a%252Fb")
            .to_srv_request();
        let params = decoded_params(&request).expect("parameters");
        assert_eq!(params["domain"], "orders");
        assert_eq!(params["id"], "a%2Fb");
    }
}
