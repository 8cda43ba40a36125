//! Who is calling, what they may do, and what it cost: virtual keys, roles, allow lists,
//! rate limits and budgets before a request; the ledger, limits and audit log after it.
//!
//! A request authenticates with one hash and, after the first time, one in-process cache
//! lookup; limits are counted in memory or Redis; the ledger row is handed to a writer
//! ([`crate::ledger`]), so the database is never on the request path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use freeway_gateway::limits::{Exceeded, Limiter, Quota, Subject, Verdict};
use freeway_gateway::pricing::PriceTable;
use freeway_gateway::tokens;
use freeway_store::{
    AuditEvent, Principal, Scope, SpendOwner, Store, UsageRecord, hash_secret, now_ms,
};
use freeway_types::{ChatStream, StreamEvent, Usage};
use futures_util::Stream;

use crate::error::{ApiError, Category};
use crate::ledger::Ledger;

/// How long an authenticated key is trusted without asking the database again. Revoking
/// through this server takes effect at once; through another instance, within this time.
const AUTH_TTL: Duration = Duration::from_secs(30);
/// Unknown secrets are remembered briefly so a flood of bad keys does not reach the database.
const AUTH_NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Who made a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// No master key is configured (the server listens on loopback only) and no virtual key
    /// was given: everything is allowed, nothing is attributed.
    Open,
    Master,
    Key(Arc<Principal>),
}

