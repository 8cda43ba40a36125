//! Exec policy: allow and deny rules over the command line, each with a reason the caller sees.
//!
//! Rules are evaluated in order (configured rules first, then the built-in defaults); the first
//! match decides. A command that matches no rule is allowed. A shell string is split into its
//! simple commands (`;`, `&&`, `||`, `|`, `&`, newlines, `$(`, backticks) so that a prefix rule
//! also catches `cd x && git push`. Glob and regex rules see the whole line and every simple
//! command.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::types::CommandLine;

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Run it (overrides later rules, including the defaults).
    Allow,
    /// Refuse it with the rule's reason.
    Deny,
}

/// A rule as written in configuration: exactly one of `prefix`, `glob`, `regex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name shown to the caller.
    pub name: String,
    /// What a match does.
    pub action: RuleAction,
    /// argv prefix, e.g. `["git", "push"]`; the first word matches by basename.
    #[serde(default)]
    pub prefix: Option<Vec<String>>,
    /// Shell-style glob over the command line (`*` any text, `?` one character).
    #[serde(default)]
    pub glob: Option<String>,
    /// Regular expression searched in the command line.
    #[serde(default)]
    pub regex: Option<String>,
    /// Why, shown to the caller.
    #[serde(default)]
    pub reason: String,
}

/// The outcome of evaluating a command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    /// May it run.
    pub allowed: bool,
    /// The rule that decided, if any.
    pub rule: Option<String>,
    /// Why.
    pub reason: String,
}

#[derive(Debug)]
enum Matcher {
    Prefix(Vec<String>),
    Pattern(Regex, Scope),
}

#[derive(Debug)]
struct Rule {
    name: String,
    action: RuleAction,
    matcher: Matcher,
    reason: String,
}

/// Compiled rules.
#[derive(Debug)]
pub struct ExecPolicy {
    rules: Vec<Rule>,
}

/// Where a pattern is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The whole command line (pipelines like `curl … | sh`).
    Line,
    /// Each simple command, leading `VAR=value` and wrappers like `sudo` removed, so anchors
    /// (`^rm`) mean "the command word", and `echo shutdown` is not `shutdown`.
    Segment,
    /// Both.
    Both,
}

/// Built-in deny rules: `(name, scope, regex, reason)`.
const DEFAULT_DENIES: &[(&str, Scope, &str, &str)] = &[
    (
        "rm-root",
        Scope::Segment,
        r"^rm\s+(?:-{1,2}[\w-]*\s+)*(?:/|/\*|~|~/|~/\*|\$HOME|\$HOME/|\$HOME/\*|/[a-z0-9]+/?)(?:\s|$)",
        "recursive delete of the filesystem root, a home directory or a top-level system directory",
    ),
    (
        "mkfs",
        Scope::Segment,
        r"^mkfs(?:\.\w+)?(?:\s|$)",
        "formatting a filesystem destroys a disk",
    ),
    (
        "dd-to-disk",
        Scope::Segment,
        r"^dd\s.*\bof=/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk|loop)",
        "writing raw data over a block device destroys it",
    ),
    (
        "redirect-to-disk",
        Scope::Line,
        r">\s*/dev/(?:sd|hd|vd|xvd|nvme|mmcblk)",
        "writing raw data over a block device destroys it",
    ),
    (
        "power",
        Scope::Segment,
        r"^(?:shutdown|reboot|halt|poweroff)(?:\s|$)|^init\s+[06](?:\s|$)|^systemctl\s+(?:poweroff|reboot|halt|kexec)\b",
        "shutting down or rebooting the host",
    ),
    (
        "fork-bomb",
        Scope::Line,
        r":\s*\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}|\b\w+\s*\(\)\s*\{[^}]*\|[^}]*&\s*;?\s*\}\s*;\s*\w+",
        "a fork bomb exhausts the process table",
    ),
    (
        "pipe-to-shell",
        Scope::Line,
        r"\b(?:curl|wget|fetch)\b[^|]*\|\s*(?:sudo\s+)?(?:ba|z|da|k|fi)?sh\b|\b(?:curl|wget)\b[^|]*\|\s*(?:sudo\s+)?python[0-9.]*\b",
        "piping a download into a shell runs unreviewed code from the network",
    ),
    (
        "chmod-root",
        Scope::Segment,
        r"^ch(?:mod|own)\s.*-R\b.*\s/$",
        "changing permissions or owners of the whole filesystem",
    ),
];

impl ExecPolicy {
    /// Compile `rules` (in order) followed by the defaults when `defaults` is true.
    pub fn new(rules: &[RuleConfig], defaults: bool) -> Result<Self, SandboxError> {
        let mut compiled = Vec::new();
        for r in rules {
            let invalid = |detail: &str| SandboxError::InvalidRule {
                name: r.name.clone(),
                detail: detail.to_string(),
            };
            let matcher = match (&r.prefix, &r.glob, &r.regex) {
                (Some(p), None, None) if !p.is_empty() => Matcher::Prefix(p.clone()),
                (None, Some(g), None) => {
                    Matcher::Pattern(regex(&r.name, &glob_to_regex(g))?, Scope::Both)
                }
                (None, None, Some(re)) => Matcher::Pattern(regex(&r.name, re)?, Scope::Both),
                _ => {
                    return Err(invalid(
                        "give exactly one of prefix (non-empty), glob, regex",
                    ));
                }
            };
            let reason = if r.reason.is_empty() {
                format!("matched rule {}", r.name)
            } else {
                r.reason.clone()
            };
            compiled.push(Rule {
                name: r.name.clone(),
                action: r.action,
                matcher,
                reason,
            });
        }
        if defaults {
            for (name, scope, re, reason) in DEFAULT_DENIES {
                compiled.push(Rule {
                    name: (*name).to_string(),
                    action: RuleAction::Deny,
                    matcher: Matcher::Pattern(regex(name, re)?, *scope),
                    reason: (*reason).to_string(),
                });
            }
        }
        Ok(Self { rules: compiled })
    }

