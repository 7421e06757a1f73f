//! `herald log tail|verify|repair`: the event log's files read directly, while the node
//! is stopped. Verify and repair judge damage exactly as the node does when it opens.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use herald_config::nearest;
use herald_runtime::log::{self, DamageKind, DirLock};
use herald_runtime::partition::Layout;

/// The `herald log` subcommands.
#[derive(Subcommand)]
pub enum LogCommand {
    /// Print events as CloudEvents JSON, one per line, in log order or one stream's order.
    Tail {
        /// The node's data directory ([node] data_dir); the log is in its `log/` folder.
        #[arg(long)]
        data_dir: PathBuf,
        /// Only this stream (a domain's name).
        #[arg(long)]
        stream: Option<String>,
        /// Start at this sequence of the stream (or node-wide offset without --stream).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Print at most this many events.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Check every record; exits 1 and names the file and byte when something is damaged.
    Verify {
        /// The node's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Cut the log back to its last good record; the cut bytes are kept beside it.
    Repair {
        /// The node's data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

/// Runs a `herald log` subcommand.
pub fn run(command: LogCommand, registry: crate::Registry) -> anyhow::Result<ExitCode> {
    match command {
        LogCommand::Tail {
            data_dir,
            stream,
            from,
            limit,
        } => tail(&data_dir, stream.as_deref(), from, limit, registry),
        LogCommand::Verify { data_dir } => verify(&data_dir),
        LogCommand::Repair { data_dir } => repair(&data_dir),
    }
}

fn log_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("log");
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a directory: is {} a node's data directory ([node] data_dir)?",
            dir.display(),
            data_dir.display()
        );
    }
    Ok(dir)
}

fn tail(
    data_dir: &Path,
    stream: Option<&str>,
    from: u64,
    limit: Option<u64>,
    registry: crate::Registry,
) -> anyhow::Result<ExitCode> {
    let dir = log_dir(data_dir)?;
    // A registered domain's streams exist before their first event (analytics never
    // appends; dead letters appear with the first parked input; a partition may have no
    // key yet): empty, not unknown. A partitioned domain's own name is no stream: said
    // before the files are read.
    let counts = log::partitions::recorded(&dir).unwrap_or_else(|error| {
        eprintln!("herald log: {error}; streams are named as if no domain were partitioned");
        Default::default()
    });
    let layout = Layout::new(
        registry()
            .iter()
            .map(|domain| (domain.name, counts.get(domain.name).copied().unwrap_or(1))),
    );
    if let Some(name) = stream.filter(|name| layout.partitions(name) > 1) {
        anyhow::bail!(
            "domain \"{name}\" is spread over {} partitions, each its own stream: name one of {}",
            layout.partitions(name),
            layout.streams(name).join(", ")
        );
    }
    let registered = |name: &str| {
        let name = name.strip_prefix("deadletter-").unwrap_or(name);
        layout.locate(name).is_some()
    };
    // One read-only pass over the files: nothing is opened for writing, nothing is cut.
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut out = std::io::stdout().lock();
    let mut written: std::io::Result<()> = Ok(());
    // Every stream seen, so a --stream that names none of them is an error, not silence.
    let mut streams: BTreeSet<String> = BTreeSet::new();
    let damage = log::each_record(&dir, &mut |record| {
        if !streams.contains(&record.envelope.stream) {
            streams.insert(record.envelope.stream.clone());
        }
        let position = match stream {
            Some(stream) if record.envelope.stream != stream => return,
            Some(_) => record.envelope.sequence,
            None => record.offset,
        };
        if remaining == 0 || position < from || written.is_err() {
            return;
        }
        remaining -= 1;
        written = writeln!(out, "{}", record.envelope.to_cloudevent_json());
    })?;
    written?;
    if let Some(damage) = damage {
        anyhow::bail!(
            "the log is damaged at {} byte {}: {}; the events above are those before it; run `herald log verify` for details",
            damage.file.display(),
            damage.byte,
            damage.reason
        );
    }
    if let Some(stream) = stream.filter(|stream| !streams.contains(*stream) && !registered(stream))
    {
        let guess = nearest(stream, streams.iter().map(String::as_str))
            .map(|nearest| format!(" (did you mean \"{nearest}\"?)"))
            .unwrap_or_default();
        let listing = match streams.is_empty() {
            true => "the log holds no events yet".to_owned(),
            false => format!(
                "its streams are: {}",
                streams
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        anyhow::bail!(
            "there is no stream \"{stream}\" in {}{guess}; {listing}",
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = log_dir(data_dir)?;
    // A running node may be mid-write: what looks torn now may be whole a moment later.
    let _lock = DirLock::take(&dir)?;
    // Judged against the same evidence of syncing as the node's start: its snapshots.
    let synced = herald_runtime::snapshot::newest_reflected(&data_dir.join("snapshots"));
    let found = log::check_with(&dir, synced.as_ref())
        .with_context(|| format!("cannot read {}", dir.display()))?;
    for (path, records, bytes) in &found.segments {
        println!("{}: {records} records, {bytes} bytes", path.display());
    }
    for (stream, count) in &found.streams {
        println!("stream {stream}: {count} events");
    }
    match &found.damage {
        None => {
            println!("log is clean: {} records", found.records);
            Ok(ExitCode::SUCCESS)
        }
        Some(damage) => {
            let what = match damage.kind {
                DamageKind::Torn => "torn tail (the node truncates it when it opens the log)",
                DamageKind::Corrupt => "corrupt (the node refuses to start)",
            };
            println!(
                "DAMAGED: {} at byte {}: {} — {what}",
                damage.file.display(),
                damage.byte,
                damage.reason
            );
            for later in &damage.later {
                println!("  unreachable past the damage: {}", later.display());
            }
            println!(
                "{} good records before the damage; `herald log repair --data-dir {}` cuts the log back to them",
                found.records,
                data_dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn repair(data_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = log_dir(data_dir)?;
    let _lock = DirLock::take(&dir)?;
    let synced = herald_runtime::snapshot::newest_reflected(&data_dir.join("snapshots"));
    let repaired = log::repair_with(&dir, synced.as_ref())?;
    // Snapshots past the end of the log describe events it no longer holds, whether this
    // run cut anything or an earlier, interrupted one did.
    for path in move_stale_snapshots(data_dir, repaired.records)? {
        println!(
            "snapshot past the end of the log moved aside: {}",
            path.display()
        );
    }
    let Some(damage) = &repaired.damage else {
        println!(
            "log is clean: {} records; nothing to repair",
            repaired.records
        );
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "cut {} at byte {} ({}); the cut bytes are kept in {}",
        damage.file.display(),
        damage.byte,
        damage.reason,
        repaired
            .kept_tail
            .as_deref()
            .map_or_else(|| "-".into(), |p| p.display().to_string())
    );
    for moved in &repaired.moved {
        println!("moved aside: {}", moved.display());
    }
    println!("log now holds {} records", repaired.records);
    Ok(ExitCode::SUCCESS)
}

/// Snapshots reflecting offsets past the cut describe events no longer in the log.
fn move_stale_snapshots(data_dir: &Path, records: u64) -> anyhow::Result<Vec<PathBuf>> {
    let dir = data_dir.join("snapshots");
    let mut moved = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(moved);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let offset = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".snap"))
            .and_then(|n| n.rsplit('.').next())
            .and_then(|n| n.parse::<u64>().ok());
        if offset.is_some_and(|offset| offset > records) {
            let aside = PathBuf::from(format!("{}.cut", path.display()));
            std::fs::rename(&path, &aside)
                .with_context(|| format!("cannot move {} aside", path.display()))?;
            moved.push(aside);
        }
    }
    Ok(moved)
}