impl Caller {
    /// Whose rows admin calls may see.
    pub fn admin_scope(&self) -> Result<Scope<'_>, ApiError> {
        match self {
            Caller::Open | Caller::Master => Ok(Scope::All),
            Caller::Key(p) if p.key.role.can_admin() => Ok(Scope::Team(&p.team.id)),
            Caller::Key(p) => Err(forbidden(format!(
                "this key's role is `{}`; the admin API needs an admin key or the master key",
                p.key.role.as_str()
            ))),
        }
    }

    /// Whose rows read-only reports may show (viewers read their team's usage).
    pub fn read_scope(&self) -> Scope<'_> {
        match self {
            Caller::Open | Caller::Master => Scope::All,
            Caller::Key(p) => Scope::Team(&p.team.id),
        }
    }

    pub fn require_master(&self) -> Result<(), ApiError> {
        match self {
            Caller::Open | Caller::Master => Ok(()),
            Caller::Key(_) => Err(forbidden("only the master key may do this".to_owned())),
        }
    }

    /// Agent tools and `/v1/exec`.
    pub fn require_tools(&self) -> Result<(), ApiError> {
        match self {
            Caller::Key(p) if !p.key.role.can_run_tools() => Err(forbidden(format!(
                "this key's role is `{}`, which may not run commands",
                p.key.role.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// May call `model` (a model id or route alias)?
    pub fn require_model(&self, model: &str) -> Result<(), ApiError> {
        let Caller::Key(p) = self else { return Ok(()) };
        if !p.key.role.can_call_models() {
            return Err(forbidden(format!(
                "this key's role is `{}`, which may list models but not call them",
                p.key.role.as_str()
            )));
        }
        if !p.may_use_model(model) {
            return Err(forbidden(format!(
                "this key may not use `{model}`; ask an admin to add it to the key's or team's models"
            ))
            .with_code("model_not_allowed"));
        }
        Ok(())
    }

    /// The tools a turn may use: those asked for (`wanted`, else all of the agent's), within
    /// the key's and team's tool allow lists. Asking for a tool the lists leave out is a 403;
    /// the agent's own tools are narrowed without one.
    pub fn allowed_tools(
        &self,
        wanted: Option<Vec<String>>,
        agent_tools: &[String],
    ) -> Result<Option<Vec<String>>, ApiError> {
        let Caller::Key(p) = self else {
            return Ok(wanted);
        };
        if p.key.tools.is_none() && p.team.tools.is_none() {
            return Ok(wanted);
        }
        match wanted {
            Some(wanted) => match wanted.iter().find(|t| !p.may_use_tool(t)) {
                Some(bad) => Err(forbidden(format!(
                    "this key may not use tool `{bad}`; ask an admin to add it to the key's or team's tools"
                ))
                .with_code("tool_not_allowed")),
                None => Ok(Some(wanted)),
            },
            None => Ok(Some(
                agent_tools
                    .iter()
                    .filter(|t| p.may_use_tool(t))
                    .cloned()
                    .collect(),
            )),
        }
    }

    pub fn actor(&self) -> String {
        match self {
            Caller::Open => "anonymous".to_owned(),
            Caller::Master => "master".to_owned(),
            Caller::Key(p) => format!("key:{}", p.key.id),
        }
    }

    pub fn principal(&self) -> Option<&Arc<Principal>> {
        match self {
            Caller::Key(p) => Some(p),
            Caller::Open | Caller::Master => None,
        }
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, Category::PermissionDenied, message)
        .with_code("permission_denied")
}

/// Keys, limits, prices and the ledger writer.
pub struct Tenancy {
    pub store: Store,
    pub limiter: Limiter,
    pub prices: PriceTable,
    auth: moka::sync::Cache<String, Option<Arc<Principal>>>,
    pub ledger: Ledger,
    /// `[auth.jwt]`: bearer JWTs accepted besides virtual keys.
    pub jwt: Option<crate::jwt::JwtVerifier>,
    /// Stored Responses API answers on their way to the store.
    pub responses: Arc<crate::responses::Pending>,
}

impl Tenancy {
    /// Starts the ledger writers (see [`Ledger::start`]); [`Tenancy::flush`] waits for them.
    pub fn new(store: Store, limiter: Limiter, prices: PriceTable) -> Self {
        let ledger = Ledger::start(store.clone());
        Self {
            store,
            limiter,
            prices,
            auth: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .expire_after(AuthExpiry)
                .build(),
            ledger,
            jwt: None,
            responses: Arc::default(),
        }
    }

    pub fn with_jwt(mut self, verifier: crate::jwt::JwtVerifier) -> Self {
        self.jwt = Some(verifier);
        self
    }

    /// The principal behind a bearer JWT: its team from the store (by id or name), its role
    /// and subject from the claims. No limits of its own; the team's apply.
    pub async fn authenticate_jwt(&self, token: &str) -> Result<Arc<Principal>, ApiError> {
        let unauthorized = |m: String| ApiError::unauthorized().with_message(m);
        let Some(verifier) = &self.jwt else {
            return Err(unauthorized(
                "bearer JWTs are not accepted by this server".into(),
            ));
        };
        let hash = hash_secret(token);
        if let Some(Some(hit)) = self.auth.get(&hash) {
            return Ok(hit);
        }
        let claims = verifier.verify(token).map_err(unauthorized)?;
        let team = match self.store.team(Scope::All, &claims.team).await {
            Ok(t) => t,
            Err(freeway_store::StoreError::NotFound { .. }) => {
                return Err(unauthorized(format!(
                    "the token's team `{}` does not exist here; create it with POST /admin/teams",
                    claims.team
                )));
            }
            Err(e) => return Err(crate::admin::store_error(e)),
        };
        let principal = Arc::new(Principal {
            key: freeway_store::ApiKey {
                id: format!("jwt:{}", claims.subject),
                team_id: team.id.clone(),
                name: Some(claims.subject),
                role: claims.role,
                prefix: "jwt".to_owned(),
                models: None,
                tools: None,
                limits: freeway_store::Limits::default(),
                created_at: 0,
                rotated_at: None,
                expires_at: Some(claims.expires * 1000),
                revoked_at: None,
            },
            team,
        });
        self.auth.insert(hash, Some(principal.clone()));
        Ok(principal)
    }

    /// The principal behind a secret: from the cache, else one indexed lookup.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Arc<Principal>>, ApiError> {
        let hash = hash_secret(secret);
        if let Some(hit) = self.auth.get(&hash) {
            return Ok(hit);
        }
        let found = self
            .store
            .authenticate(secret)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not check a key against the store");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Category::Unavailable,
                    "the key store is unavailable; try again shortly",
                )
            })?
            .map(Arc::new);
        self.auth.insert(hash, found.clone());
        Ok(found)
    }

    /// Forgets cached authentications, after a key or team changed.
    pub fn invalidate(&self) {
        self.auth.invalidate_all();
    }

    /// Writes admin actions to the audit chain (synchronously: an admin call returns once its
    /// record is durable).
    pub async fn audit(
        &self,
        caller: &Caller,
        team: Option<&str>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.store
            .append_audit(vec![AuditEvent {
                actor: caller.actor(),
                team_id: team.map(str::to_owned),
                action: action.to_owned(),
                target: Some(target.to_owned()),
                detail,
            }])
            .await
            .map(|_| ())
            .map_err(crate::admin::store_error)
    }

    /// Waits until every stored response and ledger row handed over so far is written.
    pub async fn flush(&self) {
        self.responses.flush().await;
        self.ledger.flush().await;
    }
}

