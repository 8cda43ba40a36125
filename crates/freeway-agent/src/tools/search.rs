//! `list`, `glob` and `grep`: walks of the working directory that honour `.gitignore`, `.ignore`
//! and hidden files the way ripgrep does, with capped output.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use freeway_types::ToolDefinition;
use globset::{GlobBuilder, GlobMatcher};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::WalkBuilder;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::files::{blocking, check_cancelled, cut_line, trim_line_end};
use crate::tool::{Tool, ToolContext, ToolError, ToolKind, parse_args};
use crate::workspace::Workspace;

/// Entries `list` shows at most.
const MAX_LIST_ENTRIES: usize = 500;
const DEFAULT_DEPTH: usize = 2;
const MAX_DEPTH: usize = 20;
/// Paths `glob` shows at most.
const MAX_GLOB_FILES: usize = 500;
/// Directory entries one walk visits at most, so a huge tree cannot stall a call.
const MAX_WALK_ENTRIES: usize = 200_000;
/// Matches `grep` reports at most.
const MAX_GREP_MATCHES: usize = 200;
/// Bytes of `grep` output at most, context lines included.
const MAX_GREP_BYTES: usize = 64 * 1024;
/// Characters of one `grep` line shown.
const MAX_GREP_LINE_CHARS: usize = 500;
const MAX_CONTEXT: usize = 10;

/// A directory tree.
pub struct List;

/// Files whose path matches a glob.
pub struct Glob;

/// Lines matching a regular expression.
pub struct Grep;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    depth: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobArgs {
    pattern: String,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrepArgs {
    pattern: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    glob: Option<String>,
    #[serde(default)]
    case_insensitive: Option<bool>,
    #[serde(default)]
    context: Option<usize>,
}

const PATH_DESCRIPTION: &str = "Directory to search, relative to the working directory (or absolute inside it); default \".\".";

#[async_trait::async_trait]
impl Tool for List {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "list".into(),
            description: Some(format!(
                "List a directory of the working directory as an indented tree, directories \
                 marked with a trailing `/`, sorted by name. Files ignored by .gitignore or \
                 .ignore and hidden files are left out. At most {MAX_LIST_ENTRIES} entries."
            )),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "Directory to list, relative to the working directory (or absolute inside it); default \".\"."
                    },
                    "depth": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_DEPTH,
                        "description": format!("Levels to descend; 1 lists only the directory's own entries; default {DEFAULT_DEPTH}.")
                    }
                },
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: ListArgs = parse_args("list", args)?;
        let workspace = ctx.workspace.clone();
        let cancel = ctx.cancel.clone();
        blocking(move || list(&workspace, &args, &cancel)).await
    }
}

