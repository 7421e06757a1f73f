//! RFC 9457 problem details: every 4xx and 5xx the gateway sends is one of these.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem to answer a client with: status, a stable type, and where it is.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    retry_after: Option<u32>,
    close: bool,
}

impl Problem {
    /// A problem of kind `slug` (the last part of its `type` URI).
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
            close: false,
        }
    }

    /// Adds an extension member, such as `attribute`, `pointer` or `index`.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// Puts `prefix` before the detail, such as which event of a batch it is about.
    pub fn prefix_detail(mut self, prefix: &str) -> Self {
        self.detail.insert_str(0, prefix);
        self
    }

    /// Asks the client to retry after this many seconds.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Closes the connection after the answer: what is left of the request cannot be
    /// trusted to end (a body that stalled).
    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// The `Retry-After` it carries, in seconds.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        self.retry_after
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem body as JSON.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            format!("https://herald.dev/problems/{}", self.slug).into(),
        );
        body.insert("title".into(), self.title.into());
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.clone().into());
        for (key, value) in &self.extensions {
            body.insert(key.clone(), value.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title,
            self.detail
        )
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.close {
            response.force_close();
        }
        response.body(self.body().to_string())
    }
}

impl actix_web::Responder for Problem {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

/// Answers any path the gateway does not serve.
pub async fn not_found(request: actix_web::HttpRequest) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "No such resource",
        format!(
            "no resource at {} {}; see GET /v1/domains for what this node serves",
            request.method(),
            request.path()
        ),
    )
}

/// The answer for a known path asked with a method it does not take: 405 naming the
/// method it does take, in `Allow` too (RFC 9110 requires it on a 405).
pub fn allow_only(allowed: Method) -> actix_web::Route {
    actix_web::web::to(move |request: actix_web::HttpRequest| {
        let allowed = allowed.clone();
        async move {
            let mut response = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                format!(
                    "{} does not take {}; use {allowed}",
                    request.path(),
                    request.method()
                ),
            )
            .with("allow", allowed.as_str())
            .error_response();
            // A method's name is a token, always a valid header value.
            if let Ok(value) = header::HeaderValue::from_str(allowed.as_str()) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
    })
}

/// 409 `id-conflict`: an event under a `source` and `id` that already name a different
/// event (a resend must be the same event, `time` aside). `request_index` maps an index in
/// the host's group to the client's request.
pub fn id_conflict(
    conflict: &crate::host::IdConflict,
    request_index: impl Fn(usize) -> usize,
) -> Problem {
    let (original, place) = match &conflict.original {
        crate::host::Original::Logged(position) => (
            serde_json::json!({"stream": position.stream, "sequence": position.sequence}),
            format!("the event at {}#{}", position.stream, position.sequence),
        ),
        crate::host::Original::Earlier(index) => (
            serde_json::json!({"index": request_index(*index)}),
            format!("event {} of this batch", request_index(*index)),
        ),
    };
    Problem::new(
        StatusCode::CONFLICT,
        "id-conflict",
        "Source and id already name another event",
        format!(
            "source \"{}\" and id \"{}\" already name {place}, which differs in {}; a resend must be the same event (only time may differ), so give a new event a new id; nothing was appended",
            conflict.event_source,
            conflict.id,
            conflict.differs.join(", ")
        ),
    )
    .with("original", original)
    .with("differs", conflict.differs.clone())
}

/// Seconds a client is asked to wait after a 429: about one turn of a busy host.
const OVERLOADED_RETRY_AFTER: u32 = 1;

impl From<crate::admission::Overloaded> for Problem {
    fn from(overloaded: crate::admission::Overloaded) -> Self {
        let crate::admission::Overloaded { domain, capacity } = overloaded;
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "domain-overloaded",
            "Domain overloaded",
            format!(
                "domain \"{domain}\" already holds {capacity} ingress requests ([domain.{domain}] mailbox_capacity) \
                 and cannot keep up; nothing was appended, retry after {OVERLOADED_RETRY_AFTER} s"
            ),
        )
        .with("domain", domain.as_str())
        .retry_after(OVERLOADED_RETRY_AFTER)
    }
}

/// 503 for a request that needs NATS while it cannot be reached.
pub fn nats_down(reason: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "nats-unavailable",
        "NATS unavailable",
        format!("{reason}; retry shortly (nothing was appended)"),
    )
    .retry_after(1)
}
