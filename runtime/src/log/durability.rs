//! When written records become durable: a watch for callers awaiting their own records,
//! and listeners (the bus) told of every step so they can wake subscribers.

use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::watch;

use super::LogError;

/// Called with the new durable offset each time it advances.
pub type DurableListener = Box<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, Clone, Default)]
struct Progress {
    durable: u64,
    /// Set once a sync failed: nothing written after the last durable offset is safe.
    failed: Option<Arc<str>>,
}

/// The durable offset of a log, to read, await, or be told about.
pub struct Durability {
    sender: watch::Sender<Progress>,
    listeners: RwLock<Vec<DurableListener>>,
}

impl Durability {
    /// Starts at `durable`: what was on disk when the log opened.
    pub fn new(durable: u64) -> Self {
        Self {
            sender: watch::Sender::new(Progress {
                durable,
                failed: None,
            }),
            listeners: RwLock::new(Vec::new()),
        }
    }

    /// The last durable offset.
    pub fn durable(&self) -> u64 {
        self.sender.borrow().durable
    }

    /// Why the log stopped syncing, if it did.
    pub fn failure(&self) -> Option<String> {
        self.sender.borrow().failed.as_deref().map(str::to_owned)
    }

    /// Registers `listener` to be called after every advance.
    pub fn listen(&self, listener: DurableListener) {
        self.listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Resolves once `offset` is durable; fails if the log cannot make it so.
    pub fn wait(&self, offset: u64) -> impl Future<Output = Result<(), LogError>> + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let reached = receiver
                .wait_for(|p| p.durable >= offset || p.failed.is_some())
                .await
                .map(|p| (p.durable >= offset, p.failed.clone()));
            match reached {
                Ok((true, _)) => Ok(()),
                Ok((false, failed)) => Err(LogError::Unavailable(format!(
                    "offset {offset} was written but could not be synced: {}",
                    failed.as_deref().unwrap_or("unknown")
                ))),
                Err(_) => Err(LogError::Unavailable("the event log was closed".into())),
            }
        }
    }

    /// Resolves with the durable offset once it is past `offset`.
    pub fn after(&self, offset: u64) -> impl Future<Output = Result<u64, LogError>> + 'static {
        let wait = self.wait(offset.saturating_add(1));
        let receiver = self.sender.subscribe();
        async move {
            wait.await?;
            let durable = receiver.borrow().durable;
            Ok(durable)
        }
    }

    pub(crate) fn advance(&self, to: u64) {
        let advanced = self.sender.send_if_modified(|progress| {
            if to > progress.durable {
                progress.durable = to;
                true
            } else {
                false
            }
        });
        if advanced {
            for listener in self
                .listeners
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                listener(to);
            }
        }
    }

    pub(crate) fn fail(&self, reason: String) {
        self.sender.send_modify(|progress| {
            progress.failed.get_or_insert_with(|| reason.into());
        });
    }
}
