//! Runs the router: under the Lambda runtime when `AWS_LAMBDA_RUNTIME_API` is set,
//! otherwise as a local HTTP server.

use berth_core::store::StoreArgs;
use tokio::net::TcpListener;

use crate::{ServeArgs, router};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] berth_core::store::StoreError),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the Lambda runtime failed: {0}")]
    Lambda(String),
}

pub fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

pub async fn run(store: &StoreArgs, args: &ServeArgs) -> Result<(), ServeError> {
    let registry = args.registry(store).await?;
    let location = registry.store.location();
    // Says at start whether anyone may pull anything. A store that cannot be read
    // yet is no reason not to start: requests answer 503 until it can.
    match registry.auth.access.get().await {
        Ok(access) if access.enforced() => {
            tracing::info!(users = access.users.len(), "token auth enforced");
        }
        Ok(_) => eprintln!(
            "berth: no users in {location}: the registry is open (anyone may pull anything)"
        ),
        Err(error) => tracing::warn!(%error, "cannot read the access configuration yet"),
    }
    let app = router(registry);
    if in_lambda() {
        tracing::info!(store = %location, "serving under the Lambda runtime");
        return lambda_http::run(app)
            .await
            .map_err(|e| ServeError::Lambda(e.to_string()));
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServeError::Listen {
            address: args.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| ServeError::Listen {
        address: args.listen,
        source,
    })?;
    // Tests and scripts read this line to find a port chosen by the OS.
    eprintln!("berth: serving {location} at http://{address}/v2/");
    axum::serve(listener, app)
        .await
        .map_err(|source| ServeError::Listen { address, source })
}

/// Logs to stderr: JSON under Lambda (CloudWatch), text locally; `BERTH_LOG` sets
/// the filter.
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if in_lambda() {
        builder.json().without_time().init();
    } else {
        builder.init();
    }
}
