//! The usage ledger: one row per model request, and the reports built from it.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use crate::audit::{AuditEvent, ROWS_PER_INSERT, append_in, multi_row_insert};
use crate::time::date_of_day;
use crate::{Result, Scope, Store};

/// What one request used and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRecord {
    pub at: i64,
    pub request_id: String,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    /// `chat`, `messages`, `embeddings`…
    pub endpoint: &'static str,
    /// What the client asked for (a model id or a route alias).
    pub model: String,
    /// The `provider/model` that answered.
    pub target: Option<String>,
    pub status: u16,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_nanos: i64,
    /// The provider reported no usage: tokens were counted or estimated by freeway.
    pub estimated: bool,
    pub cache_hit: bool,
    pub latency_ms: u64,
}

impl UsageRecord {
    pub fn provider(&self) -> Option<&str> {
        self.target.as_deref().and_then(|t| t.split('/').next())
    }

    fn actor(&self) -> String {
        match &self.key_id {
            Some(k) => format!("key:{k}"),
            None => "anonymous".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Key,
    Team,
    Model,
    Provider,
    Day,
}

impl GroupBy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "key" => Some(GroupBy::Key),
            "team" => Some(GroupBy::Team),
            "model" => Some(GroupBy::Model),
            "provider" => Some(GroupBy::Provider),
            "day" => Some(GroupBy::Day),
            _ => None,
        }
    }

    fn expr(self) -> &'static str {
        match self {
            GroupBy::Key => "COALESCE(key_id, '')",
            GroupBy::Team => "COALESCE(team_id, '')",
            GroupBy::Model => "COALESCE(target, model)",
            GroupBy::Provider => "COALESCE(provider, '')",
            GroupBy::Day => "CAST(at / 86400000 AS BIGINT)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageQuery {
    pub group_by: GroupBy,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// The key id, team id, model, provider or `YYYY-MM-DD`; empty for requests with none.
    pub group: String,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nanos: i64,
}

impl Store {
    /// Writes ledger rows and their `request` audit entries in one transaction.
    pub async fn record_usage(&self, records: &[UsageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let _guard = self.audit_lock.lock().await;
        let mut tx = self.pool().begin().await?;
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let sql = multi_row_insert(
                self.dialect(),
                "INSERT INTO usage_ledger (at, request_id, team_id, key_id, endpoint, model, target, \
                 provider, status, input_tokens, output_tokens, cached_tokens, cost_nanos, estimated, \
                 cache_hit, latency_ms)",
                16,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for r in chunk {
                query = query
                    .bind(r.at)
                    .bind(&r.request_id)
                    .bind(&r.team_id)
                    .bind(&r.key_id)
                    .bind(r.endpoint)
                    .bind(&r.model)
                    .bind(&r.target)
                    .bind(r.provider())
                    .bind(i64::from(r.status))
                    .bind(clamp(r.input_tokens))
                    .bind(clamp(r.output_tokens))
                    .bind(clamp(r.cached_tokens))
                    .bind(r.cost_nanos)
                    .bind(i64::from(r.estimated))
                    .bind(i64::from(r.cache_hit))
                    .bind(clamp(r.latency_ms));
            }
            query.execute(&mut *tx).await?;
        }
        let events = records
            .iter()
            .map(|r| AuditEvent {
                actor: r.actor(),
                team_id: r.team_id.clone(),
                action: "request".to_owned(),
                target: Some(r.model.clone()),
                detail: json!({
                    "request_id": r.request_id,
                    "endpoint": r.endpoint,
                    "served_by": r.target,
                    "status": r.status,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cost_usd": r.cost_nanos as f64 / 1e9,
                    "latency_ms": r.latency_ms,
                    "cache_hit": r.cache_hit,
                }),
            })
            .collect();
        append_in(&mut tx, self.dialect(), events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Usage grouped as asked, costliest first, within `scope`.
    pub async fn usage(&self, scope: Scope<'_>, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        let expr = query.group_by.expr();
        let mut sql = format!(
            "SELECT {expr} AS grp, CAST(COUNT(*) AS BIGINT) AS requests, \
             CAST(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
             CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, \
             CAST(SUM(cached_tokens) AS BIGINT) AS cached_tokens, \
             CAST(SUM(cost_nanos) AS BIGINT) AS cost_nanos \
             FROM usage_ledger WHERE at >= $1 AND at < $2"
        );
        if scope.team().is_some() {
            sql.push_str(" AND team_id = $3");
        }
        sql.push_str(&format!(
            " GROUP BY {expr} ORDER BY cost_nanos DESC, requests DESC"
        ));
        let mut q = sqlx::query(&sql)
            .bind(query.since_ms.unwrap_or(0))
            .bind(query.until_ms.unwrap_or(i64::MAX));
        if let Some(team) = scope.team() {
            q = q.bind(team);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                let group = match query.group_by {
                    GroupBy::Day => date_of_day(row.try_get::<i64, _>("grp")?),
                    _ => row.try_get("grp")?,
                };
                Ok(UsageRow {
                    group,
                    requests: row.try_get("requests")?,
                    errors: row.try_get("errors")?,
                    input_tokens: row.try_get("input_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    cost_nanos: row.try_get("cost_nanos")?,
                })
            })
            .collect()
    }

    /// What a key (or, with `team`, a whole team) has spent since `since_ms`, in nanos.
    pub async fn spend_since(&self, owner: SpendOwner<'_>, since_ms: i64) -> Result<i64> {
        let (column, id) = match owner {
            SpendOwner::Key(id) => ("key_id", id),
            SpendOwner::Team(id) => ("team_id", id),
        };
        let row = sqlx::query(&format!(
            "SELECT CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT) AS spent FROM usage_ledger \
             WHERE {column} = $1 AND at >= $2"
        ))
        .bind(id)
        .bind(since_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("spent")?)
    }
}

/// Whose spending [`Store::spend_since`] sums.
#[derive(Debug, Clone, Copy)]
pub enum SpendOwner<'a> {
    Key(&'a str),
    Team(&'a str),
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