#[async_trait::async_trait]
impl Tool for Glob {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "glob".into(),
            description: Some(format!(
                "Find files by path pattern. The glob is matched against each file's path \
                 relative to `path`: `*` and `?` stay within one directory, `**` crosses \
                 directories, `{{a,b}}` is an alternative (`**/*.rs`, `src/**/mod.rs`, \
                 `*.{{toml,json}}`). Files ignored by .gitignore or .ignore and hidden files are \
                 left out. Returns sorted paths relative to the working directory, at most \
                 {MAX_GLOB_FILES}."
            )),
            parameters: json!({
                "type": "object",
                "properties": {
                    "pattern": {
                        "type": "string",
                        "description": "Glob matched against paths relative to `path`, e.g. \"**/*.rs\"."
                    },
                    "path": {
                        "type": "string",
                        "description": PATH_DESCRIPTION
                    }
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: GlobArgs = parse_args("glob", args)?;
        let workspace = ctx.workspace.clone();
        let cancel = ctx.cancel.clone();
        blocking(move || glob(&workspace, &args, &cancel)).await
    }
}

#[async_trait::async_trait]
impl Tool for Grep {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "grep".into(),
            description: Some(format!(
                "Search file contents for a regular expression (Rust regex syntax, like \
                 ripgrep), line by line. Prints `path:line:text` for each matching line and \
                 `path-line-text` for context lines, paths relative to the working directory. \
                 Binary files, files ignored by .gitignore or .ignore and hidden files are \
                 skipped. At most {MAX_GREP_MATCHES} matches."
            )),
            parameters: json!({
                "type": "object",
                "properties": {
                    "pattern": {
                        "type": "string",
                        "description": "Regular expression, e.g. \"fn\\s+main\"; escape ( [ { . * + ? | \\ ^ $ with \\ to match them literally."
                    },
                    "path": {
                        "type": "string",
                        "description": "File or directory to search, relative to the working directory (or absolute inside it); default \".\"."
                    },
                    "glob": {
                        "type": "string",
                        "description": "Only search files matching this glob, e.g. \"*.rs\" or \"*.{ts,tsx}\"; without a `/` it is matched against the file name, with one against the path relative to `path`."
                    },
                    "case_insensitive": {
                        "type": "boolean",
                        "description": "Ignore case; default false."
                    },
                    "context": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": MAX_CONTEXT,
                        "description": "Lines of context to show before and after each match; default 0."
                    }
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: GrepArgs = parse_args("grep", args)?;
        let workspace = ctx.workspace.clone();
        let cancel = ctx.cancel.clone();
        blocking(move || grep(&workspace, &args, &cancel)).await
    }
}

/// A walk honouring ignore files (in a git repository or not) and hidden files, in name order,
/// never entering `.git` nor following symlinks out of the tree.
fn walker(root: &Path) -> WalkBuilder {
    let mut walk = WalkBuilder::new(root);
    walk.standard_filters(true)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| entry.file_name() != ".git");
    walk
}

/// Resolves an optional directory argument, defaulting to the root.
fn resolve_dir(workspace: &Workspace, path: Option<&str>) -> Result<(PathBuf, String), ToolError> {
    let dir = workspace.resolve(path.unwrap_or("."))?;
    let shown = workspace.display(&dir);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok((dir, shown)),
        Ok(_) => Err(ToolError(format!(
            "{shown} is a file, not a directory; use read_file to read it"
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ToolError(format!(
            "{shown} does not exist; list \".\" to see what there is"
        ))),
        Err(e) => Err(ToolError(format!("cannot read {shown}: {e}"))),
    }
}

fn list(
    workspace: &Workspace,
    args: &ListArgs,
    cancel: &CancellationToken,
) -> Result<String, ToolError> {
    let depth = match args.depth {
        Some(0) => return Err(ToolError::new("depth must be at least 1")),
        Some(d) => d.min(MAX_DEPTH),
        None => DEFAULT_DEPTH,
    };
    let (dir, shown) = resolve_dir(workspace, args.path.as_deref())?;
    let mut out = String::new();
    let mut entries = 0usize;
    let mut deeper = false;
    let mut cut = false;
    for entry in walker(&dir).max_depth(Some(depth)).build() {
        check_cancelled(cancel)?;
        // Unreadable entries are left out rather than failing the listing.
        let Ok(entry) = entry else { continue };
        if entry.depth() == 0 {
            continue;
        }
        if entries == MAX_LIST_ENTRIES {
            cut = true;
            break;
        }
        entries += 1;
        let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
        if is_dir && entry.depth() == depth {
            deeper = true;
        }
        let name = entry.file_name().to_string_lossy();
        let indent = "  ".repeat(entry.depth() - 1);
        let _ = writeln!(out, "{indent}{name}{}", if is_dir { "/" } else { "" });
    }
    if entries == 0 {
        return Ok(format!(
            "{shown}/ is empty (or holds only ignored and hidden files)"
        ));
    }
    let mut notes = Vec::new();
    if cut {
        notes.push(format!(
            "stopped at {MAX_LIST_ENTRIES} entries; list a subdirectory or use a smaller depth \
             to see the rest"
        ));
    }
    if deeper {
        notes.push(format!(
            "depth {depth}: list a subdirectory or pass a larger depth to see inside the \
             deepest directories"
        ));
    }
    let mut listing = format!("{shown}/\n{out}");
    for note in notes {
        let _ = writeln!(listing, "({note})");
    }
    Ok(listing)
}

/// Compiles a glob where `*` does not cross `/`.
fn compile_glob(pattern: &str, what: &str) -> Result<GlobMatcher, ToolError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| ToolError(format!("invalid {what} {pattern:?}: {e}")))
}

fn glob(
    workspace: &Workspace,
    args: &GlobArgs,
    cancel: &CancellationToken,
) -> Result<String, ToolError> {
    let pattern = args.pattern.strip_prefix("./").unwrap_or(&args.pattern);
    if pattern.is_empty() {
        return Err(ToolError::new(
            "the pattern is empty; give a glob such as \"**/*.rs\"",
        ));
    }
    if pattern.starts_with('/') {
        return Err(ToolError(format!(
            "the pattern {pattern:?} is absolute; it is matched against paths relative to \
             `path`, so drop the leading / (and pass the directory as `path`)"
        )));
    }
    let matcher = compile_glob(pattern, "glob pattern")?;
    let (dir, shown) = resolve_dir(workspace, args.path.as_deref())?;
    let mut found = Vec::new();
    let mut visited = 0usize;
    for entry in walker(&dir).build() {
        check_cancelled(cancel)?;
        let Ok(entry) = entry else { continue };
        visited += 1;
        if visited > MAX_WALK_ENTRIES {
            break;
        }
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(&dir) else {
            continue;
        };
        if matcher.is_match(relative) {
            found.push(workspace.display(entry.path()));
        }
    }
    let walk_cut = visited > MAX_WALK_ENTRIES;
    if found.is_empty() {
        let mut answer = format!("no files match {pattern:?} under {shown}");
        if !pattern.contains('/') && !pattern.starts_with("**") {
            let _ = write!(
                answer,
                " (the pattern is matched against whole relative paths, so {pattern:?} only \
                 finds files directly in {shown}; use \"**/{pattern}\" to search subdirectories \
                 too)"
            );
        }
        if walk_cut {
            let _ = write!(
                answer,
                " (stopped after {MAX_WALK_ENTRIES} entries; pass a narrower path)"
            );
        }
        return Ok(answer);
    }
    found.sort();
    let total = found.len();
    found.truncate(MAX_GLOB_FILES);
    let mut out = found.join("\n");
    out.push('\n');
    if total > MAX_GLOB_FILES {
        let _ = writeln!(
            out,
            "(showing {MAX_GLOB_FILES} of {total} matching files; narrow the pattern or path)"
        );
    }
    if walk_cut {
        let _ = writeln!(
            out,
            "(stopped after {MAX_WALK_ENTRIES} entries, so there may be more; pass a narrower \
             path)"
        );
    }
    Ok(out)
}

/// Which files `grep` searches: a glob on the name, or on the path when it has a `/`.
struct FileFilter {
    matcher: GlobMatcher,
    on_path: bool,
}

impl FileFilter {
    fn matches(&self, relative: &Path) -> bool {
        if self.on_path {
            self.matcher.is_match(relative)
        } else {
            relative
                .file_name()
                .is_some_and(|name| self.matcher.is_match(name))
        }
    }
}

fn grep(
    workspace: &Workspace,
    args: &GrepArgs,
    cancel: &CancellationToken,
) -> Result<String, ToolError> {
    if args.pattern.is_empty() {
        return Err(ToolError::new(
            "the pattern is empty; give a regular expression to search for",
        ));
    }
    let matcher = RegexMatcherBuilder::new()
        .case_insensitive(args.case_insensitive.unwrap_or(false))
        .line_terminator(Some(b'\n'))
        .build(&args.pattern)
        .map_err(|e| {
            ToolError(format!(
                "invalid regex {:?}: {e}\nEscape special characters with \\ to match them \
                 literally.",
                args.pattern
            ))
        })?;
    let filter = match &args.glob {
        Some(glob) => {
            let glob = glob.strip_prefix("./").unwrap_or(glob);
            Some(FileFilter {
                matcher: compile_glob(glob, "glob")?,
                on_path: glob.contains('/'),
            })
        }
        None => None,
    };
    let context = args.context.unwrap_or(0).min(MAX_CONTEXT);
    let root = workspace.resolve(args.path.as_deref().unwrap_or("."))?;
    let shown = workspace.display(&root);
    if !root.exists() {
        return Err(ToolError(format!(
            "{shown} does not exist; use list or glob to find the right path"
        )));
    }

    let mut searcher = SearcherBuilder::new()
        .line_number(true)
        .binary_detection(BinaryDetection::quit(0))
        .before_context(context)
        .after_context(context)
        .build();
    let mut sink = Collect {
        path: String::new(),
        lines: String::new(),
        matches: 0,
        limit: MAX_GREP_MATCHES,
        binary: false,
    };
    let mut out = String::new();
    let mut matches = 0usize;
    let mut visited = 0usize;
    let mut full = false;
    for entry in walker(&root).build() {
        check_cancelled(cancel)?;
        let Ok(entry) = entry else { continue };
        visited += 1;
        if visited > MAX_WALK_ENTRIES {
            break;
        }
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if let Some(filter) = &filter {
            // A single file named as `path` is searched whatever the glob.
            let relative = entry.path().strip_prefix(&root).unwrap_or(entry.path());
            if entry.depth() > 0 && !filter.matches(relative) {
                continue;
            }
        }
        sink.path = workspace.display(entry.path());
        sink.lines.clear();
        sink.matches = 0;
        sink.limit = MAX_GREP_MATCHES - matches;
        sink.binary = false;
        if searcher
            .search_path(&matcher, entry.path(), &mut sink)
            .is_err()
        {
            // Unreadable files are skipped like binary ones.
            continue;
        }
        if sink.binary || sink.matches == 0 {
            continue;
        }
        if context > 0 && !out.is_empty() {
            out.push_str("--\n");
        }
        out.push_str(&sink.lines);
        matches += sink.matches;
        if matches >= MAX_GREP_MATCHES || out.len() >= MAX_GREP_BYTES {
            full = true;
            break;
        }
    }
    if out.is_empty() {
        let scope = match &args.glob {
            Some(glob) => format!("{shown} (files matching {glob:?})"),
            None => shown,
        };
        return Ok(format!("no matches for {:?} in {scope}", args.pattern));
    }
    if out.len() > MAX_GREP_BYTES {
        let mut end = MAX_GREP_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('\n');
    }
    if full {
        let _ = writeln!(
            out,
            "(stopped after {matches} match{}; narrow the pattern, path or glob to see the rest)",
            if matches == 1 { "" } else { "es" }
        );
    } else if visited > MAX_WALK_ENTRIES {
        let _ = writeln!(
            out,
            "(stopped after {MAX_WALK_ENTRIES} entries, so there may be more; pass a narrower \
             path)"
        );
    }
    Ok(out)
}

/// Collects one file's matches and context lines as text; drops them when the file turns out
/// to be binary.
struct Collect {
    path: String,
    lines: String,
    matches: usize,
    /// Matches this file may still add before the call's cap.
    limit: usize,
    binary: bool,
}

impl Collect {
    fn push(&mut self, separator: char, line_number: Option<u64>, bytes: &[u8]) {
        let text = String::from_utf8_lossy(trim_line_end(bytes));
        let _ = writeln!(
            self.lines,
            "{}{separator}{}{separator}{}",
            self.path,
            line_number.unwrap_or(0),
            cut_line(&text, MAX_GREP_LINE_CHARS)
        );
    }
}

impl Sink for Collect {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, Self::Error> {
        self.matches += 1;
        self.push(':', mat.line_number(), mat.bytes());
        Ok(self.matches < self.limit && self.lines.len() < MAX_GREP_BYTES)
    }

