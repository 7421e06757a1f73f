//! The pipelined writer of one Herald stream: appends go out in order, many at a time, and
//! their acknowledgements are matched back to them, so a stream's throughput is bound by
//! the server rather than by one round trip per append.
//!
//! Order is what keeps sequences dense with several appends in flight: every append carries
//! `Nats-Expected-Last-Sequence`, the sequence the one before it ends at, and one task
//! sends them on one connection, so JetStream stores them in the order sent, each only if
//! all before it were stored. A refused append therefore refuses every append sent after
//! it: those come back as refused *with it* ([`Refused::Chained`]), and nothing of them
//! is stored. Acknowledgements are handed back in the order sent, whatever order they
//! arrive in.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::streams::{self, AppendError, Outgoing};
use crate::latency;
use crate::log::{Durability, LogError};

/// One append: messages stored whole after `expected`, or not at all.
pub(super) struct Job {
    /// The JetStream stream.
    pub name: String,
    /// The last sequence the stream holds before this append.
    pub expected: u64,
    /// One message, or an atomic batch.
    pub messages: Vec<Outgoing>,
    /// The last `herald-own` offset of this append: acknowledged once it is stored.
    pub last_offset: u64,
    /// Told the outcome.
    pub done: oneshot::Sender<Result<(), Refused>>,
    /// How many times the log was reopened when this was sent (set by [`Publisher::send`]).
    pub epoch: u64,
}

/// Why an append was not stored.
#[derive(Debug)]
pub(super) enum Refused {
    /// This append failed on its own (the first of a run of refusals).
    First(AppendError),
    /// An append sent before this one was refused, so this one was refused with it;
    /// nothing of it was stored.
    Chained(String),
}

/// Hands appends to the task that sends them and counts those not answered yet.
pub(super) struct Publisher {
    jobs: mpsc::UnboundedSender<(u64, Job)>,
    /// Appends handed over (job numbers from 1).
    sent: AtomicU64,
    /// Every job up to this number is answered.
    answered: Arc<Durability>,
    /// An append was refused: appends are refused too until the appender rebuilt its
    /// state ([`Publisher::reopen`]), which was built on the refused one.
    refused: Arc<AtomicBool>,
    /// An append was refused since this was last taken: the stream's ends must be read.
    reload: Arc<AtomicBool>,
    /// Reopenings so far: a job sent before the last one is never published after a
    /// refusal of its own epoch.
    epoch: AtomicU64,
}

impl Publisher {
    /// Starts the sending task on `nats`'s thread; `acked` advances to each stored
    /// append's last offset.
    pub fn start(nats: &super::Nats, acked: Arc<Durability>) -> Self {
        let (jobs, receiver) = mpsc::unbounded_channel();
        let answered = Arc::new(Durability::new(0));
        let refused = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        let client = nats.client().clone();
        let timeout = nats.settings().request_timeout;
        let track = Track {
            answered: Arc::clone(&answered),
            acked,
            refused: Arc::clone(&refused),
            reload: Arc::clone(&reload),
        };
        nats.spawn(run(client, timeout, receiver, track));
        Self {
            jobs,
            sent: AtomicU64::new(0),
            answered,
            refused,
            reload,
            epoch: AtomicU64::new(0),
        }
    }

    /// Sends `job` after every job sent before it.
    pub fn send(&self, mut job: Job) {
        job.epoch = self.epoch.load(Ordering::SeqCst);
        let number = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if let Err(mpsc::error::SendError((_, job))) = self.jobs.send((number, job)) {
            let _ = job.done.send(Err(Refused::First(AppendError::Log(
                LogError::Unavailable("the NATS connection is closed; nothing was appended".into()),
            ))));
        }
    }

    /// Resolves once every append sent so far is answered (stored or not).
    pub fn settled(&self) -> impl std::future::Future<Output = Result<(), LogError>> + 'static {
        self.answered.wait(self.sent.load(Ordering::SeqCst))
    }

    /// Whether an append was refused since the last call: the ends must be read again.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }

    /// Whether appends are refused, after a refusal, until [`Publisher::reopen`].
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::SeqCst)
    }

    /// The appender rebuilt its state from the streams: appends are taken again.
    pub fn reopen(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.refused.store(false, Ordering::SeqCst);
    }
}

