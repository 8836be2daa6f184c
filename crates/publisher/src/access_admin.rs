//! The CLI's edits of the access configuration (`berth user|token|org|team|repo`).
//! Each edit writes or deletes its own small object, so concurrent edits of
//! different things never conflict; see `berth_core::access` for the keys.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_core::Repository;
use berth_core::access::{
    self, AccessConfig, AccessError, Name, Pattern, TokenRecord, UserRecord, keys,
};
use berth_core::layout::ACCESS_PREFIX;
use berth_core::store::{Store, StoreError, WriteMeta, list_all};
use bytes::Bytes;

use crate::derived;
use crate::site::Change;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Invalid(#[from] AccessError),
    #[error(transparent)]
    Name(#[from] berth_core::reference::ParseError),
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) fn refused(message: impl Into<String>) -> AdminError {
    AdminError::Refused(message.into())
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) async fn put_json(
    store: &dyn Store,
    key: &str,
    value: &impl serde::Serialize,
) -> Result<(), StoreError> {
    let body = Bytes::from(serde_json::to_vec(value).expect("record serializes"));
    store
        .put(key, body, &WriteMeta::new("application/json"))
        .await
}

pub(crate) async fn exists(store: &dyn Store, key: &str) -> Result<bool, StoreError> {
    Ok(store.head(key).await?.is_some())
}

/// Users and organisations share one namespace: the first path component.
async fn check_namespace_free(store: &dyn Store, name: &Name) -> Result<(), AdminError> {
    if exists(store, &keys::user(name)).await? || exists(store, &keys::org(name)).await? {
        return Err(refused(format!(
            "{name} is already a user or organisation name"
        )));
    }
    Ok(())
}

pub async fn add_user(store: &dyn Store, user: &Name, password: &str) -> Result<(), AdminError> {
    check_password(password)?;
    check_namespace_free(store, user).await?;
    let record = UserRecord {
        password: access::hash_password(password),
    };
    put_json(store, &keys::user(user), &record).await?;
    // The first user closes an open store: only public repositories stay listed.
    derived::refresh_public(store, Change::Visibility).await?;
    Ok(())
}

pub async fn set_password(
    store: &dyn Store,
    user: &Name,
    password: &str,
) -> Result<(), AdminError> {
    check_password(password)?;
    require_user(store, user).await?;
    let record = UserRecord {
        password: access::hash_password(password),
    };
    Ok(put_json(store, &keys::user(user), &record).await?)
}

fn check_password(password: &str) -> Result<(), AdminError> {
    if password.is_empty() {
        return Err(refused(
            "the password is empty: pass it on stdin with --password-stdin",
        ));
    }
    Ok(())
}

async fn require_user(store: &dyn Store, user: &Name) -> Result<(), AdminError> {
    if exists(store, &keys::user(user)).await? {
        Ok(())
    } else {
        Err(refused(format!(
            "no user {user}: add it with `berth user add {user} --password-stdin`"
        )))
    }
}

/// Removes the user, then their tokens and team memberships.
pub async fn remove_user(store: &dyn Store, user: &Name) -> Result<(), AdminError> {
    require_user(store, user).await?;
    store.delete(&keys::user(user)).await?;
    for key in list_all(store, &keys::tokens_prefix(user)).await? {
        store.delete(&key).await?;
    }
    let suffix = format!("/{user}");
    for key in list_all(store, &format!("{ACCESS_PREFIX}members/")).await? {
        if key.ends_with(&suffix) {
            store.delete(&key).await?;
        }
    }
    // Removing the last user opens the store: every repository becomes listed.
    derived::refresh_public(store, Change::Visibility).await?;
    Ok(())
}

/// Creates an access token and returns it: the only time it is ever shown.
pub async fn create_token(
    store: &dyn Store,
    user: &Name,
    label: &str,
    expires_in: Option<Duration>,
) -> Result<String, AdminError> {
    access::check_label(label)?;
    require_user(store, user).await?;
    let key = keys::token(user, label);
    if exists(store, &key).await? {
        return Err(refused(format!(
            "{user} already has a token named {label}: revoke it first or pick another name"
        )));
    }
    let token = access::new_token();
    let created_at = now();
    let record = TokenRecord {
        sha256: access::sha256_hex(&token),
        created_at,
        expires_at: expires_in.map(|d| created_at + d.as_secs()),
    };
    put_json(store, &key, &record).await?;
    Ok(token)
}

pub async fn revoke_token(store: &dyn Store, user: &Name, label: &str) -> Result<(), AdminError> {
    access::check_label(label)?;
    let key = keys::token(user, label);
    if !exists(store, &key).await? {
        return Err(refused(format!("{user} has no token named {label}")));
    }
    Ok(store.delete(&key).await?)
}

pub async fn add_org(store: &dyn Store, org: &Name) -> Result<(), AdminError> {
    check_namespace_free(store, org).await?;
    Ok(put_json(store, &keys::org(org), &serde_json::json!({})).await?)
}

/// `ORG/TEAM` as typed on the command line.
pub fn parse_team(team: &str) -> Result<(Name, Name), AdminError> {
    let (org, name) = team
        .split_once('/')
        .ok_or_else(|| refused(format!("{team:?}: name a team as ORG/TEAM")))?;
    Ok((org.parse()?, name.parse()?))
}

/// Creates the team if needed and adds members to it.
pub async fn add_team(
    store: &dyn Store,
    org: &Name,
    team: &Name,
    members: &[Name],
) -> Result<(), AdminError> {
    if !exists(store, &keys::org(org)).await? {
        return Err(refused(format!(
            "no organisation {org}: add it with `berth org add {org}`"
        )));
    }
    for member in members {
        require_user(store, member).await?;
    }
    put_json(store, &keys::team(org, team), &serde_json::json!({})).await?;
    for member in members {
        put_json(
            store,
            &keys::member(org, team, member),
            &serde_json::json!({}),
        )
        .await?;
    }
    Ok(())
}

pub async fn grant(
    store: &dyn Store,
    org: &Name,
    team: &Name,
    pattern: &str,
    action: &str,
) -> Result<(), AdminError> {
    if action != "pull" {
        return Err(refused(format!(
            "{action:?}: teams can only be granted pull (publishing needs bucket credentials)"
        )));
    }
    let pattern = Pattern::parse(org, pattern)?;
    if !exists(store, &keys::team(org, team)).await? {
        return Err(refused(format!(
            "no team {org}/{team}: add it with `berth team add {org}/{team}`"
        )));
    }
    Ok(put_json(
        store,
        &keys::grant(org, team, &pattern),
        &serde_json::json!({ "action": "pull" }),
    )
    .await?)
}

pub async fn set_public(
    store: &dyn Store,
    repository: &Repository,
    public: bool,
) -> Result<(), AdminError> {
    let key = keys::public(repository);
    if public {
        put_json(store, &key, &serde_json::json!({})).await?;
    } else {
        store.delete(&key).await?;
    }
    derived::refresh_public(store, Change::Visibility).await?;
    Ok(())
}

/// What exists, for `berth access show`: names, labels and dates, never secrets.
pub async fn describe(store: &dyn Store) -> Result<String, AdminError> {
    let config = AccessConfig::load(store).await?;
    let mut out = String::new();
    if !config.enforced() {
        out.push_str("no users: the registry is open (anyone may pull anything)\n");
    }
    for user in config.users.keys() {
        let _ = writeln!(out, "user {user}");
        for (label, token) in config.tokens.get(user).into_iter().flatten() {
            let expiry = token.expires_at.map_or("never expires".to_owned(), |at| {
                format!("expires {}", rfc3339(at))
            });
            let _ = writeln!(out, "  token {label}: {expiry}");
        }
    }
    for org in &config.orgs {
        let _ = writeln!(out, "org {org}");
    }
    for ((org, team), members) in &config.teams {
        let names: Vec<&str> = members.members.iter().map(Name::as_str).collect();
        let grants: Vec<&str> = members.grants.iter().map(Pattern::as_str).collect();
        let _ = writeln!(
            out,
            "team {org}/{team}: members [{}], pull [{}]",
            names.join(", "),
            grants.join(", ")
        );
    }
    for repository in &config.public {
        let _ = writeln!(out, "public {repository}");
    }
    Ok(out)
}

/// Unix seconds as an RFC 3339 time, as `token list` and `access show` print them.
pub fn rfc3339(unix: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(unix.min(MAX_PRINTABLE_UNIX));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// 9999-12-31T23:59:59Z, the last time RFC 3339 can write.
const MAX_PRINTABLE_UNIX: u64 = 253_402_300_799;

/// The longest duration [`parse_duration`] accepts: 100 years.
pub const MAX_DURATION_SECS: u64 = 36_500 * 86_400;

/// `30d`, `12h`, `90m`, `45s`, up to [`MAX_DURATION_SECS`].
pub fn parse_duration(text: &str) -> Result<Duration, AdminError> {
    let invalid = || {
        refused(format!(
            "{text:?} is not a duration: use e.g. 30d, 12h, 90m or 45s"
        ))
    };
    let unit = text.chars().last().ok_or_else(invalid)?;
    let number: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| invalid())?;
    let per_unit = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(invalid()),
    };
    // Also keeps expiry dates printable (RFC 3339 ends at year 9999).
    let seconds = number
        .checked_mul(per_unit)
        .filter(|s| *s <= MAX_DURATION_SECS)
        .ok_or_else(|| {
            refused(format!(
                "{text:?} is too long a duration: use at most {}d (100 years)",
                MAX_DURATION_SECS / 86_400
            ))
        })?;
    if seconds == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(
            parse_duration("36500d").unwrap().as_secs(),
            MAX_DURATION_SECS
        );
        assert!(
            parse_duration("99999999999999999d")
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
        for bad in ["", "d", "10", "5w", "-1h", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
