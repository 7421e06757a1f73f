//! Access is decided on what the router matched, never on how the path was spelled: no
//! spelling of a route (a letter percent-encoded in lower or upper case hex, a whole segment
//! encoded, `%2e` segments, `%2F` for a slash, double encoding, `;` parameters, `//`, a
//! trailing slash) reaches a handler with less than the scope and domain the route needs.
//!
//! Requests go over a plain socket, so no client library normalises the path on the way.
//! Every route is tried with every single change to every segment, then with stacked random
//! changes (seed printed; set `HERALD_AUTH_PATHS_SEED` to repeat a run), for every token.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_integration_tests::{
    eventually, order_placed, sample_config_with_auth, stock_added, Node, Rng,
};

/// A token of the test node: its secret (`None`: no `Authorization` header) and grants.
struct Token {
    name: &'static str,
    secret: Option<&'static str>,
    scopes: &'static [&'static str],
    domains: &'static [&'static str],
}

const TOKENS: &[Token] = &[
    Token {
        name: "none",
        secret: None,
        scopes: &[],
        domains: &[],
    },
    Token {
        name: "not-a-token",
        secret: Some("not-a-token-of-this-node-at-all"),
        scopes: &[],
        domains: &[],
    },
    Token {
        name: "publish",
        secret: Some("publish-secret-4b1f9e2d7c"),
        scopes: &["publish"],
        domains: &[],
    },
    Token {
        name: "query",
        secret: Some("query-secret-8a3c6e0f1d"),
        scopes: &["query"],
        domains: &[],
    },
    Token {
        name: "query-inventory",
        secret: Some("query-inventory-secret-5d2e7f"),
        scopes: &["query"],
        domains: &["inventory"],
    },
    Token {
        name: "admin",
        secret: Some("admin-secret-2f7a9c4e6b"),
        scopes: &["admin"],
        domains: &[],
    },
    Token {
        name: "admin-inventory",
        secret: Some("admin-inventory-secret-9c1b3a"),
        scopes: &["admin"],
        domains: &["inventory"],
    },
    Token {
        name: "metrics",
        secret: Some("metrics-secret-7e6d5c4b3a"),
        scopes: &["metrics"],
        domains: &[],
    },
];

impl Token {
    /// Whether this token may use `route`.
    fn may(&self, route: &Route) -> bool {
        self.scopes.contains(&route.scope)
            && match route.domain {
                Some(domain) => self.domains.is_empty() || self.domains.contains(&domain),
                None => true,
            }
    }

    fn named(name: &str) -> &'static Token {
        TOKENS
            .iter()
            .find(|token| token.name == name)
            .expect("a token of this test")
    }
}

/// A route of the API as its canonical spelling, and what it needs.
struct Route {
    method: &'static str,
    segments: &'static [&'static str],
    query: &'static str,
    scope: &'static str,
    domain: Option<&'static str>,
}

const fn route(
    method: &'static str,
    segments: &'static [&'static str],
    scope: &'static str,
    domain: Option<&'static str>,
) -> Route {
    Route {
        method,
        segments,
        query: "",
        scope,
        domain,
    }
}

