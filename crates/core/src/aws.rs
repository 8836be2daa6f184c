//! The AWS SDK's shared configuration: every AWS call berth makes (S3, Secrets
//! Manager, SSM, and the credential providers behind them) goes through one HTTPS
//! client, rustls on ring, verifying servers against the system's root certificates.
//!
//! The SDK's own default client is rustls on aws-lc; the workspace turns it off
//! (root Cargo.toml) so that the registry function links one crypto library (ring,
//! which its token signing uses too), which keeps its Lambda zip small.

use aws_config::{BehaviorVersion, ConfigLoader};
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};

/// `aws_config::defaults` with berth's HTTPS client: what every SDK client is built from.
///
/// The client is the SDK's default one (aws-smithy-runtime's `default_https_client`)
/// with ring in place of aws-lc: connector settings and the sleep implementation come
/// from each client's config, proxies from the environment (`HTTPS_PROXY`, `NO_PROXY`),
/// as the latest behaviour version has it.
pub fn config_loader() -> ConfigLoader {
    let https = Builder::new().build_with_connector_fn(|settings, runtime_components| {
        let mut connector =
            ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = runtime_components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    aws_config::defaults(BehaviorVersion::latest()).http_client(https)
}
