//! The admin API: teams, virtual keys, usage reports and the audit log.
//!
//! Authenticated by the master key (every team) or an `admin` key (its own team only: the
//! scope goes into every store query). Creating and changing teams, and verifying the whole
//! audit chain, take the master key. Every change is written to the audit log before the
//! answer leaves.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use freeway_store::{
    ApiKey, AuditQuery, GroupBy, KeyUpdate, Limits, NewKey, NewTeam, Period, Role, StoreError,
    Team, TeamUpdate, UsageQuery, day_of_date,
};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, Category};
use crate::http::{authorize, parse_json, read_body};
use crate::tenancy::{Caller, Tenancy};

pub fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, Category::NotFound, e.to_string())
                .with_code("not_found")
        }
        StoreError::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            Category::InvalidRequest,
            e.to_string(),
        )
        .with_code("conflict"),
        StoreError::Busy { what, .. } => ApiError::new(
            StatusCode::CONFLICT,
            Category::InvalidRequest,
            e.to_string(),
        )
        .with_code(if what == "session" {
            "session_busy"
        } else {
            "busy"
        }),
        StoreError::Invalid(message) => ApiError::invalid("", message),
        StoreError::Open { .. }
        | StoreError::Migration { .. }
        | StoreError::TooNew { .. }
        | StoreError::Random(_)
        | StoreError::Database(_) => {
            tracing::error!(error = %e, "store failure in the admin API");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                Category::Unavailable,
                "the store is unavailable; try again shortly",
            )
            .with_code("store_unavailable")
        }
    }
}

fn tenancy(state: &AppState) -> Result<&Arc<Tenancy>, ApiError> {
    state.tenancy.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Category::Unavailable,
            "this server runs without a store, so it has no teams, keys or usage",
        )
    })
}

pub(crate) fn respond(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(ApiError::openai)
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitFields {
    #[serde(default, deserialize_with = "nullable")]
    models: Option<Option<Vec<String>>>,
    /// Agent tools allowed (`mcp__<server>__*` allows a server's).
    #[serde(default, deserialize_with = "nullable")]
    tools: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    budget_usd: Option<Option<f64>>,
    #[serde(default)]
    budget_period: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    rpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    tpm: Option<Option<u64>>,
    #[serde(default, deserialize_with = "nullable")]
    on_exceed: Option<Option<String>>,
}

fn nanos(usd: Option<Option<f64>>) -> Result<Option<Option<i64>>, ApiError> {
    match usd {
        Some(Some(v)) if !(v.is_finite() && v >= 0.0) => Err(ApiError::invalid(
            "budget_usd",
            "must be a number of 0 or more (USD per period)",
        )),
        Some(Some(v)) => Ok(Some(Some((v * 1e9).round() as i64))),
        Some(None) => Ok(Some(None)),
        None => Ok(None),
    }
}

fn period(p: Option<String>) -> Result<Option<Period>, ApiError> {
    p.map(|p| {
        Period::parse(&p).ok_or_else(|| {
            ApiError::invalid(
                "budget_period",
                format!("`{p}` is neither `day` nor `month`"),
            )
        })
    })
    .transpose()
}

impl LimitFields {
    /// The allow lists (models, tools) and limits of a new team or key.
    #[allow(clippy::type_complexity, reason = "used right away, twice")]
    fn limits(self) -> Result<(Option<Vec<String>>, Option<Vec<String>>, Limits), ApiError> {
        Ok((
            self.models.flatten(),
            self.tools.flatten(),
            Limits {
                budget_nanos: nanos(self.budget_usd)?.flatten(),
                budget_period: period(self.budget_period)?.unwrap_or_default(),
                rpm: self.rpm.flatten(),
                tpm: self.tpm.flatten(),
                on_exceed: self.on_exceed.flatten(),
            },
        ))
    }
}

/// An `on_exceed = "route:<name>"` must name a model or route this server answers to, or the
/// downgrade would fail only once the budget is spent.
fn check_downgrade(state: &AppState, on_exceed: &Option<Option<String>>) -> Result<(), ApiError> {
    let Some(Some(action)) = on_exceed else {
        return Ok(());
    };
    let Some(route) = action.strip_prefix("route:") else {
        // The store explains the expected shape.
        return Ok(());
    };
    state.gateway.resolve(route).map(|_| ()).map_err(|_| {
        ApiError::invalid(
            "on_exceed",
            format!("`{route}` is not a route or model this server answers to"),
        )
    })
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn limits_json(
    out: &mut serde_json::Map<String, Value>,
    (models, tools): (&Option<Vec<String>>, &Option<Vec<String>>),
    l: &Limits,
) {
    out.insert("models".into(), json!(models));
    out.insert("tools".into(), json!(tools));
    out.insert(
        "budget_usd".into(),
        json!(l.budget_nanos.map(|n| n as f64 / 1e9)),
    );
    out.insert("budget_period".into(), json!(l.budget_period.as_str()));
    out.insert("rpm".into(), json!(l.rpm));
    out.insert("tpm".into(), json!(l.tpm));
    out.insert("on_exceed".into(), json!(l.on_exceed));
}

pub fn team_json(t: &Team) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(t.id));
    out.insert("name".into(), json!(t.name));
    limits_json(&mut out, (&t.models, &t.tools), &t.limits);
    out.insert("created_at".into(), json!(secs(t.created_at)));
    Value::Object(out)
}