/// What the sending task reports to.
struct Track {
    answered: Arc<Durability>,
    acked: Arc<Durability>,
    refused: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

struct InFlight {
    number: u64,
    token: u64,
    name: String,
    expected: u64,
    count: u64,
    last_offset: u64,
    /// The `Nats-Msg-Id` of its last message: what the append after it is fenced on.
    last_msg_id: String,
    /// When its last message was sent, for the append latency.
    sent: Instant,
    deadline: Instant,
    epoch: u64,
    reply: Option<Result<Bytes, String>>,
    done: oneshot::Sender<Result<(), Refused>>,
}

async fn run(
    client: async_nats::Client,
    timeout: Duration,
    mut jobs: mpsc::UnboundedReceiver<(u64, Job)>,
    track: Track,
) {
    let Track {
        answered,
        acked,
        refused,
        reload,
    } = track;
    let inbox = client.new_inbox();
    let mut replies = match client.subscribe(format!("{inbox}.*")).await {
        Ok(replies) => Some(replies),
        Err(error) => {
            tracing::warn!(%error, "cannot subscribe to append acknowledgements; every append is refused");
            None
        }
    };
    let mut waiting: VecDeque<InFlight> = VecDeque::new();
    // Jobs taken but not sent yet (an atomic batch waits until nothing is in flight).
    let mut backlog: VecDeque<(u64, Job)> = VecDeque::new();
    let mut token = 0u64;
    // Jobs numbered below this were sent before the last refusal: refused with it.
    let mut chain_until = 0u64;
    let mut chain_cause = String::new();
    // The epoch of the last refusal: jobs of it (or before) not yet published are refused
    // with it, unpublished, as JetStream would refuse them for their fence.
    let mut refused_epoch: Option<u64> = None;
    loop {
        let deadline = waiting.front().map(|first| first.deadline);
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                backlog.push_back(job);
            }
            Some(message) = async {
                match replies.as_mut() {
                    Some(replies) => replies.next().await,
                    None => std::future::pending().await,
                }
            } => {
                let Some(first) = waiting.front().map(|first| first.token) else { continue };
                let Some(answered_token) = message
                    .subject
                    .rsplit('.')
                    .next()
                    .and_then(|token| token.parse::<u64>().ok())
                else {
                    continue;
                };
                if let Some(entry) = answered_token
                    .checked_sub(first)
                    .and_then(|index| waiting.get_mut(index as usize))
                {
                    if entry.reply.is_none() {
                        entry.reply = Some(Ok(message.payload));
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                if let Some(first) = waiting.front_mut() {
                    if first.reply.is_none() && first.deadline <= Instant::now() {
                        first.reply = Some(Err(format!(
                            "append to JetStream stream {} not acknowledged within {timeout:?}; whether it was stored is unknown until the stream is read again",
                            first.name
                        )));
                    }
                }
            }
        }
        // Answer in the order sent.
        while waiting.front().is_some_and(|first| first.reply.is_some()) {
            let Some(done) = waiting.pop_front() else {
                break;
            };
            let outcome = match done.reply {
                Some(Ok(payload)) => {
                    streams::check_ack(&done.name, done.expected, done.count, &payload)
                }
                Some(Err(error)) => Err(AppendError::Log(LogError::Unavailable(error))),
                None => continue,
            };
            let outcome = match outcome {
                Ok(()) => {
                    acked.advance(done.last_offset);
                    latency::observe(&latency::latencies().append, done.sent.elapsed());
                    Ok(())
                }
                // Refused for its fence after an earlier refusal: a consequence, not news.
                Err(AppendError::Log(LogError::Fenced { .. })) if done.number < chain_until => Err(Refused::Chained(format!(
                    "an append sent before it to JetStream stream {} was refused ({chain_cause}), so this one was refused with it; nothing of it was stored",
                    done.name
                ))),
                Err(error) => {
                    refused.store(true, Ordering::SeqCst);
                    reload.store(true, Ordering::SeqCst);
                    refused_epoch = Some(refused_epoch.map_or(done.epoch, |e| e.max(done.epoch)));
                    chain_until = waiting.back().map_or(done.number + 1, |last| last.number + 1);
                    chain_cause = match &error {
                        AppendError::Duplicate(_) => "it held an event JetStream already had".into(),
                        AppendError::Log(error) => error.to_string(),
                    };
                    Err(Refused::First(error))
                }
            };
            let _ = done.done.send(outcome);
            answered.advance(done.number);
        }
        // Send what may go: an atomic batch only once nothing is in flight (its fence is
        // then exact), and what follows it only after it.
        while let Some((_, front)) = backlog.front() {
            if front.messages.len() > 1 && !waiting.is_empty() {
                break;
            }
            let Some((number, job)) = backlog.pop_front() else {
                break;
            };
            let Job {
                name,
                expected,
                messages,
                last_offset,
                done,
                epoch,
            } = job;
            if refused_epoch.is_some_and(|refused| epoch <= refused) {
                let _ = done.send(Err(Refused::Chained(format!(
                    "an append sent before it to JetStream stream {name} was refused ({chain_cause}), so this one was not sent; nothing of it was stored"
                ))));
                answered.advance(number);
                continue;
            }
            if replies.is_none() {
                let _ = done.send(Err(Refused::First(AppendError::Log(
                    LogError::Unavailable(
                        "append acknowledgements cannot be received; nothing was appended".into(),
                    ),
                ))));
                answered.advance(number);
                continue;
            }
            token += 1;
            let count = messages.len() as u64;
            let last_msg_id = messages
                .last()
                .map(|m| m.msg_id.clone())
                .unwrap_or_default();
            // Behind an append in flight, a message is also fenced on that append's last
            // message: a sequence alone would hold if another writer stored as many
            // messages as a refused append held, and this one would land after them.
            let after = waiting
                .iter()
                .rev()
                .find(|previous| previous.name == name)
                .map(|previous| previous.last_msg_id.clone());
            // Bounded: while NATS is away the client's buffer fills and a publish waits,
            // and acknowledgements and timeouts must still be seen.
            let sent = tokio::time::timeout(
                timeout,
                send(&client, &format!("{inbox}.{token}"), &name, expected, after, messages),
            )
            .await
            .unwrap_or_else(|_| Err(format!(
                "append to JetStream stream {name} could not be sent within {timeout:?} (NATS unreachable?); whether it was stored is unknown until the stream is read again"
            )));
            let reply = sent.err().map(Err);
            waiting.push_back(InFlight {
                number,
                token,
                name,
                expected,
                count,
                last_offset,
                last_msg_id,
                sent: Instant::now(),
                deadline: Instant::now() + timeout,
                epoch,
                reply,
                done,
            });
        }
    }
    for (number, job) in backlog {
        let _ = job.done.send(Err(Refused::First(AppendError::Log(
            LogError::Unavailable(
                "the stream's log was closed before the append was sent; nothing of it was stored"
                    .into(),
            ),
        ))));
        answered.advance(number);
    }
    for entry in waiting {
        let _ = entry.done.send(Err(Refused::First(AppendError::Log(LogError::Unavailable(
            "the stream's log was closed before the append was acknowledged; whether it was stored is unknown until the stream is read again".into(),
        )))));
        answered.advance(entry.number);
    }
}

/// Publishes one append's `messages`, the last with `reply` as where its acknowledgement
/// goes.
async fn send(
    client: &async_nats::Client,
    reply: &str,
    name: &str,
    expected: u64,
    after: Option<String>,
    messages: Vec<Outgoing>,
) -> Result<(), String> {
    let unsent = |error: &dyn std::fmt::Display| {
        format!(
            "append to JetStream stream {name}: {error}; whether it was stored is unknown until the stream is read again"
        )
    };
    let mut framed = streams::framed(messages, expected);
    if let (Some(after), Some((_, headers, _))) = (after, framed.first_mut()) {
        headers.insert("Nats-Expected-Last-Msg-Id", after.as_str());
    }
    let count = framed.len();
    for (index, (subject, headers, body)) in framed.into_iter().enumerate() {
        if index + 1 == count {
            client
                .publish_with_reply_and_headers(subject, reply.to_owned(), headers, body)
                .await
                .map_err(|error| unsent(&error))?;
        } else {
            client
                .publish_with_headers(subject, headers, body)
                .await
                .map_err(|error| unsent(&error))?;
        }
    }
    Ok(())
}
