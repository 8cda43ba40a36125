//! One HTTP client for the `/admin` API: where the server is, which key to send, and the
//! server's error envelope turned into an error that keeps its message.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::Context;
use freeway_config::Source;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::cli::Connection;

/// The server answered with an error: its message, as it wrote it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// What the user can do about it, when that is not in the server's message.
    pub fn hint(&self) -> Option<&'static str> {
        match self.status {
            StatusCode::UNAUTHORIZED => Some(
                "send the master key or an admin-role key with --key or FREEWAY_ADMIN_KEY \
                 (default: server.master_key of --config)",
            ),
            _ => None,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

impl Client {
    /// The server of `--url` (else `http://<server.listen>`) with the key of `--key` (else
    /// `server.master_key`); the configuration is read only when one of them is missing.
    pub fn connect(args: &Connection) -> anyhow::Result<Self> {
        let (url, key) = match (&args.url, &args.key) {
            (Some(url), Some(key)) => (url.clone(), Some(key.clone())),
            (url, key) => {
                let source = Source {
                    file: args.config.config.clone(),
                    listen: None,
                };
                let config = crate::commands::load(&source)?;
                let url = url.clone().unwrap_or_else(|| {
                    let mut listen = config.server.listen;
                    // A server bound to every interface is reachable on loopback.
                    if listen.ip().is_unspecified() {
                        listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    format!("http://{listen}")
                });
                let key = key.clone().or_else(|| {
                    config
                        .server
                        .master_key
                        .as_ref()
                        .map(|k| k.expose().to_owned())
                });
                (url, key)
            }
        };
        let base = Url::parse(&url).with_context(|| format!("--url `{url}` is not a URL"))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("--url `{url}` is not an http:// or https:// URL");
        }
        freeway_providers::transport::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { http, base, key })
    }

    /// `GET /admin/<segments>?<query>`.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(Method::GET, segments, query, None).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, segments, &[], Some(body)).await
    }

    pub async fn patch(&self, segments: &[&str], body: &Value) -> anyhow::Result<Value> {
        self.send(Method::PATCH, segments, &[], Some(body)).await
    }

    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<Value> {
        self.send(Method::DELETE, segments, &[], None).await
    }

    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = self.url(segments, query)?;
        let mut request = self.http.request(method.clone(), url.clone());
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "no freeway server answered at {}: start one with `freeway serve`, or point \
                     --url (FREEWAY_URL) at a running one",
                    self.origin()
                )
            } else if e.is_timeout() {
                anyhow::anyhow!(
                    "{method} {url} timed out: is the server at {} overloaded?",
                    self.origin()
                )
            } else {
                anyhow::Error::new(e).context(format!("{method} {url}"))
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        if !status.is_success() {
            return Err(match envelope_message(&text) {
                Some(message) => ApiError { status, message }.into(),
                None => anyhow::anyhow!(
                    "{method} {url} answered {status}: {}",
                    if text.trim().is_empty() {
                        "(no body)"
                    } else {
                        text.trim()
                    }
                ),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| {
            format!("{method} {url} answered {status} with something other than JSON")
        })
    }

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Url> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| anyhow::anyhow!("{} cannot take a path", self.base))?;
            path.pop_if_empty().push("admin").extend(segments);
        }
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// Team ids to names, to show names; empty when the key may not list teams.
    pub async fn team_names(&self) -> HashMap<String, String> {
        self.names(&["teams"], &[], |t| t["name"].as_str().map(str::to_owned))
            .await
    }

    /// Key ids to `id (name)` for keys that have a name, revoked ones included.
    pub async fn key_names(&self) -> HashMap<String, String> {
        self.names(&["keys"], &[("include_revoked", "true".to_owned())], |k| {
            Some(format!("{} ({})", k["id"].as_str()?, k["name"].as_str()?))
        })
        .await
    }

    async fn names(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        label: impl Fn(&Value) -> Option<String>,
    ) -> HashMap<String, String> {
        let Ok(doc) = self.get(segments, query).await else {
            return HashMap::new();
        };
        doc["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|item| Some((item["id"].as_str()?.to_owned(), label(item)?)))
            .collect()
    }

    /// The server's address as the user gave it, for messages.
    fn origin(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }
}

/// `{"error": {"message": …}}`, the OpenAI error envelope every freeway error uses.
fn envelope_message(body: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(body).ok()?;
    doc["error"]["message"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Client {
        freeway_providers::transport::install_tls_provider();
        Client {
            http: reqwest::Client::new(),
            base: Url::parse(base).unwrap(),
            key: None,
        }
    }

    #[test]
    fn paths_are_appended_and_escaped() {
        let c = client("http://127.0.0.1:4000");
        assert_eq!(
            c.url(&["teams", "a b/c"], &[]).unwrap().as_str(),
            "http://127.0.0.1:4000/admin/teams/a%20b%2Fc"
        );
        let c = client("http://gw.example/freeway/");
        assert_eq!(
            c.url(&["keys"], &[("team", "r&d".into())])
                .unwrap()
                .as_str(),
            "http://gw.example/freeway/admin/keys?team=r%26d"
        );
    }

    #[test]
    fn the_envelope_message_is_kept() {
        assert_eq!(
            envelope_message(r#"{"error":{"message":"no team `nope`","type":"x","code":"y"}}"#)
                .as_deref(),
            Some("no team `nope`")
        );
        assert_eq!(envelope_message("Bad Gateway"), None);
    }
}