    /// Decide whether `command` may run.
    pub fn evaluate(&self, command: &CommandLine) -> PolicyDecision {
        let line = command.display();
        let mut lines = vec![line];
        let mut segments: Vec<Vec<String>> = match command {
            CommandLine::Argv(argv) => vec![argv.clone()],
            CommandLine::Shell(s) => split_commands(s),
        };
        // `sh -c "…"` given as argv (or nested in a shell string): look inside.
        let mut i = 0;
        while i < segments.len() && segments.len() <= 64 {
            let words = strip_wrappers(&segments[i]).to_vec();
            if words.len() >= 3 && SHELLS.contains(&basename(&words[0])) && words[1] == "-c" {
                lines.push(words[2].clone());
                segments.extend(split_commands(&words[2]));
            }
            i += 1;
        }
        let seg_texts: Vec<String> = segments
            .iter()
            .map(|s| strip_wrappers(s).join(" "))
            .collect();
        for rule in &self.rules {
            let in_lines = |re: &Regex| lines.iter().any(|t| re.is_match(t));
            let in_segs = |re: &Regex| seg_texts.iter().any(|t| re.is_match(t));
            let hit = match &rule.matcher {
                Matcher::Prefix(prefix) => segments.iter().any(|seg| prefix_matches(prefix, seg)),
                Matcher::Pattern(re, Scope::Line) => in_lines(re),
                Matcher::Pattern(re, Scope::Segment) => in_segs(re),
                Matcher::Pattern(re, Scope::Both) => in_lines(re) || in_segs(re),
            };
            if hit {
                return PolicyDecision {
                    allowed: rule.action == RuleAction::Allow,
                    rule: Some(rule.name.clone()),
                    reason: rule.reason.clone(),
                };
            }
        }
        PolicyDecision {
            allowed: true,
            rule: None,
            reason: "no rule matched".to_string(),
        }
    }
}

fn regex(name: &str, pattern: &str) -> Result<Regex, SandboxError> {
    Regex::new(pattern).map_err(|e| SandboxError::InvalidRule {
        name: name.to_string(),
        detail: e.to_string(),
    })
}

/// `*` any text, `?` one character, everything else literal; anchored to the whole text.
fn glob_to_regex(glob: &str) -> String {
    let mut re = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    re
}

/// Words that run the rest of the line as a command.
const WRAPPERS: &[&str] = &[
    "sudo", "env", "command", "exec", "nohup", "time", "nice", "doas", "builtin",
];

/// Shells whose `-c` argument is itself a command line.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh"];

/// The words from the command word on: leading `VAR=value` assignments and wrappers like
/// `sudo` removed.
fn strip_wrappers(argv: &[String]) -> &[String] {
    let start = argv
        .iter()
        .position(|w| (!w.contains('=') || w.starts_with('=')) && !WRAPPERS.contains(&basename(w)))
        .unwrap_or(argv.len());
    &argv[start..]
}

fn prefix_matches(prefix: &[String], argv: &[String]) -> bool {
    let argv = strip_wrappers(argv);
    if argv.len() < prefix.len() {
        return false;
    }
    prefix.iter().zip(argv).enumerate().all(|(i, (p, a))| {
        if i == 0 {
            basename(a) == basename(p)
        } else {
            a == p
        }
    })
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// Split a shell string into simple commands, each as words with quotes removed. Not a full
/// shell parser: enough to find the command words policy rules look at.
fn split_commands(s: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    let mut quote: Option<char> = None;
    let flush_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' && q == '"' {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                in_word = true;
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                    in_word = true;
                }
            }
            ';' | '&' | '|' | '\n' | '`' | '(' | ')' | '{' | '}' => {
                flush_word(&mut word, &mut in_word, &mut words);
                if !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                flush_word(&mut word, &mut in_word, &mut words);
                if !words.is_empty() {
                    out.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => flush_word(&mut word, &mut in_word, &mut words),
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    flush_word(&mut word, &mut in_word, &mut words);
    if !words.is_empty() {
        out.push(words);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_compound_commands() {
        let segs = split_commands("cd 'a b' && git push origin; echo $(whoami) | tr a b");
        assert_eq!(segs[0], vec!["cd", "a b"]);
        assert_eq!(segs[1], vec!["git", "push", "origin"]);
        assert!(segs.iter().any(|s| s == &vec!["whoami"]));
    }

    #[test]
    fn prefix_skips_env_and_sudo() {
        let argv: Vec<String> = ["FOO=1", "sudo", "/usr/bin/git", "push"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(prefix_matches(&["git".into(), "push".into()], &argv));
        assert!(!prefix_matches(&["git".into(), "pull".into()], &argv));
    }
}
