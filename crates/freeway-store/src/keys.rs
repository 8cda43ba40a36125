//! Virtual keys: created, listed, updated, rotated and revoked; stored only as SHA-256 hashes.
//!
//! A key is 40 random base62 characters (238 bits) behind `fw-`. That much entropy makes a
//! plain SHA-256 as safe at rest as a slow password hash, and lets every request authenticate
//! with one indexed lookup.

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{ApiKey, Limits, Period, Principal, Role};
use crate::teams::{
    decode_list, encode_list, freeway_id, limits_from_row, to_i64, validate_limits,
};
use crate::{Result, Scope, Store, StoreError, Team, conflict, time::now_ms};

pub const KEY_PREFIX: &str = "fw-";
const SECRET_CHARS: usize = 40;
/// How much of a key lists show: `fw-` and 8 characters.
const SHOWN_CHARS: usize = 11;

#[derive(Debug, Clone)]
pub struct NewKey {
    /// The team's id or name.
    pub team: String,
    pub role: Role,
    pub name: Option<String>,
    pub models: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub limits: Limits,
    pub expires_at: Option<i64>,
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<Option<String>>,
    pub role: Option<Role>,
    pub models: Option<Option<Vec<String>>>,
    pub tools: Option<Option<Vec<String>>>,
    pub budget_nanos: Option<Option<i64>>,
    pub budget_period: Option<Period>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub on_exceed: Option<Option<String>>,
    pub expires_at: Option<Option<i64>>,
}

const KEY_COLUMNS: &str = "k.id, k.team_id, k.name, k.role, k.prefix, k.models, k.tools, k.budget_nanos, \
     k.budget_period, k.rpm, k.tpm, k.on_exceed, k.created_at, k.rotated_at, k.expires_at, k.revoked_at";

/// The hex SHA-256 of a key's secret: what the database holds.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.trim().as_bytes());
    let mut hex = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write;
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// `n` characters from [A-Za-z0-9], drawn from the operating system's secure generator.
pub(crate) fn random_base62(n: usize) -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| StoreError::Random(e.to_string()))?;
        // 248 = 4 × 62: rejecting the top values keeps every character equally likely.
        for b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == n {
                break;
            }
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

fn new_secret() -> Result<String> {
    Ok(format!("{KEY_PREFIX}{}", random_base62(SECRET_CHARS)?))
}

