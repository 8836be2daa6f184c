//! Docker token authentication over the access configuration in the store.
//!
//! The registry reads who may pull what from `_berth/access/` (cached briefly, see
//! [`AccessCache`]), issues tokens at `/token` ([`endpoint`]) and checks them on
//! every `/v2/` request ([`Auth::authorize_pull`]). With no users in the store the
//! registry is open and says so at start.

pub mod endpoint;
pub mod jwt_crypto;
pub mod key_secret;
pub mod signing_key;
pub mod tokens;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use berth_core::Repository;
use berth_core::access::{AccessConfig, Name};
use berth_core::store::{Store, StoreError};
use tokio::sync::{Mutex, Semaphore};

use crate::error::RegistryError;
use tokens::{Claims, TokenIssuer};

/// The access configuration, reloaded from the store at most every `ttl`, so edits
/// made with the CLI (a revoked token, a new grant) apply within seconds.
#[derive(Debug)]
pub struct AccessCache {
    store: Arc<dyn Store>,
    ttl: Duration,
    loads: Mutex<Loads>,
}

#[derive(Debug, Default)]
struct Loads {
    /// The last successful load, stamped with its start.
    config: Option<(Instant, Arc<AccessConfig>)>,
    /// The last failed load, stamped with its end: the callers that waited for it
    /// share its error instead of queueing for one store timeout each.
    failure: Option<(Instant, StoreError)>,
}

/// The least time between the start of one load and a reload forced by a failed
/// login: however many logins fail, the store sees at most one load per interval.
pub const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl AccessCache {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        AccessCache {
            store,
            ttl,
            loads: Mutex::new(Loads::default()),
        }
    }

    /// The configuration, reloaded if older than the cache's time to live. One load
    /// at a time; callers arriving meanwhile wait for its result, success or failure.
    pub async fn get(&self) -> Result<Arc<AccessConfig>, StoreError> {
        let arrived = Instant::now();
        let mut loads = self.loads.lock().await;
        match &loads.config {
            Some((started, config)) if started.elapsed() < self.ttl => Ok(config.clone()),
            _ => self.load(&mut loads, arrived, "expired").await,
        }
    }

    /// The configuration as of `moment` or later: a failed login calls this with the
    /// request's arrival, so a user or token created before the request always
    /// counts. A reload starts at most [`FORCED_RELOAD_INTERVAL`] after the previous
    /// load began: a failure arriving sooner waits for that slot rather than
    /// skipping the reload, and every failure waiting for it shares its one load.
    pub async fn get_as_of(&self, moment: Instant) -> Result<Arc<AccessConfig>, StoreError> {
        let arrived = Instant::now();
        loop {
            let mut loads = self.loads.lock().await;
            let next_slot = match &loads.config {
                Some((started, config)) if *started >= moment => return Ok(config.clone()),
                Some((started, _)) => *started + FORCED_RELOAD_INTERVAL,
                None => Instant::now(),
            };
            if Instant::now() >= next_slot {
                return self.load(&mut loads, arrived, "failed login").await;
            }
            // Not holding the lock while waiting: other requests keep using the cache.
            drop(loads);
            tokio::time::sleep_until(next_slot.into()).await;
        }
    }

    /// Loads the configuration, unless a load failed after the caller `arrived`:
    /// then the caller waited for that load and shares its error.
    async fn load(
        &self,
        loads: &mut Loads,
        arrived: Instant,
        reason: &'static str,
    ) -> Result<Arc<AccessConfig>, StoreError> {
        if let Some((ended, error)) = &loads.failure
            && *ended >= arrived
        {
            return Err(error.duplicate());
        }
        // Stamped with the load's start: everything written before it is included.
        let started = Instant::now();
        match AccessConfig::load(&*self.store).await {
            Ok(config) => {
                tracing::debug!(reason, "loaded the access configuration");
                let config = Arc::new(config);
                loads.config = Some((started, config.clone()));
                loads.failure = None;
                Ok(config)
            }
            Err(error) => {
                loads.failure = Some((Instant::now(), error.duplicate()));
                Err(error)
            }
        }
    }
}

/// Password checks (argon2id, 12 MiB each) running at once; more wait their turn,
/// so a burst of logins cannot exhaust memory (48 MiB at most).
pub const PASSWORD_CHECKS_AT_ONCE: usize = 4;

#[derive(Debug)]
pub struct Auth {
    pub access: AccessCache,
    /// Holds [`PASSWORD_CHECKS_AT_ONCE`] permits.
    pub password_checks: Semaphore,
    pub tokens: TokenIssuer,
    /// The registry's public base URL for the token realm; derived from the request
    /// (`X-Forwarded-Proto`, `Host`) when unset.
    pub public_url: Option<String>,
}

/// Who is calling, as far as a request shows.
pub struct Caller {
    pub access: Arc<AccessConfig>,
    pub claims: Option<Claims>,
}

impl Caller {
    pub fn user(&self) -> Option<Name> {
        let claims = self.claims.as_ref()?;
        claims.sub.parse().ok()
    }

    /// Whether the catalog shows `repository` to this caller: whatever the user may
    /// pull (the token proved who they are), public ones to anyone.
    pub fn may_list(&self, repository: &Repository) -> bool {
        self.access.can_pull(self.user().as_ref(), repository)
    }

