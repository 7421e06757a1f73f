//! Why a node could not start, or stopped badly: what `node::run` answers and the binary
//! turns into its exit status (settings the operator must fix exit 2).

use std::path::PathBuf;
use std::time::Duration;

use herald_runtime::catalog::CatalogError;
use herald_runtime::log::partitions::PartitionsError;
use herald_runtime::log::LogError;
use herald_runtime::snapshot::SnapshotError;

/// Why a node could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The registered domains are wired wrongly.
    #[error("domain wiring: {0}")]
    Catalog(#[from] CatalogError),
    /// The data directory cannot be created.
    #[error(
        "cannot create data directory {path}: {source}; check [node] data_dir and its permissions"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The event log cannot be opened.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The snapshots directory cannot be used.
    #[error(transparent)]
    Snapshots(#[from] SnapshotError),
    /// A token of `[auth]` cannot be read.
    #[error("[auth]: {0}")]
    Auth(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(#[source] std::io::Error),
    /// NATS cannot be used: credentials refused, server too old, no JetStream.
    #[error(transparent)]
    Nats(#[from] herald_runtime::nats::NatsError),
    /// A setting cannot be used as given (a secret that cannot be read).
    #[error("{0}")]
    Config(String),
    /// The config's partition counts do not fit the data dir.
    #[error(transparent)]
    Partitions(#[from] PartitionsError),
    /// A domain did not become ready in time.
    #[error("domains not ready after {0:?}: {1}")]
    NotReady(Duration, String),
}