pub fn key_json(k: &ApiKey) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("id".into(), json!(k.id));
    out.insert("team_id".into(), json!(k.team_id));
    out.insert("name".into(), json!(k.name));
    out.insert("role".into(), json!(k.role.as_str()));
    out.insert("prefix".into(), json!(k.prefix));
    limits_json(&mut out, (&k.models, &k.tools), &k.limits);
    out.insert("created_at".into(), json!(secs(k.created_at)));
    out.insert("rotated_at".into(), json!(k.rotated_at.map(secs)));
    out.insert("expires_at".into(), json!(k.expires_at.map(secs)));
    out.insert("revoked_at".into(), json!(k.revoked_at.map(secs)));
    Value::Object(out)
}

fn with_secret(mut key: Value, secret: String) -> Value {
    if let Value::Object(o) = &mut key {
        o.insert("key".into(), Value::String(secret));
    }
    key
}

pub(crate) fn created(body: Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

// ---- teams ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(flatten)]
    limits: LimitFields,
}

pub async fn create_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_master()?;
            let tenancy = tenancy(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let wire: TeamBody = parse_json(&bytes)?;
            check_downgrade(&state, &wire.limits.on_exceed)?;
            let name = wire
                .name
                .ok_or_else(|| ApiError::invalid("name", "a team needs a name"))?;
            let (models, tools, limits) = wire.limits.limits()?;
            let team = tenancy
                .store
                .create_team(NewTeam {
                    name,
                    models,
                    tools,
                    limits,
                })
                .await
                .map_err(store_error)?;
            let body = team_json(&team);
            tenancy
                .audit(
                    &caller,
                    Some(&team.id),
                    "team.create",
                    &team.id,
                    body.clone(),
                )
                .await?;
            Ok(created(body))
        }
        .await,
    )
}

pub async fn list_teams(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let teams = tenancy(&state)?
                .store
                .teams(scope)
                .await
                .map_err(store_error)?;
            let data: Vec<Value> = teams.iter().map(team_json).collect();
            Ok(axum::Json(json!({ "data": data })).into_response())
        }
        .await,
    )
}

pub async fn get_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let team = tenancy(&state)?
                .store
                .team(scope, &id)
                .await
                .map_err(store_error)?;
            Ok(axum::Json(team_json(&team)).into_response())
        }
        .await,
    )
}

pub async fn update_team(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            // A team's own admins must not raise its budget or limits.
            caller.require_master()?;
            let tenancy = tenancy(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let wire: TeamBody = parse_json(&bytes)?;
            check_downgrade(&state, &wire.limits.on_exceed)?;
            let l = wire.limits;
            let update = TeamUpdate {
                name: wire.name,
                models: l.models,
                tools: l.tools,
                budget_nanos: nanos(l.budget_usd)?,
                budget_period: period(l.budget_period)?,
                rpm: l.rpm,
                tpm: l.tpm,
                on_exceed: l.on_exceed,
            };
            let team = tenancy
                .store
                .update_team(freeway_store::Scope::All, &id, update)
                .await
                .map_err(store_error)?;
            tenancy.invalidate();
            let body = team_json(&team);
            tenancy
                .audit(
                    &caller,
                    Some(&team.id),
                    "team.update",
                    &team.id,
                    body.clone(),
                )
                .await?;
            Ok(axum::Json(body).into_response())
        }
        .await,
    )
}

// ---- keys ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBody {
    #[serde(default)]
    team: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<i64>>,
    #[serde(flatten)]
    limits: LimitFields,
}

