//! Bearer-token access control: who may publish, query, administer or read metrics, and on
//! which domains.
//!
//! Secrets are kept only as SHA-256 digests and compared in constant time against every
//! token (no early exit), so neither timing nor a memory dump gives them away; neither
//! the secret nor the `Authorization` header is ever logged.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use herald_config::{Credential, Scope};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
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
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
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
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Unauthorized",
        detail,
    )
}

/// Dead-letter streams (`deadletter-<domain>`) are operators' business: admin scope.
const DEAD_LETTER_PREFIX: &str = "deadletter-";

/// What a request needs, from its method and path: `None` for the open endpoints.
fn required(
    method: &actix_web::http::Method,
    path: &str,
    metrics_open: bool,
) -> Option<(Scope, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] | ["readyz"] => None,
        ["metrics"] if metrics_open => None,
        ["metrics"] => Some((Scope::Metrics, None)),
        ["v1", "events"] if method == actix_web::http::Method::POST => {
            // Which domains is known only once the events are parsed: checked in ingest.
            Some((Scope::Publish, None))
        }
        ["v1", "deadletters"] => Some((Scope::Admin, None)),
        ["v1", "deadletters", domain, ..] => Some((Scope::Admin, Some((*domain).to_owned()))),
        ["v1", "streams", stream, ..] if stream.starts_with(DEAD_LETTER_PREFIX) => Some((
            Scope::Admin,
            Some(stream[DEAD_LETTER_PREFIX.len()..].to_owned()),
        )),
        ["v1", "domains", domain, ..] | ["v1", "streams", domain, ..] => {
            Some((Scope::Query, Some((*domain).to_owned())))
        }
        _ => Some((Scope::Query, None)),
    }
}

/// Middleware: with auth on, every request but health and readiness (and `/metrics` with
/// `metrics_open`) needs a token with the scope (and domain) it asks for; the grant is
/// left in the request's extensions.
pub async fn guard(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let access = request
        .app_data::<web::Data<GatewayState>>()
        .and_then(|state| state.access.clone());
    let Some(access) = access else {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let Some((scope, domain)) = required(request.method(), request.path(), access.metrics_open)
    else {
        return next
            .call(request)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let decision = access.authenticate(authorization).and_then(|grant| {
        if grant.allows(scope, domain.as_deref()) {
            Ok(grant.clone())
        } else {
            Err(grant.forbidden(scope, domain.as_deref()))
        }
    });
    match decision {
        Ok(grant) => {
            request.extensions_mut().insert(grant);
            next.call(request)
                .await
                .map(ServiceResponse::map_into_left_body)
        }
        Err(problem) => {
            let response = problem.error_response();
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}
