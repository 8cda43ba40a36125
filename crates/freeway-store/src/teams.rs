//! Teams: the tenants that own keys, usage and sessions.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Limits, Period, Team};
use crate::{Result, Scope, Store, StoreError, conflict, time::now_ms};

#[derive(Debug, Clone, Default)]
pub struct NewTeam {
    pub name: String,
    pub models: Option<Vec<String>>,
    pub tools: Option<Vec<String>>,
    pub limits: Limits,
}

/// A partial update: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct TeamUpdate {
    pub name: Option<String>,
    pub models: Option<Option<Vec<String>>>,
    pub tools: Option<Option<Vec<String>>>,
    pub budget_nanos: Option<Option<i64>>,
    pub budget_period: Option<Period>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub on_exceed: Option<Option<String>>,
}

const COLUMNS: &str =
    "id, name, models, tools, budget_nanos, budget_period, rpm, tpm, on_exceed, created_at";

impl Store {
    pub async fn create_team(&self, new: NewTeam) -> Result<Team> {
        let name = new.name.trim().to_owned();
        validate_name(&name)?;
        validate_limits(&new.limits)?;
        let team = Team {
            id: freeway_id("team_")?,
            name,
            models: new.models,
            tools: new.tools,
            limits: new.limits,
            created_at: now_ms(),
        };
        sqlx::query(
            "INSERT INTO teams (id, name, models, budget_nanos, budget_period, rpm, tpm, on_exceed, created_at, tools) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&team.id)
        .bind(&team.name)
        .bind(encode_list(&team.models))
        .bind(team.limits.budget_nanos)
        .bind(team.limits.budget_period.as_str())
        .bind(to_i64(team.limits.rpm))
        .bind(to_i64(team.limits.tpm))
        .bind(&team.limits.on_exceed)
        .bind(team.created_at)
        .bind(encode_list(&team.tools))
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, "team", &team.name))?;
        Ok(team)
    }

    /// The team with this id or name, if `scope` may see it.
    pub async fn team(&self, scope: Scope<'_>, id_or_name: &str) -> Result<Team> {
        let mut sql = format!("SELECT {COLUMNS} FROM teams WHERE (id = $1 OR name = $1)");
        if scope.team().is_some() {
            sql.push_str(" AND id = $2");
        }
        let mut query = sqlx::query(&sql).bind(id_or_name);
        if let Some(team) = scope.team() {
            query = query.bind(team);
        }
        match query.fetch_optional(self.pool()).await? {
            Some(row) => team_from_row(&row),
            None => Err(StoreError::NotFound {
                what: "team",
                id: id_or_name.to_owned(),
            }),
        }
    }

    pub async fn teams(&self, scope: Scope<'_>) -> Result<Vec<Team>> {
        let rows = match scope {
            Scope::All => {
                sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM teams ORDER BY created_at, id"
                ))
                .fetch_all(self.pool())
                .await?
            }
            Scope::Team(t) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM teams WHERE id = $1"))
                    .bind(t)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(team_from_row).collect()
    }

    pub async fn update_team(
        &self,
        scope: Scope<'_>,
        id: &str,
        update: TeamUpdate,
    ) -> Result<Team> {
        let mut team = self.team(scope, id).await?;
        if let Some(name) = update.name {
            let name = name.trim().to_owned();
            validate_name(&name)?;
            team.name = name;
        }
        if let Some(models) = update.models {
            team.models = models;
        }
        if let Some(tools) = update.tools {
            team.tools = tools;
        }
        if let Some(v) = update.budget_nanos {
            team.limits.budget_nanos = v;
        }
        if let Some(v) = update.budget_period {
            team.limits.budget_period = v;
        }
        if let Some(v) = update.rpm {
            team.limits.rpm = v;
        }
        if let Some(v) = update.tpm {
            team.limits.tpm = v;
        }
        if let Some(v) = update.on_exceed {
            team.limits.on_exceed = v;
        }
        validate_limits(&team.limits)?;
        sqlx::query(
            "UPDATE teams SET name = $2, models = $3, budget_nanos = $4, budget_period = $5, \
             rpm = $6, tpm = $7, on_exceed = $8, tools = $9 WHERE id = $1",
        )
        .bind(&team.id)
        .bind(&team.name)
        .bind(encode_list(&team.models))
        .bind(team.limits.budget_nanos)
        .bind(team.limits.budget_period.as_str())
        .bind(to_i64(team.limits.rpm))
        .bind(to_i64(team.limits.tpm))
        .bind(&team.limits.on_exceed)
        .bind(encode_list(&team.tools))
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, "team", &team.name))?;
        Ok(team)
    }
}

pub(crate) fn team_from_row(row: &AnyRow) -> Result<Team> {
    Ok(Team {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        models: decode_list(row.try_get("models")?)?,
        tools: decode_list(row.try_get("tools")?)?,
        limits: limits_from_row(row, "")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The limit columns of a row, optionally aliased with a prefix (`t_budget_nanos`…).
pub(crate) fn limits_from_row(row: &AnyRow, prefix: &str) -> Result<Limits> {
    let col = |name: &str| format!("{prefix}{name}");
    let period: String = row.try_get(col("budget_period").as_str())?;
    Ok(Limits {
        budget_nanos: row.try_get(col("budget_nanos").as_str())?,
        budget_period: Period::parse(&period).unwrap_or_default(),
        rpm: from_i64(row.try_get(col("rpm").as_str())?),
        tpm: from_i64(row.try_get(col("tpm").as_str())?),
        on_exceed: row.try_get(col("on_exceed").as_str())?,
    })
}

pub(crate) fn validate_limits(limits: &Limits) -> Result<()> {
    if limits.budget_nanos.is_some_and(|b| b < 0) {
        return Err(StoreError::Invalid("budget_usd must be 0 or more".into()));
    }
    if limits.rpm == Some(0) || limits.tpm == Some(0) {
        return Err(StoreError::Invalid(
            "rpm and tpm must be at least 1 (leave them out for no limit)".into(),
        ));
    }
    if let Some(action) = &limits.on_exceed {
        match action.strip_prefix("route:") {
            Some(route) if !route.trim().is_empty() => {}
            _ => {
                return Err(StoreError::Invalid(format!(
                    "on_exceed `{action}` must be `route:<name>` (or left out to refuse)"
                )));
            }
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "a team name is 1 to 128 printable characters".into(),
        ));
    }
    if name.starts_with("team_") {
        // Teams are looked up by id or name; a name shaped like an id would be ambiguous.
        return Err(StoreError::Invalid(
            "a team name may not start with `team_` (that is how ids start)".into(),
        ));
    }
    Ok(())
}

pub(crate) fn encode_list(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| "[]".to_owned()))
}

pub(crate) fn decode_list(text: Option<String>) -> Result<Option<Vec<String>>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Invalid(format!("a stored allow list is not JSON: {e}")))
    })
    .transpose()
}

pub(crate) fn to_i64(v: Option<u64>) -> Option<i64> {
    v.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

pub(crate) fn from_i64(v: Option<i64>) -> Option<u64> {
    v.map(|n| u64::try_from(n).unwrap_or(0))
}

/// An id with a prefix and 96 random bits (ids are not secrets, but need not be guessable).
pub(crate) fn freeway_id(prefix: &str) -> Result<String> {
    Ok(format!("{prefix}{}", crate::keys::random_base62(16)?))
}
