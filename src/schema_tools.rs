//! `herald schema show|check`: this build's event types as `GET /v1/domains` shows them,
//! and whether they can still read what an earlier build stored (`herald_runtime::compat`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use herald_runtime::catalog::Catalog;
use herald_runtime::compat;

use crate::cli::Registry;

/// The `herald schema` subcommands.
#[derive(Subcommand)]
pub enum SchemaCommand {
    /// Print this build's domains and event types with their schemas and versions: the
    /// topology `GET /v1/domains` answers, to save for a later `check`.
    Show,
    /// Check this build's event types against an earlier build's (FILE: a saved
    /// `GET /v1/domains` or `herald schema show`). Exits 0 if every type stored then can
    /// still be read and consumed, 1 naming each change that breaks, 2 if FILE is unusable.
    Check {
        /// The earlier build's topology.
        #[arg(long)]
        against: PathBuf,
    },
}

/// Runs a `herald schema` subcommand over `registry`'s domains.
pub fn run(command: SchemaCommand, registry: Registry) -> anyhow::Result<ExitCode> {
    let entries = registry();
    let every: Vec<String> = entries.iter().map(|entry| entry.name.to_owned()).collect();
    let catalog = Catalog::new(&entries, &every).context("this build's domains are miswired")?;
    let now = catalog.to_json();
    match command {
        SchemaCommand::Show => {
            println!("{}", serde_json::to_string_pretty(&now)?);
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::Check { against } => {
            let text = match std::fs::read_to_string(&against) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!(
                        "herald schema check: cannot read {}: {error}",
                        against.display()
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let earlier = match serde_json::from_str(&text) {
                Ok(earlier) => earlier,
                Err(error) => {
                    eprintln!(
                        "herald schema check: {} is not JSON: {error}",
                        against.display()
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            let report = match compat::check(&earlier, &now) {
                Ok(report) => report,
                Err(error) => {
                    eprintln!("herald schema check: {}: {error}", against.display());
                    return Ok(ExitCode::from(2));
                }
            };
            for (name, was, is) in &report.upcast {
                println!("{name}: version {was} -> {is}, upcast from the stored layout");
            }
            if report.breaking.is_empty() {
                println!(
                    "compatible: every one of the {} event types in {} can still be read and consumed",
                    report.checked,
                    against.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            for breaking in &report.breaking {
                eprintln!("breaking: {breaking}");
            }
            eprintln!(
                "herald schema check: {} change(s) would break events stored by the build of {}",
                report.breaking.len(),
                against.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
