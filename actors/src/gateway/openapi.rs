//! `GET /v1/openapi.json`: an OpenAPI 3.1 document of this node's whole HTTP API, built
//! from its catalog, so the event types a client may post, the entities and the query
//! answers are described with the schemas of the domains this node serves.
//!
//! The domains' schemas come from schemars: JSON Schema draft 2020-12, OpenAPI 3.1's own
//! dialect, but each refers to its definitions as `#/$defs/X`, which inside the document
//! would resolve against the document's root. [`Components::embed`] moves each schema into
//! `components/schemas` with its definitions beside it (`<schema>.<definition>`) and
//! rewrites its references to match.
//!
//! Every 4xx and 5xx is a problem (RFC 9457): each operation answers `default` with the
//! `Problem` schema, whose `type` is one of the catalogue's (`x-problem-types` lists them
//! with their titles and statuses), and names the errors a client should expect.
//!
//! Entities and query answers keep the generic paths the router serves
//! (`/v1/domains/{domain}/entities/{key}`), with `{domain}` enumerated and the answer
//! `anyOf` the domains' schemas, each a named component (`Entity.orders`): a client
//! generator gets one call and a type per domain to read the answer as, and the document
//! lists exactly the routes there are. `anyOf`, not `oneOf`: two domains' schemas may both
//! fit one answer, which `oneOf` would refuse.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use herald_config::Scope;
use herald_runtime::envelope::{JSON_CONTENT_TYPE, SPEC_VERSION};
use herald_runtime::ids::RESERVED_SOURCE_PREFIX;
use serde_json::{json, Map, Value};

use super::auth::Access;
use super::ingest::{BATCH, BINARY, STRUCTURED};
use super::problem::{self, Problem, PROBLEM_JSON};
use super::state::GatewayState;

/// Handles `GET /v1/openapi.json`.
pub async fn openapi(state: web::Data<GatewayState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state))
}

/// The OpenAPI 3.1 document of this node's HTTP API, as it is configured now.
pub fn document(state: &GatewayState) -> Value {
    let mut builder = Builder::new(state);
    let paths = builder.paths();
    let mut components = Map::new();
    components.insert(
        "schemas".to_owned(),
        Value::Object(builder.components.schemas),
    );
    components.insert(
        "responses".to_owned(),
        shared_responses(state.access.is_some()),
    );
    components.insert("headers".to_owned(), shared_headers());
    if state.access.is_some() {
        components.insert(
            "securitySchemes".to_owned(),
            json!({"bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from [auth] tokens. Each operation's x-herald-scope names the scope it needs; a token limited to domains reaches only theirs (403 otherwise).",
            }}),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": info(state, &builder.domains),
        "tags": tags(),
        "paths": paths,
        "components": components,
        "x-problem-types": problem_types(),
    })
}

/// What a token needs for an operation, as `auth.rs` decides it for the route.
#[derive(Debug, Clone, Copy)]
enum Guard {
    /// Nothing: health, readiness and the console's page.
    Open,
    /// A scope (on the domain the path names, where it names one).
    Scope(Scope),
    /// `/metrics`: the `metrics` scope, unless `[auth] metrics_open`.
    Metrics,
}

impl Guard {
    /// The scope a token needs, `None` when the route is open.
    fn scope(self, access: &Access) -> Option<Scope> {
        match self {
            Guard::Open => None,
            Guard::Metrics if access.metrics_open() => None,
            Guard::Metrics => Some(Scope::Metrics),
            Guard::Scope(scope) => Some(scope),
        }
    }
}

/// Builds the document for one node: what it serves, and the schemas gathered on the way.
struct Builder<'a> {
    state: &'a GatewayState,
    /// The domains a client may name here, sorted: those hosted, or, networked, every
    /// registered one (another node may host it; this one forwards).
    domains: Vec<&'static str>,
    components: Components,
}

impl<'a> Builder<'a> {
    fn new(state: &'a GatewayState) -> Self {
        let mut domains = match state.nats {
            Some(_) => state.catalog.names(),
            None => state.catalog.hosted(),
        };
        domains.sort_unstable();
        let mut components = Components::default();
        // Herald's own schemas first: the domains' names all carry a prefix with a dot
        // (`Data.`, `Entity.`), so they can never take one of these.
        for (name, schema) in fixed_schemas(state) {
            components.schemas.insert(name.to_owned(), schema);
        }
        Self {
            state,
            domains,
            components,
        }
    }

    /// Every route of `routes()`, one operation each.
    fn paths(&mut self) -> Map<String, Value> {
        let operations = [
            ("/v1/events", "post", self.post_events()),
            ("/v1/domains", "get", self.list_domains()),
            ("/v1/domains/{domain}/entities", "get", self.entities()),
            ("/v1/domains/{domain}/entities/{key}", "get", self.entity()),
            ("/v1/domains/{domain}/queries/{name}", "get", self.query()),
            ("/v1/cluster", "get", self.cluster()),
            ("/v1/streams", "get", self.list_streams()),
            ("/v1/streams/{stream}/events", "get", self.stream_events()),
            ("/v1/streams/{stream}/tail", "get", self.tail()),
            ("/v1/deadletters", "get", self.dead_letter_counts()),
            ("/v1/deadletters/{domain}", "get", self.dead_letters()),
            (
                "/v1/deadletters/{domain}/{id}/retry",
                "post",
                self.release("retry"),
            ),
            (
                "/v1/deadletters/{domain}/{id}/skip",
                "post",
                self.release("skip"),
            ),
            ("/metrics", "get", self.metrics()),
            ("/healthz", "get", self.healthz()),
            ("/readyz", "get", self.readyz()),
            ("/v1/openapi.json", "get", self.openapi()),
            ("/console", "get", self.console()),
        ];
        let mut paths = Map::new();
        for (path, method, operation) in operations {
            let mut item = Map::new();
            item.insert(method.to_owned(), operation);
            paths.insert(path.to_owned(), Value::Object(item));
        }
        paths
    }

    /// Finishes an operation: the problem any error answers with, and what a token needs.
    fn finish(&self, guard: Guard, mut operation: Map<String, Value>) -> Value {
        let mut responses = match operation.remove("responses") {
            Some(Value::Object(responses)) => responses,
            _ => Map::new(),
        };
        responses.insert("default".to_owned(), shared("responses", "Problem"));
        if let Some(access) = &self.state.access {
            match guard.scope(access) {
                None => {
                    // Overrides nothing, but says plainly that no token is needed.
                    operation.insert("security".to_owned(), json!([]));
                }
                Some(scope) => {
                    operation.insert("security".to_owned(), json!([{"bearerAuth": []}]));
                    operation.insert("x-herald-scope".to_owned(), scope.to_string().into());
                    responses.insert("401".to_owned(), shared("responses", "Unauthorized"));
                    responses.insert("403".to_owned(), shared("responses", "Forbidden"));
                }
            }
        }
        operation.insert("responses".to_owned(), Value::Object(responses));
        Value::Object(operation)
    }

