//! RFC 9457 problem details: every 4xx and 5xx the gateway sends is one of these.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Map, Value};

/// The media type of problem details.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One kind of problem: the same slug, title and status wherever it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The last part of its `type` URI.
    pub slug: &'static str,
    /// Its title, the same for every instance.
    pub title: &'static str,
    /// Its HTTP status.
    pub status: StatusCode,
}

macro_rules! kinds {
    ($($name:ident = $status:ident, $slug:literal, $title:literal;)*) => {
        $(
            #[doc = concat!("`", $slug, "`: ", $title, ".")]
            pub const $name: Kind = Kind { slug: $slug, title: $title, status: StatusCode::$status };
        )*
        /// Every kind of problem the gateway answers, for documentation and tests.
        pub const KINDS: &[Kind] = &[$($name),*];
    };
}

kinds! {
    ACCESS_UNDECIDABLE = INTERNAL_SERVER_ERROR, "access-undecidable", "Access cannot be decided";
    BAD_FORWARDED_REQUEST = BAD_REQUEST, "bad-forwarded-request", "Bad forwarded request";
    BAD_LAST_EVENT_ID = BAD_REQUEST, "bad-last-event-id", "Bad Last-Event-ID";
    BAD_POSITION = BAD_REQUEST, "bad-position", "Bad position to reflect";
    BAD_QUERY_PARAMETER = BAD_REQUEST, "bad-query-parameter", "Bad query parameter";
    BAD_QUERY_STRING = BAD_REQUEST, "bad-query-string", "Bad query string";
    BATCH_NOT_ARRAY = BAD_REQUEST, "batch-not-array", "A batch must be a JSON array";
    BATCH_SPANS_DOMAINS = UNPROCESSABLE_ENTITY, "batch-spans-domains", "Batch spans domains";
    BATCH_SPANS_PARTITIONS = UNPROCESSABLE_ENTITY, "batch-spans-partitions", "Batch spans partitions";
    BATCH_TOO_LARGE = PAYLOAD_TOO_LARGE, "batch-too-large", "Too many events in the batch";
    BODIES_IN_FLIGHT = SERVICE_UNAVAILABLE, "bodies-in-flight", "Too many request bodies in memory";
    BODY_TIMEOUT = REQUEST_TIMEOUT, "body-timeout", "Request body too slow";
    BODY_TOO_LARGE = PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large";
    DOMAIN_BUSY = SERVICE_UNAVAILABLE, "domain-busy", "Domain busy";
    DOMAIN_FAILED = SERVICE_UNAVAILABLE, "domain-failed", "Domain failed";
    DOMAIN_NOT_HOSTED = SERVICE_UNAVAILABLE, "domain-not-hosted", "Domain not hosted";
    DOMAIN_NOT_READY = SERVICE_UNAVAILABLE, "domain-not-ready", "Domain not ready";
    DOMAIN_OVERLOADED = TOO_MANY_REQUESTS, "domain-overloaded", "Domain overloaded";
    DOMAIN_PANICKED = INTERNAL_SERVER_ERROR, "domain-panicked", "The domain failed on the event";
    DOMAIN_RESTARTING = SERVICE_UNAVAILABLE, "domain-restarting", "Domain restarting";
    DOMAIN_TIMEOUT = GATEWAY_TIMEOUT, "domain-timeout", "Domain did not answer in time";
    DOMAIN_UNAVAILABLE = SERVICE_UNAVAILABLE, "domain-unavailable", "Domain unavailable";
    EMPTY_ATTRIBUTE = BAD_REQUEST, "empty-attribute", "Invalid CloudEvent";
    EMPTY_BATCH = BAD_REQUEST, "empty-batch", "Empty batch";
    EVENT_TOO_LARGE = PAYLOAD_TOO_LARGE, "event-too-large", "Event too large";
    FORBIDDEN = FORBIDDEN, "forbidden", "Forbidden";
    FORWARD_FAILED = BAD_GATEWAY, "forward-failed", "Bad answer from the hosting node";
    FORWARD_UNENCODABLE = INTERNAL_SERVER_ERROR, "forward-unencodable", "Cannot encode the forwarded request";
    HEADERS_TOO_LARGE = REQUEST_HEADER_FIELDS_TOO_LARGE, "headers-too-large", "Request header fields too large";
    ID_CONFLICT = CONFLICT, "id-conflict", "Source and id already name another event";
    INVALID_EXTENSION = BAD_REQUEST, "invalid-extension", "Invalid CloudEvent";
    INVALID_HEADER = BAD_REQUEST, "invalid-header", "Invalid CloudEvent";
    INVALID_TIME = BAD_REQUEST, "invalid-time", "Invalid CloudEvent";
    LOG_UNAVAILABLE = SERVICE_UNAVAILABLE, "log-unavailable", "Event log unavailable";
    LOG_UNWRITABLE = SERVICE_UNAVAILABLE, "log-unwritable", "Not ready: the event log cannot be written";
    MALFORMED_JSON = BAD_REQUEST, "malformed-json", "Malformed JSON";
    METHOD_NOT_ALLOWED = METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed";
    MISSING_ATTRIBUTE = BAD_REQUEST, "missing-attribute", "Invalid CloudEvent";
    MISSING_BINARY_HEADERS = BAD_REQUEST, "missing-binary-headers", "Binary mode needs ce-* headers";
    NATS_UNAVAILABLE = SERVICE_UNAVAILABLE, "nats-unavailable", "NATS unavailable";
    NOT_AN_OBJECT = BAD_REQUEST, "not-an-object", "Invalid CloudEvent";
    NOT_FOUND = NOT_FOUND, "not-found", "No such resource";
    NOT_INGRESS = UNPROCESSABLE_ENTITY, "not-ingress", "Event type is not ingress";
    NOT_READY = SERVICE_UNAVAILABLE, "not-ready", "Not ready";
    POSITION_NOT_REFLECTED = GATEWAY_TIMEOUT, "position-not-reflected", "Position not reflected in time";
    PARTITIONED_DOMAIN = NOT_FOUND, "partitioned-domain", "Domain is partitioned";
    PARTITIONKEY_NOT_SUBJECT = UNPROCESSABLE_ENTITY, "partitionkey-not-subject", "partitionkey must equal subject";
    QUERY_FAILED = INTERNAL_SERVER_ERROR, "query-failed", "Query failed";
    REJECTED = CONFLICT, "rejected", "Rejected by the domain";
    RELEASE_FAILED = SERVICE_UNAVAILABLE, "release-failed", "Release failed";
    REPEATED_HEADER = BAD_REQUEST, "repeated-header", "Invalid CloudEvent";
    RESERVED_SOURCE = BAD_REQUEST, "reserved-source", "Invalid CloudEvent";
    SCHEMA_VIOLATION = UNPROCESSABLE_ENTITY, "schema-violation", "Data does not match the schema";
    SHUTTING_DOWN = SERVICE_UNAVAILABLE, "shutting-down", "Node shutting down";
    STILL_FAILING = CONFLICT, "still-failing", "Dead letter failed again";
    SUBJECT_MISMATCH = UNPROCESSABLE_ENTITY, "subject-mismatch", "Subject does not match the data";
    TOO_MANY_CONNECTIONS = SERVICE_UNAVAILABLE, "too-many-connections", "Too many connections";
    TOO_MANY_TAILS = SERVICE_UNAVAILABLE, "too-many-tails", "Too many tails";
    UNAUTHORIZED = UNAUTHORIZED, "unauthorized", "Unauthorized";
    UNKNOWN_DEAD_LETTER = NOT_FOUND, "unknown-dead-letter", "Unknown dead letter";
    UNKNOWN_DOMAIN = NOT_FOUND, "unknown-domain", "Unknown domain";
    UNKNOWN_ENTITY = NOT_FOUND, "unknown-entity", "Unknown entity";
    UNKNOWN_QUERY = NOT_FOUND, "unknown-query", "Unknown query";
    UNKNOWN_STREAM = NOT_FOUND, "unknown-stream", "Unknown stream";
    UNKNOWN_TYPE = UNPROCESSABLE_ENTITY, "unknown-type", "Unknown event type";
    UNREADABLE_BODY = BAD_REQUEST, "unreadable-body", "Unreadable body";
    UNSUPPORTED_DATA = BAD_REQUEST, "unsupported-data", "Invalid CloudEvent";
    UNSUPPORTED_MEDIA_TYPE = UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported content type";
    UNSUPPORTED_SPECVERSION = BAD_REQUEST, "unsupported-specversion", "Invalid CloudEvent";
    WRONG_ATTRIBUTE_TYPE = BAD_REQUEST, "wrong-attribute-type", "Invalid CloudEvent";
}

