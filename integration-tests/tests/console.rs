//! The console at `/console`, in a real headless chromium (Debian's, through chromedriver),
//! on a node with `[auth]` on: the page asks for a token and takes one; the topology shows
//! the example domains with an arrow per subscription; a posted event appears in the tail
//! and moves the stream's head; a parked dead letter is skipped from the page. Screenshots
//! go to `target/console-screenshots/`.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use herald_integration_tests::browser::{screenshot_dir, Chromedriver};
use herald_integration_tests::{event, poll, sample_config_with_auth, stock_added, Node};
use serde_json::{json, Value};

const TOKEN: &str = "console-operator-token-0123456789";
const DOMAINS: &str = "analytics,inventory,orders,payments,shipping,feeder,faulty";
const WAIT: Duration = Duration::from_secs(30);

/// The node's API as the test (not the page) uses it, with the operator's token.
struct Api<'a>(&'a Node);

impl Api<'_> {
    fn get(&self, path: &str) -> Value {
        let response = self
            .0
            .client()
            .get(format!("{}{path}", self.0.base))
            .bearer_auth(TOKEN)
            .send()
            .expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().expect("JSON")
    }

    fn publish(&self, event: &Value) -> Value {
        let reply = self.0.post_with(
            "/v1/events",
            "application/cloudevents+json",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            event.to_string(),
        );
        assert_eq!(reply.status, 202, "{}", reply.text);
        reply.json
    }

    /// Every (owner, subscriber) pair of the known domains, from `GET /v1/domains`.
    fn subscriptions(&self) -> BTreeSet<(String, String)> {
        let topology = self.get("/v1/domains");
        let domains = topology["domains"].as_array().cloned().unwrap_or_default();
        let owner = |event_type: &str| {
            domains.iter().find_map(|d| {
                d["types"]
                    .get(event_type)
                    .and(d["name"].as_str().map(str::to_owned))
            })
        };
        let mut pairs = BTreeSet::new();
        for domain in &domains {
            for subscription in domain["subscriptions"].as_array().into_iter().flatten() {
                if let (Some(owner), Some(name)) = (
                    subscription.as_str().and_then(owner),
                    domain["name"].as_str(),
                ) {
                    pairs.insert((owner, name.to_owned()));
                }
            }
        }
        pairs
    }
}