const ROUTES: &[Route] = &[
    route("POST", &["v1", "events"], "publish", None),
    route("GET", &["v1", "domains"], "query", None),
    route(
        "GET",
        &["v1", "domains", "orders", "entities", "o-1"],
        "query",
        Some("orders"),
    ),
    route(
        "GET",
        &["v1", "domains", "inventory", "entities", "sku-1"],
        "query",
        Some("inventory"),
    ),
    route(
        "GET",
        &["v1", "domains", "analytics", "queries", "summary"],
        "query",
        Some("analytics"),
    ),
    route("GET", &["v1", "cluster"], "query", None),
    route("GET", &["v1", "streams"], "query", None),
    route(
        "GET",
        &["v1", "streams", "orders", "events"],
        "query",
        Some("orders"),
    ),
    route(
        "GET",
        &["v1", "streams", "inventory", "events"],
        "query",
        Some("inventory"),
    ),
    Route {
        query: "?from=1",
        ..route(
            "GET",
            &["v1", "streams", "orders", "tail"],
            "query",
            Some("orders"),
        )
    },
    route(
        "GET",
        &["v1", "streams", "deadletter-orders", "events"],
        "admin",
        Some("orders"),
    ),
    route(
        "GET",
        &["v1", "streams", "deadletter-inventory", "events"],
        "admin",
        Some("inventory"),
    ),
    route("GET", &["v1", "deadletters"], "admin", None),
    route(
        "GET",
        &["v1", "deadletters", "orders"],
        "admin",
        Some("orders"),
    ),
    route(
        "GET",
        &["v1", "deadletters", "inventory"],
        "admin",
        Some("inventory"),
    ),
    route(
        "POST",
        &["v1", "deadletters", "orders", "orders-1", "retry"],
        "admin",
        Some("orders"),
    ),
    route(
        "POST",
        &["v1", "deadletters", "orders", "orders-1", "skip"],
        "admin",
        Some("orders"),
    ),
    route("GET", &["metrics"], "metrics", None),
];

/// How the node answered a request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 401 or 403: access control refused it.
    Refused,
    /// Nothing serves this spelling: the router's 404 or 405, or the HTTP layer's 400.
    Unserved,
    /// A handler answered (any other status).
    Served,
}

/// One answer off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The problem type's last part, if the body is a problem.
    problem: String,
}

impl Answer {
    fn outcome(&self) -> Outcome {
        match (self.status, self.problem.as_str()) {
            (401 | 403, _) => Outcome::Refused,
            (404, "not-found") | (405, "method-not-allowed") | (400, "") => Outcome::Unserved,
            _ => Outcome::Served,
        }
    }
}

/// Sends one request exactly as spelled, on its own connection, and reads the head (and
/// the body when it has a length: a tail's never ends).
fn send(base: &str, method: &str, target: &str, secret: Option<&str>) -> Answer {
    let address = base.trim_start_matches("http://");
    let stream = TcpStream::connect(address).expect("connect to the node");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    if let Some(secret) = secret {
        head.push_str(&format!("authorization: Bearer {secret}\r\n"));
    }
    let body = if method == "POST" { "[]" } else { "" };
    if method == "POST" {
        head.push_str("content-type: application/cloudevents-batch+json\r\n");
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(head.as_bytes())
        .expect("send the request");
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("read the status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: not a status line: {status_line:?}"));
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut body = vec![0; length.unwrap_or(0)];
    reader.read_exact(&mut body).expect("read the body");
    let problem = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| {
            json["type"]
                .as_str()
                .and_then(|uri| uri.rsplit('/').next())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    Answer { status, problem }
}

/// One change to a path's segments.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Percent-encode the character at (segment, char) in lower case hex.
    EncodeLower(usize, usize),
    /// The same in upper case hex.
    EncodeUpper(usize, usize),
    /// Percent-encode every character of the segment.
    EncodeSegment(usize),
    /// Encode the character twice (`v` as `%2576`).
    DoubleEncode(usize, usize),
    /// A `;` parameter after the segment.
    Parameter(usize),
    /// An empty segment before it (`//`).
    EmptyBefore(usize),
    /// A `%2e` (or `%2E%2e`) segment before it.
    DotBefore(usize, bool),
    /// Join the segment to the next with `%2F` (or `%2f`).
    EncodedSlash(usize, bool),
    /// A trailing slash.
    TrailingSlash,
}

fn encode(byte: u8, upper: bool) -> String {
    if upper {
        format!("%{byte:02X}")
    } else {
        format!("%{byte:02x}")
    }
}

