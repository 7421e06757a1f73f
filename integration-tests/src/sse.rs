//! A reader for `GET /v1/streams/{stream}/tail`: a blocking response read line by line on
//! its own thread, parsed into server-sent events and handed over a channel, so a test can
//! wait for the next event with a timeout and notice when the server ends the stream.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    /// The `id:` field.
    pub id: Option<String>,
    /// The `event:` field.
    pub event: Option<String>,
    /// Every `data:` line, in order.
    pub data: Vec<String>,
}

impl SseEvent {
    /// The `id` as a sequence number.
    pub fn sequence(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("expected a numeric `id:` line, saw {self:?}"))
    }

    /// The data as JSON; asserts it came on exactly one `data:` line.
    pub fn json(&self) -> Value {
        assert_eq!(
            self.data.len(),
            1,
            "expected the CloudEvent on one data line, saw {:?}",
            self.data
        );
        serde_json::from_str(&self.data[0])
            .unwrap_or_else(|e| panic!("expected JSON on the data line ({e}): {}", self.data[0]))
    }
}

/// What waiting for the next event gave.
#[derive(Debug)]
pub enum Next {
    /// An event arrived.
    Event(SseEvent),
    /// Nothing within the timeout; the stream is still open.
    Timeout,
    /// The server ended the stream (or the connection broke).
    Ended,
}

/// An open tail.
pub struct Tail {
    /// The HTTP status.
    pub status: u16,
    /// The `content-type` header.
    pub content_type: String,
    /// The body, when the status is not 200 (read whole).
    pub error_body: String,
    events: Receiver<SseEvent>,
    comments: Arc<Mutex<Vec<String>>>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Tail {
    /// Opens `GET {base}{path}` (no timeout: it stays open), with `Last-Event-ID` if given.
    pub fn open(base: &str, path: &str, last_event_id: Option<&str>) -> Tail {
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .expect("http client");
        let mut request = client
            .get(format!("{base}{path}"))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().expect("the node answers the tail request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (sender, events) = mpsc::channel();
        let comments = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut tail = Tail {
            status,
            content_type,
            error_body: String::new(),
            events,
            comments: Arc::clone(&comments),
            lines: Arc::clone(&lines),
        };
        if status != 200 {
            tail.error_body = response.text().unwrap_or_default();
            return tail;
        }
        std::thread::spawn(move || {
            let mut current = SseEvent::default();
            let mut started = false;
            for line in BufReader::new(response).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut lines) = lines.lock() {
                    lines.push(line.clone());
                }
                if line.is_empty() {
                    if started && sender.send(std::mem::take(&mut current)).is_err() {
                        break;
                    }
                    started = false;
                    continue;
                }
                if line.starts_with(':') {
                    if let Ok(mut comments) = comments.lock() {
                        comments.push(line);
                    }
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
                let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
                started = true;
                match field {
                    "id" => current.id = Some(value),
                    "event" => current.event = Some(value),
                    "data" => current.data.push(value),
                    _ => {}
                }
            }
        });
        tail
    }

    /// Waits up to `timeout` for the next event.
    pub fn next(&self, timeout: Duration) -> Next {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Next::Event(event),
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Ended,
        }
    }

    /// The next event, failing with `what` if none comes within `timeout`.
    pub fn expect_event(&self, timeout: Duration, what: &str) -> SseEvent {
        match self.next(timeout) {
            Next::Event(event) => event,
            Next::Timeout => panic!(
                "expected {what} on the tail within {timeout:?}, nothing came; lines so far: {:?}",
                self.lines()
            ),
            Next::Ended => panic!(
                "expected {what} on the tail, the stream ended; lines: {:?}",
                self.lines()
            ),
        }
    }

    /// The next `count` events, each within `timeout`.
    pub fn take(&self, count: usize, timeout: Duration, what: &str) -> Vec<SseEvent> {
        (0..count)
            .map(|index| self.expect_event(timeout, &format!("{what} (#{})", index + 1)))
            .collect()
    }

    /// Comment lines (such as `: keepalive`) seen so far.
    pub fn comments(&self) -> Vec<String> {
        self.comments.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Every raw line read so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
