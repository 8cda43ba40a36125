//! Stored Responses API answers: the response object a client reads back, and the turns a
//! later request continues from with `previous_response_id`. Both are JSON text whose meaning
//! belongs to the server, not the store. A response is written once and never changed.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, Scope, Store, StoreError, time::now_ms};

const COLUMNS: &str =
    "id, team_id, key_id, model, previous_id, created_ms, body, conversation, input_items";

#[derive(Debug, Clone, Default)]
pub struct NewResponse {
    /// The id the client was given (`resp_…`).
    pub id: String,
    /// `None` for the master key or an open server: then only [`Scope::All`] sees it.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub model: String,
    pub previous_id: Option<String>,
    /// The response object, JSON text stored as given.
    pub body: String,
    /// The conversation up to and including this response's output, JSON text stored as given.
    pub conversation: String,
    /// This request's input items, a JSON array stored as given.
    pub input_items: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredResponse {
    pub id: String,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub model: String,
    pub previous_id: Option<String>,
    pub created_ms: i64,
    pub body: String,
    pub conversation: String,
    /// `[]` for a response stored before input items were kept.
    pub input_items: String,
}

impl StoredResponse {
    /// `new` as it reads back once stored now.
    pub fn created_now(new: &NewResponse) -> Self {
        StoredResponse {
            id: new.id.clone(),
            team_id: new.team_id.clone(),
            key_id: new.key_id.clone(),
            model: new.model.clone(),
            previous_id: new.previous_id.clone(),
            created_ms: now_ms(),
            body: new.body.clone(),
            conversation: new.conversation.clone(),
            input_items: new.input_items.clone(),
        }
    }
}

impl Store {
    /// Stores a response; an id that exists already is a conflict.
    pub async fn put_response(&self, new: &NewResponse) -> Result<StoredResponse> {
        let stored = StoredResponse::created_now(new);
        sqlx::query(&format!(
            "INSERT INTO responses ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&stored.id)
        .bind(&stored.team_id)
        .bind(&stored.key_id)
        .bind(&stored.model)
        .bind(&stored.previous_id)
        .bind(stored.created_ms)
        .bind(&stored.body)
        .bind(&stored.conversation)
        .bind(&stored.input_items)
        .execute(self.pool())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound {
                what: "team",
                id: stored.team_id.clone().unwrap_or_default(),
            },
            _ => crate::conflict(e, "response", &stored.id),
        })?;
        Ok(stored)
    }

    /// The response, if `scope` may see it; another team's is as missing as one that never was.
    pub async fn response(&self, scope: Scope<'_>, id: &str) -> Result<StoredResponse> {
        let sql = format!(
            "SELECT {COLUMNS} FROM responses WHERE id = $1{}",
            team_clause(scope, 2)
        );
        let mut query = sqlx::query(&sql).bind(id);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.fetch_optional(self.pool()).await? {
            Some(row) => response_from_row(&row),
            None => Err(not_found(id)),
        }
    }

    /// Deletes the response. Responses continued from it keep their own copy of the turns.
    pub async fn delete_response(&self, scope: Scope<'_>, id: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM responses WHERE id = $1{}",
            team_clause(scope, 2)
        );
        let mut query = sqlx::query(&sql).bind(id);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.execute(self.pool()).await?.rows_affected() {
            0 => Err(not_found(id)),
            _ => Ok(()),
        }
    }
}

/// ` AND team_id = $n` for a team scope. A team-less response (`team_id IS NULL`) never
/// matches, so only [`Scope::All`] sees it.
fn team_clause(scope: Scope<'_>, n: usize) -> String {
    match scope {
        Scope::All => String::new(),
        Scope::Team(_) => format!(" AND team_id = ${n}"),
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "response",
        id: id.to_owned(),
    }
}

fn response_from_row(row: &AnyRow) -> Result<StoredResponse> {
    Ok(StoredResponse {
        id: row.try_get("id")?,
        team_id: row.try_get("team_id")?,
        key_id: row.try_get("key_id")?,
        model: row.try_get("model")?,
        previous_id: row.try_get("previous_id")?,
        created_ms: row.try_get("created_ms")?,
        body: row.try_get("body")?,
        conversation: row.try_get("conversation")?,
        input_items: row
            .try_get::<Option<String>, _>("input_items")?
            .unwrap_or_else(|| "[]".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_scopes_filter_in_sql() {
        assert_eq!(team_clause(Scope::All, 2), "");
        assert_eq!(team_clause(Scope::Team("t"), 2), " AND team_id = $2");
    }
}
