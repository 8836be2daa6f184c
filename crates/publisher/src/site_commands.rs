//! `berth site build`: regenerate the catalog site, e.g. for a store an older berth
//! wrote, or to record the registry host its pull commands show.

use berth_core::store::Store;
use berth_publisher::{derived, site};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SiteCommand {
    /// Rewrite the whole site from the store (publishes and access changes keep it
    /// current on their own).
    Build {
        /// Host people pull from (e.g. registry.example.com); recorded in the store for
        /// later publishes. Until one is set, pages show REGISTRY-HOST.
        #[arg(long, env = "BERTH_REGISTRY_HOST")]
        registry_host: Option<String>,
        /// Print one JSON object describing the result on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub async fn site(store: &dyn Store, command: SiteCommand) -> anyhow::Result<()> {
    let SiteCommand::Build {
        registry_host,
        json,
    } = command;
    if let Some(host) = registry_host {
        check_host(&host)?;
        let mut settings = site::load_settings(store).await?;
        settings.registry_host = Some(host);
        site::save_settings(store, &settings).await?;
    }
    let report = derived::refresh_public(store, site::Change::Everything).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "site: {} public repositories, {} pages written, {} removed",
            report.repositories, report.pages_written, report.pages_removed
        );
    }
    Ok(())
}

/// A host and optional port, as it goes before `/repo:tag`.
fn check_host(host: &str) -> anyhow::Result<()> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if !valid {
        anyhow::bail!(
            "{host:?} is not a registry host: give a host name and optional port, e.g. registry.example.com or localhost:5000 (no scheme, no path)"
        );
    }
    Ok(())
}