    fn post_events(&mut self) -> Value {
        let state = self.state;
        let mut data = Vec::new();
        let mut events = Vec::new();
        let mut mapping = Map::new();
        let mut type_names = Vec::new();
        for domain in &self.domains {
            let Some(description) = state.catalog.description(domain) else {
                continue;
            };
            let ingress = description
                .types
                .iter()
                .filter(|event_type| description.ingress.contains(&event_type.name));
            for event_type in ingress {
                let data_name = self
                    .components
                    .embed(&format!("Data.{}", event_type.name), &event_type.schema);
                let event = cloud_event(event_type.name, event_type.key_field, &data_name);
                let event_name = self
                    .components
                    .add(&format!("CloudEvent.{}", event_type.name), event);
                mapping.insert(
                    event_type.name.to_owned(),
                    schema_pointer(&event_name).into(),
                );
                data.push(reference(&data_name));
                events.push(reference(&event_name));
                type_names.push(event_type.name);
            }
        }
        let mut structured = one_of("oneOf", events);
        if let Value::Object(choice) = &mut structured {
            if choice.contains_key("oneOf") {
                // The type picks the schema: generators make a tagged union of it.
                choice.insert(
                    "discriminator".to_owned(),
                    json!({"propertyName": "type", "mapping": mapping}),
                );
            }
        }
        let batch = json!({
            "type": "array",
            "minItems": 1,
            "maxItems": state.limits.max_batch_events,
            "items": structured.clone(),
        });
        let mut content = Map::new();
        content.insert(STRUCTURED.to_owned(), json!({"schema": structured}));
        content.insert(BATCH.to_owned(), json!({"schema": batch}));
        content.insert(BINARY.to_owned(), json!({"schema": one_of("anyOf", data)}));
        let positions = one_of(
            "anyOf",
            vec![reference("IngestResult"), reference("IngestResults")],
        );
        let mut operation = described(
            "postEvents",
            "events",
            "Post one event, a batch, or one event in binary mode",
            "Structured mode (`application/cloudevents+json`): one CloudEvent. Batch mode (`application/cloudevents-batch+json`): a JSON array of them, appended all or none. Binary mode (`application/json`): the body is the event's `data`, its attributes are `ce-*` headers (`ce-specversion`, `ce-id`, `ce-source`, `ce-type` and `ce-subject` required). `subject` is the entity's key and must equal the key field in `data`. Answered once the events are durable; a resend (same `source` and `id`, `time` aside) is recognised and answered with the original's position. One event is answered with its position, a batch with `results`, one per event in order.",
        );
        operation.insert(
            "parameters".to_owned(),
            Value::Array(binary_headers(&type_names)),
        );
        operation.insert(
            "requestBody".to_owned(),
            json!({"required": true, "content": content}),
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", answer("Every event was in the log already: nothing was appended; each is answered with its original's position.", "application/json", positions.clone())),
                ("202", answer("Appended and durable (at least one event is new).", "application/json", positions)),
                ("400", problem_answer("Malformed JSON, or an event that is not a valid CloudEvent (a missing or empty attribute, `specversion` other than 1.0, a bad `time`, data that is not JSON, an extension that is not allowed, a bad `ce-*` header); `pointer` says where.")),
                ("409", problem_answer("The owning domain refuses the event in its state (`rejected`, with its reason), or `source` and `id` already name a different event (`id-conflict`).")),
                ("413", problem_answer("The body, the batch or one event is over its limit.")),
                ("415", problem_answer("A content type other than the three accepted (listed in `accepted`).")),
                ("422", problem_answer("An unknown or non-ingress type, `data` that does not fit the type's schema, a `subject` that differs from the key in `data`, or a `partitionkey` other than `subject` for a partitioned domain.")),
                ("429", problem_answer("A domain the request reaches holds as many ingress requests as it takes: retry after `Retry-After` seconds; nothing was appended.")),
                ("503", problem_answer("A domain not ready or not hosted, a log that cannot be written, or the node's body budget spent: retry after `Retry-After` seconds.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Publish), operation)
    }

    fn list_domains(&mut self) -> Value {
        let mut operation = described(
            "listDomains",
            "domains",
            "The topology",
            "Every registered domain: its event types with the JSON Schemas of their `data`, which are ingress, what it subscribes to, its queries with their answers' schemas, its entity's schema, and its status here.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                answer("The topology.", "application/json", reference("Topology")),
            )]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn entity(&mut self) -> Value {
        let entities = self.entity_references();
        let mut operation = described(
            "getEntity",
            "domains",
            "One entity's state",
            "The state of the entity `key` of `domain`, as the domain's `Entity.<domain>` schema describes it; answered only once what it reflects is durable.",
        );
        operation.insert(
            "parameters".to_owned(),
            json!([
                self.domain_parameter(),
                path_parameter(
                    "key",
                    "The entity's key (the `subject` of its events).",
                    string()
                ),
                reflects_parameter(),
            ]),
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", answer("The entity's state: the schema of the domain asked.", "application/json", one_of("anyOf", entities))),
                ("400", problem_answer("A position in `reflects` that is malformed, names no stream, or a stream the domain neither writes nor reads.")),
                ("404", problem_answer("No such domain, or no such entity.")),
                ("503", problem_answer("The domain is not ready, failed or not hosted: retry after `Retry-After` seconds.")),
                ("504", problem_answer("The state did not reflect a position in `reflects` within 4 seconds.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    /// A reference to each hosted domain's `Entity.<domain>` schema, embedded once.
    fn entity_references(&mut self) -> Vec<Value> {
        let state = self.state;
        let mut entities = Vec::new();
        for domain in &self.domains {
            if let Some(description) = state.catalog.description(domain) {
                let name = self.components.embed(
                    &format!("Entity.{}", description.name),
                    &description.entity_schema,
                );
                entities.push(reference(&name));
            }
        }
        entities
    }

    fn entities(&mut self) -> Value {
        let entities = self.entity_references();
        let mut operation = described(
            "listEntities",
            "domains",
            "A page of a domain's entities",
            "Up to `limit` entities of `domain` whose keys come after `after`, in key order, merged over its partitions (on every node that hosts one); `next` is the key to ask `after` for the next page (`null` on the last), also given as `Link: rel=\"next\"`.",
        );
        operation.insert(
            "parameters".to_owned(),
            json!([
                self.domain_parameter(),
                query_parameter(
                    "after",
                    "Only keys after this one (byte order); from the first without it.",
                    string()
                ),
                query_parameter(
                    "limit",
                    "The most entities to answer.",
                    json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
                ),
                reflects_parameter(),
            ]),
        );
        let schema = json!({
            "type": "object",
            "required": ["entities", "next"],
            "properties": {
                "entities": {"type": "array", "items": {
                    "type": "object",
                    "required": ["key", "entity"],
                    "properties": {"key": {"type": "string"}, "entity": one_of("anyOf", entities)},
                }},
                "next": {"type": ["string", "null"], "description": "The key to pass as `after` for the next page; null on the last page."},
            },
        });
        let mut page = answer("The page.", "application/json", schema);
        if let Value::Object(fields) = &mut page {
            fields.insert(
                "headers".to_owned(),
                json!({"Link": {
                    "description": "The next page, `</v1/domains/{domain}/entities?after=KEY&limit=L>; rel=\"next\"`, while more entities follow.",
                    "schema": {"type": "string"},
                }}),
            );
        }
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", page),
                ("400", problem_answer("`limit` is not a whole number from 1 to 1000, or a bad position in `reflects`.")),
                ("404", problem_answer("No such domain.")),
                ("503", problem_answer("A partition of the domain is not ready, failed or not hosted: retry after `Retry-After` seconds.")),
                ("504", problem_answer("The state did not reflect a position in `reflects` within 4 seconds.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn query(&mut self) -> Value {
        let state = self.state;
        let mut answers = Vec::new();
        let mut names = BTreeSet::new();
        for domain in &self.domains {
            let Some(description) = state.catalog.description(domain) else {
                continue;
            };
            for query in &description.queries {
                let name = self.components.embed(
                    &format!("Answer.{}.{}", description.name, query.name),
                    &query.schema,
                );
                answers.push(reference(&name));
                names.insert(query.name.to_owned());
            }
        }
        let mut operation = described(
            "runQuery",
            "domains",
            "A named query",
            "Runs the query `name` of `domain` (see `queries` in GET /v1/domains). A domain spread over partitions answers for all of them, their answers combined. Its parameters are the query string, as the query reads them.",
        );
        let parameters = json!({
            "name": "parameters",
            "in": "query",
            "description": "The query's parameters, each `name=value` (orders' `statuses` takes `customer`); a query ignores those it does not read.",
            "style": "form",
            "explode": true,
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        });
        operation.insert(
            "parameters".to_owned(),
            json!([
                self.domain_parameter(),
                path_parameter(
                    "name",
                    "The query's name.",
                    names_schema(names.into_iter().collect())
                ),
                reflects_parameter(),
                parameters,
            ]),
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", answer("The answer: the schema of the query asked (`Answer.<domain>.<name>`).", "application/json", one_of("anyOf", answers))),
                ("400", problem_answer("A parameter the query cannot use, or a bad position in `reflects`.")),
                ("404", problem_answer("No such domain, or no such query.")),
                ("503", problem_answer("The domain is not ready, failed or not hosted: retry after `Retry-After` seconds.")),
                ("504", problem_answer("The state did not reflect a position in `reflects` within 4 seconds.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn cluster(&mut self) -> Value {
        let mut operation = described(
            "getCluster",
            "cluster",
            "The nodes and the owners of each stream",
            "The live nodes (id, HTTP address, version, each hosted stream's status), the nodes hosting each domain, and each domain's partitions with their owners; embedded, this node alone.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                (
                    "200",
                    answer("The cluster.", "application/json", reference("Cluster")),
                ),
                (
                    "503",
                    problem_answer(
                        "(networked) NATS cannot be reached: retry after `Retry-After` seconds.",
                    ),
                ),
            ]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn list_streams(&mut self) -> Value {
        let mut content = Map::new();
        content.insert(
            "application/json".to_owned(),
            json!({"schema": reference("Streams")}),
        );
        content.insert(
            "text/event-stream".to_owned(),
            json!({"schema": {"type": "string"}}),
        );
        let mut operation = described(
            "listStreams",
            "streams",
            "Every stream and its subscribers' progress",
            "Every stream with its last sequence, and each subscribing domain's (or partition's) consumed sequence and lag. With `Accept: text/event-stream`, the same JSON as a server-sent event `event: streams` once a second, for as long as the client stays.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                json!({"description": "The streams: JSON, or with `Accept: text/event-stream` a server-sent event `event: streams` whose `data` is that JSON, once a second.", "content": content}),
            )]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn stream_events(&mut self) -> Value {
        let mut operation = described(
            "readStreamEvents",
            "streams",
            "A page of a stream's events",
            "Up to `limit` durable events from sequence `from`, in order, as a CloudEvents batch with their `stream` and `sequence` (and, for reactions, `causesource`, `causeid`, `causestream`, `causesequence`); a `Link: rel=\"next\"` header while more follow. A dead-letter stream (`deadletter-<stream>`) needs the admin scope.",
        );
        operation.insert(
            "parameters".to_owned(),
            json!([
                self.stream_parameter(),
                query_parameter(
                    "from",
                    "The first sequence to read.",
                    json!({"type": "integer", "minimum": 1, "maximum": u64::MAX, "default": 1})
                ),
                query_parameter(
                    "limit",
                    "The most events to answer.",
                    json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
                ),
                query_parameter(
                    "upcast",
                    "`true`: each event's `data` in its type's current layout (one stored at an older version upcast, `heraldversion` the current one), as its domain sees it; `false` (the default): as stored.",
                    json!({"type": "boolean", "default": false})
                ),
            ]),
        );
        let mut page = answer(
            "The events (an empty array past the last).",
            BATCH,
            json!({"type": "array", "items": reference("StoredCloudEvent")}),
        );
        if let Value::Object(fields) = &mut page {
            fields.insert(
                "headers".to_owned(),
                json!({"Link": {
                    "description": "The next page, `</v1/streams/{stream}/events?from=N&limit=L>; rel=\"next\"`, while more events follow.",
                    "schema": {"type": "string"},
                }}),
            );
        }
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", page),
                (
                    "400",
                    problem_answer(
                        "`from` or `limit` is not a whole number in range (`parameter` names it).",
                    ),
                ),
                ("404", problem_answer("No such stream.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn tail(&mut self) -> Value {
        let mut operation = described(
            "tailStream",
            "streams",
            "Follow a stream live (server-sent events)",
            "Each durable event as a server-sent event (`id:` its sequence, `event:` its type, `data:` the CloudEvent), from `from`, or without it only new events; then each new one as it becomes durable, and a `: keepalive` comment every 15 s. Reconnecting with `Last-Event-ID: N` resumes at `N+1`. The response ends only when the node shuts down.",
        );
        operation.insert(
            "parameters".to_owned(),
            json!([
                self.stream_parameter(),
                query_parameter("from", "The first sequence to send; without it, only events after the stream's last.", json!({"type": "integer", "minimum": 1, "maximum": u64::MAX})),
                header_parameter("Last-Event-ID", "The sequence of the last event received: the tail resumes after it (takes precedence over `from`).", json!({"type": "string", "pattern": "^\\s*[0-9]+\\s*$"})),
            ]),
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", answer("The event stream.", "text/event-stream", json!({"type": "string"}))),
                ("400", problem_answer("`from` or `Last-Event-ID` is not a sequence number in range.")),
                ("404", problem_answer("No such stream.")),
                ("503", problem_answer("The node serves as many tails as `[http] max_tails`: retry after `Retry-After` seconds.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn dead_letter_counts(&mut self) -> Value {
        let mut operation = described(
            "countDeadLetters",
            "dead letters",
            "Parked inputs per domain",
            "For each domain hosted here (each partition of a partitioned one): its dead-letter stream, how many inputs are parked and how many wait behind them.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                answer(
                    "The counts.",
                    "application/json",
                    reference("DeadLetterCounts"),
                ),
            )]),
        );
        self.finish(Guard::Scope(Scope::Admin), operation)
    }

    fn dead_letters(&mut self) -> Value {
        let mut operation = described(
            "listDeadLetters",
            "dead letters",
            "A domain's parked inputs",
            "The inputs `domain` parked, each with its error, attempts and the inputs waiting behind it. A partitioned domain whose partitions run here lists every partition's, each naming its `stream`; a partition stream (`orders-p3`) lists its own.",
        );
        operation.insert(
            "parameters".to_owned(),
            json!([self.dead_letter_domain_parameter()]),
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                (
                    "200",
                    answer(
                        "The parked inputs.",
                        "application/json",
                        reference("DeadLetters"),
                    ),
                ),
                ("404", problem_answer("No such domain or stream.")),
                ("503", problem_answer("The domain is not hosted here.")),
            ]),
        );
        self.finish(Guard::Scope(Scope::Admin), operation)
    }

    /// `POST /v1/deadletters/{domain}/{id}/retry` or `.../skip`, by `action`.
    fn release(&mut self, action: &str) -> Value {
        let mut operation = match action {
            "retry" => described(
                "retryDeadLetter",
                "dead letters",
                "Run the handler on a parked input again",
                "Runs the domain's handler on the parked input `id` again (after a fix); on success its key is released and the inputs that waited behind it are handled in order. Answered once that is durable.",
            ),
            _ => described(
                "skipDeadLetter",
                "dead letters",
                "Give up on a parked input",
                "Gives up on the parked input `id` (recorded as `herald.deadletter.skipped`) and releases its key; the inputs that waited behind it are handled in order. Answered once that is durable.",
            ),
        };
        operation.insert(
            "parameters".to_owned(),
            json!([
                self.dead_letter_domain_parameter(),
                path_parameter(
                    "id",
                    "The dead letter's id, as GET /v1/deadletters/{domain} lists it.",
                    string()
                ),
            ]),
        );
        let mut answers = vec![
            (
                "200",
                answer("Released.", "application/json", reference("Released")),
            ),
            ("404", problem_answer("No such domain, or no such parked input.")),
            (
                "503",
                problem_answer("The domain is not ready, restarting, or cannot release now: retry after `Retry-After` seconds."),
            ),
        ];
        if action == "retry" {
            answers.push((
                "409",
                problem_answer(
                    "The handler failed again: the input stays parked (`error` says why).",
                ),
            ));
        }
        operation.insert("responses".to_owned(), responses(answers));
        self.finish(Guard::Scope(Scope::Admin), operation)
    }

    fn metrics(&mut self) -> Value {
        let mut operation = described(
            "getMetrics",
            "operations",
            "Prometheus metrics",
            "The Prometheus text exposition: log head, events per stream, each domain's lag, readiness, failures and parked dead letters, ingress slots and 429s, answers to POST /v1/events by status, connections and memory.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                answer("The metrics.", "text/plain", json!({"type": "string"})),
            )]),
        );
        self.finish(Guard::Metrics, operation)
    }

    fn healthz(&mut self) -> Value {
        let mut operation = described(
            "healthz",
            "operations",
            "Liveness",
            "Answers while the process runs.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                answer("Alive.", "application/json", reference("Health")),
            )]),
        );
        self.finish(Guard::Open, operation)
    }

    fn readyz(&mut self) -> Value {
        let mut operation = described(
            "readyz",
            "operations",
            "Readiness",
            "200 once every domain hosted here has caught up with the log and takes events; 503 while one is starting or failed (naming it and why), while appends to the log fail, or (networked) while NATS cannot be reached.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![
                ("200", answer("Ready.", "application/json", reference("Readiness"))),
                ("503", problem_answer("Not ready: `domains` gives each domain's status and `failed` why those failed.")),
            ]),
        );
        self.finish(Guard::Open, operation)
    }

    fn openapi(&mut self) -> Value {
        let mut operation = described(
            "getOpenApi",
            "documentation",
            "This document",
            "The OpenAPI 3.1 document of this node's HTTP API, generated from its catalog; with auth on it needs the query scope, as GET /v1/domains does, since it shows the same topology.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                answer(
                    "The document.",
                    "application/json",
                    json!({"type": "object"}),
                ),
            )]),
        );
        self.finish(Guard::Scope(Scope::Query), operation)
    }

    fn console(&mut self) -> Value {
        let mut operation = described(
            "getConsole",
            "documentation",
            "The console",
            "A web page to look at the node: its domains, streams and events.",
        );
        operation.insert(
            "responses".to_owned(),
            responses(vec![(
                "200",
                answer("The page.", "text/html", json!({"type": "string"})),
            )]),
        );
        self.finish(Guard::Open, operation)
    }

    /// `{domain}`: one of the domains served here. Enumerated so a client (or a fuzzer)
    /// names only domains there are; any other name is answered 404.
    fn domain_parameter(&self) -> Value {
        let names = self.domains.iter().map(|name| (*name).to_owned()).collect();
        path_parameter("domain", "The domain's name.", names_schema(names))
    }

    /// `{domain}` of the dead-letter routes: a domain, or one of its partition streams.
    fn dead_letter_domain_parameter(&self) -> Value {
        let mut names = BTreeSet::new();
        for domain in &self.domains {
            names.insert((*domain).to_owned());
            let streams = self.state.layout.streams(domain);
            if streams.len() > 1 {
                names.extend(streams.iter().map(|stream| (*stream).to_owned()));
            }
        }
        path_parameter(
            "domain",
            "A domain, or one of its partition streams (`orders-p3`).",
            names_schema(names.into_iter().collect()),
        )
    }

    /// `{stream}`: any stream in the log. The served domains' streams are suggested, not
    /// enumerated: dead-letter streams and streams of other domains in the log are read
    /// too, and an `enum` would hide them from clients.
    fn stream_parameter(&self) -> Value {
        let streams: BTreeSet<&str> = self
            .domains
            .iter()
            .flat_map(|domain| self.state.layout.streams(domain).iter().copied())
            .collect();
        let mut schema = json!({"type": "string", "minLength": 1});
        if !streams.is_empty() {
            // A fuzzer picks the listed names often and other strings too.
            schema = json!({
                "type": "string",
                "anyOf": [{"enum": streams}, {"minLength": 1}],
            });
        }
        path_parameter(
            "stream",
            "A stream: a domain's (`inventory`), a partition's (`orders-p3`) or a dead-letter stream (`deadletter-orders-p3`, admin scope).",
            schema,
        )
    }
}

