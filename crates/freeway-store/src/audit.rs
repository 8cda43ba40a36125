//! The audit log: append-only and hash-chained, so an edited, removed or reordered row is found.
//!
//! Each entry's hash is `SHA-256(prev_hash || "\n" || canonical)`, where `canonical` is the JSON
//! array `[seq, at, actor, team_id, action, target, detail]` with `detail` exactly as stored.
//! `audit_head` holds the last sequence number and hash, so dropping the newest rows shows too.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::{Dialect, Result, Scope, Store, StoreError, time::now_ms};

/// Something to record: who did what to which thing.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// `master`, `key:<id>` or `anonymous`.
    pub actor: String,
    pub team_id: Option<String>,
    /// `team.create`, `key.create`, `key.update`, `key.rotate`, `key.revoke`, `request`…
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub team_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries after this sequence number (a cursor for paging).
    pub after: Option<i64>,
    pub action: Option<String>,
    pub limit: Option<i64>,
    /// Newest first (for a glance) instead of oldest first (for export).
    pub newest_first: bool,
}

/// The outcome of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub entries: i64,
    /// The hash of the last entry: keep it somewhere else to detect a rewrite of the whole log.
    pub head_hash: String,
    /// The first entry that does not check out, and why.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

const COLUMNS: &str = "seq, at, actor, team_id, action, target, detail, prev_hash, hash";
const PAGE: i64 = 1000;

fn chain(prev_hash: &str, canonical: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical.as_bytes());
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        use std::fmt::Write;
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn canonical(
    seq: i64,
    at: i64,
    actor: &str,
    team_id: Option<&str>,
    action: &str,
    target: Option<&str>,
    detail: &str,
) -> String {
    serde_json::to_string(&(seq, at, actor, team_id, action, target, detail)).unwrap_or_default()
}

impl Store {
    /// Appends events to the chain in one transaction and returns them as stored.
    pub async fn append_audit(&self, events: Vec<AuditEvent>) -> Result<Vec<AuditEntry>> {
        let _guard = self.audit_lock.lock().await;
        let mut tx = self.pool().begin().await?;
        let entries = append_in(&mut tx, self.dialect(), events).await?;
        tx.commit().await?;
        Ok(entries)
    }

    /// Entries `scope` may see: a team sees its own (admin actions on it and its requests).
    pub async fn audit(&self, scope: Scope<'_>, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1");
        let mut n = 1;
        if scope.team().is_some() {
            n += 1;
            sql.push_str(&format!(" AND team_id = ${n}"));
        }
        if query.action.is_some() {
            n += 1;
            sql.push_str(&format!(" AND action = ${n}"));
        }
        sql.push_str(if query.newest_first {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq"
        });
        n += 1;
        sql.push_str(&format!(" LIMIT ${n}"));
        let mut q = sqlx::query(&sql).bind(query.after.unwrap_or(0));
        if let Some(team) = scope.team() {
            q = q.bind(team);
        }
        if let Some(action) = &query.action {
            q = q.bind(action);
        }
        let rows = q
            .bind(query.limit.unwrap_or(100).clamp(1, 10_000))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Walks the whole chain, recomputing every hash.
    pub async fn verify_audit(&self) -> Result<Verification> {
        let mut prev_hash = String::new();
        let mut expected_seq = 1;
        let bad = |seq: i64, entries: i64, prev: &str, problem: String| Verification {
            ok: false,
            entries,
            head_hash: prev.to_owned(),
            first_bad_seq: Some(seq),
            problem: Some(problem),
        };
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2"
            ))
            .bind(expected_seq)
            .bind(PAGE)
            .fetch_all(self.pool())
            .await?;
            let count = rows.len();
            for row in rows {
                let seq: i64 = row.try_get("seq")?;
                let stored_prev: String = row.try_get("prev_hash")?;
                let hash: String = row.try_get("hash")?;
                let detail: String = row.try_get("detail")?;
                let actor: String = row.try_get("actor")?;
                let team: Option<String> = row.try_get("team_id")?;
                let action: String = row.try_get("action")?;
                let target: Option<String> = row.try_get("target")?;
                let at: i64 = row.try_get("at")?;
                let done = expected_seq - 1;
                if seq != expected_seq {
                    return Ok(bad(
                        expected_seq,
                        done,
                        &prev_hash,
                        format!("entry {expected_seq} is missing (the next one is {seq})"),
                    ));
                }
                if stored_prev != prev_hash {
                    return Ok(bad(
                        seq,
                        done,
                        &prev_hash,
                        format!("entry {seq} does not link to entry {done}"),
                    ));
                }
                let text = canonical(
                    seq,
                    at,
                    &actor,
                    team.as_deref(),
                    &action,
                    target.as_deref(),
                    &detail,
                );
                if chain(&prev_hash, &text) != hash {
                    return Ok(bad(
                        seq,
                        done,
                        &prev_hash,
                        format!("entry {seq} was changed after it was written"),
                    ));
                }
                prev_hash = hash;
                expected_seq += 1;
            }
            if count < PAGE as usize {
                break;
            }
        }
        let entries = expected_seq - 1;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        if head_seq != entries || head_hash != prev_hash {
            return Ok(bad(
                entries + 1,
                entries,
                &prev_hash,
                format!(
                    "the log ends at entry {entries} but its head says {head_seq}: entries were removed or the head was edited"
                ),
            ));
        }
        Ok(Verification {
            ok: true,
            entries,
            head_hash: prev_hash,
            first_bad_seq: None,
            problem: None,
        })
    }
}

