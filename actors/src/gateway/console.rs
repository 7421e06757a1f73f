//! `GET /console`: the operator's console, a page served from assets compiled into the
//! binary (no CDN: it works offline and cannot drift from the node it ships with).
//!
//! The page itself holds no data and is served without a token; everything it shows it
//! reads through the API with the token the operator enters, so `[auth]` decides what it
//! can see and do exactly as for any other client.

use actix_web::http::header;
use actix_web::HttpResponse;

const INDEX: &str = include_str!("../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../assets/console/console.js");
const STYLE: &str = include_str!("../../assets/console/console.css");

/// Scripts and styles from the node only; the page talks to the node only.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /console`: the page.
pub async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /console/console.js`.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /console/console.css`.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("referrer-policy", "no-referrer"))
        .body(body)
}
