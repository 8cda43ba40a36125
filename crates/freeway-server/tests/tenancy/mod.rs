//! Teams, keys, roles, limits, budgets, cost and the audit log, through the HTTP API on a real
//! socket, with a SQLite store and the behavioral mock as the upstream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use freeway_gateway::Gateway;
use freeway_gateway::limits::Limiter;
use freeway_gateway::pricing::{Price, PriceTable};
use freeway_providers::openai::{OpenAiProvider, Quirks};
use freeway_providers::{Auth, HttpSettings, Secret, Timeouts};
use freeway_server::tenancy::Tenancy;
use freeway_server::{AppState, router};
use freeway_store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const MASTER: &str = "fw-master-for-tests";

struct App {
    base: String,
    client: reqwest::Client,
    tenancy: Arc<Tenancy>,
    _dir: Dir,
}

struct Dir(std::path::PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn app() -> App {
    app_with(None).await
}

async fn app_with(jwt: Option<freeway_server::jwt::JwtVerifier>) -> App {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = format!("http://{}", upstream.local_addr().unwrap());
    tokio::spawn(freeway_testkit::behavior::serve(
        upstream,
        Default::default(),
    ));

    let settings = HttpSettings {
        provider: "up".into(),
        base_url: format!("{up}/v1"),
        auth: Auth::None,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
    };
    let provider = Arc::new(OpenAiProvider::new(&settings, Quirks::default()).unwrap());
    let gateway = Gateway::builder()
        .provider(provider, vec!["big".into(), "small".into()], false)
        .route(
            "cheap",
            vec!["up/small".into()],
            freeway_config::Strategy::Fallback,
        )
        .cache(freeway_config::CacheSettings {
            url: "off".into(),
            ..Default::default()
        })
        .build()
        .unwrap();

    let dir = std::env::temp_dir().join(format!(
        "freeway-tenancy-{}-{}",
        std::process::id(),
        freeway_types::random_id("")
    ));
    let store = Store::open(&format!("sqlite://{}/freeway.db", dir.display()))
        .await
        .unwrap();
    let prices = PriceTable::builtin().unwrap().with_overrides([
        (
            "up/big".to_owned(),
            Price {
                input: 1.0,
                output: 2.0,
                cached_input: None,
                cache_write: None,
            },
        ),
        (
            "up/small".to_owned(),
            Price {
                input: 0.1,
                output: 0.2,
                cached_input: None,
                cache_write: None,
            },
        ),
    ]);
    let mut tenancy = Tenancy::new(store.clone(), Limiter::memory(Some(store)), prices);
    if let Some(jwt) = jwt {
        tenancy = tenancy.with_jwt(jwt);
    }
    let tenancy = Arc::new(tenancy);
    let mut state = AppState::new(Arc::new(gateway), Some(Secret::new(MASTER.to_owned())));
    state.tenancy = Some(tenancy.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(Arc::new(state)))
            .await
            .unwrap();
    });
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        tenancy,
        _dir: Dir(dir),
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn team(&self, body: Value) -> String {
        let a = self
            .call("POST", "/admin/teams", Some(MASTER), Some(body))
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body["id"].as_str().unwrap().to_owned()
    }

    async fn key(&self, by: &str, body: Value) -> (String, String) {
        let a = self.call("POST", "/admin/keys", Some(by), Some(body)).await;
        assert_eq!(a.status, 201, "{}", a.body);
        (
            a.body["id"].as_str().unwrap().to_owned(),
            a.body["key"].as_str().unwrap().to_owned(),
        )
    }

    /// Team `alpha` and a developer key in it: `(key id, secret)`.
    async fn developer(&self) -> (String, String) {
        self.team(json!({ "name": "alpha" })).await;
        self.key(MASTER, json!({ "team": "alpha", "role": "developer" }))
            .await
    }

    async fn chat(&self, key: &str, model: &str) -> Answer {
        self.call(
            "POST",
            "/v1/chat/completions",
            Some(key),
            Some(json!({ "model": model, "messages": [{ "role": "user", "content": "hello there world" }] })),
        )
        .await
    }
}

