//! The models the gateway exposes: configured, discovered, and route aliases.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio::sync::Mutex;

use crate::Gateway;

/// How long a provider's discovered model list is trusted.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);
/// Discovery must not hold up `/v1/models` for long when a provider is down.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// One model id clients can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// `provider/model` or a route name.
    pub id: String,
    /// The provider name, or `freeway` for routes.
    pub owned_by: String,
}

#[derive(Default)]
pub(crate) struct ModelCatalog {
    discovered: Mutex<Option<(Instant, Vec<ModelEntry>)>>,
}

impl Gateway {
    /// Every model id this gateway answers to: routes first, then each provider's configured
    /// models, then what providers report (discovery failures are logged and skipped).
    pub async fn list_models(&self) -> Vec<ModelEntry> {
        let mut out: Vec<ModelEntry> = self
            .route_names()
            .map(|r| ModelEntry {
                id: r.to_owned(),
                owned_by: "freeway".to_owned(),
            })
            .collect();
        for (name, entry) in self.providers_in_order() {
            out.extend(entry.models.iter().map(|m| ModelEntry {
                id: format!("{name}/{m}"),
                owned_by: name.to_owned(),
            }));
        }
        for discovered in self.discovered().await {
            if !out.iter().any(|e| e.id == discovered.id) {
                out.push(discovered);
            }
        }
        out
    }

    async fn discovered(&self) -> Vec<ModelEntry> {
        let mut cache = self.catalog().discovered.lock().await;
        if let Some((at, models)) = cache.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return models.clone();
        }
        let asks =
            self.providers_in_order()
                .filter(|(_, e)| e.discover)
                .map(|(name, e)| async move {
                    match tokio::time::timeout(DISCOVERY_TIMEOUT, e.provider.list_models()).await {
                        Ok(Ok(models)) => models
                            .into_iter()
                            .map(|m| ModelEntry {
                                id: format!("{name}/{}", m.id),
                                owned_by: name.to_owned(),
                            })
                            .collect(),
                        Ok(Err(err)) => {
                            tracing::warn!(provider = name, error = %err, "model discovery failed");
                            Vec::new()
                        }
                        Err(_) => {
                            tracing::warn!(provider = name, "model discovery timed out");
                            Vec::new()
                        }
                    }
                });
        let models: Vec<ModelEntry> = join_all(asks).await.into_iter().flatten().collect();
        *cache = Some((Instant::now(), models.clone()));
        models
    }
}