/// Waits until `check` answers `Some`, failing with `what` after [`WAIT`].
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(page: &Client, css: &str) -> Option<String> {
    page.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

async fn shown(page: &Client, css: &str) -> bool {
    match page.find(Locator::Css(css)).await {
        Ok(element) => element.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

async fn screenshot(page: &Client, name: &str) {
    let png = page.screenshot().await.expect("a screenshot");
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("screenshot: {}", path.display());
}

#[test]
fn the_console_shows_the_topology_tails_a_stream_and_skips_a_dead_letter() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = sample_config_with_auth(
        dir.path(),
        &format!(
            "[[auth.tokens]]\nname = \"operator\"\ntoken = \"{TOKEN}\"\nscopes = [\"publish\", \"query\", \"admin\"]\n"
        ),
    );
    let node = Node::start_with_config(
        &config,
        &[
            ("HERALD_DOMAINS__ENABLED", DOMAINS),
            ("HERALD_DOMAIN__FAULTY__RETRY_ATTEMPTS", "2"),
            ("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF", "20ms"),
            ("HERALD_DOMAIN__FAULTY__RETRY_BACKOFF_MAX", "40ms"),
        ],
    );
    let api = Api(&node);
    api.publish(&stock_added("sku-console", 5));
    // A dead letter to skip: faulty fails this input every time, so it is parked.
    api.publish(&event(
        "feeder.Fed",
        "console-key",
        json!({"key": "console-key", "n": 1, "fault": "error"}),
    ));
    let mut parked = Value::Null;
    assert!(
        poll(WAIT, || {
            parked = api.get("/v1/deadletters/faulty")["dead_letters"][0].clone();
            !parked.is_null()
        }),
        "nothing parked"
    );
    let parked_id = parked["id"].as_str().expect("an id").to_owned();
    let expected_arrows = api.subscriptions();
    assert!(
        expected_arrows.contains(&("orders".into(), "inventory".into())),
        "{expected_arrows:?}"
    );

    let driver = Chromedriver::start();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let page = driver.session(1440, 2400).await;
        page.goto(&format!("{}/console", node.base))
            .await
            .expect("open the console");
        // Whatever the page does from here must pass its Content-Security-Policy.
        page.execute(
            "window.violations = [];\
             document.addEventListener('securitypolicyviolation', e =>\
               window.violations.push(e.violatedDirective + ' ' + (e.sample || e.blockedURI)));",
            vec![],
        )
        .await
        .expect("listen for CSP violations");

        // Auth is on: without a token the page says so, and takes one.
        until("the token banner", || async {
            shown(&page, "#auth-banner").await.then_some(())
        })
        .await;
        let field = page
            .find(Locator::Css("#token"))
            .await
            .expect("token field");
        field.send_keys(TOKEN).await.expect("type the token");
        page.find(Locator::Css("#token-save"))
            .await
            .expect("save")
            .click()
            .await
            .expect("click save");

        // The topology: every example domain, and an arrow for each subscription.
        for domain in ["orders", "inventory", "payments", "shipping", "analytics"] {
            let css = format!("#topology g.domain[data-domain=\"{domain}\"]");
            until(&css, || async { shown(&page, &css).await.then_some(()) }).await;
        }
        let drawn: BTreeSet<(String, String)> = until("the subscription arrows", || async {
            let arrows = page
                .execute(
                    "return [...document.querySelectorAll('#topology path.arrow')]\
                     .map(a => [a.dataset.from, a.dataset.to]);",
                    vec![],
                )
                .await
                .ok()?;
            let pairs: BTreeSet<(String, String)> =
                serde_json::from_value::<Vec<(String, String)>>(arrows)
                    .ok()?
                    .into_iter()
                    .collect();
            expected_arrows.is_subset(&pairs).then_some(pairs)
        })
        .await;
        assert!(
            drawn.is_subset(&expected_arrows),
            "arrows the catalog does not have: {:?}",
            drawn.difference(&expected_arrows).collect::<Vec<_>>()
        );
        assert!(
            shown(&page, "#topology .ingress").await,
            "ingress types marked"
        );
        // The partition owners' legend: this node's colour (set through the CSSOM).
        let swatch = until("the owner's colour in the legend", || async {
            let colour = page
                .execute(
                    "const s = document.querySelector('#topology-legend .swatch:not(.hollow)');\
                     return s ? getComputedStyle(s).backgroundColor : null;",
                    vec![],
                )
                .await
                .ok()?;
            colour.as_str().map(str::to_owned)
        })
        .await;
        assert_ne!(swatch, "rgba(0, 0, 0, 0)", "the swatch has no colour");
        let head_css = "#streams tr[data-stream=\"inventory\"] td.head";
        until("inventory's head", || async {
            (text_of(&page, head_css).await?.trim() == "1").then_some(())
        })
        .await;
        screenshot(&page, "console-overview.png").await;

        // The tail: a posted event appears, and the stream's head moves to it.
        until("inventory among the tail's streams", || async {
            let select = page.find(Locator::Css("#tail-stream")).await.ok()?;
            select.select_by_value("inventory").await.ok()
        })
        .await;
        page.find(Locator::Css("#tail-start"))
            .await
            .expect("start")
            .click()
            .await
            .expect("click start");
        let posted = stock_added("sku-tailed", 7);
        // reqwest's blocking client, kept off this runtime's async threads.
        let answer = tokio::task::block_in_place(|| api.publish(&posted));
        let sequence = answer["sequence"].as_u64().expect("a sequence");
        let id = posted["id"].as_str().expect("an id");
        let row = format!("#tail-events li[data-id=\"{id}\"]");
        let shown_sequence = until("the posted event in the tail", || async {
            let item = page.find(Locator::Css(&row)).await.ok()?;
            item.attr("data-sequence").await.ok()?
        })
        .await;
        assert_eq!(shown_sequence, sequence.to_string());
        let row_text = text_of(&page, &row).await.unwrap_or_default();
        assert!(row_text.contains("inventory.StockAdded"), "{row_text}");
        until("inventory's head at the posted event", || async {
            (text_of(&page, head_css).await?.trim() == sequence.to_string()).then_some(())
        })
        .await;

        // The dead letter: listed, and skipped from the page.
        let parked_row = format!("#deadletter-list tr[data-id=\"{parked_id}\"]");
        until("the parked dead letter", || async {
            shown(&page, &parked_row).await.then_some(())
        })
        .await;
        screenshot(&page, "console-dead-letter.png").await;
        page.find(Locator::Css(&format!("{parked_row} button.skip")))
            .await
            .expect("a skip button")
            .click()
            .await
            .expect("click skip");
        until("the dead letter gone", || async {
            (!shown(&page, &parked_row).await).then_some(())
        })
        .await;
        screenshot(&page, "console-after-skip.png").await;
        let violations = page
            .execute("return window.violations;", vec![])
            .await
            .expect("the violations");
        assert_eq!(violations, json!([]), "the page broke its CSP");
        page.close().await.expect("close the session");
    });
    let left = api.get("/v1/deadletters/faulty");
    assert_eq!(left["dead_letters"], json!([]), "{left}");
}
