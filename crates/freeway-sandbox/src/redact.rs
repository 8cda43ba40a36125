//! Secret redaction: configured secret values and well-known credential shapes are replaced by
//! `[REDACTED:<kind>]`. Patterns are compiled once per [`Redactor`]; a single combined regex
//! finds candidates in one pass and the kind is told by re-matching the (short) candidate.
//!
//! Streams are redacted with [`StreamRedactor`], which holds back the last partial line (and an
//! unterminated private-key block) until more output arrives, so a secret split across two reads
//! is still caught: every credential shape is a run without line breaks, except PEM blocks.

use regex::Regex;

use crate::error::SandboxError;

/// Built-in credential shapes: `(kind, pattern)`. Order matters: the first kind whose pattern
/// matches a candidate names it (`anthropic` before `openai`).
const SHAPES: &[(&str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("anthropic", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai",
        r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    ("stripe", r"[rs]k_live_[A-Za-z0-9]{20,}"),
    ("groq", r"gsk_[A-Za-z0-9]{20,}"),
    ("huggingface", r"hf_[A-Za-z0-9]{30,}"),
    ("google", r"AIza[0-9A-Za-z_\-]{35}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    (
        "aws_secret_key",
        r#"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}"#,
    ),
    ("github", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}"),
    ("github", r"github_pat_[A-Za-z0-9_]{22,}"),
    ("slack", r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{8,}",
    ),
];

/// Shortest configured secret value that is redacted (shorter ones would mangle normal output).
const MIN_SECRET_LEN: usize = 6;
/// Longest partial line held back by a stream before it is released anyway.
const LINE_HOLD_MAX: usize = 8 * 1024;
/// Longest unterminated private-key block held back by a stream.
const PEM_HOLD_MAX: usize = 64 * 1024;

/// Redacts text. Cheap to share (`Arc`) between runs; all regexes are compiled in [`Redactor::new`].
#[derive(Debug)]
pub struct Redactor {
    any: Regex,
    kinds: Vec<(&'static str, Regex)>,
    aws_value: Regex,
}

impl Redactor {
    /// Compile the built-in shapes plus the literal `secrets` (values shorter than 6 bytes are
    /// ignored).
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Result<Self, SandboxError> {
        let mut literals: Vec<&str> = secrets
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        literals.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut alternatives: Vec<String> = literals.iter().map(|s| regex::escape(s)).collect();
        let mut kinds = Vec::new();
        if !alternatives.is_empty() {
            kinds.push((
                "secret",
                compile("secret", &format!("^(?:{})$", alternatives.join("|")))?,
            ));
        }
        for (kind, pat) in SHAPES {
            alternatives.push(format!("(?:{pat})"));
            kinds.push((*kind, compile(kind, &format!("^(?:{pat})$"))?));
        }
        let any = compile("redaction", &alternatives.join("|"))?;
        let aws_value = compile("aws_secret_key", r"[A-Za-z0-9/+=]{40}$")?;
        Ok(Self {
            any,
            kinds,
            aws_value,
        })
    }

    /// Replace every secret in `text`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in self.any.find_iter(text) {
            out.push_str(&text[last..m.start()]);
            let found = m.as_str();
            let kind = self
                .kinds
                .iter()
                .find(|(_, re)| re.is_match(found))
                .map_or("secret", |(k, _)| *k);
            if kind == "aws_secret_key" {
                // Keep the label, hide the value.
                let value_at = self.aws_value.find(found).map_or(0, |v| v.start());
                out.push_str(&found[..value_at]);
            }
            out.push_str("[REDACTED:");
            out.push_str(kind);
            out.push(']');
            last = m.end();
        }
        if last == 0 {
            return text.to_string();
        }
        out.push_str(&text[last..]);
        out
    }

    /// A redactor for one stream of chunks.
    pub fn stream(&self) -> StreamRedactor<'_> {
        StreamRedactor {
            redactor: self,
            pending: String::new(),
        }
    }
}

fn compile(name: &str, pattern: &str) -> Result<Regex, SandboxError> {
    Regex::new(pattern).map_err(|e| SandboxError::InvalidRule {
        name: name.to_string(),
        detail: e.to_string(),
    })
}

/// Redacts a stream of chunks, holding back what could be the start of a secret that the next
/// chunk completes. Call [`StreamRedactor::finish`] at end of stream.
#[derive(Debug)]
pub struct StreamRedactor<'a> {
    redactor: &'a Redactor,
    pending: String,
}

impl StreamRedactor<'_> {
    /// Add a chunk; returns the redacted text that is safe to release now (may be empty).
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let cut = self.safe_cut();
        if cut == 0 {
            return String::new();
        }
        let ready: String = self.pending.drain(..cut).collect();
        self.redactor.redact(&ready)
    }

    /// Release and redact everything held back.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.redactor.redact(&rest)
    }

    /// Where the pending text can be cut without splitting a possible secret.
    fn safe_cut(&self) -> usize {
        let s = self.pending.as_str();
        // Complete lines are safe; the partial last line is held.
        let mut cut = s.rfind('\n').map_or(0, |i| i + 1);
        if s.len() - cut > LINE_HOLD_MAX {
            // A huge line: release up to the last whitespace, or all of it.
            cut = s.rfind(char::is_whitespace).map_or(s.len(), |i| i + 1);
            if s.len() - cut > LINE_HOLD_MAX {
                cut = s.len();
            }
        }
        // A private-key block not closed before the cut is held whole.
        if let Some(begin) = s[..cut].rfind("-----BEGIN") {
            let block = &s[begin..cut];
            let terminated = block
                .find("-----END")
                .is_some_and(|e| block[e + 8..].contains("-----"));
            if !terminated && s.len() - begin <= PEM_HOLD_MAX {
                cut = cut.min(begin);
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_untouched() {
        let r = Redactor::new::<&str>(&[]).unwrap();
        let text = "hello world: skip sk-short and ghp_ and task-ant";
        assert_eq!(r.redact(text), text);
    }
}