fn error_type(a: &Answer) -> &str {
    a.body["error"]["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_key_calls_models_and_its_cost_is_in_the_ledger() {
    let app = app().await;
    let team = app.team(json!({ "name": "alpha" })).await;
    let (key_id, key) = app
        .key(
            MASTER,
            json!({ "team": "alpha", "role": "developer", "name": "ci" }),
        )
        .await;
    let a = app.chat(&key, "up/big").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.headers.contains_key("x-request-id"));
    let input = a.body["usage"]["prompt_tokens"].as_i64().unwrap();
    let output = a.body["usage"]["completion_tokens"].as_i64().unwrap();
    // $1 and $2 per million tokens: 1,000 and 2,000 nanos per token.
    let expected = (input * 1_000 + output * 2_000) as f64 / 1e9;

    app.tenancy.flush().await;
    let usage = app
        .call("GET", "/admin/usage?group_by=key", Some(MASTER), None)
        .await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    let row = &usage.body["data"][0];
    assert_eq!(row["group"], key_id);
    assert_eq!(row["requests"], 1);
    assert_eq!(row["input_tokens"], input);
    assert!(
        (row["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{row}"
    );
    let by_team = app
        .call("GET", "/admin/usage?group_by=team", Some(MASTER), None)
        .await;
    assert_eq!(by_team.body["data"][0]["group"], team);

    // Revoked: refused at once, even though it was just cached as valid.
    let r = app
        .call(
            "DELETE",
            &format!("/admin/keys/{key_id}"),
            Some(MASTER),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["revoked_at"].is_i64());
    let a = app.chat(&key, "up/big").await;
    assert_eq!(a.status, 401, "{}", a.body);
}

#[tokio::test]
async fn roles_bound_what_a_key_may_do() {
    let app = app().await;
    app.team(json!({ "name": "alpha" })).await;
    let (_, viewer) = app
        .key(MASTER, json!({ "team": "alpha", "role": "viewer" }))
        .await;
    let (_, dev) = app
        .key(MASTER, json!({ "team": "alpha", "role": "developer" }))
        .await;
    let (_, admin) = app
        .key(MASTER, json!({ "team": "alpha", "role": "admin" }))
        .await;

    let a = app.chat(&viewer, "up/big").await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(error_type(&a), "permission_error");
    assert_eq!(
        app.call("GET", "/v1/models", Some(&viewer), None)
            .await
            .status,
        200
    );

    assert_eq!(
        app.call("GET", "/admin/keys", Some(&dev), None)
            .await
            .status,
        403
    );
    assert_eq!(
        app.call("GET", "/admin/keys", Some(&admin), None)
            .await
            .status,
        200
    );
    // Only the master key creates teams or changes their limits.
    let a = app
        .call(
            "POST",
            "/admin/teams",
            Some(&admin),
            Some(json!({ "name": "beta" })),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    let a = app
        .call(
            "PATCH",
            "/admin/teams/alpha",
            Some(&admin),
            Some(json!({ "rpm": null })),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    // An admin key makes keys for its own team.
    app.key(&admin, json!({ "role": "developer" })).await;

    assert_eq!(app.call("GET", "/admin/keys", None, None).await.status, 401);
    let a = app
        .call("GET", "/admin/keys", Some("fw-no-such-key"), None)
        .await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn one_team_never_sees_or_touches_another() {
    let app = app().await;
    app.team(json!({ "name": "alpha" })).await;
    app.team(json!({ "name": "beta" })).await;
    let (_, admin_a) = app
        .key(MASTER, json!({ "team": "alpha", "role": "admin" }))
        .await;
    let (b_id, b_key) = app
        .key(MASTER, json!({ "team": "beta", "role": "developer" }))
        .await;
    assert_eq!(app.chat(&b_key, "up/big").await.status, 200);
    app.tenancy.flush().await;

    let keys = app.call("GET", "/admin/keys", Some(&admin_a), None).await;
    let ids: Vec<_> = keys.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    assert_eq!(ids.len(), 1);
    assert!(!ids.contains(&json!(b_id)));
    for (method, path) in [
        ("GET", format!("/admin/keys/{b_id}")),
        ("DELETE", format!("/admin/keys/{b_id}")),
        ("POST", format!("/admin/keys/{b_id}/rotate")),
        ("GET", "/admin/teams/beta".to_owned()),
    ] {
        let a = app.call(method, &path, Some(&admin_a), None).await;
        assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
    }
    let a = app
        .call(
            "POST",
            "/admin/keys",
            Some(&admin_a),
            Some(json!({ "team": "beta", "role": "admin" })),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let usage = app
        .call("GET", "/admin/usage?group_by=team", Some(&admin_a), None)
        .await;
    assert_eq!(
        usage.body["data"],
        json!([]),
        "beta's spending is not alpha's to see"
    );
    let audit = app.call("GET", "/admin/audit", Some(&admin_a), None).await;
    let entries = audit.body["data"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|e| e["actor"] != json!(format!("key:{b_id}")) && e["target"] != json!(b_id)),
        "{entries:?}"
    );
    // B's key still works.
    assert_eq!(app.chat(&b_key, "up/big").await.status, 200);
}

#[tokio::test]
async fn requests_per_minute_are_limited_with_openai_headers() {
    let app = app().await;
    app.team(json!({ "name": "alpha" })).await;
    let (_, key) = app
        .key(
            MASTER,
            json!({ "team": "alpha", "role": "developer", "rpm": 2 }),
        )
        .await;
    let first = app.chat(&key, "up/big").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["x-ratelimit-limit-requests"], "2");
    assert_eq!(first.headers["x-ratelimit-remaining-requests"], "1");
    assert_eq!(app.chat(&key, "up/big").await.status, 200);
    let third = app.chat(&key, "up/big").await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(error_type(&third), "rate_limit_exceeded");
    assert_eq!(third.body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(third.headers["x-ratelimit-remaining-requests"], "0");
    assert!(third.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_spent_budget_refuses_or_downgrades() {
    let app = app().await;
    // A budget smaller than one request: the first goes through, the next is refused.
    app.team(json!({ "name": "alpha", "budget_usd": 0.000000001, "budget_period": "day" }))
        .await;
    let (_, key) = app
        .key(MASTER, json!({ "team": "alpha", "role": "developer" }))
        .await;
    assert_eq!(app.chat(&key, "up/big").await.status, 200);
    let refused = app.chat(&key, "up/big").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(error_type(&refused), "budget_exceeded");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("day budget")
    );

    app.team(json!({ "name": "beta" })).await;
    let (_, soft) = app
        .key(
            MASTER,
            json!({ "team": "beta", "role": "developer", "budget_usd": 0.000000001, "on_exceed": "route:cheap" }),
        )
        .await;
    let first = app.chat(&soft, "up/big").await;
    assert_eq!(first.headers["x-freeway-target"], "up/big");
    let second = app.chat(&soft, "up/big").await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.headers["x-freeway-downgraded"], "cheap");
    assert_eq!(second.headers["x-freeway-target"], "up/small");
}

#[tokio::test]
async fn allow_lists_limit_models() {
    let app = app().await;
    app.team(json!({ "name": "alpha", "models": ["up/*", "cheap"] }))
        .await;
    let (_, key) = app
        .key(
            MASTER,
            json!({ "team": "alpha", "role": "developer", "models": ["up/big"] }),
        )
        .await;
    assert_eq!(app.chat(&key, "up/big").await.status, 200);
    let a = app.chat(&key, "up/small").await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "model_not_allowed");
    let models = app.call("GET", "/v1/models", Some(&key), None).await;
    let ids: Vec<_> = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["up/big"]);
}

#[tokio::test]
async fn streams_are_metered_when_they_end() {
    let app = app().await;
    let (key_id, key) = app.developer().await;
    let a = app
        .call(
            "POST",
            "/v1/chat/completions",
            Some(&key),
            Some(json!({ "model": "up/big", "stream": true, "messages": [{ "role": "user", "content": "one two three" }] })),
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.as_str().unwrap().contains("[DONE]"));
    app.tenancy.flush().await;
    let usage = app
        .call("GET", "/admin/usage?group_by=key", Some(MASTER), None)
        .await;
    let row = &usage.body["data"][0];
    assert_eq!(row["group"], key_id);
    assert!(row["output_tokens"].as_i64().unwrap() > 0, "{row}");
    assert!(row["cost_usd"].as_f64().unwrap() > 0.0, "{row}");
}

/// The ledger writer waits a little for more rows, so requests a few milliseconds apart share
/// one transaction; reading usage on this instance flushes, so nobody sees the wait.
#[tokio::test]
async fn rows_close_in_time_share_one_ledger_write() {
    let app = app().await;
    let (_, key) = app.developer().await;
    for _ in 0..3 {
        assert_eq!(app.chat(&key, "up/big").await.status, 200);
        // Long enough for a writer that did not wait to commit each row alone.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let usage = app
        .call("GET", "/admin/usage?group_by=key", Some(MASTER), None)
        .await;
    assert_eq!(usage.body["data"][0]["requests"], 3, "{}", usage.body);

    let metrics = app.call("GET", "/metrics", Some(MASTER), None).await;
    let text = metrics.body.as_str().unwrap();
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .to_owned()
    };
    assert_eq!(value("freeway_ledger_writes_total"), "1");
    assert_eq!(value("freeway_ledger_rows_total{result=\"written\"}"), "3");
    assert_eq!(value("freeway_ledger_rows_total{result=\"dropped\"}"), "0");
}

#[tokio::test]
async fn the_audit_log_records_admin_actions_and_verifies() {
    let app = app().await;
    let (key_id, key) = app.developer().await;
    let rotated = app
        .call(
            "POST",
            &format!("/admin/keys/{key_id}/rotate"),
            Some(MASTER),
            Some(json!({})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_key = rotated.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        app.chat(&key, "up/big").await.status,
        401,
        "the old secret stopped working"
    );
    assert_eq!(app.chat(&new_key, "up/big").await.status, 200);

    let v = app
        .call("GET", "/admin/audit/verify", Some(MASTER), None)
        .await;
    assert_eq!(v.body["ok"], true, "{}", v.body);
    let audit = app
        .call("GET", "/admin/audit?order=asc", Some(MASTER), None)
        .await;
    let actions: Vec<_> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    // The refused request never authenticated, so it is no one's to record.
    assert_eq!(
        actions,
        vec!["team.create", "key.create", "key.rotate", "request"]
    );
    // No secret is ever written to the log.
    let text = audit.body.to_string();
    assert!(!text.contains(&key[3..]) && !text.contains(&new_key[3..]));

    sqlx::query("UPDATE audit_log SET actor = 'key:someone-else' WHERE seq = 2")
        .execute(app.tenancy.store.pool())
        .await
        .unwrap();
    let v = app
        .call("GET", "/admin/audit/verify", Some(MASTER), None)
        .await;
    assert_eq!(v.body["ok"], false);
    assert_eq!(v.body["first_bad_seq"], 2);
}

#[tokio::test]
async fn bad_admin_input_gets_clear_errors() {
    let app = app().await;
    let a = app
        .call(
            "POST",
            "/admin/teams",
            Some(MASTER),
            Some(json!({ "name": "x", "budget_usd": -1 })),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget_usd")
    );
    let a = app
        .call(
            "POST",
            "/admin/teams",
            Some(MASTER),
            Some(json!({ "name": "x", "colour": "red" })),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    app.team(json!({ "name": "alpha" })).await;
    let a = app
        .call(
            "POST",
            "/admin/teams",
            Some(MASTER),
            Some(json!({ "name": "alpha" })),
        )
        .await;
    assert_eq!(a.status, 409, "{}", a.body);
    let a = app
        .call(
            "POST",
            "/admin/keys",
            Some(MASTER),
            Some(json!({ "team": "alpha", "role": "owner" })),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin, developer or viewer")
    );
    let a = app
        .call(
            "POST",
            "/admin/keys",
            Some(MASTER),
            Some(json!({ "team": "nope", "role": "viewer" })),
        )
        .await;
    assert_eq!(a.status, 404, "{}", a.body);
    let a = app
        .call("GET", "/admin/usage?group_by=colour", Some(MASTER), None)
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = app
        .call("GET", "/admin/usage?since=yesterday", Some(MASTER), None)
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
}

#[tokio::test]
async fn estimates_count_tokens_and_price_them() {
    let app = app().await;
    let a = app
        .call(
            "POST",
            "/v1/estimate",
            Some(MASTER),
            Some(json!({ "model": "up/big", "max_tokens": 1000, "messages": [{ "role": "user", "content": "How many tokens is this?" }] })),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["target"], "up/big");
    let input = a.body["input_tokens"].as_f64().unwrap();
    assert!(input > 5.0 && input < 30.0, "{}", a.body);
    let max_total = a.body["cost_usd"]["max_total"].as_f64().unwrap();
    assert!(
        (max_total - (input * 1e-6 + 1000.0 * 2e-6)).abs() < 1e-9,
        "{}",
        a.body
    );
}

const HS_SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

fn jwt_config() -> freeway_config::JwtConfig {
    freeway_config::JwtConfig {
        secret: Some(Secret::new(HS_SECRET.to_owned())),
        jwks_file: None,
        issuer: Some("https://sso.test".into()),
        audience: Some("freeway".into()),
        team_claim: "team".into(),
        role_claim: "role".into(),
        default_role: "developer".into(),
    }
}

fn token(alg: jsonwebtoken::Algorithm, key: &jsonwebtoken::EncodingKey, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    if alg == jsonwebtoken::Algorithm::RS256 {
        header.kid = Some("test-1".into());
    }
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn claims(team: &str, role: Option<&str>, exp_in: i64) -> Value {
    let now = freeway_store::now_ms() / 1000;
    let mut c = json!({ "sub": "alice", "team": team, "iss": "https://sso.test", "aud": "freeway", "exp": now + exp_in });
    if let Some(role) = role {
        c["role"] = json!(role);
    }
    c
}

#[tokio::test]
async fn sso_tokens_map_claims_to_a_team_and_role() {
    let verifier = freeway_server::jwt::JwtVerifier::new(&jwt_config(), None).unwrap();
    let app = app_with(Some(verifier)).await;
    app.team(json!({ "name": "alpha" })).await;
    let key = jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes());
    let hs = jsonwebtoken::Algorithm::HS256;

    let admin = token(hs, &key, claims("alpha", Some("admin"), 600));
    assert_eq!(
        app.call("GET", "/admin/keys", Some(&admin), None)
            .await
            .status,
        200
    );
    let developer = token(hs, &key, claims("alpha", None, 600));
    assert_eq!(
        app.call("GET", "/admin/keys", Some(&developer), None)
            .await
            .status,
        403
    );
    assert_eq!(app.chat(&developer, "up/big").await.status, 200);
    app.tenancy.flush().await;
    let usage = app
        .call("GET", "/admin/usage?group_by=key", Some(MASTER), None)
        .await;
    assert_eq!(usage.body["data"][0]["group"], "jwt:alice");

    let refused = |t: String, why: &'static str| {
        let app = &app;
        async move {
            let a = app.chat(&t, "up/big").await;
            assert_eq!(a.status, 401, "{}", a.body);
            let message = a.body["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.contains(why), "{message}");
        }
    };
    refused(
        token(hs, &key, claims("alpha", None, -600)),
        "ExpiredSignature",
    )
    .await;
    refused(
        token(hs, &key, claims("nobody", None, 600)),
        "`nobody` does not exist",
    )
    .await;
    refused(
        token(hs, &key, claims("alpha", Some("owner"), 600)),
        "`owner`",
    )
    .await;
    let other = jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!");
    refused(
        token(hs, &other, claims("alpha", None, 600)),
        "InvalidSignature",
    )
    .await;
    let mut wrong_aud = claims("alpha", None, 600);
    wrong_aud["aud"] = json!("someone-else");
    refused(token(hs, &key, wrong_aud), "InvalidAudience").await;
}

#[tokio::test]
async fn rs256_tokens_are_checked_against_the_jwks_file() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tenancy");
    let jwks = std::fs::read_to_string(dir.join("test-jwks.json")).unwrap();
    let config = freeway_config::JwtConfig {
        secret: None,
        ..jwt_config()
    };
    let verifier = freeway_server::jwt::JwtVerifier::new(&config, Some(&jwks)).unwrap();
    let app = app_with(Some(verifier)).await;
    app.team(json!({ "name": "alpha" })).await;
    let pem = std::fs::read(dir.join("test-rsa.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let good = token(
        jsonwebtoken::Algorithm::RS256,
        &key,
        claims("alpha", None, 600),
    );
    assert_eq!(app.chat(&good, "up/big").await.status, 200);
    // HS256 is off when only a JWKS is configured: a token signed with a guessed secret fails.
    let hs = token(
        jsonwebtoken::Algorithm::HS256,
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
        claims("alpha", None, 600),
    );
    let a = app.chat(&hs, "up/big").await;
    assert_eq!(a.status, 401);
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HS256")
    );
}

/// A burst is written in batches of at most 16 rows, every row once.
#[tokio::test]
async fn a_burst_of_rows_is_written_in_bounded_batches() {
    let app = app().await;
    let (_, key) = app.developer().await;
    // More rows than one transaction takes: at least two writes.
    let burst = freeway_server::ledger::BATCH + 8;
    let calls = (0..burst).map(|_| app.chat(&key, "up/big"));
    for a in futures_util::future::join_all(calls).await {
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let usage = app
        .call("GET", "/admin/usage?group_by=key", Some(MASTER), None)
        .await;
    assert_eq!(usage.body["data"][0]["requests"], burst, "{}", usage.body);
    let stats = &app.tenancy.ledger.stats;
    assert_eq!(stats.rows_written.load(Ordering::Relaxed), burst as u64);
    assert!(stats.writes.load(Ordering::Relaxed) >= 2);
}
