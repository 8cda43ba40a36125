//! Embedded, ordered migrations per dialect, each applied once inside a transaction.
//!
//! sqlx's own migrator wants either a directory at run time or its macros at compile time;
//! freeway is one binary, so the SQL is embedded and tracked in `freeway_migrations`.

use sqlx::Row;

use crate::{Dialect, Result, Store, StoreError, time::now_ms};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "teams, keys, usage ledger, audit log",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "agent sessions",
        sqlite: include_str!("../migrations/sqlite/0002_sessions.sql"),
        postgres: include_str!("../migrations/postgres/0002_sessions.sql"),
    },
    Migration {
        version: 3,
        name: "stored responses",
        sqlite: include_str!("../migrations/sqlite/0003_responses.sql"),
        postgres: include_str!("../migrations/postgres/0003_responses.sql"),
    },
    Migration {
        version: 4,
        name: "tool allow lists on teams and keys",
        sqlite: include_str!("../migrations/sqlite/0004_tool_allow_lists.sql"),
        postgres: include_str!("../migrations/postgres/0004_tool_allow_lists.sql"),
    },
    Migration {
        version: 5,
        name: "input items of stored responses",
        sqlite: include_str!("../migrations/sqlite/0005_response_input_items.sql"),
        postgres: include_str!("../migrations/postgres/0005_response_input_items.sql"),
    },
    Migration {
        version: 6,
        name: "session leases",
        sqlite: include_str!("../migrations/sqlite/0006_session_leases.sql"),
        postgres: include_str!("../migrations/postgres/0006_session_leases.sql"),
    },
];

pub(crate) async fn run(store: &Store) -> Result<()> {
    let pool = store.pool();
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS freeway_migrations (\
           version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    for m in MIGRATIONS {
        let mut tx = pool.begin().await?;
        if store.dialect() == Dialect::Postgres {
            // Instances starting together take turns; the loser finds the version applied.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(7304811)) AS held")
                .execute(&mut *tx)
                .await?;
        }
        let applied: i64 = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM freeway_migrations WHERE version = $1",
        )
        .bind(m.version)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if applied > 0 {
            continue;
        }
        let sql = match store.dialect() {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        let fail = |source| StoreError::Migration {
            version: m.version,
            name: m.name,
            source,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
        sqlx::query(
            "INSERT INTO freeway_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    let newest: Option<i64> = sqlx::query("SELECT MAX(version) FROM freeway_migrations")
        .fetch_one(pool)
        .await?
        .try_get(0)?;
    match newest {
        Some(found) if found > known => Err(StoreError::TooNew { found, known }),
        _ => Ok(()),
    }
}
