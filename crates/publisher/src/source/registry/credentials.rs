//! The user's registry credentials, as `docker login` stored them: `config.json` in
//! `$DOCKER_CONFIG` (else `~/.docker`), its `auths` entries and credential helpers
//! (`credHelpers`, `credsStore`), read by the `docker_credential` crate.

use docker_credential::{CredentialRetrievalError, DockerCredential};
use oci_client::secrets::RegistryAuth;

use crate::error::PublishError;

/// The key `docker login` files Docker Hub's credentials under.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for `registry` (`host[:port]`, as in an image reference), or anonymous
/// access when the user has none for it.
pub fn for_registry(source_name: &str, registry: &str) -> Result<RegistryAuth, PublishError> {
    for key in keys(registry) {
        match docker_credential::get_credential(&key) {
            Ok(DockerCredential::UsernamePassword(user, password)) => {
                return Ok(RegistryAuth::Basic(user, password));
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                return Err(PublishError::source(
                    source_name,
                    format!(
                        "the docker config holds an identity token for {key}, which berth cannot use: log in with a username and password or access token (`docker login {registry}`)"
                    ),
                ));
            }
            Err(
                CredentialRetrievalError::NoCredentialConfigured
                | CredentialRetrievalError::ConfigNotFound
                | CredentialRetrievalError::ConfigReadError,
            ) => continue,
            Err(e) => {
                return Err(PublishError::source(
                    source_name,
                    format!(
                        "reading the docker credentials for {key}: {}",
                        first_line(&e.to_string())
                    ),
                ));
            }
        }
    }
    Ok(RegistryAuth::Anonymous)
}

/// The keys `docker login` may have used for `registry`: its own name, the same
/// with a scheme (older clients), and Docker Hub's legacy index URL.
fn keys(registry: &str) -> Vec<String> {
    if ["docker.io", "index.docker.io", "registry-1.docker.io"].contains(&registry) {
        return vec![DOCKER_HUB_KEY.to_owned()];
    }
    vec![
        registry.to_owned(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ]
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_uses_the_legacy_index_key() {
        assert_eq!(keys("docker.io"), vec![DOCKER_HUB_KEY]);
        assert_eq!(keys("127.0.0.1:5000")[0], "127.0.0.1:5000");
    }
}