/// Rows per multi-row INSERT: 16 columns × 50 stays far below the bind-parameter limits of
/// SQLite (32,766) and PostgreSQL (65,535).
pub(crate) const ROWS_PER_INSERT: usize = 50;

/// `head VALUES (…), (…), …` for `rows` rows of `columns` parameters each.
///
/// SQLite gets anonymous `?` parameters: it keeps the names of numbered ones (`$7`) in a list
/// it searches linearly, both when it parses them and each time sqlx asks a parameter's name
/// while binding, so a 50-row ledger insert of 800 `$N` parameters cost a quadratic 320,000
/// steps (6% of freeway's CPU at 8,000 requests/s). PostgreSQL needs `$1`, `$2`, ….
pub(crate) fn multi_row_insert(
    dialect: Dialect,
    head: &str,
    columns: usize,
    rows: usize,
) -> String {
    let mut sql = String::with_capacity(head.len() + 8 + rows * columns * 5);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            match dialect {
                Dialect::Sqlite => sql.push('?'),
                Dialect::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * columns + column + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Appends within a transaction the caller commits. Touching `audit_head` first takes the
/// write lock (SQLite) or the row lock (PostgreSQL), so concurrent appenders queue up.
pub(crate) async fn append_in(
    tx: &mut Transaction<'static, Any>,
    dialect: Dialect,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditEntry>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // One statement both locks the head and reads it.
    let head = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut **tx)
        .await?;
    let mut seq: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    let at = now_ms();
    let mut entries = Vec::with_capacity(events.len());
    let mut details = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let detail = serde_json::to_string(&event.detail)
            .map_err(|e| StoreError::Invalid(format!("audit detail: {e}")))?;
        let text = canonical(
            seq,
            at,
            &event.actor,
            event.team_id.as_deref(),
            &event.action,
            event.target.as_deref(),
            &detail,
        );
        let hash = chain(&prev_hash, &text);
        entries.push(AuditEntry {
            seq,
            at,
            actor: event.actor,
            team_id: event.team_id,
            action: event.action,
            target: event.target,
            detail: event.detail,
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
        details.push(detail);
    }
    // Many rows per statement: each statement is a round trip (for SQLite, a hop to its
    // worker thread), which would otherwise cost more than the rows.
    for (chunk, details) in entries
        .chunks(ROWS_PER_INSERT)
        .zip(details.chunks(ROWS_PER_INSERT))
    {
        let sql = multi_row_insert(
            dialect,
            "INSERT INTO audit_log (seq, at, actor, team_id, action, target, detail, prev_hash, hash)",
            9,
            chunk.len(),
        );
        let mut query = sqlx::query(&sql);
        for (e, detail) in chunk.iter().zip(details) {
            query = query
                .bind(e.seq)
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.team_id)
                .bind(&e.action)
                .bind(&e.target)
                .bind(detail)
                .bind(&e.prev_hash)
                .bind(&e.hash);
        }
        query.execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev_hash)
        .execute(&mut **tx)
        .await?;
    Ok(entries)
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        team_id: row.try_get("team_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_inserts_number_every_parameter_once() {
        assert_eq!(
            multi_row_insert(Dialect::Postgres, "INSERT INTO t (a, b)", 2, 3),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6)"
        );
        assert_eq!(
            multi_row_insert(Dialect::Postgres, "INSERT INTO t (a)", 1, 1),
            "INSERT INTO t (a) VALUES ($1)"
        );
    }

    #[test]
    fn multi_row_inserts_on_sqlite_use_anonymous_parameters() {
        assert_eq!(
            multi_row_insert(Dialect::Sqlite, "INSERT INTO t (a, b)", 2, 3),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }
}