/// The document's `components/schemas`, each name given once.
#[derive(Default)]
struct Components {
    schemas: Map<String, Value>,
}

impl Components {
    /// `wanted` in the characters a component name may use, made unique if it is taken.
    fn free_name(&self, wanted: &str) -> String {
        let base: String = wanted
            .chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    true => c,
                    false => '_',
                },
            )
            .collect();
        let base = if base.is_empty() {
            "_".to_owned()
        } else {
            base
        };
        let mut name = base.clone();
        let mut suffix = 2;
        while self.schemas.contains_key(&name) {
            name = format!("{base}_{suffix}");
            suffix += 1;
        }
        name
    }

    /// Adds `schema` under `name` (made unique); returns the name it got.
    fn add(&mut self, name: &str, schema: Value) -> String {
        let name = self.free_name(name);
        self.schemas.insert(name.clone(), schema);
        name
    }

    /// Adds a domain's schema under `name`: its definitions become schemas of their own
    /// (`<name>.<definition>`), every reference is rewritten to where its target now is,
    /// and `$schema` is dropped (the document's dialect applies). Returns the name it got.
    fn embed(&mut self, name: &str, schema: &Value) -> String {
        let mut root = schema.clone();
        let root_name = self.add(name, Value::Null);
        let mut definitions = Vec::new();
        let mut moved = BTreeMap::new();
        if let Value::Object(object) = &mut root {
            for container in DEFINITIONS {
                let Some(Value::Object(found)) = object.remove(container) else {
                    continue;
                };
                for (definition, definition_schema) in found {
                    // Reserved at once, so no later definition takes the same name.
                    let target = self.add(&format!("{root_name}.{definition}"), Value::Null);
                    moved.insert((container.to_owned(), definition), target.clone());
                    definitions.push((target, definition_schema));
                }
            }
        }
        let targets = Targets {
            root: &root_name,
            definitions: &moved,
        };
        rewrite(&mut root, &targets);
        for (target, mut definition_schema) in definitions {
            rewrite(&mut definition_schema, &targets);
            self.schemas.insert(target, definition_schema);
        }
        self.schemas.insert(root_name.clone(), root);
        root_name
    }
}

