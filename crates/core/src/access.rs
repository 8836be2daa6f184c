//! Who may pull what: users, access tokens, organisations, teams, grants and public
//! repositories, each one small object under `_berth/access/`, so concurrent edits
//! of different things never touch the same object (S3-compatible stores need not
//! enforce conditional writes, so nothing here relies on them).
//!
//! ```text
//! _berth/access/users/<user>                     {"password": "$argon2id$..."}
//! _berth/access/tokens/<user>/<label>            {"sha256": "<hex>", "created_at": .., "expires_at": ..}
//! _berth/access/orgs/<org>                       {}
//! _berth/access/teams/<org>/<team>               {}
//! _berth/access/members/<org>/<team>/<user>      {}
//! _berth/access/grants/<org>/<team>/<pattern>    {"action": "pull"}
//! _berth/access/public/<repository>              {}
//! ```
//!
//! The registry loads the set with one LIST plus a GET per user and token
//! ([`AccessConfig::load`]); only those two kinds carry data, the rest is in the keys.
//! This module decides; the CLI (publisher) writes, the registry reads.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::LazyLock;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use futures::{StreamExt, TryStreamExt, stream};
use regex_lite::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::layout::ACCESS_PREFIX;
use crate::reference::Repository;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("invalid {kind} {value:?}: {why}")]
    Invalid {
        kind: &'static str,
        value: String,
        why: &'static str,
    },
}

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$").expect("name grammar compiles"));
static LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$").expect("label grammar"));

/// A user, organisation or team name: one lowercase repository path component, so a
/// user's or organisation's name is also a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = AccessError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() <= 64 && NAME.is_match(s) {
            Ok(Name(s.to_owned()))
        } else {
            Err(AccessError::Invalid {
                kind: "name",
                value: s.into(),
                why: "use 1-64 lowercase letters and digits, joined by '.', '_' or '-'",
            })
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A label naming a token (unique per user) or a webhook (unique per pattern).
pub fn check_label(label: &str) -> Result<(), AccessError> {
    if LABEL.is_match(label) {
        Ok(())
    } else {
        Err(AccessError::Invalid {
            kind: "label",
            value: label.into(),
            why: "use 1-64 of [A-Za-z0-9._-], starting with a letter or digit",
        })
    }
}

/// A repository pattern: `acme/web` or `acme/*` (`*` matches any run of characters,
/// `/` included). Granted to teams and naming the repositories a webhook fires for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pattern(String);

impl Pattern {
    /// A pattern over any repository of the store (webhooks use these): path
    /// components of repository name characters and '*', none empty, '.' or '..'.
    pub fn new(pattern: &str) -> Result<Self, AccessError> {
        let valid = pattern.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-*".contains(c))
        });
        if pattern.len() > 255 || !valid {
            return Err(AccessError::Invalid {
                kind: "pattern",
                value: pattern.into(),
                why: "use repository name characters and '*', e.g. acme/* or acme/web",
            });
        }
        Ok(Pattern(pattern.to_owned()))
    }

    /// A pattern granted to a team of `org`: it must stay inside the organisation.
    pub fn parse(org: &Name, pattern: &str) -> Result<Self, AccessError> {
        if !pattern.starts_with(&format!("{org}/")) {
            return Err(AccessError::Invalid {
                kind: "pattern",
                value: pattern.into(),
                why: "a team's pattern must start with its organisation, e.g. acme/*",
            });
        }
        Self::new(pattern)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, repository: &Repository) -> bool {
        glob(self.0.as_bytes(), repository.as_str().as_bytes())
    }
}

fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// Keys of the access documents.
pub mod keys {
    use super::{ACCESS_PREFIX, Name, Pattern};
    use crate::reference::Repository;

