//! `berth webhook add|list|remove|log`, and the webhook flags of `berth push`:
//! clap verbs over the `webhook` module.

use std::time::Duration;

use berth_core::Repository;
use berth_core::store::Store;
use berth_publisher::PublishReport;
use berth_publisher::access_admin::parse_duration;
use berth_publisher::webhook::{self, DeliveryOptions, DeliveryReport, NotifyOptions, hook};
use clap::{Args, Subcommand};

use crate::access_commands::read_stdin_line;

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// POST to URL after every publish to REPO (a name, or a pattern like acme/*).
    Add {
        repository: String,
        url: String,
        /// Read a signing secret from the first line of stdin (then every delivery
        /// carries X-Berth-Signature-256).
        #[arg(long)]
        secret_stdin: bool,
        /// A label, unique per REPO, to remove it by (default: the URL's host).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the webhooks added for REPO, or that fire for it (never their secrets).
    List { repository: String },
    /// Remove the webhook LABEL added for REPO (the same name or pattern as added).
    Remove { repository: String, label: String },
    /// Show recent deliveries for a repository, newest first.
    Log {
        repository: String,
        /// How many deliveries to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// The flags of `berth push` that shape its webhook deliveries.
#[derive(Args)]
pub struct NotifyArgs {
    /// Who pushed, for the webhook payload's `pusher` (default: $USER).
    #[arg(long, env = "BERTH_PUSHER")]
    pusher: Option<String>,
    /// The registry's public base URL, for the payload's `repo_url` (empty without it).
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    public_url: Option<String>,
    /// Attempts per webhook delivery (retried on connection errors and 5xx only).
    #[arg(long, env = "BERTH_WEBHOOK_ATTEMPTS", default_value_t = 3)]
    webhook_attempts: u32,
    /// Limit on each delivery attempt, e.g. 10s.
    #[arg(long, env = "BERTH_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = timeout)]
    webhook_timeout: Duration,
}

/// Parsed with the other flags, so a bad value stops `push` before it publishes.
fn timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

pub async fn webhook(store: &dyn Store, command: WebhookCommand) -> anyhow::Result<()> {
    match command {
        WebhookCommand::Add {
            repository,
            url,
            secret_stdin,
            name,
        } => {
            let secret = secret_stdin.then(read_stdin_line).transpose()?;
            let signed = secret.is_some();
            let label = hook::add(store, &repository, &url, name.as_deref(), secret).await?;
            eprintln!(
                "added webhook {label} for {repository}{}",
                if signed { " (signed)" } else { "" }
            );
        }
        WebhookCommand::List { repository } => {
            for hook in hook::list(store, &repository).await? {
                let signed = if hook.record.secret.is_some() {
                    "signed"
                } else {
                    "unsigned"
                };
                println!(
                    "{}\t{}\t{}\t{signed}",
                    hook.pattern.as_str(),
                    hook.label,
                    hook.record.url
                );
            }
        }
        WebhookCommand::Remove { repository, label } => {
            hook::remove(store, &repository, &label).await?;
            eprintln!("removed webhook {label} of {repository}");
        }
        WebhookCommand::Log { repository, limit } => {
            let repository: Repository = repository.parse()?;
            for entry in webhook::log::recent(store, &repository, limit).await? {
                let at = std::time::UNIX_EPOCH + Duration::from_millis(entry.at);
                let answer = entry
                    .http_status
                    .map_or("no answer".to_owned(), |s| format!("HTTP {s}"));
                println!(
                    "{}\t{}\t{}\t{}\t{answer}\t{} attempt(s)\t{}{}",
                    humantime::format_rfc3339_seconds(at),
                    entry.name,
                    entry.tag,
                    entry.status,
                    entry.attempts,
                    entry.delivery,
                    entry.error.map(|e| format!("\t{e}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Delivers the publish's webhooks. Never an error: the image is published whatever
/// the receivers do, so each failure is one `warning:` line on stderr (and in the
/// returned reports, for `--json`).
pub async fn notify(
    store: &dyn Store,
    report: &PublishReport,
    args: &NotifyArgs,
) -> Vec<DeliveryReport> {
    let options = NotifyOptions {
        pusher: args
            .pusher
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default(),
        public_url: args.public_url.clone(),
        delivery: DeliveryOptions {
            attempts: args.webhook_attempts.max(1),
            timeout: args.webhook_timeout,
            ..DeliveryOptions::default()
        },
    };
    let deliveries = match webhook::notify(store, report, &options).await {
        Ok(deliveries) => deliveries,
        Err(e) => {
            eprintln!("warning: webhooks were not delivered: {e}");
            return Vec::new();
        }
    };
    for d in deliveries.iter().filter(|d| d.error.is_some()) {
        eprintln!(
            "warning: webhook {} ({}:{}) failed after {} attempt(s): {}",
            d.name,
            report.repository,
            d.tag,
            d.attempts,
            d.error.as_deref().unwrap_or_default()
        );
    }
    deliveries
}