/// Where schemars (draft 2020-12) and older generators (draft 7) keep definitions.
const DEFINITIONS: [&str; 2] = ["$defs", "definitions"];

/// Keywords whose value is a map of schemas.
const SCHEMA_MAPS: [&str; 5] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "dependentSchemas",
];

/// Keywords whose value is a schema or an array of schemas.
const SCHEMA_LISTS: [&str; 5] = ["allOf", "anyOf", "oneOf", "prefixItems", "items"];

/// Keywords whose value is one schema.
const SCHEMA_ONE: [&str; 11] = [
    "not",
    "if",
    "then",
    "else",
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
];

/// Where the references of one embedded schema now point.
struct Targets<'a> {
    /// The component the schema itself became.
    root: &'a str,
    /// Each definition, by container (`$defs`) and name, to its component.
    definitions: &'a BTreeMap<(String, String), String>,
}

impl Targets<'_> {
    /// `reference` pointed into the document; `None` leaves it as it is (not a JSON
    /// pointer into the schema, such as another document's URI).
    fn retarget(&self, reference: &str) -> Option<String> {
        let fragment = reference.strip_prefix('#')?;
        if fragment.is_empty() {
            return Some(schema_pointer(self.root));
        }
        if !fragment.starts_with('/') {
            return None;
        }
        // Percent-escapes never encode `/`, so the raw tokens split where decoded ones do.
        let tokens: Vec<&str> = fragment.split('/').collect();
        if let [_, container, definition, rest @ ..] = tokens.as_slice() {
            let key = (pointer_token(container)?, pointer_token(definition)?);
            if let Some(target) = self.definitions.get(&key) {
                return Some(rest.iter().fold(schema_pointer(target), |pointer, token| {
                    format!("{pointer}/{token}")
                }));
            }
        }
        // Anywhere else in the schema: it is whole at its component, but for its definitions.
        Some(format!("{}{fragment}", schema_pointer(self.root)))
    }
}