fn role(r: &str) -> Result<Role, ApiError> {
    Role::parse(r).ok_or_else(|| {
        ApiError::invalid(
            "role",
            format!("`{r}` is not a role; expected admin, developer or viewer"),
        )
    })
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let tenancy = tenancy(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let wire: KeyBody = parse_json(&bytes)?;
            check_downgrade(&state, &wire.limits.on_exceed)?;
            let team = match (wire.team, scope.team()) {
                (Some(t), _) => t,
                // An admin key makes keys for its own team by default.
                (None, Some(own)) => own.to_owned(),
                (None, None) => return Err(ApiError::invalid("team", "name the key's team")),
            };
            let role = role(
                wire.role
                    .as_deref()
                    .ok_or_else(|| ApiError::invalid("role", "admin, developer or viewer"))?,
            )?;
            let (models, tools, limits) = wire.limits.limits()?;
            let (key, secret) = tenancy
                .store
                .create_key(
                    scope,
                    NewKey {
                        team,
                        role,
                        name: wire.name.flatten(),
                        models,
                        tools,
                        limits,
                        expires_at: wire.expires_at.flatten().map(|s| s * 1000),
                    },
                )
                .await
                .map_err(store_error)?;
            let body = key_json(&key);
            tenancy
                .audit(
                    &caller,
                    Some(&key.team_id),
                    "key.create",
                    &key.id,
                    body.clone(),
                )
                .await?;
            Ok(created(with_secret(body, secret)))
        }
        .await,
    )
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let tenancy = tenancy(&state)?;
            let include_revoked = matches!(
                query.get("include_revoked").map(String::as_str),
                Some("true" | "1")
            );
            let team = match query.get("team") {
                Some(t) => Some(tenancy.store.team(scope, t).await.map_err(store_error)?.id),
                None => None,
            };
            let keys = tenancy
                .store
                .keys(scope, include_revoked)
                .await
                .map_err(store_error)?;
            let data: Vec<Value> = keys
                .iter()
                .filter(|k| team.as_ref().is_none_or(|t| *t == k.team_id))
                .map(key_json)
                .collect();
            Ok(axum::Json(json!({ "data": data })).into_response())
        }
        .await,
    )
}

pub async fn get_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let key = tenancy(&state)?
                .store
                .key(scope, &id)
                .await
                .map_err(store_error)?;
            Ok(axum::Json(key_json(&key)).into_response())
        }
        .await,
    )
}

pub async fn update_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let tenancy = tenancy(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let wire: KeyBody = parse_json(&bytes)?;
            check_downgrade(&state, &wire.limits.on_exceed)?;
            if wire.team.is_some() {
                return Err(ApiError::invalid(
                    "team",
                    "a key cannot move to another team; create a key there instead",
                ));
            }
            let l = wire.limits;
            let update = KeyUpdate {
                name: wire.name,
                role: wire.role.as_deref().map(role).transpose()?,
                models: l.models,
                tools: l.tools,
                budget_nanos: nanos(l.budget_usd)?,
                budget_period: period(l.budget_period)?,
                rpm: l.rpm,
                tpm: l.tpm,
                on_exceed: l.on_exceed,
                expires_at: wire.expires_at.map(|e| e.map(|s| s * 1000)),
            };
            let key = tenancy
                .store
                .update_key(scope, &id, update)
                .await
                .map_err(store_error)?;
            tenancy.invalidate();
            let body = key_json(&key);
            tenancy
                .audit(
                    &caller,
                    Some(&key.team_id),
                    "key.update",
                    &key.id,
                    body.clone(),
                )
                .await?;
            Ok(axum::Json(body).into_response())
        }
        .await,
    )
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let tenancy = tenancy(&state)?;
            let key = tenancy
                .store
                .revoke_key(scope, &id)
                .await
                .map_err(store_error)?;
            tenancy.invalidate();
            tenancy
                .audit(
                    &caller,
                    Some(&key.team_id),
                    "key.revoke",
                    &key.id,
                    json!({}),
                )
                .await?;
            Ok(axum::Json(key_json(&key)).into_response())
        }
        .await,
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    grace_secs: Option<i64>,
}

pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let tenancy = tenancy(&state)?;
            let bytes = read_body(body, &headers, state.max_body_bytes).await?;
            let wire: RotateBody = if bytes.iter().all(u8::is_ascii_whitespace) {
                RotateBody::default()
            } else {
                parse_json(&bytes)?
            };
            if wire.grace_secs.is_some_and(|g| g < 0) {
                return Err(ApiError::invalid("grace_secs", "must be 0 or more"));
            }
            let (key, secret) = tenancy
                .store
                .rotate_key(scope, &id, wire.grace_secs.map(|s| s * 1000))
                .await
                .map_err(store_error)?;
            tenancy.invalidate();
            let body = key_json(&key);
            tenancy
                .audit(
                    &caller,
                    Some(&key.team_id),
                    "key.rotate",
                    &key.id,
                    json!({ "grace_secs": wire.grace_secs }),
                )
                .await?;
            Ok(axum::Json(with_secret(body, secret)).into_response())
        }
        .await,
    )
}