    pub fn user(user: &Name) -> String {
        format!("{ACCESS_PREFIX}users/{user}")
    }
    pub fn token(user: &Name, label: &str) -> String {
        format!("{ACCESS_PREFIX}tokens/{user}/{label}")
    }
    pub fn tokens_prefix(user: &Name) -> String {
        format!("{ACCESS_PREFIX}tokens/{user}/")
    }
    pub fn org(org: &Name) -> String {
        format!("{ACCESS_PREFIX}orgs/{org}")
    }
    pub fn team(org: &Name, team: &Name) -> String {
        format!("{ACCESS_PREFIX}teams/{org}/{team}")
    }
    pub fn member(org: &Name, team: &Name, user: &Name) -> String {
        format!("{ACCESS_PREFIX}members/{org}/{team}/{user}")
    }
    pub fn grant(org: &Name, team: &Name, pattern: &Pattern) -> String {
        format!("{ACCESS_PREFIX}grants/{org}/{team}/{}", pattern.as_str())
    }
    pub fn public(repository: &Repository) -> String {
        format!("{ACCESS_PREFIX}public/{repository}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// An argon2id PHC string.
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// SHA-256 of the token: tokens are 256 random bits, so a fast hash suffices.
    pub sha256: String,
    pub created_at: u64,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Team {
    pub members: BTreeSet<Name>,
    pub grants: BTreeSet<Pattern>,
}

/// The whole access configuration of a store, as loaded at one moment.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    pub users: BTreeMap<Name, UserRecord>,
    pub tokens: BTreeMap<Name, BTreeMap<String, TokenRecord>>,
    pub orgs: BTreeSet<Name>,
    pub teams: BTreeMap<(Name, Name), Team>,
    pub public: BTreeSet<Repository>,
}

/// Users and tokens fetched at once while loading.
const FETCHES_AT_ONCE: usize = 16;
const LIST_PAGE: usize = 1000;

/// Who authenticated, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Password,
    Token { label: String },
}

impl AccessConfig {
    /// Reads every access document: one flat listing, then the user and token
    /// records. Keys that do not parse are ignored (never granted anything).
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let mut keys = Vec::new();
        loop {
            let page = store
                .list(ACCESS_PREFIX, keys.last().map(String::as_str), LIST_PAGE)
                .await?;
            let done = page.len() < LIST_PAGE;
            keys.extend(page);
            if done {
                break;
            }
        }
        let mut config = AccessConfig::default();
        let mut documents = Vec::new();
        for key in &keys {
            let Some(rest) = key.strip_prefix(ACCESS_PREFIX) else {
                continue;
            };
            let parts: Vec<&str> = rest.splitn(4, '/').collect();
            match parts.as_slice() {
                ["users", _] | ["tokens", _, _] => documents.push(key.clone()),
                ["orgs", org] => {
                    if let Ok(org) = org.parse() {
                        config.orgs.insert(org);
                    }
                }
                ["teams", org, team] => {
                    if let (Ok(org), Ok(team)) = (org.parse(), team.parse()) {
                        config.teams.entry((org, team)).or_default();
                    }
                }
                ["members", org, team, user] => {
                    if let (Ok(org), Ok(team), Ok(user)) = (org.parse(), team.parse(), user.parse())
                    {
                        config
                            .teams
                            .entry((org, team))
                            .or_default()
                            .members
                            .insert(user);
                    }
                }
                ["grants", org, team, pattern] => {
                    if let (Ok(org), Ok(team)) = (org.parse::<Name>(), team.parse::<Name>())
                        && let Ok(pattern) = Pattern::parse(&org, pattern)
                    {
                        config
                            .teams
                            .entry((org, team))
                            .or_default()
                            .grants
                            .insert(pattern);
                    }
                }
                _ => {
                    if let Some(repository) =
                        rest.strip_prefix("public/").and_then(|r| r.parse().ok())
                    {
                        config.public.insert(repository);
                    }
                }
            }
        }
        let fetched: Vec<(String, Option<bytes::Bytes>)> = stream::iter(documents)
            .map(|key| async move {
                Ok::<_, StoreError>((key.clone(), store.get(&key).await?.map(|o| o.body)))
            })
            .buffer_unordered(FETCHES_AT_ONCE)
            .try_collect()
            .await?;
        for (key, body) in fetched {
            let Some(body) = body else { continue };
            let rest = &key[ACCESS_PREFIX.len()..];
            let parts: Vec<&str> = rest.splitn(3, '/').collect();
            match parts.as_slice() {
                ["users", user] => {
                    if let (Ok(user), Ok(record)) = (user.parse(), serde_json::from_slice(&body)) {
                        config.users.insert(user, record);
                    }
                }
                ["tokens", user, label] => {
                    if let (Ok(user), Ok(record)) = (user.parse(), serde_json::from_slice(&body)) {
                        config
                            .tokens
                            .entry(user)
                            .or_default()
                            .insert((*label).to_owned(), record);
                    }
                }
                _ => {}
            }
        }
        Ok(config)
    }

