//! `freeway routes`: the routes of a running server with every target's circuit, load and
//! latency (from `GET /admin/routes`); the configured routes alone when no server answers.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use freeway_config::{Config, Source};
use freeway_gateway::RouteSnapshot;
use freeway_server::ops::route_json;
use serde_json::{Value, json};

use crate::cli::RoutesArgs;
use crate::output;

pub async fn run(args: RoutesArgs) -> anyhow::Result<ExitCode> {
    let source = Source {
        file: args.config.config,
        listen: None,
    };
    let config = crate::commands::load(&source)?;
    let url = args
        .url
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let key = args.key.or_else(|| {
        config
            .server
            .master_key
            .as_ref()
            .map(|k| k.expose().to_owned())
    });
    let (document, live) = match fetch(&url, key.as_deref()).await {
        Ok(doc) => (doc, true),
        Err(Fetch::Refused(e)) => return Err(e),
        Err(Fetch::Unreachable(why)) => {
            output::warning(&format!(
                "no freeway server answered at {url} ({why}): showing the configured routes \
                 without their live state"
            ));
            (configured(&config), false)
        }
    };
    if args.json {
        let mut document = document;
        document["live"] = json!(live);
        output::line(&document.to_string());
    } else {
        print_tables(&document);
    }
    Ok(ExitCode::SUCCESS)
}

enum Fetch {
    /// Nothing listens there: fall back to the configuration.
    Unreachable(String),
    /// A server answered but refused or garbled the request: that is an error to report.
    Refused(anyhow::Error),
}

async fn fetch(base: &str, key: Option<&str>) -> Result<Value, Fetch> {
    freeway_providers::transport::install_tls_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Fetch::Refused(e.into()))?;
    let mut request = client.get(format!("{}/admin/routes", base.trim_end_matches('/')));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            Fetch::Unreachable(if e.is_timeout() {
                "timed out".to_owned()
            } else {
                "connection refused".to_owned()
            })
        } else {
            Fetch::Refused(anyhow::Error::new(e).context(format!("GET {base}/admin/routes")))
        }
    })?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| Fetch::Refused(e.into()))?;
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(Fetch::Refused(anyhow::anyhow!(
            "the server at {base} wants the master key: pass --key or set FREEWAY_MASTER_KEY"
        )));
    }
    if !status.is_success() {
        return Err(Fetch::Refused(anyhow::anyhow!(
            "GET {base}/admin/routes answered {status}: {body}"
        )));
    }
    serde_json::from_str(&body)
        .with_context(|| format!("{base}/admin/routes did not answer JSON"))
        .map_err(Fetch::Refused)
}

/// The `/admin/routes` document for routes as configured, without live state.
fn configured(config: &Config) -> Value {
    let routes: Vec<Value> = config
        .routes
        .iter()
        .map(|r| route_json(&RouteSnapshot::from(r)))
        .collect();
    json!({ "routes": routes, "targets": [], "cache": null })
}

fn print_tables(doc: &Value) {
    let empty = Vec::new();
    let routes = doc["routes"].as_array().unwrap_or(&empty);
    if routes.is_empty() {
        output::line("no routes are configured: clients address models as <provider>/<model>");
    } else {
        let rows: Vec<[String; 3]> = routes
            .iter()
            .map(|r| [text(&r["name"]), text(&r["strategy"]), route_targets(r)])
            .collect();
        table(&["ROUTE", "STRATEGY", "TARGETS"], &rows);
    }
    let targets = doc["targets"].as_array().unwrap_or(&empty);
    if !targets.is_empty() {
        output::line("");
        let rows: Vec<[String; 5]> = targets
            .iter()
            .map(|t| {
                let circuit = match t["open_for_ms"].as_u64() {
                    Some(ms) => format!("{} ({:.1} s left)", text(&t["circuit"]), ms as f64 / 1e3),
                    None => text(&t["circuit"]),
                };
                let latency = t["latency_ms"]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"));
                [
                    text(&t["target"]),
                    circuit,
                    text(&t["consecutive_failures"]),
                    text(&t["in_flight"]),
                    latency,
                ]
            })
            .collect();
        table(
            &["TARGET", "CIRCUIT", "FAILURES", "IN FLIGHT", "LATENCY"],
            &rows,
        );
    }
    let cache = &doc["cache"];
    if cache.is_object() {
        output::line(&format!(
            "\ncache ({}): {} hits, {} misses, {} stored, {} errors",
            text(&cache["backend"]),
            text(&cache["hits"]),
            text(&cache["misses"]),
            text(&cache["stores"]),
            text(&cache["errors"]),
        ));
    }
}

/// `a/x, b/y`; for `auto` routes `fast: a/x | deep: b/y`; weights as `a/x (3)`.
fn route_targets(route: &Value) -> String {
    if let Some(tiers) = route["tiers"].as_array() {
        return tiers
            .iter()
            .map(|t| format!("{}: {}", text(&t["name"]), joined(&t["targets"])))
            .collect::<Vec<_>>()
            .join(" | ");
    }
    match route["weights"].as_array() {
        Some(weights) => route["targets"]
            .as_array()
            .map(|targets| {
                targets
                    .iter()
                    .zip(weights)
                    .map(|(t, w)| format!("{} ({})", text(t), text(w)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        None => joined(&route["targets"]),
    }
}

fn joined(list: &Value) -> String {
    list.as_array()
        .map(|items| items.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let render = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}  "));
            }
        }
        line
    };
    output::line(&render(header.to_vec()));
    for row in rows {
        output::line(&render(row.iter().map(String::as_str).collect()));
    }
}
