//! Agent sessions: who owns them, what they cost so far, and the transcript an agent appends
//! to as it works. Items are numbered 1, 2, 3… per session; their `data` is JSON text whose
//! meaning belongs to the agent, not the store.
//!
//! A turn holds its session through a lease ([`Store::take_lease`]) that lapses unless it is
//! renewed, so instances sharing one database never run the same session at once and a
//! crashed instance's session becomes runnable again. A session is `running` exactly while a
//! lease on it is live.

use std::time::Duration;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::teams::freeway_id;
use crate::{Result, Scope, Store, StoreError, time::now_ms};

const COLUMNS: &str = "id, team_id, key_id, agent, model, working_directory, title, \
     parent_id, created_ms, updated_ms, last_seq, steps, input_tokens, output_tokens, cost_nanos, \
     lease_until_ms";

/// No live lease: the condition for taking or deleting a session; `$2` is now.
const UNLEASED: &str = "(lease_until_ms IS NULL OR lease_until_ms <= $2)";

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone, Default)]
pub struct NewSession {
    /// `None` for the master key or an open server: then only [`Scope::All`] sees it.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub agent: String,
    pub model: String,
    pub working_directory: String,
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Idle,
    Running,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 2] = [SessionStatus::Idle, SessionStatus::Running];

    pub fn as_str(&self) -> &'static str {
        match self {
            SessionStatus::Idle => "idle",
            SessionStatus::Running => "running",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: String,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub agent: String,
    pub model: String,
    pub working_directory: String,
    pub title: Option<String>,
    /// `Running` while a turn's lease on the session is live, wherever that turn runs.
    pub status: SessionStatus,
    /// The session this one was forked from.
    pub parent_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The seq of the newest item; 0 before the first.
    pub last_seq: i64,
    pub usage: SessionUsage,
    /// When the running turn's lease lapses unless renewed; `None` when none was taken or
    /// the last was released.
    #[serde(skip)]
    pub lease_until_ms: Option<i64>,
}

/// What a session has used so far; cost in billionths of a USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SessionUsage {
    pub steps: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
}

#[derive(Debug, Clone)]
pub struct NewItem {
    pub kind: String,
    /// JSON text, stored as given.
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionItem {
    pub seq: i64,
    pub kind: String,
    pub data: String,
    pub created_ms: i64,
}

/// A partial update: `None` leaves a field alone; `add` is added to the counters. The status
/// follows the lease and is not set here.
#[derive(Debug, Clone, Default)]
pub struct SessionChange {
    pub title: Option<String>,
    pub model: Option<String>,
    pub add: SessionUsage,
}

/// A turn's hold on a session, from [`Store::take_lease`] until [`Store::release_lease`] or
/// until it lapses at `until_ms` without a [`Store::renew_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLease {
    pub session_id: String,
    /// Names the holder; unguessable, so only the holder can renew or release.
    pub token: String,
    pub until_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    /// How many to return: 50 unless asked, at most 500.
    pub limit: Option<i64>,
    pub agent: Option<String>,
}

impl Store {
    /// Creates an idle session with no items.
    pub async fn create_session(&self, new: &NewSession) -> Result<Session> {
        let now = now_ms();
        let session = Session {
            id: freeway_id("ses_")?,
            team_id: new.team_id.clone(),
            key_id: new.key_id.clone(),
            agent: new.agent.clone(),
            model: new.model.clone(),
            working_directory: new.working_directory.clone(),
            title: new.title.clone(),
            status: SessionStatus::Idle,
            parent_id: None,
            created_ms: now,
            updated_ms: now,
            last_seq: 0,
            usage: SessionUsage::default(),
            lease_until_ms: None,
        };
        insert_session(self.pool(), &session).await?;
        Ok(session)
    }

