//! Webhooks: after a publish, tell other systems what landed. Hooks are small
//! objects in the store ([`hook`]); each pushed tag becomes one Docker Hub-style
//! JSON payload ([`payload`]) POSTed to every matching hook with retries
//! ([`delivery`]), and each outcome is recorded in the store ([`log`]). A delivery
//! that fails never fails the publish: it is reported, not raised.

pub mod delivery;
pub mod hook;
pub mod log;
pub mod payload;

use berth_core::Repository;
use berth_core::store::Store;
use futures::{StreamExt, stream};

use crate::access_admin::AdminError;
use crate::publish::PublishReport;
pub use delivery::{DeliveryOptions, DeliveryReport};
pub use hook::Hook;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Reading or changing the hooks, which are admin records like access ones.
    #[error(transparent)]
    Hooks(#[from] AdminError),
    #[error("the HTTP client could not be set up: {0}")]
    Client(#[from] reqwest::Error),
}

/// Who pushed and where the registry is, for the payloads.
#[derive(Debug, Clone, Default)]
pub struct NotifyOptions {
    /// `push_data.pusher`.
    pub pusher: String,
    /// The registry's public base URL; `repository.repo_url` is empty without it.
    pub public_url: Option<String>,
    pub delivery: DeliveryOptions,
}

/// Deliveries in flight at once.
const DELIVERIES_AT_ONCE: usize = 8;

/// POSTs one payload per (matching hook, pushed tag) and records each outcome.
/// Only reading the hooks can fail; failed deliveries are in the returned reports.
pub async fn notify(
    store: &dyn Store,
    report: &PublishReport,
    options: &NotifyOptions,
) -> Result<Vec<DeliveryReport>, WebhookError> {
    let repository: Repository = report.repository.parse().map_err(AdminError::from)?;
    let hooks = hook::matching(store, &repository).await?;
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let client = delivery::client(&options.delivery)?;
    let pushed_at = crate::access_admin::now();
    let (client, repository) = (&client, &repository);
    let jobs = hooks.iter().flat_map(|hook| {
        report.tags.iter().map(move |tag| {
            let payload = payload::Payload::new(
                repository,
                tag,
                report,
                pushed_at,
                &options.pusher,
                options.public_url.as_deref(),
            );
            (hook, tag, payload)
        })
    });
    let deliveries: Vec<DeliveryReport> = stream::iter(jobs)
        .map(|(hook, tag, payload)| async move {
            let delivered = delivery::deliver(client, hook, tag, &payload, &options.delivery).await;
            log::record(store, repository, &delivered, &report.digest).await;
            delivered
        })
        .buffered(DELIVERIES_AT_ONCE)
        .collect()
        .await;
    log::prune(store, repository).await;
    Ok(deliveries)
}
