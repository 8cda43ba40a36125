//! Complexity routing ("System 1 / System 2"): scores a request from features anyone can
//! check by reading it, and picks the tier of an `auto` route that the score falls in.
//!
//! The features and their points are configuration ([`ClassifierConfig`]); the decision comes
//! with its reasons so that a surprising route can be explained from the response header alone.

use std::fmt::Write as _;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use freeway_config::{ClassifierConfig, TierConfig};
use freeway_types::{ChatRequest, ContentPart, Message};

/// Characters per token for the prompt-length estimate (the usual English average).
const CHARS_PER_TOKEN: usize = 4;
/// Fenced blocks from which a prompt counts as carrying much code.
const MUCH_CODE_BLOCKS: usize = 3;

#[derive(Debug)]
pub struct Classifier {
    config: ClassifierConfig,
    cues: Option<AhoCorasick>,
}

/// Which tier a request goes to, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub tier: usize,
    pub score: u32,
    /// `tier=…; score=…; features=…`, ASCII, for the `x-freeway-route` header and traces.
    pub explanation: String,
}

impl Classifier {
    pub fn new(config: ClassifierConfig) -> Result<Self, String> {
        let cues = if config.reasoning_cues.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&config.reasoning_cues)
                    .map_err(|e| format!("reasoning cues: {e}"))?,
            )
        };
        Ok(Classifier { config, cues })
    }

    fn points(&self, feature: &str) -> u32 {
        self.config
            .points
            .iter()
            .find(|(f, _)| f == feature)
            .map_or(0, |(_, p)| *p)
    }

    /// Scores `request` and picks a tier; a `hint` naming a tier wins over the score.
    pub fn decide(
        &self,
        route: &str,
        tiers: &[TierConfig],
        request: &ChatRequest,
        hint: Option<&str>,
    ) -> Decision {
        let mut score = 0u32;
        let mut features = String::new();
        let mut add = |name: &str, detail: Option<&str>, points: u32| {
            if points == 0 {
                return;
            }
            score = score.saturating_add(points);
            if !features.is_empty() {
                features.push(',');
            }
            features.push_str(name);
            if let Some(d) = detail {
                let _ = write!(features, "(\"{d}\")");
            }
            let _ = write!(features, "+{points}");
        };

        let mut chars = 0usize;
        let mut fences = 0usize;
        for message in &request.messages {
            for text in texts(message) {
                chars += text.len();
                fences += text.matches("```").count();
            }
        }
        let tokens = u64::try_from(chars / CHARS_PER_TOKEN).unwrap_or(u64::MAX);
        if tokens > self.config.long_prompt_tokens {
            add("long_prompt", None, self.points("long_prompt"));
        }
        if tokens > self.config.very_long_prompt_tokens {
            add("very_long_prompt", None, self.points("very_long_prompt"));
        }
        let blocks = fences / 2;
        if blocks >= 1 {
            add("code", None, self.points("code"));
        }
        if blocks >= MUCH_CODE_BLOCKS {
            add("much_code", None, self.points("much_code"));
        }
        if let Some(cue) = self.cue(request) {
            add("reasoning", Some(&ascii(cue)), self.points("reasoning"));
        }
        if !request.tools.is_empty() {
            add("tools", None, self.points("tools"));
        }
        if request.messages.len() > self.config.deep_conversation_messages {
            add("deep_conversation", None, self.points("deep_conversation"));
        }
        if request
            .max_tokens
            .is_some_and(|m| m >= self.config.long_output_tokens)
        {
            add("long_output", None, self.points("long_output"));
        }

        let by_score = tiers
            .iter()
            .position(|t| t.max_score.is_none_or(|m| score <= m))
            .unwrap_or(tiers.len().saturating_sub(1));
        let hinted = hint.map(|h| (h, tiers.iter().position(|t| t.name == h)));
        let tier = match hinted {
            Some((_, Some(i))) => i,
            _ => by_score,
        };
        let mut explanation = format!(
            "route={}; tier={}; score={score}",
            ascii(route),
            tiers.get(tier).map_or("", |t| t.name.as_str())
        );
        match hinted {
            Some((h, Some(_))) => {
                let _ = write!(explanation, "; hint={}", ascii(h));
            }
            Some((h, None)) => {
                let _ = write!(explanation, "; hint={} ignored (no such tier)", ascii(h));
            }
            None => {}
        }
        if !features.is_empty() {
            let _ = write!(explanation, "; features={features}");
        }
        Decision {
            tier,
            score,
            explanation,
        }
    }

    /// The first reasoning cue in the last user message that starts at a word boundary.
    fn cue(&self, request: &ChatRequest) -> Option<&str> {
        let cues = self.cues.as_ref()?;
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| matches!(m, Message::User { .. }))?;
        for text in texts(last) {
            let bytes = text.as_bytes();
            for m in cues.find_iter(text) {
                let starts_word = m.start() == 0 || !bytes[m.start() - 1].is_ascii_alphanumeric();
                if starts_word {
                    return Some(self.config.reasoning_cues[m.pattern().as_usize()].as_str());
                }
            }
        }
        None
    }
}