    /// Auth is enforced once any user exists; before that the registry is open.
    pub fn enforced(&self) -> bool {
        !self.users.is_empty()
    }

    pub fn is_public(&self, repository: &Repository) -> bool {
        self.public.contains(repository)
    }

    /// Whether `user` (or an anonymous caller) may pull `repository`.
    pub fn can_pull(&self, user: Option<&Name>, repository: &Repository) -> bool {
        if !self.enforced() || self.is_public(repository) {
            return true;
        }
        let Some(user) = user.filter(|u| self.users.contains_key(*u)) else {
            return false;
        };
        let namespace = repository.as_str().split('/').next().unwrap_or_default();
        if namespace == user.as_str() {
            return true;
        }
        self.teams.iter().any(|((org, _), team)| {
            org.as_str() == namespace
                && self.orgs.contains(org)
                && team.members.contains(user)
                && team.grants.iter().any(|p| p.matches(repository))
        })
    }

    /// Checks a `docker login` password: the user's password or one of their access
    /// tokens. Slow on purpose for passwords (argon2id); run it off the async runtime.
    ///
    /// The work depends on the secret's shape, never on whether `user` exists: a
    /// password for an unknown user is checked against `DUMMY_HASH` (same
    /// parameters), and a token for one against an empty token list, so timing does
    /// not reveal which users exist.
    pub fn authenticate(&self, user: &Name, secret: &str, now: u64) -> Option<Credential> {
        let record = self.users.get(user);
        if is_token(secret) {
            let hash = sha256_hex(secret);
            let found = self.tokens.get(user)?.iter().find_map(|(label, token)| {
                let live = token.expires_at.is_none_or(|at| now < at);
                (live && constant_time_eq(token.sha256.as_bytes(), hash.as_bytes())).then(|| {
                    Credential::Token {
                        label: label.clone(),
                    }
                })
            });
            // Tokens of a removed user stay refused even if their objects linger.
            return found.filter(|_| record.is_some());
        }
        let phc = record.map_or(DUMMY_HASH.as_str(), |r| r.password.as_str());
        let valid = verify_password(phc, secret);
        (valid && record.is_some()).then_some(Credential::Password)
    }
}

/// Whether a `docker login` secret is an access token (fast to check) rather than a
/// password (an argon2id check).
pub fn is_token(secret: &str) -> bool {
    secret.starts_with(TOKEN_PREFIX)
}

/// What a password for an unknown user is checked against: a hash made with the
/// same parameters as real ones, of a random password nobody knows.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password(&new_token()));

/// Access tokens start with this, so a password is never mistaken for one.
pub const TOKEN_PREFIX: &str = "berth_";

/// argon2id with 12 MiB and 3 passes: tens of milliseconds per login, even on
/// Lambda's smallest sizes (docs/auth.md has the measurement).
fn hasher() -> Argon2<'static> {
    let params = Params::new(12 * 1024, 3, 1, None).expect("argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing with a fresh salt succeeds")
        .to_string()
}

fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| hasher().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A new access token: the prefix and 256 random bits in hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        s.parse().unwrap()
    }

    fn repo(s: &str) -> Repository {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_stay_inside_their_organisation_and_glob() {
        let acme = name("acme");
        assert!(Pattern::parse(&acme, "other/*").is_err());
        assert!(Pattern::parse(&acme, "acme").is_err());
        assert!(Pattern::parse(&acme, "acme/../x").is_err());
        assert!(Pattern::parse(&acme, "acme/").is_err());
        assert!(Pattern::new("*").is_ok_and(|p| p.matches(&repo("x/y"))));
        assert!(Pattern::new("acme//web").is_err() && Pattern::new("/acme").is_err());
        let all = Pattern::parse(&acme, "acme/*").unwrap();
        assert!(all.matches(&repo("acme/web")) && all.matches(&repo("acme/a/b")));
        assert!(!all.matches(&repo("acmecorp/web")));
        let web = Pattern::parse(&acme, "acme/web").unwrap();
        assert!(web.matches(&repo("acme/web")) && !web.matches(&repo("acme/web-private")));
    }

    #[test]
    fn pull_rules_follow_namespaces_teams_and_public_marks() {
        let mut config = AccessConfig::default();
        assert!(
            config.can_pull(None, &repo("acme/web")),
            "no users: open registry"
        );
        for user in ["alice", "bob", "eve"] {
            config.users.insert(
                name(user),
                UserRecord {
                    password: hash_password("pw"),
                },
            );
        }
        config.orgs.insert(name("acme"));
        let team = config.teams.entry((name("acme"), name("dev"))).or_default();
        team.members.insert(name("bob"));
        team.grants
            .insert(Pattern::parse(&name("acme"), "acme/web").unwrap());
        config.public.insert(repo("acme/site"));

        assert!(config.can_pull(Some(&name("alice")), &repo("alice/tool")));
        assert!(config.can_pull(Some(&name("bob")), &repo("acme/web")));
        assert!(!config.can_pull(Some(&name("bob")), &repo("acme/api")));
        assert!(!config.can_pull(Some(&name("eve")), &repo("acme/web")));
        assert!(!config.can_pull(None, &repo("acme/web")));
        assert!(config.can_pull(None, &repo("acme/site")));
        assert!(
            !config.can_pull(Some(&name("mallory")), &repo("mallory/x")),
            "unknown users own nothing"
        );
    }

    #[test]
    fn passwords_and_tokens_authenticate() {
        let mut config = AccessConfig::default();
        config.users.insert(
            name("alice"),
            UserRecord {
                password: hash_password("s3cret"),
            },
        );
        let token = new_token();
        let record = TokenRecord {
            sha256: sha256_hex(&token),
            created_at: 0,
            expires_at: Some(100),
        };
        config
            .tokens
            .entry(name("alice"))
            .or_default()
            .insert("ci".into(), record);

        assert_eq!(
            config.authenticate(&name("alice"), "s3cret", 0),
            Some(Credential::Password)
        );
        assert_eq!(config.authenticate(&name("alice"), "wrong", 0), None);
        assert_eq!(
            config.authenticate(&name("alice"), &token, 99),
            Some(Credential::Token { label: "ci".into() })
        );
        assert_eq!(
            config.authenticate(&name("alice"), &token, 100),
            None,
            "expired"
        );
        assert_eq!(config.authenticate(&name("bob"), "s3cret", 0), None);
        assert_eq!(config.authenticate(&name("bob"), &token, 0), None);
    }

    #[test]
    fn unknown_users_cost_an_argon2_check_like_known_ones() {
        let mut config = AccessConfig::default();
        config.users.insert(
            name("alice"),
            UserRecord {
                password: hash_password("s3cret"),
            },
        );
        // Warm the dummy hash, made once per process.
        assert_eq!(config.authenticate(&name("nobody"), "x", 0), None);
        // The fastest of three runs: a busy machine only ever adds time.
        let time = |user: &str| {
            (0..3)
                .map(|_| {
                    let started = std::time::Instant::now();
                    assert_eq!(config.authenticate(&name(user), "wrong", 0), None);
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        let (known, unknown) = (time("alice"), time("nobody"));
        // Same parameters, so the same work; generous bounds for a shared machine.
        assert!(
            unknown * 3 > known && known * 3 > unknown,
            "known {known:?}, unknown {unknown:?}"
        );
        let params = |phc: &str| PasswordHash::new(phc).unwrap().params.to_string();
        assert_eq!(
            params(&DUMMY_HASH),
            params(&config.users[&name("alice")].password)
        );
    }
}
