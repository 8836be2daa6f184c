//! `GET /token` and `POST /token`: the Docker token endpoint and its OAuth2 form.
//!
//! Granted actions are the intersection of what was asked and what the caller may
//! do: asking for too much is never an error, it just yields less in the token.
//! Wrong credentials are a 401. Anonymous callers get tokens for public repositories.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_core::Repository;
use berth_core::access::{AccessConfig, Credential, Name};
use serde_json::{Value, json};

use super::tokens::{Access, unix_now};
use crate::Registry;
use crate::error::RegistryError;

type Params = Vec<(String, String)>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `GET /token?service=..&scope=..` with optional Basic credentials (docker).
pub async fn get(
    State(registry): State<Arc<Registry>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Result<Json<Value>, RegistryError> {
    check_service(&registry, param(&params, "service"))?;
    let started = Instant::now();
    let mut access = registry.auth.access.get().await?;
    let subject = match basic_credentials(&headers)? {
        Some((user, secret)) => {
            let (name, _, current) = login(&registry, started, access, &user, &secret).await?;
            access = current;
            Some(name)
        }
        None => None,
    };
    let scopes = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str());
    Ok(Json(token_response(
        &registry,
        &access,
        subject.as_ref(),
        scopes,
        None,
    )))
}

/// `POST /token` (OAuth2 form, as containerd sends when it holds credentials):
/// `grant_type=password` or `refresh_token`.
pub async fn post(
    State(registry): State<Arc<Registry>>,
    Form(params): Form<Params>,
) -> Result<Json<Value>, RegistryError> {
    check_service(&registry, param(&params, "service"))?;
    let started = Instant::now();
    let mut access = registry.auth.access.get().await?;
    let issuer = &registry.auth.tokens;
    let (subject, refresh) = match param(&params, "grant_type") {
        Some("password") => {
            let user = param(&params, "username").unwrap_or_default();
            let password = param(&params, "password").unwrap_or_default();
            let (name, credential, current) =
                login(&registry, started, access, user, password).await?;
            access = current;
            let refresh = (param(&params, "access_type") == Some("offline")).then(|| {
                issuer.issue_refresh(name.as_str(), credential_tag(&access, &name, &credential))
            });
            (name, refresh)
        }
        Some("refresh_token") => {
            let token = param(&params, "refresh_token").unwrap_or_default();
            let name = check_refresh(&registry, &access, token)?;
            (name, Some(token.to_owned()))
        }
        other => {
            return Err(RegistryError::TokenRequest(format!(
                "unsupported grant_type {:?}: use password or refresh_token",
                other.unwrap_or("")
            )));
        }
    };
    let scopes = param(&params, "scope").unwrap_or_default().split(' ');
    Ok(Json(token_response(
        &registry,
        &access,
        Some(&subject),
        scopes,
        refresh,
    )))
}

fn check_service(registry: &Registry, service: Option<&str>) -> Result<(), RegistryError> {
    match service {
        Some(service) if service != registry.auth.tokens.service => {
            Err(RegistryError::TokenRequest(format!(
                "unknown service {service:?}: this registry is {:?}",
                registry.auth.tokens.service
            )))
        }
        _ => Ok(()),
    }
}

fn token_response<'a>(
    registry: &Registry,
    access: &AccessConfig,
    subject: Option<&Name>,
    scopes: impl Iterator<Item = &'a str>,
    refresh: Option<String>,
) -> Value {
    let granted: Vec<Access> = scopes.filter_map(|s| grant(access, subject, s)).collect();
    let issuer = &registry.auth.tokens;
    let (token, issued_at) = issuer.issue(subject.map_or("", Name::as_str), granted);
    let issued_at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(issued_at);
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": issuer.ttl.as_secs(),
        "issued_at": humantime::format_rfc3339_seconds(issued_at).to_string(),
    });
    if let Some(refresh) = refresh {
        body["refresh_token"] = refresh.into();
    }
    body
}

/// What a `type:name:actions` scope yields for this caller, if anything.
fn grant(access: &AccessConfig, subject: Option<&Name>, scope: &str) -> Option<Access> {
    let (kind, rest) = scope.split_once(':')?;
    // `repository(plugin)` is a resource class docker may add.
    let kind = kind.split('(').next().unwrap_or(kind);
    let (name, actions) = rest.rsplit_once(':')?;
    let wants = |action: &str| actions.split(',').any(|a| a == action || a == "*");
    match kind {
        "repository" => {
            let repository: Repository = strip_registry_host(name).parse().ok()?;
            (wants("pull") && access.can_pull(subject, &repository)).then(|| Access {
                kind: "repository".into(),
                name: repository.to_string(),
                actions: vec!["pull".into()],
            })
        }
        "registry" if name == "catalog" && wants("*") => Some(Access {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }),
        _ => None,
    }
}