/// Rewrites the references in `schema` and in every schema inside it. Walks keywords, not
/// any JSON: a property may be named `$ref`, and `const`, `enum` and `default` hold data.
fn rewrite(schema: &mut Value, targets: &Targets<'_>) {
    let Value::Object(object) = schema else {
        // `true`, `false`: nothing inside.
        return;
    };
    object.remove("$schema");
    if let Some(Value::String(reference)) = object.get_mut("$ref") {
        if let Some(target) = targets.retarget(reference) {
            *reference = target;
        }
    }
    for (keyword, value) in object.iter_mut() {
        let keyword = keyword.as_str();
        if SCHEMA_MAPS.contains(&keyword) {
            if let Value::Object(schemas) = value {
                schemas
                    .values_mut()
                    .for_each(|inner| rewrite(inner, targets));
            }
        } else if SCHEMA_LISTS.contains(&keyword) {
            match value {
                Value::Array(schemas) => {
                    schemas.iter_mut().for_each(|inner| rewrite(inner, targets))
                }
                inner => rewrite(inner, targets),
            }
        } else if SCHEMA_ONE.contains(&keyword) {
            rewrite(value, targets);
        }
    }
}

/// One token of a JSON pointer in a URI fragment, decoded: percent-escapes, then `~1`
/// and `~0`. `None` if its escapes do not decode to UTF-8.
fn pointer_token(raw: &str) -> Option<String> {
    let text = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    Some(text.replace("~1", "/").replace("~0", "~"))
}

/// The JSON pointer to a component schema.
fn schema_pointer(name: &str) -> String {
    format!("#/components/schemas/{name}")
}

/// A `$ref` to a component schema.
fn reference(name: &str) -> Value {
    json!({"$ref": schema_pointer(name)})
}