/// A problem to answer a client with: its kind, what happened, and where it is.
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
    /// A problem of `kind` (one of the catalogue below), with what happened.
    pub fn new(kind: Kind, detail: impl Into<String>) -> Self {
        Self {
            status: kind.status,
            slug: kind.slug,
            title: kind.title,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
            close: false,
        }
    }

    /// A problem another node answered, sent on with its status; the caller copies its
    /// body's members over these.
    pub fn relayed(status: StatusCode) -> Self {
        let kind = Kind {
            slug: "forwarded",
            title: "Refused by the hosting node",
            status,
        };
        Self::new(kind, "")
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
        NOT_FOUND,
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
                METHOD_NOT_ALLOWED,
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
    Problem::new(ID_CONFLICT, format!(
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
        Problem::new(DOMAIN_OVERLOADED, format!(
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
        NATS_UNAVAILABLE,
        format!("{reason}; retry shortly (nothing was appended)"),
    )
    .retry_after(1)
}

#[cfg(test)]
mod tests {
    use super::KINDS;

    #[test]
    fn each_problem_type_has_one_slug_one_title_and_an_error_status() {
        let mut slugs: Vec<&str> = KINDS.iter().map(|kind| kind.slug).collect();
        slugs.sort_unstable();
        let count = slugs.len();
        slugs.dedup();
        assert_eq!(slugs.len(), count, "a slug is declared twice");
        for kind in KINDS {
            assert!(!kind.title.is_empty(), "{} has no title", kind.slug);
            assert!(
                kind.status.is_client_error() || kind.status.is_server_error(),
                "{} is not an error status",
                kind.slug
            );
        }
    }
}
