//! The `herald` command line: run a node, check a config file, read the log.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::log_tools;
use crate::schema_tools;
use crate::telemetry;
use anyhow::Context as _;
use clap::{Parser, Subcommand};
use herald_actors::node::{self, NodeError};
use herald_config::Config;
use herald_runtime::catalog::Catalog;
use herald_runtime::DomainEntry;

/// Herald: an actor runtime for event-driven microservices.
///
/// A node hosts the domains its config enables, takes CloudEvents over HTTP
/// (POST /v1/events) and answers queries on the domains' state
/// (GET /v1/domains/{domain}/entities/{key}).
#[derive(Parser)]
#[command(name = "herald", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node from a config file and run it until SIGINT or SIGTERM.
    ///
    /// Every key can be overridden by an environment variable HERALD_<SECTION>__<KEY>,
    /// for example HERALD_HTTP__BIND=127.0.0.1:18080. Exits 2 on a bad config.
    Run {
        /// The node's TOML config, for example config/herald.toml.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Read, verify or repair the event log's files while the node is stopped.
    #[command(subcommand)]
    Log(log_tools::LogCommand),
    /// Show this build's event types, or check them against an earlier build's.
    #[command(subcommand)]
    Schema(schema_tools::SchemaCommand),
    /// Validate a config file (with environment overrides) and exit: 0 if valid, 2 if not.
    CheckConfig {
        /// The TOML config to check.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Exit status for a config that does not validate.
const BAD_CONFIG: u8 = 2;

/// The registered domains of a service: every domain its build knows.
pub type Registry = fn() -> Vec<DomainEntry>;

/// Runs the `herald` command line (`run`, `check-config`, `log ...`) over `registry`'s
/// domains, from the process's arguments; returns the exit status for `main` to return.
pub fn main(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match load(&config, registry) {
            Ok(_) => {
                println!("{}: valid", config.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Schema(command) => match schema_tools::run(command, registry) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("herald schema: {error:#}");
                ExitCode::from(2)
            }
        },
        Command::Log(command) => match log_tools::run(command, registry) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("herald log: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let config = match load(&config, registry) {
                Ok(config) => config,
                Err(code) => return code,
            };
            match run(config, registry) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    eprintln!("herald: {error:#}");
                    // What the operator must fix in the config (or the NATS it names) is a
                    // config error; the rest is a failure at run time.
                    let settings = error.chain().any(|cause| {
                        matches!(
                            cause.downcast_ref::<NodeError>(),
                            Some(
                                NodeError::Nats(_)
                                    | NodeError::Config(_)
                                    | NodeError::Catalog(_)
                                    | NodeError::Partitions(_)
                            )
                        )
                    });
                    match settings {
                        true => ExitCode::from(BAD_CONFIG),
                        false => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}

/// Loads and validates the config, then checks the wiring of this build's domains and the
/// partitions the config gives them, exactly as `run` would: `check-config` and `run`
/// refuse the same things, with status 2, each message printed once.
fn load(path: &Path, registry: Registry) -> Result<Config, ExitCode> {
    let refuse = |message: &dyn std::fmt::Display| {
        eprintln!("herald: {message}");
        ExitCode::from(BAD_CONFIG)
    };
    let registered = registry();
    let known: Vec<&str> = registered.iter().map(|entry| entry.name).collect();
    let config = Config::load(path, &known).map_err(|error| refuse(&error))?;
    let enabled = config.enabled_domains(&known);
    let catalog = Catalog::check(&registered, &enabled).map_err(|errors| {
        for error in &errors {
            eprintln!("herald: domain wiring: {error}");
        }
        ExitCode::from(BAD_CONFIG)
    })?;
    node::check_partitions(&config, &catalog, &enabled).map_err(|error| refuse(&error))?;
    node::configure_domains(&config, registered).map_err(|error| refuse(&error))?;
    Ok(config)
}

fn run(config: Config, registry: Registry) -> anyhow::Result<()> {
    // Held until the node stops: dropping it flushes the spans not exported yet.
    let _telemetry = telemetry::init(&config)?;
    log_panics();
    #[cfg(feature = "fault-injection")]
    tracing::warn!("built with fault injection: test-only domains and hooks are present");
    let bind = config.bind_addr();
    let listener = std::net::TcpListener::bind(bind).with_context(|| {
        format!("cannot listen on {bind}; is another node running there? set [http] bind or HERALD_HTTP__BIND")
    })?;
    actix_rt::System::new().block_on(async move {
        herald_actors::node::run(config, registry(), listener, shutdown_signal())
            .await
            .context("node failed")
    })
}

/// Sends panics to the node's log as well as stderr: a domain host that panics is caught
/// or restarted, and the log must say why.
fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = %info.location().map(|l| l.to_string()).unwrap_or_default(),
            "panic: {}",
            info.payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default()
        );
        default(info);
    }));
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the node");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