    /// Whether the caller may pull `repository`: the configuration allows it and,
    /// when auth is enforced for it, the token grants it.
    pub fn may_pull(&self, repository: &Repository) -> bool {
        if !self.access.enforced() || self.access.is_public(repository) {
            return true;
        }
        self.claims
            .as_ref()
            .is_some_and(|c| c.allows("repository", repository.as_str(), "pull"))
            && self.access.can_pull(self.user().as_ref(), repository)
    }
}

impl Auth {
    fn realm(&self, headers: &HeaderMap) -> String {
        let base = self.public_url.clone().unwrap_or_else(|| {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let scheme = headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .filter(|s| *s == "https" || *s == "http")
                .unwrap_or("http");
            format!("{scheme}://{host}")
        });
        format!("{}/token", base.trim_end_matches('/'))
    }

    /// A 401 with the `WWW-Authenticate: Bearer` challenge clients follow.
    pub fn challenge(
        &self,
        headers: &HeaderMap,
        scope: Option<String>,
        error: Option<&'static str>,
    ) -> RegistryError {
        let mut challenge = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(headers).replace('"', ""),
            self.tokens.service
        );
        if let Some(scope) = &scope {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        if let Some(error) = error {
            challenge.push_str(&format!(",error=\"{error}\""));
        }
        RegistryError::Unauthorized {
            challenge,
            message: match error {
                Some("invalid_token") => "the bearer token is invalid or expired".into(),
                Some(_) => "the bearer token does not grant this access".into(),
                None => "authentication required".into(),
            },
        }
    }

    /// The caller of a request: no token, or a valid one. An invalid token is a 401,
    /// never silently anonymous.
    pub async fn caller(
        &self,
        headers: &HeaderMap,
        scope: Option<String>,
    ) -> Result<Caller, RegistryError> {
        let access = self.access.get().await?;
        let claims = match bearer(headers) {
            Bearer::None => None,
            Bearer::Token(token) => match self.tokens.validate(token) {
                Ok(claims) => Some(claims),
                Err(_) if !access.enforced() => None,
                Err(_) => return Err(self.challenge(headers, scope, Some("invalid_token"))),
            },
            Bearer::Malformed if !access.enforced() => None,
            Bearer::Malformed => return Err(self.challenge(headers, scope, Some("invalid_token"))),
        };
        Ok(Caller { access, claims })
    }

    /// `GET /v2/`: open registries answer everyone; otherwise any valid token.
    pub async fn authorize_root(&self, headers: &HeaderMap) -> Result<(), RegistryError> {
        let caller = self.caller(headers, None).await?;
        if caller.access.enforced() && caller.claims.is_none() {
            return Err(self.challenge(headers, None, None));
        }
        Ok(())
    }

    pub async fn authorize_pull(
        &self,
        headers: &HeaderMap,
        repository: &Repository,
    ) -> Result<(), RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let caller = self.caller(headers, Some(scope.clone())).await?;
        if caller.may_pull(repository) {
            return Ok(());
        }
        let error = caller.claims.is_some().then_some("insufficient_scope");
        Err(self.challenge(headers, Some(scope), error))
    }
}

enum Bearer<'a> {
    None,
    Token(&'a str),
    Malformed,
}

/// The bearer token of a request. Other schemes count as no token; oversized or
/// non-ASCII headers as a malformed one.
fn bearer(headers: &HeaderMap) -> Bearer<'_> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Bearer::None;
    };
    if value.len() > tokens::MAX_TOKEN_LEN {
        return Bearer::Malformed;
    }
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Bearer::Token(token.trim())
        }
        _ => Bearer::None,
    }
}

#[cfg(test)]
mod tests {
    use berth_core::access::{UserRecord, keys};
    use berth_core::store::{DirStore, WriteMeta};

    use super::*;

    async fn add_user(store: &dyn Store, name: &str) {
        let record = UserRecord {
            password: "not checked here".into(),
        };
        let body = serde_json::to_vec(&record).unwrap();
        let key = keys::user(&name.parse().unwrap());
        store
            .put(&key, body.into(), &WriteMeta::new("application/json"))
            .await
            .unwrap();
    }

    /// Failures arriving together share one reload, which waits for its slot
    /// rather than being skipped: what was written before they arrived counts.
    #[tokio::test]
    async fn forced_reloads_wait_for_their_slot_and_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(DirStore::new(dir.path()));
        let cache = Arc::new(AccessCache::new(store.clone(), Duration::from_secs(60)));
        let before_first = Instant::now();
        let first = cache.get().await.unwrap();
        add_user(&*store, "alice").await;

        let arrived = Instant::now();
        let failures: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get_as_of(arrived).await.unwrap() })
            })
            .collect();
        let mut configs = Vec::new();
        for failure in failures {
            configs.push(failure.await.unwrap());
        }
        assert!(
            before_first.elapsed() >= FORCED_RELOAD_INTERVAL,
            "waited for the slot"
        );
        assert!(
            configs.iter().all(|c| Arc::ptr_eq(c, &configs[0])),
            "one load"
        );
        assert!(!Arc::ptr_eq(&configs[0], &first));
        assert!(configs[0].users.contains_key(&"alice".parse().unwrap()));
        // The reload also serves later callers until the cache's own expiry.
        assert!(Arc::ptr_eq(&cache.get().await.unwrap(), &configs[0]));
    }
}
