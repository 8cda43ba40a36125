use std::sync::atomic::{AtomicU32, Ordering};

use freeway_store::Store;
use sqlx::Connection;

/// A store on a fresh database; `finish` drops it again (PostgreSQL).
pub struct Fresh {
    pub store: Store,
    _dir: Option<TempDir>,
    pg: Option<(String, String)>,
}

pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static N: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub async fn sqlite() -> Fresh {
    let dir = std::env::temp_dir().join(unique("freeway-store"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("nested/freeway.db").display());
    let store = Store::open(&url).await.unwrap();
    Fresh {
        store,
        _dir: Some(TempDir(dir)),
        pg: None,
    }
}

pub fn postgres_base() -> Option<String> {
    match std::env::var("FREEWAY_TEST_POSTGRES") {
        Ok(v) if v == "off" => None,
        Ok(v) => Some(v.trim_end_matches('/').to_owned()),
        Err(_) => Some("postgres://postgres@127.0.0.1:5432".to_owned()),
    }
}

pub async fn postgres() -> Option<Fresh> {
    let base = postgres_base()?;
    sqlx::any::install_default_drivers();
    let name = unique("freeway_test");
    let mut admin = sqlx::AnyConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL at {base} is not reachable ({e}); start it or set FREEWAY_TEST_POSTGRES=off")
        });
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let store = Store::open(&format!("{base}/{name}")).await.unwrap();
    Some(Fresh {
        store,
        _dir: None,
        pg: Some((base, name)),
    })
}

impl Fresh {
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((base, name)) = self.pg {
            let mut admin = sqlx::AnyConnection::connect(&format!("{base}/postgres"))
                .await
                .unwrap();
            // FORCE: a pooled connection may still be closing on the server's side.
            if let Err(e) = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
            {
                eprintln!("could not drop the test database {name}: {e}");
            }
        }
    }
}

/// Runs a test body against SQLite and then PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run($store: &freeway_store::Store) $body

            #[tokio::test]
            async fn sqlite() {
                let fresh = $crate::support::sqlite().await;
                run(&fresh.store).await;
                fresh.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(fresh) = $crate::support::postgres().await else { return };
                run(&fresh.store).await;
                fresh.finish().await;
            }
        }
    };
}

pub async fn team(store: &Store, name: &str) -> freeway_store::Team {
    store
        .create_team(freeway_store::NewTeam {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
}

pub async fn key(
    store: &Store,
    team: &str,
    role: freeway_store::Role,
) -> (freeway_store::ApiKey, String) {
    store
        .create_key(
            freeway_store::Scope::All,
            freeway_store::NewKey {
                team: team.into(),
                role,
                name: Some("k".into()),
                models: None,
                tools: None,
                limits: Default::default(),
                expires_at: None,
            },
        )
        .await
        .unwrap()
}