    fn context(&mut self, _: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, Self::Error> {
        self.push('-', ctx.line_number(), ctx.bytes());
        Ok(true)
    }

    fn context_break(&mut self, _: &Searcher) -> Result<bool, Self::Error> {
        self.lines.push_str("--\n");
        Ok(true)
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> Result<bool, Self::Error> {
        self.binary = true;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::files::tests::{TestResult, ctx, fails};

    /// A plain directory (no git) with a .gitignore, a hidden file, a binary and sources.
    fn tree() -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/tools"))?;
        std::fs::create_dir_all(root.join("target/debug"))?;
        std::fs::create_dir_all(root.join(".git"))?;
        std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/main\n")?;
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n")?;
        std::fs::write(root.join(".env"), "SECRET=1\n")?;
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"demo\"\n")?;
        std::fs::write(root.join("build.log"), "fn main in a log\n")?;
        std::fs::write(
            root.join("src/lib.rs"),
            "pub mod tools;\n\npub fn main() {}\n",
        )?;
        std::fs::write(
            root.join("src/tools/mod.rs"),
            "// tools\nfn one() {}\nfn two() {}\nfn Main() {}\n",
        )?;
        std::fs::write(root.join("src/data.bin"), b"fn main\0\x01\x02")?;
        std::fs::write(root.join("target/debug/out.rs"), "fn main() {}\n")?;
        Ok(dir)
    }

    #[tokio::test]
    async fn list_honours_gitignore_and_depth() -> TestResult {
        let dir = tree()?;
        let ctx = ctx(dir.path())?;
        let out = List.call(&ctx, json!({})).await?;
        assert_eq!(
            out,
            "./\nCargo.toml\nsrc/\n  data.bin\n  lib.rs\n  tools/\n(depth 2: list a \
             subdirectory or pass a larger depth to see inside the deepest directories)\n"
        );
        let deep = List.call(&ctx, json!({"path": "src", "depth": 3})).await?;
        assert_eq!(deep, "src/\ndata.bin\nlib.rs\ntools/\n  mod.rs\n");
        let file = fails(&List, &ctx, json!({"path": "Cargo.toml"})).await?;
        assert!(file.contains("use read_file"));
        let outside = fails(&List, &ctx, json!({"path": "../x"})).await?;
        assert!(outside.contains("outside the working directory"));
        Ok(())
    }

    #[tokio::test]
    async fn list_caps_entries() -> TestResult {
        let dir = tempfile::tempdir()?;
        for i in 0..(MAX_LIST_ENTRIES + 5) {
            std::fs::write(dir.path().join(format!("f{i:04}")), "")?;
        }
        let ctx = ctx(dir.path())?;
        let out = List.call(&ctx, json!({"depth": 1})).await?;
        assert_eq!(out.lines().count(), MAX_LIST_ENTRIES + 2);
        assert!(out.contains("(stopped at 500 entries;"));
        Ok(())
    }

    #[tokio::test]
    async fn glob_honours_gitignore() -> TestResult {
        let dir = tree()?;
        let ctx = ctx(dir.path())?;
        let out = Glob.call(&ctx, json!({"pattern": "**/*.rs"})).await?;
        assert_eq!(out, "src/lib.rs\nsrc/tools/mod.rs\n");
        let under = Glob
            .call(&ctx, json!({"pattern": "*.rs", "path": "src/tools"}))
            .await?;
        assert_eq!(under, "src/tools/mod.rs\n");
        let none = Glob.call(&ctx, json!({"pattern": "*.rs"})).await?;
        assert!(
            none.starts_with("no files match \"*.rs\" under ."),
            "{none}"
        );
        assert!(none.contains("use \"**/*.rs\""));
        let bad = fails(&Glob, &ctx, json!({"pattern": "src/[x"})).await?;
        assert!(bad.starts_with("invalid glob pattern \"src/[x\""), "{bad}");
        Ok(())
    }

    #[tokio::test]
    async fn grep_honours_gitignore_and_skips_binaries() -> TestResult {
        let dir = tree()?;
        let ctx = ctx(dir.path())?;
        let out = Grep.call(&ctx, json!({"pattern": "fn main"})).await?;
        assert_eq!(out, "src/lib.rs:3:pub fn main() {}\n");
        let ci = Grep
            .call(
                &ctx,
                json!({"pattern": "fn main", "case_insensitive": true, "glob": "*.rs"}),
            )
            .await?;
        assert_eq!(
            ci,
            "src/lib.rs:3:pub fn main() {}\nsrc/tools/mod.rs:4:fn Main() {}\n"
        );
        let none = Grep
            .call(&ctx, json!({"pattern": "fn main", "glob": "*.toml"}))
            .await?;
        assert_eq!(
            none,
            "no matches for \"fn main\" in . (files matching \"*.toml\")"
        );
        Ok(())
    }

    #[tokio::test]
    async fn grep_shows_context_and_rejects_bad_regex() -> TestResult {
        let dir = tree()?;
        let ctx = ctx(dir.path())?;
        let out = Grep
            .call(
                &ctx,
                json!({"pattern": "^fn t", "path": "src/tools/mod.rs", "context": 1}),
            )
            .await?;
        assert_eq!(
            out,
            "src/tools/mod.rs-2-fn one() {}\nsrc/tools/mod.rs:3:fn two() {}\nsrc/tools/mod.rs-4-fn Main() {}\n"
        );
        let two = Grep
            .call(
                &ctx,
                json!({"pattern": "tools|main", "path": "src", "context": 1}),
            )
            .await?;
        assert!(two.contains("\n--\nsrc/tools/mod.rs:1:// tools\n"), "{two}");
        let bad = fails(&Grep, &ctx, json!({"pattern": "fn (main"})).await?;
        assert!(bad.starts_with("invalid regex \"fn (main\": "), "{bad}");
        assert!(bad.contains("unclosed group"), "{bad}");
        let outside = fails(&Grep, &ctx, json!({"pattern": "x", "path": "../x"})).await?;
        assert!(outside.contains("outside the working directory"));
        Ok(())
    }

    #[tokio::test]
    async fn grep_caps_matches() -> TestResult {
        let dir = tempfile::tempdir()?;
        let text: String = (0..300).map(|i| format!("hit {i}\n")).collect();
        std::fs::write(dir.path().join("many.txt"), text)?;
        let ctx = ctx(dir.path())?;
        let out = Grep.call(&ctx, json!({"pattern": "hit"})).await?;
        assert_eq!(out.lines().count(), MAX_GREP_MATCHES + 1);
        assert!(out.ends_with(
            "(stopped after 200 matches; narrow the pattern, path or glob to see the rest)\n"
        ));
        Ok(())
    }
}