/// A `$ref` to another kind of component (`responses`, `headers`).
fn shared(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

/// `schemas` combined with `keyword` (`oneOf`, `anyOf`); one alone stands for itself, and
/// none is `false`: nothing fits (a node serving no such thing).
fn one_of(keyword: &str, mut schemas: Vec<Value>) -> Value {
    match schemas.len() {
        0 => Value::Bool(false),
        1 => schemas.swap_remove(0),
        _ => {
            let mut choice = Map::new();
            choice.insert(keyword.to_owned(), Value::Array(schemas));
            Value::Object(choice)
        }
    }
}

/// A string that is one of `names`, or any non-empty string when there are none.
fn names_schema(names: Vec<String>) -> Value {
    match names.is_empty() {
        true => json!({"type": "string", "minLength": 1}),
        false => json!({"type": "string", "enum": names}),
    }
}

fn string() -> Value {
    json!({"type": "string"})
}

/// A string with a description.
fn text(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

/// A whole number from 0.
fn count() -> Value {
    json!({"type": "integer", "minimum": 0})
}

fn strings() -> Value {
    array(string())
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// An object whose other members are all `values`.
fn map_of(values: Value) -> Value {
    json!({"type": "object", "additionalProperties": values})
}

/// An object with these `properties`, of which `required` are always present; other
/// members are allowed, so an answer that gains one still conforms.
fn object(required: &[&str], properties: Vec<(&str, Value)>) -> Value {
    let properties: Map<String, Value> = properties
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    json!({"type": "object", "required": required, "properties": properties})
}

/// A string holding something other than white space, as a required attribute must.
fn non_blank(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "pattern": "\\S", "description": description})
}

/// Attributes Herald assigns itself, which a client may not send.
const RESERVED_ATTRIBUTES: [&str; 7] = herald_runtime::cloudevent::RESERVED;

/// The names an attribute may have (`cloudevent.rs`: 1 to 20 lowercase letters or digits).
const ATTRIBUTE_NAME: &str = "^[a-z0-9]{1,20}$";

/// Structured mode's schema of one event of ingress type `event_type`, keyed by
/// `key_field`, its `data` the component `data`.
fn cloud_event(event_type: &str, key_field: &str, data: &str) -> Value {
    let mut properties = Map::new();
    let attributes = [
        ("specversion", json!({"type": "string", "const": SPEC_VERSION})),
        ("id", non_blank("Unique for its source: a resend with the same source and id is recognised as one event.")),
        ("source", json!({
            "type": "string",
            "minLength": 1,
            "pattern": "\\S",
            "not": {"pattern": format!("^{RESERVED_SOURCE_PREFIX}")},
            "description": format!("The producer's URI; sources starting with {RESERVED_SOURCE_PREFIX} are Herald's own."),
        })),
        ("type", json!({"type": "string", "const": event_type})),
        ("subject", non_blank(&format!("The entity's key: equal to data.{key_field}."))),
        ("time", json!({"type": "string", "format": "date-time", "description": "RFC 3339; the time it arrives when absent."})),
        ("datacontenttype", json!({"type": "string", "enum": [JSON_CONTENT_TYPE], "description": "data is always JSON: any spelling of application/json, with parameters, is taken."})),
        ("partitionkey", json!({"type": "string", "minLength": 1, "description": "For a domain spread over partitions, equal to subject (its default)."})),
        ("traceparent", text("W3C trace context, kept with the event.")),
        ("data", reference(data)),
    ];
    for (name, schema) in attributes {
        properties.insert(name.to_owned(), schema);
    }
    for name in RESERVED_ATTRIBUTES {
        // `false`: present at all, the event is refused.
        properties.insert(name.to_owned(), Value::Bool(false));
    }
    json!({
        "type": "object",
        "title": event_type,
        "required": ["specversion", "id", "source", "type", "subject", "data"],
        "properties": properties,
        "propertyNames": {"pattern": ATTRIBUTE_NAME},
        "additionalProperties": {
            "type": ["string", "number", "boolean", "null"],
            "description": "An extension attribute, kept with the event as a string.",
        },
    })
}

/// Binary mode's `ce-*` headers, which structured and batch modes ignore, and the
/// request's `traceparent`.
fn binary_headers(type_names: &[&str]) -> Vec<Value> {
    // Visible ASCII and spaces, with something visible (percent-escapes are decoded).
    let visible = || json!({"type": "string", "pattern": "^[\\t -~]*[!-~][\\t -~]*$"});
    let types = names_schema(type_names.iter().map(|name| (*name).to_owned()).collect());
    let headers = [
        (
            "ce-specversion",
            "Binary mode: required, 1.0.",
            json!({"type": "string", "enum": [SPEC_VERSION]}),
        ),
        ("ce-id", "Binary mode: required; the event's id.", visible()),
        (
            "ce-source",
            "Binary mode: required; the event's source.",
            visible(),
        ),
        ("ce-type", "Binary mode: required; an ingress type.", types),
        (
            "ce-subject",
            "Binary mode: required; the entity's key.",
            visible(),
        ),
        (
            "ce-time",
            "Binary mode: the event's time, RFC 3339.",
            json!({"type": "string", "format": "date-time"}),
        ),
        (
            "ce-datacontenttype",
            "Binary mode: application/json if given.",
            json!({"type": "string", "enum": [JSON_CONTENT_TYPE]}),
        ),
        (
            "ce-partitionkey",
            "Binary mode: equal to ce-subject for a partitioned domain.",
            visible(),
        ),
        (
            "ce-traceparent",
            "Binary mode: W3C trace context.",
            visible(),
        ),
        (
            "traceparent",
            "The request's W3C trace context: each event's ingest span is its child (ignored when not valid).",
            string(),
        ),
    ];
    headers
        .into_iter()
        .map(|(name, description, schema)| header_parameter(name, description, schema))
        .collect()
}

fn path_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

/// `reflects`: the positions a read waits for (see `gateway/positions.rs`).
fn reflects_parameter() -> Value {
    query_parameter(
        "reflects",
        "Positions the answer must reflect, `stream:sequence` as POST /v1/events answers them, comma-separated (at most 64): the answer waits until the domain's state includes each (its own record applied, or an input handled with its reactions appended), or is 504 after 4 seconds. The `Herald-Reflects` header does the same.",
        json!({"type": "string"}),
    )
}

fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn header_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "header", "required": false, "description": description, "schema": schema})
}

/// An operation's id, tag, summary and description, to which the rest is added.
fn described(id: &str, tag: &str, summary: &str, description: &str) -> Map<String, Value> {
    let mut operation = Map::new();
    operation.insert("operationId".to_owned(), id.into());
    operation.insert("tags".to_owned(), json!([tag]));
    operation.insert("summary".to_owned(), summary.into());
    operation.insert("description".to_owned(), description.into());
    operation
}

fn responses(answers: Vec<(&str, Value)>) -> Value {
    Value::Object(
        answers
            .into_iter()
            .map(|(status, answer)| (status.to_owned(), answer))
            .collect(),
    )
}

/// A response of `media_type` whose body is `schema`.
fn answer(description: &str, media_type: &str, schema: Value) -> Value {
    let mut content = Map::new();
    content.insert(media_type.to_owned(), json!({"schema": schema}));
    json!({"description": description, "content": content})
}

/// An error response: a problem, perhaps with `Retry-After`.
fn problem_answer(description: &str) -> Value {
    let mut content = Map::new();
    content.insert(
        PROBLEM_JSON.to_owned(),
        json!({"schema": reference("Problem")}),
    );
    json!({
        "description": description,
        "headers": {"Retry-After": shared("headers", "Retry-After")},
        "content": content,
    })
}