struct AuthExpiry;

impl moka::Expiry<String, Option<Arc<Principal>>> for AuthExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Option<Arc<Principal>>,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(match value {
            Some(p) => match p.key.expires_at {
                // Never trust a key past its expiry.
                Some(at) => AUTH_TTL.min(Duration::from_millis(
                    u64::try_from(at - now_ms()).unwrap_or(0),
                )),
                None => AUTH_TTL,
            },
            None => AUTH_NEGATIVE_TTL,
        })
    }
}

/// What a request was admitted with: the subjects to settle, and the quota for headers.
pub struct Admission {
    pub quota: Quota,
    /// Set when a budget sent the request to a cheaper route.
    pub model: Option<String>,
}

/// Checks the key's and team's rate limits and budgets.
pub async fn admit(tenancy: &Tenancy, caller: &Caller) -> Result<Admission, ApiError> {
    let Some(p) = caller.principal() else {
        return Ok(Admission {
            quota: Quota::default(),
            model: None,
        });
    };
    let key_id = format!("key:{}", p.key.id);
    let team_id = format!("team:{}", p.team.id);
    let subjects = subjects(p, &key_id, &team_id);
    match tenancy.limiter.admit(&subjects, now_ms()).await {
        Verdict::Admit(quota) => Ok(Admission { quota, model: None }),
        Verdict::Downgrade { route, quota } => Ok(Admission {
            quota,
            model: Some(route),
        }),
        Verdict::Refuse {
            exceeded,
            message,
            retry_after,
            quota,
        } => {
            let code = match exceeded {
                Exceeded::Budget => "budget_exceeded",
                Exceeded::Requests | Exceeded::Tokens => "rate_limit_exceeded",
            };
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                Category::RateLimited,
                message,
            )
            .with_code(code);
            e.kind = Some(code);
            e.retry_after = Some(retry_after.max(Duration::from_secs(1)));
            e.headers = Some(Box::new(quota_headers(&quota)));
            Err(e)
        }
    }
}

fn subjects<'a>(p: &'a Principal, key_id: &'a str, team_id: &'a str) -> [Subject<'a>; 2] {
    [
        Subject {
            id: key_id,
            owner: SpendOwner::Key(&p.key.id),
            limits: &p.key.limits,
        },
        Subject {
            id: team_id,
            owner: SpendOwner::Team(&p.team.id),
            limits: &p.team.limits,
        },
    ]
}

/// OpenAI's rate-limit headers, for the tightest window of the key and its team.
pub fn quota_headers(quota: &Quota) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(axum::http::HeaderName::from_static(name), v);
        }
    };
    if let Some(r) = quota.requests {
        put("x-ratelimit-limit-requests", r.limit.to_string());
        put("x-ratelimit-remaining-requests", r.remaining.to_string());
        put(
            "x-ratelimit-reset-requests",
            format!("{}s", r.reset.as_secs().max(1)),
        );
    }
    if let Some(t) = quota.tokens {
        put("x-ratelimit-limit-tokens", t.limit.to_string());
        put("x-ratelimit-remaining-tokens", t.remaining.to_string());
        put(
            "x-ratelimit-reset-tokens",
            format!("{}s", t.reset.as_secs().max(1)),
        );
    }
    h
}

