//! How many partitions each domain's streams were laid out with in this log: `log/PARTITIONS`.
//!
//! A key's partition is its hash modulo P, so a log written with one P cannot be read with
//! another: a key's history would sit in one partition stream and its new events in another.
//! The count is chosen once per domain (the config's, else the default), written here before
//! any host starts, and from then on the data dir's count is the domain's count. A config
//! that names another count is refused at start, never followed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::file::sync_dir;
use super::LogError;

/// The file's name in the log directory.
pub const FILE: &str = "PARTITIONS";

/// What one domain asks for at start.
#[derive(Debug, Clone, Copy)]
pub struct Wish {
    /// The domain.
    pub domain: &'static str,
    /// Whether its state is kept per key (else it is always one partition).
    pub by_key: bool,
    /// The count its config names (`[domain.<name>] partitions`, else `[domains] partitions`).
    pub configured: Option<u32>,
    /// Whether this node runs it. A domain not run keeps the count on record (else 1),
    /// and none is recorded for it.
    pub hosted: bool,
}

/// Why the recorded counts and the config cannot both hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionsError {
    /// The config names another count than the data dir was laid out with.
    #[error("domain \"{domain}\" is laid out in {recorded} partition(s) in {}, but the config gives {configured} ([domain.{domain}] partitions or [domains] partitions); its events stay where they are, so the count cannot change on this data dir: set partitions = {recorded} for it (or remove the setting: the data dir's count is kept), or start from a new [node] data_dir", file.display())]
    Changed {
        /// The domain.
        domain: String,
        /// The count in the file (or read from the streams of an older log).
        recorded: u32,
        /// The count the config gives.
        configured: u32,
        /// The file.
        file: PathBuf,
    },
    /// The log holds partition streams the recorded count does not explain.
    #[error("the log holds stream \"{stream}\", which does not fit domain \"{domain}\" laid out in {recorded} partition(s) ({}); restore that file from a backup, or start from a new [node] data_dir", file.display())]
    Unexplained {
        /// The domain.
        domain: String,
        /// The stream.
        stream: String,
        /// The count on record (1 when there is none).
        recorded: u32,
        /// The file.
        file: PathBuf,
    },
    /// The file is unreadable or could not be written.
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Settles each domain's partition count against what `dir` (the log directory) records
/// and which `streams` the log holds, records the counts of domains seen for the first
/// time, and answers the count of every domain in `wishes`. A `ByKey` domain with no count
/// on record and none configured gets `default`.
pub fn settle(
    dir: &Path,
    streams: &[String],
    wishes: &[Wish],
    default: u32,
) -> Result<BTreeMap<&'static str, u32>, PartitionsError> {
    let file = dir.join(FILE);
    let mut recorded = read(&file)?;
    let mut counts = BTreeMap::new();
    let mut changed = false;
    for wish in wishes {
        let found = match recorded.get(wish.domain) {
            Some(count) => Some(*count),
            None => inferred(wish.domain, streams, &file)?,
        };
        if !wish.hosted {
            counts.insert(wish.domain, found.unwrap_or(1));
            continue;
        }
        let count = match (found, wish.configured) {
            (_, _) if !wish.by_key => 1,
            (Some(recorded), Some(configured)) if recorded != configured => {
                return Err(PartitionsError::Changed {
                    domain: wish.domain.to_owned(),
                    recorded,
                    configured,
                    file,
                })
            }
            (Some(recorded), _) => recorded,
            (None, configured) => configured.unwrap_or(default).max(1),
        };
        check_streams(wish.domain, count, streams, &file)?;
        if recorded.get(wish.domain) != Some(&count) {
            recorded.insert(wish.domain.to_owned(), count);
            changed = true;
        }
        counts.insert(wish.domain, count);
    }
    if changed {
        write(dir, &file, &recorded)?;
    }
    Ok(counts)
}

/// The count an older log (before this file) was laid out with: 1 if it holds the domain's
/// own stream or dead letters, nothing if it holds none of its streams.
fn inferred(domain: &str, streams: &[String], file: &Path) -> Result<Option<u32>, PartitionsError> {
    let mut whole = false;
    for stream in streams {
        let name = stream.strip_prefix("deadletter-").unwrap_or(stream);
        if name == domain {
            whole = true;
        } else if partition_of(domain, name).is_some() {
            return Err(PartitionsError::Unexplained {
                domain: domain.to_owned(),
                stream: stream.clone(),
                recorded: 1,
                file: file.to_owned(),
            });
        }
    }
    Ok(whole.then_some(1))
}

/// Refuses a log whose streams of `domain` do not fit `count` partitions.
fn check_streams(
    domain: &str,
    count: u32,
    streams: &[String],
    file: &Path,
) -> Result<(), PartitionsError> {
    for stream in streams {
        let name = stream.strip_prefix("deadletter-").unwrap_or(stream);
        let fits = match (name == domain, partition_of(domain, name)) {
            (true, _) => count == 1,
            (false, Some(partition)) => count > 1 && partition < count,
            (false, None) => true,
        };
        if !fits {
            return Err(PartitionsError::Unexplained {
                domain: domain.to_owned(),
                stream: stream.clone(),
                recorded: count,
                file: file.to_owned(),
            });
        }
    }
    Ok(())
}

