//! OpenAI-compatible vendors as data: base URL, auth convention and quirks.

use super::Quirks;

/// A known OpenAI-compatible service. Naming one in config fills in everything but the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    OpenAi,
    Groq,
    Ollama,
    LmStudio,
    Vllm,
    LlamaCpp,
    OpenRouter,
    DeepSeek,
    Together,
    Mistral,
}

impl Preset {
    pub const ALL: [Preset; 10] = [
        Preset::OpenAi,
        Preset::Groq,
        Preset::Ollama,
        Preset::LmStudio,
        Preset::Vllm,
        Preset::LlamaCpp,
        Preset::OpenRouter,
        Preset::DeepSeek,
        Preset::Together,
        Preset::Mistral,
    ];

    /// The name used in config (`preset = "groq"`, or a provider named `groq`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::OpenAi => "openai",
            Preset::Groq => "groq",
            Preset::Ollama => "ollama",
            Preset::LmStudio => "lmstudio",
            Preset::Vllm => "vllm",
            Preset::LlamaCpp => "llamacpp",
            Preset::OpenRouter => "openrouter",
            Preset::DeepSeek => "deepseek",
            Preset::Together => "together",
            Preset::Mistral => "mistral",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        let normalized = name.to_ascii_lowercase().replace(['-', '_', '.'], "");
        let normalized = match normalized.as_str() {
            "lmstudio" | "lms" => "lmstudio",
            "llamacpp" | "llamaserver" => "llamacpp",
            other => other,
        }
        .to_owned();
        Self::ALL.into_iter().find(|p| p.name() == normalized)
    }

    pub fn base_url(self) -> &'static str {
        match self {
            Preset::OpenAi => "https://api.openai.com/v1",
            Preset::Groq => "https://api.groq.com/openai/v1",
            Preset::Ollama => "http://127.0.0.1:11434/v1",
            Preset::LmStudio => "http://127.0.0.1:1234/v1",
            Preset::Vllm => "http://127.0.0.1:8000/v1",
            Preset::LlamaCpp => "http://127.0.0.1:8080/v1",
            Preset::OpenRouter => "https://openrouter.ai/api/v1",
            Preset::DeepSeek => "https://api.deepseek.com/v1",
            Preset::Together => "https://api.together.xyz/v1",
            Preset::Mistral => "https://api.mistral.ai/v1",
        }
    }

    /// Whether the service refuses requests without a key. Local servers accept none (or any).
    pub fn requires_key(self) -> bool {
        match self {
            Preset::OpenAi
            | Preset::Groq
            | Preset::OpenRouter
            | Preset::DeepSeek
            | Preset::Together
            | Preset::Mistral => true,
            Preset::Ollama | Preset::LmStudio | Preset::Vllm | Preset::LlamaCpp => false,
        }
    }

    /// The environment variable users conventionally keep the key in.
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            Preset::OpenAi => Some("OPENAI_API_KEY"),
            Preset::Groq => Some("GROQ_API_KEY"),
            Preset::OpenRouter => Some("OPENROUTER_API_KEY"),
            Preset::DeepSeek => Some("DEEPSEEK_API_KEY"),
            Preset::Together => Some("TOGETHER_API_KEY"),
            Preset::Mistral => Some("MISTRAL_API_KEY"),
            Preset::Ollama | Preset::LmStudio | Preset::Vllm | Preset::LlamaCpp => None,
        }
    }

    pub fn quirks(self) -> Quirks {
        let base = Quirks::default();
        match self {
            Preset::OpenAi => Quirks {
                max_completion_tokens: true,
                ..base
            },
            Preset::Mistral => Quirks {
                random_seed: true,
                required_tool_choice: "any",
                // Mistral reports usage on the last chunk unasked and rejects unknown fields.
                stream_options: false,
                ..base
            },
            Preset::Vllm
            | Preset::LlamaCpp
            | Preset::LmStudio
            | Preset::OpenRouter
            | Preset::Together => Quirks {
                top_k: true,
                ..base
            },
            Preset::Groq | Preset::Ollama | Preset::DeepSeek => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_accept_common_spellings() {
        for p in Preset::ALL {
            assert_eq!(Preset::from_name(p.name()), Some(p));
        }
        assert_eq!(Preset::from_name("LM-Studio"), Some(Preset::LmStudio));
        assert_eq!(Preset::from_name("llama.cpp"), Some(Preset::LlamaCpp));
        assert_eq!(Preset::from_name("bedrock"), None);
    }
}