/// `components/responses`: the problem every error is, and (auth on) 401 and 403.
fn shared_responses(auth: bool) -> Value {
    let mut answers = Map::new();
    answers.insert(
        "Problem".to_owned(),
        problem_answer("An error: a problem (RFC 9457) whose `type` is one of x-problem-types."),
    );
    if auth {
        answers.insert(
            "Unauthorized".to_owned(),
            problem_answer("No bearer token, or not a valid one."),
        );
        answers.insert(
            "Forbidden".to_owned(),
            problem_answer("The token lacks the scope (x-herald-scope) or the domain."),
        );
    }
    Value::Object(answers)
}

fn shared_headers() -> Value {
    json!({"Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }})
}

fn info(state: &GatewayState, domains: &[&str]) -> Value {
    let mode = match state.nats {
        Some(_) => "networked (NATS)",
        None => "embedded",
    };
    let auth = match state.access {
        Some(_) => "on: bearer tokens",
        None => "off",
    };
    let description = format!(
        "The HTTP API of Herald node {}: {mode} mode, auth {auth}, serving {}. Generated from the node's catalog: the event types, entities and query answers are those of the domains it serves. Every 4xx and 5xx is application/problem+json (RFC 9457): the Problem schema; x-problem-types lists every problem type with its title and status.",
        state.node,
        domains.join(", ")
    );
    json!({
        "title": format!("Herald node {}", state.node),
        "version": env!("CARGO_PKG_VERSION"),
        "description": description,
    })
}

fn tags() -> Value {
    json!([
        {"name": "events", "description": "Posting CloudEvents to the domains."},
        {"name": "domains", "description": "The topology, entities and named queries."},
        {"name": "streams", "description": "The event log: streams, pages of events, live tails."},
        {"name": "dead letters", "description": "Inputs a domain could not handle: list, retry, skip."},
        {"name": "cluster", "description": "The nodes and the owners of each stream."},
        {"name": "operations", "description": "Liveness, readiness and metrics."},
        {"name": "documentation", "description": "This document and the console."},
    ])
}

/// A problem type's URI, exactly as a problem of it renders it.
fn type_uri(problem: &Problem) -> Value {
    problem.body().get("type").cloned().unwrap_or(Value::Null)
}

/// The catalogue of problem types, for `x-problem-types`.
fn problem_types() -> Value {
    problem::KINDS
        .iter()
        .map(|kind| {
            json!({
                "type": type_uri(&Problem::new(*kind, "")),
                "slug": kind.slug,
                "title": kind.title,
                "status": kind.status.as_u16(),
            })
        })
        .collect()
}

/// Herald's own schemas: problems and the answers of every route but entities and queries.
fn fixed_schemas(state: &GatewayState) -> Vec<(&'static str, Value)> {
    let mut types: Vec<Value> = problem::KINDS
        .iter()
        .map(|kind| type_uri(&Problem::new(*kind, "")))
        .collect();
    if state.nats.is_some() {
        // A problem relayed from the hosting node without a type of its own.
        types.push(type_uri(&Problem::relayed(StatusCode::BAD_GATEWAY)));
    }
    vec![
        ("Problem", problem_schema(types)),
        ("IngestResult", ingest_result()),
        (
            "IngestResults",
            object(
                &["results"],
                vec![("results", array(reference("IngestResult")))],
            ),
        ),
        (
            "Topology",
            object(&["domains"], vec![("domains", array(reference("Domain")))]),
        ),
        ("Domain", domain_schema()),
        ("Cluster", cluster_schema()),
        ("Member", member_schema()),
        ("Streams", streams_schema()),
        ("StoredCloudEvent", stored_cloud_event()),
        ("DeadLetterCounts", dead_letter_counts()),
        ("DeadLetters", dead_letters_schema()),
        ("DeadLetter", dead_letter()),
        ("DeadLetterInput", dead_letter_input()),
        ("Released", released()),
        (
            "Health",
            object(&["status"], vec![("status", json!({"const": "ok"}))]),
        ),
        ("Readiness", readiness()),
    ]
}

fn problem_schema(types: Vec<Value>) -> Value {
    let mut schema = object(
        &["type", "title", "status", "detail"],
        vec![
            ("type", json!({"type": "string", "format": "uri", "enum": types, "description": "The problem type: x-problem-types gives each one's title and status."})),
            ("title", text("The type's title, the same for every problem of the type.")),
            ("status", json!({"type": "integer", "minimum": 400, "maximum": 599})),
            ("detail", text("What happened, and what to do about it.")),
            ("instance", string()),
            ("attribute", text("The CloudEvents attribute at fault.")),
            ("pointer", text("A JSON pointer into the request body, such as /data/lines/0/quantity, or /3/source in a batch.")),
            ("index", json!({"type": "integer", "minimum": 0, "description": "The event's place in a batch."})),
            ("domain", text("The domain concerned.")),
            ("header", text("The header at fault.")),
            ("parameter", text("The query parameter at fault.")),
            ("scope", text("The scope the token lacks.")),
            ("allow", text("The method the path takes (405).")),
            ("line", count()),
            ("column", count()),
            ("limit", count()),
            ("size", count()),
            ("accepted", strings()),
            ("ingress_types", strings()),
            ("differs", strings()),
        ],
    );
    if let Value::Object(fields) = &mut schema {
        fields.insert(
            "description".to_owned(),
            "Problem details (RFC 9457); other members depend on the type.".into(),
        );
    }
    schema
}

fn ingest_result() -> Value {
    object(
        &["id", "source", "stream", "sequence", "status"],
        vec![
            ("id", string()),
            ("source", string()),
            (
                "stream",
                text("The stream it is in: its domain's, or its partition's (orders-p3)."),
            ),
            ("sequence", count()),
            (
                "status",
                json!({"type": "string", "enum": ["accepted", "duplicate"]}),
            ),
        ],
    )
}

fn domain_schema() -> Value {
    let event_type = object(
        &["ingress", "key", "schema"],
        vec![
            ("ingress", json!({"type": "boolean"})),
            ("key", text("The data field holding the entity key.")),
            (
                "schema",
                json!({"description": "JSON Schema (draft 2020-12) of data."}),
            ),
        ],
    );
    object(
        &[
            "name",
            "stream",
            "hosted",
            "types",
            "ingress",
            "subscriptions",
            "queries",
            "query_answers",
            "entity",
            "partitioned",
            "input_keys",
            "status",
        ],
        vec![
            ("name", string()),
            ("stream", string()),
            ("hosted", json!({"type": "boolean"})),
            ("types", map_of(event_type)),
            ("ingress", strings()),
            ("subscriptions", strings()),
            ("queries", strings()),
            (
                "query_answers",
                map_of(json!({"description": "JSON Schema of the answer."})),
            ),
            (
                "entity",
                json!({"description": "JSON Schema of an entity."}),
            ),
            ("partitioned", json!({"type": "boolean"})),
            ("input_keys", map_of(string())),
            (
                "status",
                json!({"type": "string", "enum": ["starting", "ready", "failed", "not-hosted"]}),
            ),
            ("failure", text("Why it failed.")),
        ],
    )
}

fn cluster_schema() -> Value {
    let owner = object(
        &["partition", "stream", "node", "since", "status"],
        vec![
            ("partition", count()),
            ("stream", string()),
            ("node", json!({"type": ["string", "null"]})),
            (
                "since",
                json!({"type": ["integer", "null"], "minimum": 0, "description": "Milliseconds since the Unix epoch."}),
            ),
            ("status", text("starting, ready, failed, or unowned.")),
        ],
    );
    object(
        &["mode", "node", "nodes", "domains", "partitions"],
        vec![
            (
                "mode",
                json!({"type": "string", "enum": ["embedded", "nats"]}),
            ),
            ("node", text("This node's id.")),
            ("nodes", array(reference("Member"))),
            ("domains", map_of(strings())),
            (
                "partitions",
                map_of(object(
                    &["count", "owners"],
                    vec![("count", count()), ("owners", array(owner))],
                )),
            ),
        ],
    )
}

fn member_schema() -> Value {
    object(
        &["id", "http", "version", "domains", "enabled"],
        vec![
            ("id", string()),
            ("http", text("Where its gateway listens.")),
            ("version", string()),
            ("domains", map_of(text("starting, ready or failed."))),
            ("enabled", strings()),
        ],
    )
}

fn streams_schema() -> Value {
    let subscriber = object(
        &["domain", "consumed", "lag"],
        vec![
            ("domain", string()),
            ("consumed", count()),
            ("lag", count()),
            (
                "stream",
                text("The partition stream, for a partitioned subscriber."),
            ),
        ],
    );
    let stream = object(
        &["stream", "last_sequence", "subscribers"],
        vec![
            ("stream", string()),
            ("last_sequence", count()),
            ("subscribers", array(subscriber)),
        ],
    );
    object(
        &["streams", "head"],
        vec![
            ("streams", array(stream)),
            (
                "head",
                json!({"type": ["integer", "null"], "minimum": 0, "description": "The log's node-wide offset; null in networked mode."}),
            ),
        ],
    )
}

fn stored_cloud_event() -> Value {
    let mut schema = object(
        &[
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "partitionkey",
            "stream",
            "sequence",
            "data",
        ],
        vec![
            ("specversion", string()),
            ("id", string()),
            ("source", string()),
            ("type", string()),
            ("subject", string()),
            ("time", string()),
            ("datacontenttype", string()),
            ("partitionkey", string()),
            ("traceparent", string()),
            ("causesource", string()),
            ("causeid", string()),
            ("causestream", string()),
            ("causesequence", count()),
            ("stream", string()),
            ("sequence", count()),
            (
                "data",
                json!({"description": "The event's data, as its type's schema says."}),
            ),
        ],
    );
    if let Value::Object(fields) = &mut schema {
        // Extension attributes are kept as strings.
        fields.insert("additionalProperties".to_owned(), string());
    }
    schema
}

fn dead_letter_counts() -> Value {
    let domain = object(
        &["domain", "stream", "parked", "waiting"],
        vec![
            ("domain", text("The domain, or the partition stream.")),
            ("stream", text("Its dead-letter stream.")),
            ("parked", count()),
            ("waiting", count()),
        ],
    );
    object(&["domains"], vec![("domains", array(domain))])
}

fn dead_letters_schema() -> Value {
    object(
        &["domain", "dead_letters"],
        vec![
            ("domain", string()),
            (
                "stream",
                text("Its dead-letter stream (one partition or an unpartitioned domain)."),
            ),
            ("streams", strings()),
            ("dead_letters", array(reference("DeadLetter"))),
        ],
    )
}

fn dead_letter() -> Value {
    object(
        &["id", "input", "error", "attempts", "parked_at", "waiting"],
        vec![
            ("id", string()),
            ("input", reference("DeadLetterInput")),
            ("error", string()),
            ("attempts", count()),
            ("parked_at", string()),
            ("waiting", count()),
            ("stream", text("The partition's dead-letter stream.")),
        ],
    )
}

fn dead_letter_input() -> Value {
    object(
        &[
            "stream", "sequence", "offset", "id", "source", "type", "key",
        ],
        vec![
            ("stream", string()),
            ("sequence", count()),
            ("offset", count()),
            ("id", string()),
            ("source", string()),
            ("type", string()),
            ("key", string()),
        ],
    )
}

fn released() -> Value {
    object(
        &[
            "domain",
            "stream",
            "id",
            "action",
            "handled",
            "parked_again",
            "still_waiting",
        ],
        vec![
            ("domain", string()),
            ("stream", text("The stream (partition) that had parked it.")),
            ("id", string()),
            (
                "action",
                json!({"type": "string", "enum": ["retried", "skipped"]}),
            ),
            ("handled", count()),
            ("parked_again", json!({"type": ["string", "null"]})),
            ("still_waiting", count()),
        ],
    )
}

fn readiness() -> Value {
    object(
        &["status", "domains"],
        vec![
            ("status", json!({"const": "ready"})),
            (
                "domains",
                map_of(json!({"type": "string", "enum": ["starting", "ready", "failed"]})),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedded_schema_s_definitions_become_components_and_its_refs_follow() {
        let mut components = Components {
            schemas: Map::new(),
        };
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "line": {"$ref": "#/$defs/Line"},
                "odd": {"$ref": "#/$defs/a~1b%20c"},
                "whole": {"$ref": "#"},
                "$ref": {"const": {"$ref": "#/$defs/Line"}}
            },
            "$defs": {
                "Line": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Line"}}},
                "a/b c": {"type": "string"}
            }
        });
        let name = components.embed("Data.orders.OrderPlaced", &schema);
        assert_eq!(name, "Data.orders.OrderPlaced");
        let schemas = &components.schemas;
        let root = &schemas[&name];
        assert!(
            root.get("$schema").is_none() && root.get("$defs").is_none(),
            "{root}"
        );
        let line = "#/components/schemas/Data.orders.OrderPlaced.Line";
        assert_eq!(root["properties"]["line"]["$ref"], line);
        assert_eq!(
            root["properties"]["odd"]["$ref"],
            "#/components/schemas/Data.orders.OrderPlaced.a_b_c"
        );
        assert_eq!(
            root["properties"]["whole"]["$ref"],
            "#/components/schemas/Data.orders.OrderPlaced"
        );
        // A property named `$ref` holds data, not a reference: left as it was.
        assert_eq!(root["properties"]["$ref"]["const"]["$ref"], "#/$defs/Line");
        assert_eq!(
            schemas["Data.orders.OrderPlaced.Line"]["properties"]["next"]["$ref"],
            line
        );
        assert_eq!(
            schemas["Data.orders.OrderPlaced.a_b_c"],
            json!({"type": "string"})
        );
    }
}