    /// The session, if `scope` may see it; another team's is as missing as one that never was.
    pub async fn session(&self, scope: Scope<'_>, id: &str) -> Result<Session> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sessions WHERE id = $1{}",
            team_clause(scope, 2)
        );
        let mut query = sqlx::query(&sql).bind(id);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.fetch_optional(self.pool()).await? {
            Some(row) => session_from_row(&row),
            None => Err(not_found(id)),
        }
    }

    /// The sessions `scope` may see, most recently updated first.
    pub async fn list_sessions(&self, scope: Scope<'_>, q: &SessionQuery) -> Result<Vec<Session>> {
        let mut sql = format!("SELECT {COLUMNS} FROM sessions WHERE 1 = 1");
        let mut params = 0;
        if scope.team().is_some() {
            params += 1;
            sql.push_str(&team_clause(scope, params));
        }
        if q.agent.is_some() {
            params += 1;
            sql.push_str(&format!(" AND agent = ${params}"));
        }
        sql.push_str(&format!(
            " ORDER BY updated_ms DESC, id LIMIT ${}",
            params + 1
        ));
        let mut query = sqlx::query(&sql);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        if let Some(agent) = &q.agent {
            query = query.bind(agent);
        }
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let rows = query.bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Deletes the session and its items (forks of it stay, naming a parent that is gone).
    /// `Busy` while a turn holds it, here or on another instance.
    pub async fn delete_session(&self, scope: Scope<'_>, id: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM sessions WHERE id = $1 AND {UNLEASED}{}",
            team_clause(scope, 3)
        );
        let mut query = sqlx::query(&sql).bind(id).bind(now_ms());
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        // The items go by ON DELETE CASCADE.
        match query.execute(self.pool()).await?.rows_affected() {
            0 => Err(self.why_not_free(scope, id).await),
            _ => Ok(()),
        }
    }

    /// Takes the session for one turn, for `ttl` unless renewed: `Busy` while another lease
    /// on it is live, wherever its holder runs.
    pub async fn take_lease(
        &self,
        scope: Scope<'_>,
        id: &str,
        ttl: Duration,
    ) -> Result<SessionLease> {
        let now = now_ms();
        let lease = SessionLease {
            session_id: id.to_owned(),
            token: freeway_id("lse_")?,
            until_ms: now.saturating_add(ttl_ms(ttl)),
        };
        // One conditional write: of two instances racing for the session, one matches.
        let sql = format!(
            "UPDATE sessions SET status = 'running', lease_token = $3, lease_until_ms = $4 \
             WHERE id = $1 AND {UNLEASED}{}",
            team_clause(scope, 5)
        );
        let mut query = sqlx::query(&sql)
            .bind(id)
            .bind(now)
            .bind(&lease.token)
            .bind(lease.until_ms);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.execute(self.pool()).await?.rows_affected() {
            0 => Err(self.why_not_free(scope, id).await),
            _ => Ok(lease),
        }
    }

    /// Extends the lease to `ttl` from now. `false`: it is no longer this holder's, because
    /// it lapsed and another turn took the session (or the session was deleted after it
    /// lapsed).
    pub async fn renew_lease(&self, lease: &mut SessionLease, ttl: Duration) -> Result<bool> {
        let until = now_ms().saturating_add(ttl_ms(ttl));
        let renewed = sqlx::query(
            "UPDATE sessions SET lease_until_ms = $3 WHERE id = $1 AND lease_token = $2",
        )
        .bind(&lease.session_id)
        .bind(&lease.token)
        .bind(until)
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0;
        if renewed {
            lease.until_ms = until;
        }
        Ok(renewed)
    }

    /// Gives the session back: idle, and free for the next turn. `false` if the lease was no
    /// longer this holder's (then nothing changes).
    pub async fn release_lease(&self, lease: &SessionLease) -> Result<bool> {
        let released = sqlx::query(
            "UPDATE sessions SET status = 'idle', lease_token = NULL, lease_until_ms = NULL \
             WHERE id = $1 AND lease_token = $2",
        )
        .bind(&lease.session_id)
        .bind(&lease.token)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(released > 0)
    }

    /// Why a write that needs the session free matched nothing: missing, or leased.
    async fn why_not_free(&self, scope: Scope<'_>, id: &str) -> StoreError {
        match self.session(scope, id).await {
            Ok(session) => StoreError::Busy {
                what: "session",
                id: id.to_owned(),
                reason: format!(
                    "a turn is running on it (its lease lapses in {} s unless renewed)",
                    ((session.lease_until_ms.unwrap_or(0) - now_ms()).max(0) + 999) / 1000
                ),
            },
            Err(e) => e,
        }
    }

    /// Appends items with the next consecutive seqs, which it returns, in one transaction.
    pub async fn append_items(
        &self,
        scope: Scope<'_>,
        id: &str,
        items: &[NewItem],
    ) -> Result<Vec<i64>> {
        if items.is_empty() {
            self.ensure_session(scope, id).await?;
            return Ok(Vec::new());
        }
        let count = i64::try_from(items.len())
            .map_err(|_| StoreError::Invalid("too many items in one append".into()))?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Reserving the seqs is the transaction's first statement, and a write: it takes the
        // row's lock (PostgreSQL) or the database's (SQLite) until commit, so concurrent
        // appends to a session queue here and each gets a range of its own.
        let sql = format!(
            "UPDATE sessions SET last_seq = last_seq + $2, updated_ms = $3 WHERE id = $1{} \
             RETURNING last_seq",
            team_clause(scope, 4)
        );
        let mut query = sqlx::query(&sql).bind(id).bind(count).bind(now);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        let Some(row) = query.fetch_optional(&mut *tx).await? else {
            return Err(not_found(id));
        };
        let last: i64 = row.try_get("last_seq")?;
        let seqs: Vec<i64> = (last - count + 1..=last).collect();
        for (seq, item) in seqs.iter().zip(items) {
            sqlx::query(
                "INSERT INTO session_items (session_id, seq, kind, data, created_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(seq)
            .bind(&item.kind)
            .bind(&item.data)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(seqs)
    }

    /// Items with seq above `after_seq`, oldest first; all of them unless `limit` says.
    pub async fn items(
        &self,
        scope: Scope<'_>,
        id: &str,
        after_seq: i64,
        limit: Option<i64>,
    ) -> Result<Vec<SessionItem>> {
        self.ensure_session(scope, id).await?;
        let rows = sqlx::query(
            "SELECT seq, kind, data, created_ms FROM session_items \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after_seq)
        .bind(limit.map_or(i64::MAX, |l| l.max(0)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    /// The newest item of `kind`, if the session has one.
    pub async fn last_item(
        &self,
        scope: Scope<'_>,
        id: &str,
        kind: &str,
    ) -> Result<Option<SessionItem>> {
        self.ensure_session(scope, id).await?;
        // Walks the primary key backwards from the newest item.
        let row = sqlx::query(
            "SELECT seq, kind, data, created_ms FROM session_items \
             WHERE session_id = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(id)
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// Sets what `change` names, adds its usage to the counters, and returns the result.
    pub async fn update_session(
        &self,
        scope: Scope<'_>,
        id: &str,
        change: &SessionChange,
    ) -> Result<Session> {
        let sql = format!(
            "UPDATE sessions SET title = COALESCE($2, title), \
             model = COALESCE($3, model), steps = steps + $4, \
             input_tokens = input_tokens + $5, output_tokens = output_tokens + $6, \
             cost_nanos = cost_nanos + $7, updated_ms = $8 WHERE id = $1{} RETURNING {COLUMNS}",
            team_clause(scope, 9)
        );
        let mut query = sqlx::query(&sql)
            .bind(id)
            .bind(change.title.as_deref())
            .bind(change.model.as_deref())
            .bind(change.add.steps)
            .bind(change.add.input_tokens)
            .bind(change.add.output_tokens)
            .bind(change.add.cost_nanos)
            .bind(now_ms());
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.fetch_optional(self.pool()).await? {
            Some(row) => session_from_row(&row),
            None => Err(not_found(id)),
        }
    }

    /// A new idle session with the same owner, agent, model and directory, and a copy of the
    /// items up to `upto_seq` (all by default), numbered from 1. Usage starts at zero.
    pub async fn fork_session(
        &self,
        scope: Scope<'_>,
        id: &str,
        upto_seq: Option<i64>,
    ) -> Result<Session> {
        let source = self.session(scope, id).await?;
        // Items up to the source's last_seq were committed with it, so the copy below sees
        // them all even if appends continue meanwhile; later ones are not part of the fork.
        let upto = upto_seq.map_or(source.last_seq, |u| u.clamp(0, source.last_seq));
        let now = now_ms();
        let mut fork = Session {
            id: freeway_id("ses_")?,
            title: Some(format!(
                "fork of {}",
                source.title.as_deref().unwrap_or(&source.id)
            )),
            status: SessionStatus::Idle,
            parent_id: Some(source.id.clone()),
            created_ms: now,
            updated_ms: now,
            last_seq: 0,
            usage: SessionUsage::default(),
            lease_until_ms: None,
            ..source
        };
        let mut tx = self.pool().begin().await?;
        insert_session(&mut *tx, &fork).await?;
        let copied = sqlx::query(
            "INSERT INTO session_items (session_id, seq, kind, data, created_ms) \
             SELECT $1, ROW_NUMBER() OVER (ORDER BY seq), kind, data, created_ms \
             FROM session_items WHERE session_id = $2 AND seq <= $3",
        )
        .bind(&fork.id)
        .bind(id)
        .bind(upto)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        fork.last_seq = i64::try_from(copied).unwrap_or(i64::MAX);
        sqlx::query("UPDATE sessions SET last_seq = $2 WHERE id = $1")
            .bind(&fork.id)
            .bind(fork.last_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(fork)
    }

    /// `NotFound` unless the session exists within `scope`.
    async fn ensure_session(&self, scope: Scope<'_>, id: &str) -> Result<()> {
        let sql = format!(
            "SELECT 1 FROM sessions WHERE id = $1{}",
            team_clause(scope, 2)
        );
        let mut query = sqlx::query(&sql).bind(id);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.fetch_optional(self.pool()).await? {
            Some(_) => Ok(()),
            None => Err(not_found(id)),
        }
    }
}

/// ` AND team_id = $n` for a team scope. A team-less session (`team_id IS NULL`) never
/// matches, so only [`Scope::All`] sees it.
fn team_clause(scope: Scope<'_>, n: usize) -> String {
    match scope {
        Scope::All => String::new(),
        Scope::Team(_) => format!(" AND team_id = ${n}"),
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "session",
        id: id.to_owned(),
    }
}

async fn insert_session<'e, E>(executor: E, s: &Session) -> Result<()>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    sqlx::query(
        "INSERT INTO sessions (id, team_id, key_id, agent, model, working_directory, title, \
         status, parent_id, created_ms, updated_ms, last_seq, steps, input_tokens, \
         output_tokens, cost_nanos) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&s.id)
    .bind(&s.team_id)
    .bind(&s.key_id)
    .bind(&s.agent)
    .bind(&s.model)
    .bind(&s.working_directory)
    .bind(&s.title)
    .bind(s.status.as_str())
    .bind(&s.parent_id)
    .bind(s.created_ms)
    .bind(s.updated_ms)
    .bind(s.last_seq)
    .bind(s.usage.steps)
    .bind(s.usage.input_tokens)
    .bind(s.usage.output_tokens)
    .bind(s.usage.cost_nanos)
    .execute(executor)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound {
            what: "team",
            id: s.team_id.clone().unwrap_or_default(),
        },
        _ => StoreError::Database(e),
    })?;
    Ok(())
}

fn item_from_row(row: &AnyRow) -> Result<SessionItem> {
    Ok(SessionItem {
        seq: row.try_get("seq")?,
        kind: row.try_get("kind")?,
        data: row.try_get("data")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn session_from_row(row: &AnyRow) -> Result<Session> {
    let lease_until_ms: Option<i64> = row.try_get("lease_until_ms")?;
    let status = match lease_until_ms {
        Some(until) if until > now_ms() => SessionStatus::Running,
        _ => SessionStatus::Idle,
    };
    Ok(Session {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        key_id: row.try_get("key_id")?,
        agent: row.try_get("agent")?,
        model: row.try_get("model")?,
        working_directory: row.try_get("working_directory")?,
        title: row.try_get("title")?,
        status,
        parent_id: row.try_get("parent_id")?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        last_seq: row.try_get("last_seq")?,
        usage: SessionUsage {
            steps: row.try_get("steps")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_nanos: row.try_get("cost_nanos")?,
        },
        lease_until_ms,
    })
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_their_column_text() {
        for s in SessionStatus::ALL {
            assert_eq!(
                serde_json::to_value(&s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }

    #[test]
    fn team_scopes_filter_in_sql() {
        assert_eq!(team_clause(Scope::All, 2), "");
        assert_eq!(team_clause(Scope::Team("t"), 2), " AND team_id = $2");
    }
}
