//! Request-reply that travels in batches: requests to one subject sent while earlier ones
//! are on their way are coalesced into one message, a [`FormatTag::ForwardBatchV1`] frame
//! of their frames, and the answer, a [`FormatTag::ForwardBatchReplyV1`] frame, is split
//! back to each. A few batches per subject are in flight at once, so a lone request never
//! waits for another, and under load the requests that pile up meanwhile go as one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::codec::{self, FormatTag};

/// Batches in flight per subject before requests wait to go in the next one.
const IN_FLIGHT: usize = 4;
/// The most requests one batch carries.
const MAX_PARTS: usize = 256;
/// The most bytes of requests one batch carries (NATS' default payload limit is 1 MiB).
const MAX_BYTES: usize = 512 << 10;

/// Why a coalesced request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoalescedError {
    /// Nobody answers on the subject (it is between owners), after retries within the
    /// timeout.
    NoResponders,
    /// No answer within the timeout: whether the request was carried out is unknown.
    TimedOut,
    /// Anything else: the connection, or an answer that does not decode.
    Other(String),
}

type Answer = Result<Vec<u8>, CoalescedError>;

struct Pending {
    frame: Vec<u8>,
    answer: oneshot::Sender<Answer>,
    /// When it was asked: its answer is due within the timeout from then.
    asked: Instant,
}

/// The coalescing queues of one connection, one per subject.
#[derive(Default)]
pub(super) struct Coalescer {
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Pending>>>,
}

impl Coalescer {
    /// Queues `frame` for `subject`, starting its sender on `runtime` if there is none.
    pub fn request(
        &self,
        runtime: &tokio::runtime::Handle,
        client: &async_nats::Client,
        subject: &str,
        frame: Vec<u8>,
        timeout: Duration,
    ) -> oneshot::Receiver<Answer> {
        let (answer, answered) = oneshot::channel();
        let mut pending = Pending {
            frame,
            answer,
            asked: Instant::now(),
        };
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..2 {
            let queue = queues.entry(subject.to_owned()).or_insert_with(|| {
                let (queue, requests) = mpsc::unbounded_channel();
                runtime.spawn(send_batches(
                    client.clone(),
                    subject.to_owned(),
                    timeout,
                    requests,
                ));
                queue
            });
            match queue.send(pending) {
                Ok(()) => return answered,
                // Its sender ended (the runtime is shutting down): try a fresh one once.
                Err(mpsc::error::SendError(back)) => {
                    pending = back;
                    queues.remove(subject);
                }
            }
        }
        let _ = pending.answer.send(Err(CoalescedError::Other(
            "the NATS thread is not running".into(),
        )));
        answered
    }
}

/// One request-reply of `frame` on `subject`, not batched (a read, whose answer may be
/// large and slow), with the same retries and errors.
pub(super) fn request_one(
    runtime: &tokio::runtime::Handle,
    client: &async_nats::Client,
    subject: &str,
    frame: Vec<u8>,
    timeout: Duration,
) -> oneshot::Receiver<Answer> {
    let (answer, answered) = oneshot::channel();
    let client = client.clone();
    let subject = subject.to_owned();
    runtime.spawn(async move {
        let reply = exchange(&client, &subject, timeout, vec![frame])
            .await
            .and_then(|mut replies| {
                replies
                    .pop()
                    .ok_or_else(|| CoalescedError::Other("an empty answer".into()))
            });
        let _ = answer.send(reply);
    });
    answered
}

/// Takes the requests for `subject` as they come and sends them in batches.
async fn send_batches(
    client: async_nats::Client,
    subject: String,
    timeout: Duration,
    mut requests: mpsc::UnboundedReceiver<Pending>,
) {
    let room = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carried: Option<Pending> = None;
    loop {
        let Ok(permit) = Arc::clone(&room).acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match requests.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut bytes = first.frame.len();
        let mut batch = vec![first];
        // A request that would take the batch past the bound starts the next one.
        let mut next = None;
        while batch.len() < MAX_PARTS {
            match requests.try_recv() {
                Ok(more) if bytes + more.frame.len() <= MAX_BYTES => {
                    bytes += more.frame.len();
                    batch.push(more);
                }
                Ok(more) => {
                    next = Some(more);
                    break;
                }
                Err(_) => break,
            }
        }
        let client = client.clone();
        let subject = subject.clone();
        let asked = batch.iter().map(|pending| pending.asked).min();
        let left = asked.map_or(timeout, |asked| timeout.saturating_sub(asked.elapsed()));
        tokio::spawn(async move {
            let (frames, answers): (Vec<Vec<u8>>, Vec<oneshot::Sender<Answer>>) = batch
                .into_iter()
                .map(|pending| (pending.frame, pending.answer))
                .unzip();
            let count = frames.len();
            match exchange(&client, &subject, left, frames).await {
                Ok(replies) if replies.len() == count => {
                    for (answer, reply) in answers.into_iter().zip(replies) {
                        let _ = answer.send(Ok(reply));
                    }
                }
                Ok(replies) => {
                    let error = CoalescedError::Other(format!(
                        "the answer to a batch of {count} request(s) holds {} answer(s)",
                        replies.len()
                    ));
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
                Err(error) => {
                    for answer in answers {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
            drop(permit);
        });
        carried = next;
    }
}

/// Sends one batch and reads its answers; while nobody answers on the subject (it is
/// between owners) it is asked again with backoff, within `timeout`. A batch of one goes as
/// its own frame, which any version of the owner answers.
async fn exchange(
    client: &async_nats::Client,
    subject: &str,
    timeout: Duration,
    frames: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, CoalescedError> {
    let started = Instant::now();
    let answered = send_frames(client, subject, timeout, frames).await;
    crate::latency::observe_since(&crate::latency::latencies().forward, started);
    answered
}

/// [`exchange`] itself, untimed.
async fn send_frames(
    client: &async_nats::Client,
    subject: &str,
    timeout: Duration,
    mut frames: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, CoalescedError> {
    let single = frames.len() == 1;
    let frame = match frames.pop() {
        Some(frame) if single => frame,
        last => {
            frames.extend(last);
            codec::encode(FormatTag::ForwardBatchV1, &frames)
                .map_err(|error| CoalescedError::Other(error.to_string()))?
        }
    };
    let frame = bytes::Bytes::from(frame);
    let started = Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        // Each attempt gets what is left of the one timeout.
        let left = timeout.saturating_sub(started.elapsed());
        let request = async_nats::Request::new()
            .payload(frame.clone())
            .timeout(Some(left.max(Duration::from_millis(100))));
        match client.send_request(subject.to_owned(), request).await {
            Ok(message) if single => return Ok(vec![message.payload.to_vec()]),
            Ok(message) => {
                return codec::decode(FormatTag::ForwardBatchReplyV1, &message.payload).map_err(
                    |error| {
                        CoalescedError::Other(format!(
                            "an answer that does not decode ({error}); are both nodes the same version?"
                        ))
                    },
                )
            }
            Err(error)
                if error.kind() == async_nats::RequestErrorKind::NoResponders
                    && started.elapsed() + pause < timeout =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(error) => {
                return Err(match error.kind() {
                    async_nats::RequestErrorKind::NoResponders => CoalescedError::NoResponders,
                    async_nats::RequestErrorKind::TimedOut => CoalescedError::TimedOut,
                    _ => CoalescedError::Other(error.to_string()),
                })
            }
        }
    }
}