/// The text parts of a message, without copying them.
fn texts(message: &Message) -> impl Iterator<Item = &str> {
    let (system, parts): (Option<&str>, &[ContentPart]) = match message {
        Message::System { content } => (Some(content), &[]),
        Message::User { content } | Message::Tool { content, .. } => (None, content),
        Message::Assistant { content, .. } => (None, content),
    };
    system
        .into_iter()
        .chain(parts.iter().filter_map(|p| match p {
            ContentPart::Text { text } => Some(text.as_str()),
            ContentPart::Image { .. } => None,
        }))
}

/// Printable ASCII only, so the explanation is a valid header value.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .filter(|c| *c != '"' && *c != ';')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<TierConfig> {
        let tier = |name: &str, max| TierConfig {
            name: name.into(),
            targets: vec![format!("p/{name}")],
            max_score: max,
        };
        vec![
            tier("fast", Some(1)),
            tier("standard", Some(3)),
            tier("deep", None),
        ]
    }

    fn ask(text: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::user(text)],
            ..ChatRequest::default()
        }
    }

    fn decide(request: &ChatRequest, hint: Option<&str>) -> Decision {
        Classifier::new(ClassifierConfig::default())
            .unwrap()
            .decide("auto", &tiers(), request, hint)
    }

    #[test]
    fn a_short_plain_question_goes_to_the_fast_tier() {
        let d = decide(&ask("What is the capital of France?"), None);
        assert_eq!((d.tier, d.score), (0, 0));
        assert_eq!(d.explanation, "route=auto; tier=fast; score=0");
    }

    #[test]
    fn reasoning_cues_and_code_raise_the_tier_with_reasons() {
        let d = decide(
            &ask("Explain step by step why this fails:\n```rust\nfn main() {}\n```"),
            None,
        );
        assert_eq!(d.score, 3);
        assert_eq!(d.tier, 1);
        assert!(
            d.explanation.contains("reasoning(\"step by step\")+2"),
            "{}",
            d.explanation
        );
        assert!(d.explanation.contains("code+1"), "{}", d.explanation);
    }

    #[test]
    fn cues_match_at_word_starts_only() {
        // "explanation" contains "plan" but asks for no planning.
        let d = decide(&ask("Give a short explanation of HTTP"), None);
        assert_eq!(d.score, 0, "{}", d.explanation);
    }

    #[test]
    fn long_prompts_tools_and_long_outputs_reach_the_deep_tier() {
        let mut r = ask(&"word ".repeat(8_000));
        r.tools.push(freeway_types::ToolDefinition {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
            strict: None,
        });
        r.max_tokens = Some(4_000);
        let d = decide(&r, None);
        assert_eq!(d.tier, 2, "{}", d.explanation);
        assert!(d.explanation.contains("long_prompt+1"));
        assert!(d.explanation.contains("very_long_prompt+2"));
        assert!(d.explanation.contains("tools+1"));
        assert!(d.explanation.contains("long_output+1"));
    }

    #[test]
    fn a_hint_wins_and_an_unknown_hint_is_reported() {
        let d = decide(&ask("hi"), Some("deep"));
        assert_eq!(d.tier, 2);
        assert!(d.explanation.contains("hint=deep"));
        let d = decide(&ask("hi"), Some("turbo"));
        assert_eq!(d.tier, 0);
        assert!(d.explanation.contains("hint=turbo ignored"));
    }

    #[test]
    fn points_are_configurable() {
        let mut config = ClassifierConfig::default();
        for (f, p) in &mut config.points {
            if f == "tools" {
                *p = 10;
            }
        }
        let mut r = ask("hi");
        r.tools.push(freeway_types::ToolDefinition {
            name: "f".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
            strict: None,
        });
        let d = Classifier::new(config)
            .unwrap()
            .decide("auto", &tiers(), &r, None);
        assert_eq!((d.tier, d.score), (2, 10));
    }
}