/// Everything needed to account for one request once its answer is known.
pub struct Meter {
    tenancy: Arc<Tenancy>,
    principal: Option<Arc<Principal>>,
    request_id: String,
    endpoint: &'static str,
    model: String,
    target: Option<String>,
    started: Instant,
    /// The request body, for estimating input tokens if the provider reports none.
    body: Bytes,
    cache_hit: bool,
}

impl Meter {
    pub fn new(
        tenancy: &Arc<Tenancy>,
        caller: &Caller,
        endpoint: &'static str,
        model: &str,
        body: Bytes,
    ) -> Self {
        Self {
            tenancy: tenancy.clone(),
            principal: caller.principal().cloned(),
            request_id: freeway_types::random_id("req_"),
            endpoint,
            model: model.to_owned(),
            target: None,
            started: Instant::now(),
            body,
            cache_hit: false,
        }
    }

    pub fn served_by(&mut self, target: &str, cache_hit: bool) {
        self.target = Some(target.to_owned());
        self.cache_hit = cache_hit;
    }

    /// Records a request that failed or was refused: no tokens, no cost.
    pub fn failed(self, status: StatusCode) {
        self.finish(status.as_u16(), None, 0);
    }

    /// Records a finished request. `usage` is what the provider reported (`None`: nothing, so
    /// tokens are estimated; `output_bytes` is the text produced, for that estimate).
    pub fn finish(self, status: u16, usage: Option<Usage>, output_bytes: u64) {
        let target = self.target.as_deref().unwrap_or(&self.model);
        let (usage, estimated) = match usage {
            Some(u) if u.input_tokens + u.output_tokens > 0 || status >= 400 => (u, false),
            _ if status >= 400 => (Usage::default(), false),
            _ => (
                Usage {
                    input_tokens: estimate_input(target, &self.body),
                    // ~4 bytes of text per token, the fitted average for English and code.
                    output_tokens: output_bytes.div_ceil(4),
                    ..Usage::default()
                },
                true,
            ),
        };
        let cost = if self.cache_hit {
            0
        } else {
            self.tenancy
                .prices
                .cost_of(target, &usage)
                .map_or(0, |c| c.nanos)
        };
        let now = now_ms();
        if let Some(p) = &self.principal {
            let (key_id, team_id) = (format!("key:{}", p.key.id), format!("team:{}", p.team.id));
            let tokens = usage.input_tokens + usage.output_tokens;
            let subjects = subjects(p, &key_id, &team_id);
            self.tenancy.limiter.settle(&subjects, tokens, cost, now);
        }
        self.tenancy.ledger.record(UsageRecord {
            at: now,
            request_id: self.request_id,
            team_id: self.principal.as_ref().map(|p| p.team.id.clone()),
            key_id: self.principal.as_ref().map(|p| p.key.id.clone()),
            endpoint: self.endpoint,
            model: self.model,
            target: self.target,
            status,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cache_read_tokens,
            cost_nanos: cost,
            estimated,
            cache_hit: self.cache_hit,
            latency_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// Input tokens of a request body in any ingress format: every string under the fields that
/// reach the model, counted with the target's tokenizer, plus OpenAI's per-message framing.
fn estimate_input(target: &str, body: &[u8]) -> u64 {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (body.len() as u64).div_ceil(4);
    };
    let tokenizer = tokens::tokenizer_for(target);
    let mut text = String::new();
    for field in [
        "messages",
        "system",
        "tools",
        "instructions",
        "input",
        "prompt",
    ] {
        if let Some(v) = value.get(field) {
            collect_strings(v, &mut text);
        }
    }
    let messages = value
        .get("messages")
        .and_then(|m| m.as_array())
        .map_or(0, Vec::len) as u64;
    tokens::count(tokenizer, &text) + 3 * messages + 3
}

fn collect_strings(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// A stream that records its usage when it ends, fails, or is dropped by the client.
pub struct Metered {
    inner: ChatStream,
    meter: Option<Meter>,
    usage: Option<Usage>,
    output_bytes: u64,
}

impl Metered {
    pub fn new(inner: ChatStream, meter: Meter) -> Self {
        Self {
            inner,
            meter: Some(meter),
            usage: None,
            output_bytes: 0,
        }
    }

    fn finish(&mut self, status: u16) {
        if let Some(meter) = self.meter.take() {
            meter.finish(status, self.usage.take(), self.output_bytes);
        }
    }
}

impl Stream for Metered {
    type Item = <ChatStream as Stream>::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(event))) => match event {
                StreamEvent::TextDelta { text } => self.output_bytes += text.len() as u64,
                StreamEvent::ToolCallDelta { arguments, .. } => {
                    self.output_bytes += arguments.len() as u64;
                }
                StreamEvent::Usage { usage } => self.usage = Some(*usage),
                StreamEvent::ToolCallStart { .. } | StreamEvent::Finish { .. } => {}
            },
            std::task::Poll::Ready(Some(Err(e))) => {
                let status = e.status_code();
                self.finish(status);
            }
            std::task::Poll::Ready(None) => self.finish(200),
            std::task::Poll::Pending => {}
        }
        polled
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // The client went away mid-stream: what was produced so far still counts (499, as
        // nginx logs a client that closed the connection).
        self.finish(499);
    }
}