// ---- usage and audit ----

fn time_param(query: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(secs) = v.parse::<i64>() {
        return Ok(Some(secs * 1000));
    }
    day_of_date(v)
        .map(|day| Some(day * 86_400_000))
        .ok_or_else(|| {
            ApiError::invalid(
                name,
                format!("`{v}` is neither unix seconds nor YYYY-MM-DD"),
            )
        })
}

pub async fn usage(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.read_scope();
            let tenancy = tenancy(&state)?;
            let group = query.get("group_by").map_or("model", String::as_str);
            let group_by = GroupBy::parse(group).ok_or_else(|| {
                ApiError::invalid(
                    "group_by",
                    format!("`{group}` is not one of key, team, model, provider, day"),
                )
            })?;
            let since = time_param(&query, "since")?;
            let until = time_param(&query, "until")?;
            // Rows still lingering in the writer count: a caller sees its own requests.
            tenancy.flush().await;
            let rows = tenancy
                .store
                .usage(
                    scope,
                    &UsageQuery {
                        group_by,
                        since_ms: since,
                        until_ms: until,
                    },
                )
                .await
                .map_err(store_error)?;
            let mut total = [0i64; 6];
            let data: Vec<Value> = rows
                .iter()
                .map(|r| {
                    for (t, v) in total.iter_mut().zip([
                        r.requests,
                        r.errors,
                        r.input_tokens,
                        r.output_tokens,
                        r.cached_tokens,
                        r.cost_nanos,
                    ]) {
                        *t += v;
                    }
                    json!({
                        "group": r.group,
                        "requests": r.requests,
                        "errors": r.errors,
                        "input_tokens": r.input_tokens,
                        "output_tokens": r.output_tokens,
                        "cached_tokens": r.cached_tokens,
                        "cost_usd": r.cost_nanos as f64 / 1e9,
                    })
                })
                .collect();
            Ok(axum::Json(json!({
                "group_by": group,
                "since": since.map(secs),
                "until": until.map(secs),
                "data": data,
                "total": {
                    "requests": total[0],
                    "errors": total[1],
                    "input_tokens": total[2],
                    "output_tokens": total[3],
                    "cached_tokens": total[4],
                    "cost_usd": total[5] as f64 / 1e9,
                },
            }))
            .into_response())
        }
        .await,
    )
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            let scope = caller.admin_scope()?;
            let tenancy = tenancy(&state)?;
            let number = |name: &str| -> Result<Option<i64>, ApiError> {
                query
                    .get(name)
                    .map(|v| {
                        v.parse::<i64>()
                            .map_err(|_| ApiError::invalid(name, "must be a whole number"))
                    })
                    .transpose()
            };
            let limit = number("limit")?.unwrap_or(100).clamp(1, 10_000);
            let newest_first = match query.get("order").map(String::as_str) {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(other) => {
                    return Err(ApiError::invalid(
                        "order",
                        format!("`{other}` is neither asc nor desc"),
                    ));
                }
            };
            tenancy.flush().await;
            let entries = tenancy
                .store
                .audit(
                    scope,
                    &AuditQuery {
                        after: number("after")?,
                        action: query.get("action").cloned(),
                        limit: Some(limit),
                        newest_first,
                    },
                )
                .await
                .map_err(store_error)?;
            let next_after = (!newest_first && entries.len() as i64 == limit)
                .then(|| entries.last().map(|e| e.seq))
                .flatten();
            Ok(axum::Json(json!({ "data": entries, "next_after": next_after })).into_response())
        }
        .await,
    )
}

pub async fn verify_audit(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    respond(
        async {
            let caller = authorize(&state, &headers).await?;
            caller.require_master()?;
            let tenancy = tenancy(&state)?;
            tenancy.flush().await;
            let v = tenancy.store.verify_audit().await.map_err(store_error)?;
            Ok(axum::Json(v).into_response())
        }
        .await,
    )
}

/// Whether a caller is this server's operator (for `/admin/routes` and `/metrics`).
pub fn require_operator(caller: &Caller) -> Result<(), ApiError> {
    caller.admin_scope().map(|_| ())
}
