//! Configuration of the embedded model.

use std::path::PathBuf;

use serde::Deserialize;

use crate::models::{DEFAULT_MODEL, default_models_dir};

/// How to load and run the local model. Every field has a default, so an empty table works.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// The provider name clients address the model under (`local` in `local/smollm2`).
    pub provider_name: String,
    /// The GGUF file. Default: the default model in the models cache directory.
    pub model_path: PathBuf,
    /// The model's name as this provider lists and accepts it.
    pub model_name: String,
    /// Inference threads; default: the number of CPUs available to the process.
    pub threads: Option<usize>,
    /// Context window in tokens (prompt plus output), capped by what the model was trained on.
    pub context_size: u32,
    /// Prompt tokens evaluated per batch.
    pub batch_size: u32,
    /// Flash attention; `None` lets llama.cpp decide (it turns it on for CPU). Default off:
    /// with small models and short contexts on CPU it decodes ~15% slower here.
    pub flash_attention: Option<bool>,
    /// Requests waiting beyond this are refused as overloaded.
    pub max_queue: usize,
    /// `max_tokens` when a request gives none; `None` means up to the context window.
    pub default_max_tokens: Option<u32>,
    /// What `tool_choice: auto` (the default when a request has tools) means for this model.
    pub auto_tool_choice: AutoToolChoice,
    pub sampling: SamplingDefaults,
}

/// How a request with tools and `tool_choice` `auto` is served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoToolChoice {
    /// The model decides whether to call a tool (calls are parsed from whatever it writes).
    /// Right for capable models; a 135M model rarely decides to call.
    #[default]
    Model,
    /// When the conversation ends with a user message, a tool call is forced (as with
    /// `required`); after tool results the model answers freely. Makes agent loops work with
    /// very small models, at the price of never answering a user turn without a call.
    RequiredAfterUser,
}

/// Sampling parameters used when a request does not set them. `min_p` and the repetition
/// penalty have no field in the chat request, so they are set only here.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingDefaults {
    /// 0 means greedy.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: u32,
    /// 0 disables min-p.
    pub min_p: f32,
    /// 1.0 disables the repetition penalty.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalties look at.
    pub repeat_last_n: u32,
}

impl Default for SamplingDefaults {
    fn default() -> Self {
        // llama.cpp's defaults.
        Self {
            temperature: 0.8,
            top_p: 0.95,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        let model_path = default_models_dir()
            .map(|dir| dir.join(DEFAULT_MODEL.file_name))
            .unwrap_or_else(|_| PathBuf::from(DEFAULT_MODEL.file_name));
        Self {
            provider_name: "local".to_owned(),
            model_path,
            model_name: DEFAULT_MODEL.name.to_owned(),
            threads: None,
            context_size: 4096,
            batch_size: 512,
            flash_attention: Some(false),
            max_queue: 64,
            default_max_tokens: None,
            auto_tool_choice: AutoToolChoice::default(),
            sampling: SamplingDefaults::default(),
        }
    }
}

impl LocalConfig {
    /// The defaults with another model file.
    pub fn with_model(model_path: impl Into<PathBuf>) -> Self {
        Self {
            model_path: model_path.into(),
            ..Self::default()
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_is_the_defaults_and_unknown_keys_are_refused() {
        let c: LocalConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, LocalConfig::default());
        assert_eq!(c.model_name, "smollm2");
        assert!(c.model_path.ends_with(DEFAULT_MODEL.file_name));
        let c: LocalConfig =
            serde_json::from_str(r#"{"threads": 2, "sampling": {"temperature": 0}}"#).unwrap();
        assert_eq!(c.threads(), 2);
        assert_eq!(c.sampling.temperature, 0.0);
        assert!(serde_json::from_str::<LocalConfig>(r#"{"thread": 2}"#).is_err());
    }
}