/// `registry.example.com:5000/acme/web` → `acme/web`: some clients name the host in
/// the scope; a first component with a '.' or ':' (or `localhost`) is a host.
fn strip_registry_host(name: &str) -> &str {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    }
}

fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, RegistryError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || RegistryError::Credentials("malformed Basic credentials".into());
    if value.len() > super::tokens::MAX_TOKEN_LEN {
        return Err(bad());
    }
    let value = value.to_str().map_err(|_| bad())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, secret) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some((user.to_owned(), secret.to_owned())))
}

/// Checks credentials; when they fail against a configuration loaded before the
/// request `started`, checks again against one loaded after it, so a user or token
/// created a moment ago logs in at once. Forced reloads are rate limited
/// ([`super::AccessCache::get_as_of`]): a flood of failures costs the store about
/// one load per second.
async fn login(
    registry: &Registry,
    started: Instant,
    access: Arc<AccessConfig>,
    user: &str,
    secret: &str,
) -> Result<(Name, Credential, Arc<AccessConfig>), RegistryError> {
    let wrong = || RegistryError::Credentials("incorrect username or password".into());
    // A name that cannot parse can never exist: no reload would help.
    let name: Name = user.parse().map_err(|_| wrong())?;
    if let Some(credential) = authenticate(registry, &access, &name, secret).await {
        return Ok((name, credential, access));
    }
    let fresh = registry.auth.access.get_as_of(started).await?;
    if Arc::ptr_eq(&fresh, &access) {
        return Err(wrong());
    }
    let credential = authenticate(registry, &fresh, &name, secret)
        .await
        .ok_or_else(wrong)?;
    Ok((name, credential, fresh))
}

/// Checks a password or access token. Passwords (argon2id, 12 MiB) run off the
/// async runtime, a few at a time ([`super::PASSWORD_CHECKS_AT_ONCE`]); tokens are
/// one SHA-256.
async fn authenticate(
    registry: &Registry,
    access: &Arc<AccessConfig>,
    name: &Name,
    secret: &str,
) -> Option<Credential> {
    if berth_core::access::is_token(secret) {
        return access.authenticate(name, secret, unix_now());
    }
    let _permit = registry.auth.password_checks.acquire().await.ok()?;
    let (config, checked, secret) = (access.clone(), name.clone(), secret.to_owned());
    tokio::task::spawn_blocking(move || config.authenticate(&checked, &secret, unix_now()))
        .await
        .expect("password check panicked")
}

/// Ties a refresh token to what the login proved.
fn credential_tag(access: &AccessConfig, user: &Name, credential: &Credential) -> String {
    match credential {
        Credential::Password => {
            let phc = access.users.get(user).map_or("", |u| u.password.as_str());
            format!("password:{}", &berth_core::access::sha256_hex(phc)[..16])
        }
        Credential::Token { label } => format!("token:{label}"),
    }
}

/// A refresh token is good while its user exists and the password (or access token)
/// it came from is unchanged.
fn check_refresh(
    registry: &Registry,
    access: &AccessConfig,
    token: &str,
) -> Result<Name, RegistryError> {
    let invalid =
        || RegistryError::Credentials("the refresh token is invalid or no longer valid".into());
    let claims = registry
        .auth
        .tokens
        .validate_refresh(token)
        .map_err(|_| invalid())?;
    let user: Name = claims.sub.parse().map_err(|_| invalid())?;
    if !access.users.contains_key(&user) {
        return Err(invalid());
    }
    let still_valid = match claims.credential.split_once(':') {
        Some(("password", _)) => {
            claims.credential == credential_tag(access, &user, &Credential::Password)
        }
        Some(("token", label)) => access
            .tokens
            .get(&user)
            .and_then(|t| t.get(label))
            .is_some_and(|t| t.expires_at.is_none_or(|at| unix_now() < at)),
        _ => false,
    };
    still_valid.then_some(user).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_are_stripped_from_scope_names() {
        assert_eq!(
            strip_registry_host("registry.example.com:5000/acme/web"),
            "acme/web"
        );
        assert_eq!(strip_registry_host("localhost/acme"), "acme");
        assert_eq!(strip_registry_host("acme/web"), "acme/web");
    }
}
