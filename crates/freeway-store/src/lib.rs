//! Persistence behind one API, on SQLite (the embedded default) and PostgreSQL (what several
//! instances share): teams, virtual keys, the usage ledger, the hash-chained audit log,
//! agent sessions with their append-only items, and stored Responses API answers.
//!
//! Every query is plain SQL text run through sqlx's `Any` driver, written once for both
//! databases (`$1` placeholders, `BIGINT` columns, casts where PostgreSQL widens a type).
//! Migrations are embedded per dialect and applied in order at [`Store::open`].
//!
//! Tenancy is enforced here, not only in handlers: every read or write of team-owned rows
//! takes a [`Scope`], and a team scope adds `team_id = …` to the query itself.

mod audit;
mod keys;
mod migrate;
mod model;
mod responses;
mod sessions;
mod teams;
mod time;
mod usage;

use std::sync::Arc;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use audit::{AuditEntry, AuditEvent, AuditQuery, Verification};
pub use keys::{KEY_PREFIX, KeyUpdate, NewKey, hash_secret};
pub use model::{ApiKey, Limits, Period, Principal, Role, Team};
pub use responses::{NewResponse, StoredResponse};
pub use sessions::{
    NewItem, NewSession, Session, SessionChange, SessionItem, SessionLease, SessionQuery,
    SessionStatus, SessionUsage,
};
pub use teams::{NewTeam, TeamUpdate};
pub use time::{date_of_day, day_of_date, now_ms, period_end_ms, period_start_ms};
pub use usage::{GroupBy, SpendOwner, UsageQuery, UsageRecord, UsageRow};

/// Whose rows a call may see or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every team (the master key).
    All,
    /// One team's rows only.
    Team(&'a str),
}

impl Scope<'_> {
    pub fn team(&self) -> Option<&str> {
        match self {
            Scope::All => None,
            Scope::Team(t) => Some(t),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not open the store at {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "the database has migration {found}, newer than this freeway knows ({known}); upgrade freeway"
    )]
    TooNew { found: i64, known: i64 },
    #[error("{what} `{id}` does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("{what} `{name}` already exists")]
    Conflict { what: &'static str, name: String },
    #[error("{what} `{id}` is busy: {reason}")]
    Busy {
        what: &'static str,
        id: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("no secure random numbers available: {0}")]
    Random(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// A low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "open",
            StoreError::Migration { .. } | StoreError::TooNew { .. } => "migration",
            StoreError::NotFound { .. } => "not_found",
            StoreError::Conflict { .. } => "conflict",
            StoreError::Busy { .. } => "busy",
            StoreError::Invalid(_) => "invalid",
            StoreError::Random(_) => "random",
            StoreError::Database(_) => "database",
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// WAL: readers never wait for the writer; NORMAL is durable in WAL mode except for the
/// last transactions on power loss.
const SQLITE_PRAGMAS: &[&str] = &[
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
];

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// What [`Store::sibling`] connects to; `None` for an in-memory database, which lives in
    /// its one connection.
    connect_url: Option<Arc<str>>,
    /// Serializes audit appends within this process (the database serializes across them).
    audit_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating a SQLite file and its directory if needed) and migrates the store.
    /// `url` is `sqlite://PATH`, `sqlite::memory:` (one connection) or `postgres://…`.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (dialect, connect_url, max, memory) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let memory = rest.contains(":memory:");
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if !memory
                && let Some(dir) = std::path::Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                    url: url.to_owned(),
                    source: sqlx::Error::Io(e),
                })?;
            }
            let connect = if memory || rest.contains("mode=") {
                url.to_owned()
            } else if rest.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            // An in-memory database lives in one connection; more would be separate databases.
            (Dialect::Sqlite, connect, if memory { 1 } else { 8 }, memory)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_owned(), 16, false)
        } else {
            return Err(StoreError::Invalid(format!(
                "`{url}` is neither sqlite://PATH nor postgres://…"
            )));
        };
        let pool = pool_options(dialect)
            .max_connections(max)
            .connect(&connect_url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact_url(url),
                source,
            })?;
        let store = Self {
            pool,
            dialect,
            connect_url: (!memory).then(|| connect_url.into()),
            audit_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// The same database through one connection of its own, opened now and kept: for a
    /// background writer on a thread of its own. A SQLite connection is served by a thread
    /// spawned from the caller's, so it inherits the caller's scheduling priority. `None` for
    /// an in-memory database, which has no second connection.
    pub async fn sibling(&self) -> Result<Option<Store>> {
        let Some(url) = &self.connect_url else {
            return Ok(None);
        };
        let pool = pool_options(self.dialect)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect(url)
            .await
            .map_err(|source| StoreError::Open {
                url: redact_url(url),
                source,
            })?;
        Ok(Some(Self {
            pool,
            dialect: self.dialect,
            connect_url: self.connect_url.clone(),
            audit_lock: self.audit_lock.clone(),
        }))
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for tests and tools that read the tables directly.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// How every connection of a pool starts: SQLite's pragmas.
fn pool_options(dialect: Dialect) -> AnyPoolOptions {
    AnyPoolOptions::new().after_connect(move |conn, _| {
        Box::pin(async move {
            if dialect == Dialect::Sqlite {
                use sqlx::Executor;
                for pragma in SQLITE_PRAGMAS {
                    conn.execute(*pragma).await?;
                }
            }
            Ok(())
        })
    })
}

/// The URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Maps a unique-constraint violation to a [`StoreError::Conflict`].
pub(crate) fn conflict(e: sqlx::Error, what: &'static str, name: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict {
            what,
            name: name.to_owned(),
        };
    }
    StoreError::Database(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