impl Change {
    /// The segments after this change; `None` where it does not apply.
    fn apply(self, segments: &[String]) -> Option<Vec<String>> {
        let mut out = segments.to_vec();
        let encode_at =
            |out: &mut Vec<String>, at: usize, index: usize, spell: &dyn Fn(u8) -> String| {
                let segment = out.get(at)?;
                let byte = *segment.as_bytes().get(index)?;
                // Only plain characters: re-encoding a `%` would change what is meant.
                if !byte.is_ascii_alphanumeric() && byte != b'-' {
                    return None;
                }
                out[at] = format!(
                    "{}{}{}",
                    &segment[..index],
                    spell(byte),
                    &segment[index + 1..]
                );
                Some(())
            };
        match self {
            Self::EncodeLower(at, index) => encode_at(&mut out, at, index, &|b| encode(b, false))?,
            Self::EncodeUpper(at, index) => encode_at(&mut out, at, index, &|b| encode(b, true))?,
            Self::DoubleEncode(at, index) => {
                encode_at(&mut out, at, index, &|b| format!("%25{b:02x}"))?
            }
            Self::EncodeSegment(at) => {
                let segment = out.get(at)?;
                if segment.is_empty() || segment.contains('%') {
                    return None;
                }
                out[at] = segment.bytes().map(|b| encode(b, true)).collect();
            }
            Self::Parameter(at) => out.get_mut(at)?.push_str(";p=1"),
            Self::EmptyBefore(at) => out.insert(at.min(out.len()), String::new()),
            Self::DotBefore(at, twice) => out.insert(
                at.min(out.len()),
                if twice { "%2E%2e" } else { "%2e" }.to_owned(),
            ),
            Self::EncodedSlash(at, upper) => {
                if at + 1 >= out.len() {
                    return None;
                }
                let next = out.remove(at + 1);
                out[at] = format!("{}{}{next}", out[at], if upper { "%2F" } else { "%2f" });
            }
            Self::TrailingSlash => out.push(String::new()),
        }
        Some(out)
    }

    /// Every change to segment `at` of `segments` (each character, both hex cases).
    fn all_at(segments: &[String], at: usize) -> Vec<Change> {
        let mut changes = Vec::new();
        for index in 0..segments[at].len() {
            changes.push(Self::EncodeLower(at, index));
            changes.push(Self::EncodeUpper(at, index));
        }
        changes.extend([
            Self::EncodeSegment(at),
            Self::DoubleEncode(at, 0),
            Self::Parameter(at),
            Self::EmptyBefore(at),
            Self::DotBefore(at, false),
            Self::DotBefore(at, true),
            Self::EncodedSlash(at, true),
            Self::EncodedSlash(at, false),
        ]);
        changes
    }

    fn random(segments: &[String], rng: &mut Rng) -> Change {
        let at = rng.between(0, segments.len() as u64 - 1) as usize;
        let index = rng.between(0, segments[at].len().max(1) as u64 - 1) as usize;
        match rng.between(0, 8) {
            0 => Self::EncodeLower(at, index),
            1 => Self::EncodeUpper(at, index),
            2 => Self::EncodeSegment(at),
            3 => Self::DoubleEncode(at, index),
            4 => Self::Parameter(at),
            5 => Self::EmptyBefore(at),
            6 => Self::DotBefore(at, rng.chance(50)),
            7 => Self::EncodedSlash(at, rng.chance(50)),
            _ => Self::TrailingSlash,
        }
    }
}

fn target(segments: &[String], query: &str) -> String {
    format!("/{}{query}", segments.join("/"))
}

/// The node: the sample config with auth on and [`TOKENS`].
fn auth_config(dir: &Path) -> PathBuf {
    let mut tokens = String::new();
    for token in TOKENS {
        let (Some(secret), false) = (token.secret, token.scopes.is_empty()) else {
            continue;
        };
        tokens.push_str(&format!(
            "[[auth.tokens]]\nname = \"{}\"\ntoken = \"{secret}\"\nscopes = {:?}\ndomains = {:?}\n\n",
            token.name, token.scopes, token.domains
        ));
    }
    sample_config_with_auth(dir, &tokens)
}