impl Store {
    /// Creates a key in `new.team` (which `scope` must cover). Returns the record and the
    /// secret: the only time the secret exists outside the caller's hands.
    pub async fn create_key(&self, scope: Scope<'_>, new: NewKey) -> Result<(ApiKey, String)> {
        let team = self.team(scope, &new.team).await?;
        validate_limits(&new.limits)?;
        let secret = new_secret()?;
        let key = ApiKey {
            id: freeway_id("key_")?,
            team_id: team.id,
            name: new
                .name
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty()),
            role: new.role,
            prefix: secret[..SHOWN_CHARS].to_owned(),
            models: new.models,
            tools: new.tools,
            limits: new.limits,
            created_at: now_ms(),
            rotated_at: None,
            expires_at: new.expires_at,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, team_id, name, role, hash, prefix, models, budget_nanos, \
             budget_period, rpm, tpm, on_exceed, created_at, expires_at, tools) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&key.id)
        .bind(&key.team_id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(hash_secret(&secret))
        .bind(&key.prefix)
        .bind(encode_list(&key.models))
        .bind(key.limits.budget_nanos)
        .bind(key.limits.budget_period.as_str())
        .bind(to_i64(key.limits.rpm))
        .bind(to_i64(key.limits.tpm))
        .bind(&key.limits.on_exceed)
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(encode_list(&key.tools))
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, "key", &key.id))?;
        Ok((key, secret))
    }

    /// The keys `scope` may see, newest first; revoked ones only when asked.
    pub async fn keys(&self, scope: Scope<'_>, include_revoked: bool) -> Result<Vec<ApiKey>> {
        let mut sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE 1 = 1");
        if !include_revoked {
            sql.push_str(" AND k.revoked_at IS NULL");
        }
        if scope.team().is_some() {
            sql.push_str(" AND k.team_id = $1");
        }
        sql.push_str(" ORDER BY k.created_at DESC, k.id");
        let mut query = sqlx::query(&sql);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn key(&self, scope: Scope<'_>, id: &str) -> Result<ApiKey> {
        let mut sql = format!("SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1");
        if scope.team().is_some() {
            sql.push_str(" AND k.team_id = $2");
        }
        let mut query = sqlx::query(&sql).bind(id);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.fetch_optional(self.pool()).await? {
            Some(row) => key_from_row(&row),
            None => Err(StoreError::NotFound {
                what: "key",
                id: id.to_owned(),
            }),
        }
    }

    pub async fn update_key(
        &self,
        scope: Scope<'_>,
        id: &str,
        update: KeyUpdate,
    ) -> Result<ApiKey> {
        let mut key = self.key(scope, id).await?;
        if key.revoked_at.is_some() {
            return Err(StoreError::Invalid(format!(
                "key `{id}` is revoked; create a new one"
            )));
        }
        if let Some(v) = update.name {
            key.name = v;
        }
        if let Some(v) = update.role {
            key.role = v;
        }
        if let Some(v) = update.models {
            key.models = v;
        }
        if let Some(v) = update.tools {
            key.tools = v;
        }
        if let Some(v) = update.budget_nanos {
            key.limits.budget_nanos = v;
        }
        if let Some(v) = update.budget_period {
            key.limits.budget_period = v;
        }
        if let Some(v) = update.rpm {
            key.limits.rpm = v;
        }
        if let Some(v) = update.tpm {
            key.limits.tpm = v;
        }
        if let Some(v) = update.on_exceed {
            key.limits.on_exceed = v;
        }
        if let Some(v) = update.expires_at {
            key.expires_at = v;
        }
        validate_limits(&key.limits)?;
        sqlx::query(
            "UPDATE api_keys SET name = $3, role = $4, models = $5, budget_nanos = $6, \
             budget_period = $7, rpm = $8, tpm = $9, on_exceed = $10, expires_at = $11, \
             tools = $12 WHERE id = $1 AND team_id = $2",
        )
        .bind(&key.id)
        .bind(&key.team_id)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(encode_list(&key.models))
        .bind(key.limits.budget_nanos)
        .bind(key.limits.budget_period.as_str())
        .bind(to_i64(key.limits.rpm))
        .bind(to_i64(key.limits.tpm))
        .bind(&key.limits.on_exceed)
        .bind(key.expires_at)
        .bind(encode_list(&key.tools))
        .execute(self.pool())
        .await?;
        Ok(key)
    }

    /// Revokes a key at once. Revoking twice is not an error; the first time is kept.
    pub async fn revoke_key(&self, scope: Scope<'_>, id: &str) -> Result<ApiKey> {
        let mut key = self.key(scope, id).await?;
        if key.revoked_at.is_none() {
            let now = now_ms();
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $3, previous_hash = NULL \
                 WHERE id = $1 AND team_id = $2 AND revoked_at IS NULL",
            )
            .bind(&key.id)
            .bind(&key.team_id)
            .bind(now)
            .execute(self.pool())
            .await?;
            key.revoked_at = Some(now);
        }
        Ok(key)
    }

    /// Gives a key a new secret, keeping its id, settings and usage history. The old secret
    /// stops working at once, or after `grace_ms` so running clients can switch over.
    pub async fn rotate_key(
        &self,
        scope: Scope<'_>,
        id: &str,
        grace_ms: Option<i64>,
    ) -> Result<(ApiKey, String)> {
        let mut key = self.key(scope, id).await?;
        if key.revoked_at.is_some() {
            return Err(StoreError::Invalid(format!(
                "key `{id}` is revoked; create a new one"
            )));
        }
        let secret = new_secret()?;
        let now = now_ms();
        let grace = grace_ms.filter(|g| *g > 0);
        sqlx::query(
            "UPDATE api_keys SET previous_hash = CASE WHEN $5 > 0 THEN hash ELSE NULL END, \
             previous_valid_to = CASE WHEN $5 > 0 THEN $4 + $5 ELSE NULL END, \
             hash = $3, prefix = $6, rotated_at = $4 WHERE id = $1 AND team_id = $2",
        )
        .bind(&key.id)
        .bind(&key.team_id)
        .bind(hash_secret(&secret))
        .bind(now)
        .bind(grace.unwrap_or(0))
        .bind(&secret[..SHOWN_CHARS])
        .execute(self.pool())
        .await?;
        key.prefix = secret[..SHOWN_CHARS].to_owned();
        key.rotated_at = Some(now);
        Ok((key, secret))
    }

    /// The key and team behind a secret, if the key is active. One indexed lookup.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        let hash = hash_secret(secret);
        let now = now_ms();
        let sql = format!(
            "SELECT {KEY_COLUMNS}, t.id AS t_id, t.name AS t_name, t.models AS t_models, t.tools AS t_tools, \
             t.budget_nanos AS t_budget_nanos, t.budget_period AS t_budget_period, t.rpm AS t_rpm, \
             t.tpm AS t_tpm, t.on_exceed AS t_on_exceed, t.created_at AS t_created_at \
             FROM api_keys k JOIN teams t ON t.id = k.team_id \
             WHERE (k.hash = $1 OR (k.previous_hash = $1 AND k.previous_valid_to > $2)) \
             AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)"
        );
        let row = sqlx::query(&sql)
            .bind(hash)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let team = Team {
            id: row.try_get("t_id")?,
            name: row.try_get("t_name")?,
            models: decode_list(row.try_get("t_models")?)?,
            tools: decode_list(row.try_get("t_tools")?)?,
            limits: limits_from_row(&row, "t_")?,
            created_at: row.try_get("t_created_at")?,
        };
        Ok(Some(Principal {
            key: key_from_row(&row)?,
            team,
        }))
    }
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey> {
    let role: String = row.try_get("role")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| {
            StoreError::Invalid(format!("a stored key has an unknown role `{role}`"))
        })?,
        prefix: row.try_get("prefix")?,
        models: decode_list(row.try_get("models")?)?,
        tools: decode_list(row.try_get("tools")?)?,
        limits: limits_from_row(row, "")?,
        created_at: row.try_get("created_at")?,
        rotated_at: row.try_get("rotated_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_base62() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), KEY_PREFIX.len() + SECRET_CHARS);
        assert!(a[3..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