/// What a model request goes ahead with after the checks.
pub struct Gate {
    /// The model to call: the one asked for, or the route a spent budget downgrades to.
    pub model: String,
    /// `x-ratelimit-*`, `x-request-id` and, after a downgrade, `x-freeway-downgraded`.
    pub headers: HeaderMap,
    pub meter: Option<Meter>,
}

impl Gate {
    /// Accounts for a failure (the gateway or the upstream refused) and passes it on.
    pub fn fail(self, error: ApiError) -> ApiError {
        if let Some(meter) = self.meter {
            meter.failed(error.status);
        }
        error
    }
}

/// Role and allow-list checks, then limits and budgets; partitions the cache by team.
pub async fn gate(
    state: &crate::AppState,
    caller: &Caller,
    endpoint: &'static str,
    model: &str,
    body: Bytes,
    options: &mut freeway_gateway::RequestOptions,
) -> Result<Gate, ApiError> {
    caller.require_model(model)?;
    let mut headers = HeaderMap::new();
    let Some(tenancy) = &state.tenancy else {
        return Ok(Gate {
            model: model.to_owned(),
            headers,
            meter: None,
        });
    };
    let meter = Meter::new(tenancy, caller, endpoint, model, body);
    if let Ok(v) = HeaderValue::from_str(&meter.request_id) {
        headers.insert(crate::http::names::X_REQUEST_ID, v);
    }
    let admission = match admit(tenancy, caller).await {
        Ok(a) => a,
        Err(mut e) => {
            meter.failed(e.status);
            e.headers
                .get_or_insert_with(Default::default)
                .extend(headers);
            return Err(e);
        }
    };
    headers.extend(quota_headers(&admission.quota));
    options.partition = caller.principal().map(|p| p.team.id.clone());
    let model = match admission.model {
        Some(route) => {
            if let Ok(v) = HeaderValue::from_str(&route) {
                headers.insert(crate::http::names::X_FREEWAY_DOWNGRADED, v);
            }
            route
        }
        None => model.to_owned(),
    };
    Ok(Gate {
        model,
        headers,
        meter: Some(meter),
    })
}

/// Output text bytes of a complete answer, for estimating tokens when usage is missing.
pub fn output_bytes(response: &freeway_types::ChatResponse) -> u64 {
    let text: usize = response
        .content
        .iter()
        .map(|p| match p {
            freeway_types::ContentPart::Text { text } => text.len(),
            freeway_types::ContentPart::Image { .. } => 0,
        })
        .sum();
    let args: usize = response.tool_calls.iter().map(|c| c.arguments.len()).sum();
    (text + args) as u64
}