/// A path's segments as the server reads them: split on `/`, each percent-decoded once
/// (`%2F` inside a segment stays inside it).
fn decoded(segments: &[String]) -> Vec<String> {
    segments
        .iter()
        .map(|segment| {
            let bytes = segment.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut at = 0;
            while at < bytes.len() {
                let hex = bytes
                    .get(at + 1..at + 3)
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match (bytes[at], hex) {
                    (b'%', Some(byte)) => {
                        out.push(byte);
                        at += 3;
                    }
                    (byte, _) => {
                        out.push(byte);
                        at += 1;
                    }
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
        .collect()
}

/// What went wrong for one spelling and token, for the failure message.
struct Breach {
    token: &'static str,
    request: String,
    answer: Answer,
    expected: String,
}

/// The route, the node and each token's answer to the route's canonical spelling.
struct Trial<'a> {
    node: &'a Node,
    route: &'a Route,
    canonical: Vec<String>,
    answers: Vec<u16>,
}

impl<'a> Trial<'a> {
    fn new(node: &'a Node, route: &'a Route) -> Self {
        let canonical: Vec<String> = route.segments.iter().map(|s| (*s).to_owned()).collect();
        let plain = target(&canonical, route.query);
        let answers = TOKENS
            .iter()
            .map(|token| {
                let answer = send(&node.base, route.method, &plain, token.secret);
                let outcome = answer.outcome();
                let expected = if token.may(route) {
                    Outcome::Served
                } else {
                    Outcome::Refused
                };
                assert_eq!(
                    outcome, expected,
                    "{} {plain} with token {}: {answer:?}",
                    route.method, token.name
                );
                answer.status
            })
            .collect();
        Self {
            node,
            route,
            canonical,
            answers,
        }
    }

    /// Sends `segments` with every token. A spelling the server reads as the canonical path
    /// must get each token the canonical answer: refused without the scope and domain,
    /// served with them. Any other spelling names another (unknown) resource, and no token
    /// without the route's scope and domain may get a 2xx from it. Returns whether the
    /// spelling is read as the canonical path.
    fn check(&self, segments: &[String], breaches: &mut Vec<Breach>) -> bool {
        let spelling = target(segments, self.route.query);
        let same = decoded(segments) == self.canonical;
        for (token, canonical) in TOKENS.iter().zip(&self.answers) {
            let answer = send(&self.node.base, self.route.method, &spelling, token.secret);
            let may = token.may(self.route);
            let expected = match (same, may) {
                (true, _) if answer.status != *canonical => format!("{canonical}, as canonically"),
                (false, false) if (200..300).contains(&answer.status) => "no 2xx".to_owned(),
                _ => continue,
            };
            breaches.push(Breach {
                token: token.name,
                request: format!("{} {spelling}", self.route.method),
                answer,
                expected,
            });
        }
        same
    }
}

fn report(breaches: &[Breach], seed: u64) -> String {
    let mut lines: Vec<String> = breaches
        .iter()
        .take(40)
        .map(|b| {
            format!(
                "  token {:<16} {} -> {} {} (expected {})",
                b.token, b.request, b.answer.status, b.answer.problem, b.expected
            )
        })
        .collect();
    lines.push(format!(
        "{} answers differ from what the route's scope and domain allow (seed {seed}; set HERALD_AUTH_PATHS_SEED to repeat)",
        breaches.len()
    ));
    lines.join("\n")
}

#[test]
fn no_spelling_of_a_route_reaches_its_handler_without_the_scope_and_domain_it_needs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_with_config(&auth_config(dir.path()), &[]);
    let publish = Token::named("publish").secret;
    for event in [
        stock_added("sku-1", 10),
        order_placed("o-1", "alice", &[("sku-1", 1, 700)]),
    ] {
        let reply = node.post_with(
            "/v1/events",
            "application/cloudevents+json",
            &[(
                "authorization",
                &format!("Bearer {}", publish.unwrap_or("")),
            )],
            event.to_string(),
        );
        assert_eq!(reply.status, 202, "publishing: {}", reply.text);
    }
    let query = Token::named("query").secret;
    eventually("order o-1 can be read", || {
        send(&node.base, "GET", "/v1/domains/orders/entities/o-1", query).status == 200
    });

    // The issue's examples, one by one: each was served before access followed the router.
    let inventory_reader = Token::named("query-inventory").secret;
    for (method, spelling, secret) in [
        ("GET", "/%761/domains/orders/entities/o-1", inventory_reader),
        ("GET", "/v1/%73treams/orders/events", inventory_reader),
        ("GET", "/v1/streams/%6frders/tail?from=1", inventory_reader),
        ("GET", "/v1/streams/%64eadletter-orders/events", query),
        ("GET", "/%6detrics", query),
        ("POST", "/v1/%64eadletters/orders/orders-1/skip", query),
        ("POST", "/v1/%64eadletters/orders/orders-1/retry", query),
    ] {
        let answer = send(&node.base, method, spelling, secret);
        assert_eq!(
            answer.outcome(),
            Outcome::Refused,
            "{method} {spelling} was answered {} {}",
            answer.status,
            answer.problem
        );
    }
    // The same spellings do reach the handlers, for a token that may use them.
    let answer = send(
        &node.base,
        "GET",
        "/%761/domains/%69nventory/entities/sku-1",
        inventory_reader,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = send(
        &node.base,
        "GET",
        "/%761/domains/orders/entities/o-1",
        query,
    );
    assert_eq!(answer.status, 200, "{answer:?}");

    let (mut rng, seed) = Rng::from_env_or_clock("HERALD_AUTH_PATHS_SEED");
    let mut breaches = Vec::new();
    let mut tried = 0;
    for route in ROUTES {
        let trial = Trial::new(&node, route);
        let canonical = &trial.canonical;
        // Every single change to every segment, then stacks of random ones.
        let mut spellings = BTreeSet::new();
        for at in 0..canonical.len() {
            for change in Change::all_at(canonical, at) {
                spellings.extend(change.apply(canonical));
            }
        }
        spellings.extend(Change::TrailingSlash.apply(canonical));
        for _ in 0..12 {
            let mut segments = canonical.clone();
            for _ in 0..rng.between(2, 4) {
                let change = Change::random(&segments, &mut rng);
                if let Some(changed) = change.apply(&segments) {
                    segments = changed;
                }
            }
            spellings.insert(segments);
        }
        spellings.remove(canonical);
        tried += 1 + spellings.len();
        let mut same = 0;
        for segments in &spellings {
            same += usize::from(trial.check(segments, &mut breaches));
        }
        // Encoded spellings of the same path exist for every route: the checks are not vacuous.
        assert!(
            same > 0,
            "{} {}: no other spelling reads as the same path",
            route.method,
            target(canonical, route.query)
        );
    }
    eprintln!(
        "{} routes, {tried} spellings, {} requests, seed {seed}",
        ROUTES.len(),
        tried * TOKENS.len()
    );
    assert!(breaches.is_empty(), "{}", report(&breaches, seed));
}

#[test]
fn health_stays_open_and_metrics_open_opens_only_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_with_config(
        &auth_config(dir.path()),
        &[("HERALD_AUTH__METRICS_OPEN", "true")],
    );
    for spelling in [
        "/healthz",
        "/readyz",
        "/%68ealthz",
        "/metrics",
        "/%6Detrics",
    ] {
        let answer = send(&node.base, "GET", spelling, None);
        assert_eq!(
            answer.status, 200,
            "GET {spelling} without a token: {answer:?}"
        );
    }
    // Everything else still needs a token: a route, its 405, and a path nothing serves.
    for (method, spelling) in [
        ("GET", "/v1/%64omains"),
        ("GET", "/v1/domains"),
        ("POST", "/v1/domains"),
        ("GET", "/nothing/here"),
        ("GET", "/metrics/"),
    ] {
        let answer = send(&node.base, method, spelling, None);
        assert_eq!(
            answer.status, 401,
            "{method} {spelling} without a token: {answer:?}"
        );
    }
    // A valid token without the route's scope learns only that nothing is there.
    let answer = send(
        &node.base,
        "GET",
        "/nothing/here",
        Token::named("publish").secret,
    );
    assert_eq!(answer.status, 404, "{answer:?}");
}

/// Tokens limited to one domain, for the partitioned node.
const PARTITION_TOKENS: &str = r#"
[[auth.tokens]]
name = "publisher"
token = "publisher-secret-3e8d1c5a7b"
scopes = ["publish"]

[[auth.tokens]]
name = "orders-reader"
token = "orders-reader-secret-6f2a9d"
scopes = ["query"]
domains = ["orders"]

[[auth.tokens]]
name = "inventory-reader"
token = "inventory-reader-secret-1c7e4b"
scopes = ["query"]
domains = ["inventory"]

[[auth.tokens]]
name = "orders-admin"
token = "orders-admin-secret-8b3f0e2d"
scopes = ["admin"]
domains = ["orders"]

[[auth.tokens]]
name = "inventory-admin"
token = "inventory-admin-secret-4d9a6c"
scopes = ["admin"]
domains = ["inventory"]
"#;

fn partition_token(name: &str) -> Option<&'static str> {
    let start = PARTITION_TOKENS
        .find(&format!("name = \"{name}\""))
        .expect("a token of this test");
    let line = PARTITION_TOKENS[start..]
        .lines()
        .find_map(|line| line.strip_prefix("token = \""))
        .expect("its secret");
    line.strip_suffix('"')
}

#[test]
fn a_partition_stream_counts_as_its_domain_and_its_dead_letters_as_its_admins() {
    use herald_integration_tests::nats::{nats_config, NatsServer};

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("nats-auth.toml");
    let networked = std::fs::read_to_string(nats_config()).expect("networked config");
    std::fs::write(
        &config,
        format!("{networked}\n[auth]\nenabled = true\n{PARTITION_TOKENS}"),
    )
    .expect("config");
    let data = tempfile::tempdir().expect("data dir");
    let url = nats.url();
    let mut node = Node::launch_with_config(
        &config,
        data.path(),
        &[
            ("HERALD_BUS__NATS__SERVERS", url.as_str()),
            ("HERALD_NODE__ID", "n1"),
            ("HERALD_DOMAINS__PARTITIONS", "6"),
        ],
    );
    node.own_dir(data);
    node.await_ready(herald_integration_tests::START_TIMEOUT);
    let publisher = format!("Bearer {}", partition_token("publisher").unwrap_or(""));
    let reply = node.post_with(
        "/v1/events",
        "application/cloudevents+json",
        &[("authorization", &publisher)],
        order_placed("o-1", "alice", &[("sku-1", 1, 700)]).to_string(),
    );
    assert_eq!(reply.status, 202, "publishing: {}", reply.text);

    // (path, token that may, token that may not), for every partition of orders.
    let mut checks = Vec::new();
    for p in 0..6 {
        for path in [
            format!("/v1/streams/orders-p{p}/events"),
            format!("/v1/streams/orders-p{p}/tail?from=1"),
            format!("/v1/domains/orders-p{p}/entities/o-1"),
        ] {
            checks.push((path, "orders-reader", "inventory-reader"));
        }
        for path in [
            format!("/v1/streams/deadletter-orders-p{p}/events"),
            format!("/v1/deadletters/orders-p{p}"),
        ] {
            checks.push((path.clone(), "orders-admin", "inventory-admin"));
            checks.push((path, "orders-admin", "orders-reader"));
        }
    }
    for (path, may, may_not) in &checks {
        let answer = send(&node.base, "GET", path, partition_token(may));
        assert!(
            !matches!(answer.status, 401 | 403),
            "GET {path} with {may}: {answer:?}"
        );
        let answer = send(&node.base, "GET", path, partition_token(may_not));
        assert_eq!(answer.status, 403, "GET {path} with {may_not}: {answer:?}");
    }
}