/// The partition `name` is of `domain` (`orders-p3` is 3 of `orders`).
fn partition_of(domain: &str, name: &str) -> Option<u32> {
    let digits = name.strip_prefix(domain)?.strip_prefix("-p")?;
    match digits.starts_with('0') && digits.len() > 1 {
        true => None,
        false => digits.parse().ok(),
    }
}

/// The counts recorded in the log directory `dir` (none for a log from before partitions).
pub fn recorded(dir: &Path) -> Result<BTreeMap<String, u32>, PartitionsError> {
    read(&dir.join(FILE))
}

fn read(file: &Path) -> Result<BTreeMap<String, u32>, PartitionsError> {
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(LogError::io(file, &error).into()),
    };
    serde_json::from_str(&text).map_err(|error| {
        LogError::Corrupt {
            file: file.to_owned(),
            byte: error.column() as u64,
            reason: format!(
                "partition counts do not parse ({error}); expected {{\"domain\": count, …}}"
            ),
        }
        .into()
    })
}

/// Writes the counts whole or not at all: a temporary file, synced, renamed, directory synced.
fn write(dir: &Path, file: &Path, counts: &BTreeMap<String, u32>) -> Result<(), PartitionsError> {
    let temporary = dir.join(format!("{FILE}.tmp"));
    let text = serde_json::to_string_pretty(counts).unwrap_or_default();
    let written = fs::File::create(&temporary).and_then(|mut out| {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        out.sync_all()
    });
    written.map_err(|error| LogError::io(&temporary, &error))?;
    fs::rename(&temporary, file).map_err(|error| LogError::io(file, &error))?;
    sync_dir(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wish(domain: &'static str, configured: Option<u32>) -> Wish {
        Wish {
            domain,
            by_key: true,
            configured,
            hosted: true,
        }
    }

    #[test]
    fn a_domain_not_run_here_keeps_its_count_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        settle(dir.path(), &[], &[wish("orders", Some(4))], 2).unwrap();
        let resting = |domain| Wish {
            hosted: false,
            ..wish(domain, Some(9))
        };
        let counts = settle(
            dir.path(),
            &[],
            &[resting("orders"), resting("shipping")],
            2,
        )
        .unwrap();
        assert_eq!((counts["orders"], counts["shipping"]), (4, 1));
        let text = fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains("shipping"), "{text}");
    }

    #[test]
    fn the_first_count_is_recorded_and_kept_when_the_config_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = settle(dir.path(), &[], &[wish("orders", None)], 4).unwrap();
        assert_eq!(first["orders"], 4);
        let streams = vec!["orders-p3".to_owned(), "deadletter-orders-p0".to_owned()];
        let again = settle(dir.path(), &streams, &[wish("orders", None)], 16).unwrap();
        assert_eq!(
            again["orders"], 4,
            "the data dir's count wins over the default"
        );
        let same = settle(dir.path(), &streams, &[wish("orders", Some(4))], 16).unwrap();
        assert_eq!(same["orders"], 4);
    }

    #[test]
    fn another_configured_count_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        settle(dir.path(), &[], &[wish("orders", Some(4))], 2).unwrap();
        let error = settle(dir.path(), &[], &[wish("orders", Some(8))], 2).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("laid out in 4") && message.contains("gives 8"),
            "{message}"
        );
        assert!(message.contains("set partitions = 4"), "{message}");
    }

    #[test]
    fn an_older_log_with_the_whole_stream_counts_as_one_partition() {
        let dir = tempfile::tempdir().unwrap();
        let streams = vec!["orders".to_owned(), "inventory".to_owned()];
        let counts = settle(dir.path(), &streams, &[wish("orders", None)], 8).unwrap();
        assert_eq!(counts["orders"], 1);
        let error = settle(dir.path(), &streams, &[wish("orders", Some(8))], 8).unwrap_err();
        assert!(matches!(
            error,
            PartitionsError::Changed {
                recorded: 1,
                configured: 8,
                ..
            }
        ));
    }

    #[test]
    fn streams_the_count_does_not_explain_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        settle(dir.path(), &[], &[wish("orders", Some(2))], 2).unwrap();
        let streams = vec!["orders-p5".to_owned()];
        let error = settle(dir.path(), &streams, &[wish("orders", None)], 2).unwrap_err();
        assert!(
            matches!(error, PartitionsError::Unexplained { .. }),
            "{error}"
        );
        let lost = tempfile::tempdir().unwrap();
        let error = settle(lost.path(), &streams, &[wish("orders", None)], 2).unwrap_err();
        assert!(error.to_string().contains("orders-p5"), "{error}");
    }

    #[test]
    fn a_whole_domain_is_one_partition_and_names_like_it_are_not_its_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let whole = Wish {
            domain: "inventory",
            by_key: false,
            configured: None,
            hosted: true,
        };
        let streams = vec!["orders-pending".to_owned(), "inventory".to_owned()];
        let counts = settle(dir.path(), &streams, &[whole, wish("orders", None)], 3).unwrap();
        assert_eq!((counts["inventory"], counts["orders"]), (1, 3));
        assert_eq!(partition_of("orders", "orders-p03"), None);
    }
}
