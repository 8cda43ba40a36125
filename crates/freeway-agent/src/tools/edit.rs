//! `edit_file`: an exact search/replace or a unified diff applied to one file, all or nothing,
//! with failures that show the model the text it should have matched.

use freeway_types::ToolDefinition;
use serde::Deserialize;
use serde_json::{Value, json};

use super::files::{blocking, cut_line, plural, read_text, write_atomic};
use crate::tool::{Tool, ToolContext, ToolError, ToolKind, parse_args};
use crate::workspace::Workspace;

/// Lines of file text quoted in a failure message at most.
const QUOTED_LINES: usize = 40;
/// Characters of one quoted line at most.
const QUOTED_LINE_CHARS: usize = 300;
/// Line numbers listed in a message at most.
const LISTED_LINES: usize = 20;

/// Changes part of a file: `old_string` → `new_string`, or a unified diff.
pub struct EditFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditArgs {
    path: String,
    #[serde(default)]
    old_string: Option<String>,
    #[serde(default)]
    new_string: Option<String>,
    #[serde(default)]
    replace_all: Option<bool>,
    #[serde(default)]
    patch: Option<String>,
}

#[async_trait::async_trait]
impl Tool for EditFile {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "edit_file".into(),
            description: Some(
                "Edit an existing text file, in one of two forms. (1) Search/replace: \
                 `old_string` is replaced by `new_string`; old_string must match the file \
                 exactly (whitespace and indentation included, no line numbers) and exactly once \
                 unless `replace_all` is true, so include enough surrounding lines to make it \
                 unique. (2) `patch`: a unified diff of this one file (`@@ -a,b +c,d @@` hunks of \
                 ' ' context, '-' removed and '+' added lines; `---`/`+++` headers optional); \
                 hunks are located by their context, near the stated line. Either every change \
                 applies or the file is left untouched. To create a file use write_file."
                    .into(),
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "File to edit, relative to the working directory (or absolute inside it)."
                    },
                    "old_string": {
                        "type": "string",
                        "description": "Exact text to replace (search/replace form). Not empty."
                    },
                    "new_string": {
                        "type": "string",
                        "description": "Replacement text (search/replace form); empty to delete old_string."
                    },
                    "replace_all": {
                        "type": "boolean",
                        "description": "Replace every occurrence of old_string instead of requiring exactly one; default false."
                    },
                    "patch": {
                        "type": "string",
                        "description": "A unified diff of this file (patch form), instead of old_string/new_string."
                    }
                },
                "required": ["path"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Edit
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: EditArgs = parse_args("edit_file", args)?;
        let workspace = ctx.workspace.clone();
        blocking(move || edit_file(&workspace, args)).await
    }
}

fn edit_file(workspace: &Workspace, args: EditArgs) -> Result<String, ToolError> {
    enum Form {
        Replace { old: String, new: String, all: bool },
        Patch(String),
    }
    let form = match (args.patch, args.old_string, args.new_string) {
        (Some(patch), None, None) => {
            if args.replace_all.is_some() {
                return Err(ToolError::new(
                    "replace_all goes with old_string/new_string, not with patch; drop it",
                ));
            }
            Form::Patch(patch)
        }
        (None, Some(old), Some(new)) => Form::Replace {
            old,
            new,
            all: args.replace_all.unwrap_or(false),
        },
        (Some(_), _, _) => {
            return Err(ToolError::new(
                "give either patch or old_string and new_string, not both",
            ));
        }
        (None, Some(_), None) => {
            return Err(ToolError::new(
                "new_string is missing; give the replacement text (empty to delete old_string)",
            ));
        }
        (None, None, Some(_)) => {
            return Err(ToolError::new(
                "old_string is missing; give the exact text to replace",
            ));
        }
        (None, None, None) => {
            return Err(ToolError::new(
                "nothing to do: give old_string and new_string for a search/replace, or patch \
                 for a unified diff",
            ));
        }
    };

    let path = workspace.resolve(&args.path)?;
    let shown = workspace.display(&path);
    if !path.exists() {
        return Err(ToolError(format!(
            "{shown} does not exist; use write_file to create it, or list or glob to find the \
             right path"
        )));
    }
    let content = read_text(&path, &shown)?;
    let (edited, summary) = match form {
        Form::Replace { old, new, all } => replace(&content, &shown, &old, &new, all)?,
        Form::Patch(patch) => {
            let hunks = parse_patch(&patch)?;
            apply_hunks(&content, &shown, &hunks)?
        }
    };
    write_atomic(&path, edited.as_bytes())
        .map_err(|e| ToolError(format!("cannot write {shown}: {e}")))?;
    Ok(summary)
}

/// The search/replace form: the edited content and what to tell the model.
fn replace(
    content: &str,
    shown: &str,
    old: &str,
    new: &str,
    all: bool,
) -> Result<(String, String), ToolError> {
    if old.is_empty() {
        return Err(ToolError::new(
            "old_string is empty; give the exact text to replace (to add text, include the \
             neighbouring line in old_string and new_string; to create a file use write_file)",
        ));
    }
    if old == new {
        return Err(ToolError::new(
            "old_string and new_string are the same, so nothing would change; give the new text \
             in new_string",
        ));
    }
    let mut matches: Vec<usize> = content.match_indices(old).map(|(i, _)| i).collect();
    let (mut old, mut new) = (old.to_owned(), new.to_owned());
    // A model writes `\n`; a CRLF file has `\r\n`.
    if matches.is_empty() && content.contains("\r\n") && old.contains('\n') && !old.contains('\r') {
        let crlf = old.replace('\n', "\r\n");
        matches = content.match_indices(&crlf).map(|(i, _)| i).collect();
        if !matches.is_empty() {
            old = crlf;
            new = new.replace('\n', "\r\n");
        }
    }
    if matches.is_empty() {
        return Err(ToolError(not_found(content, shown, &old)));
    }
    let lines = line_numbers(content, &matches);
    if matches.len() > 1 && !all {
        return Err(ToolError(format!(
            "old_string matches {} times in {shown}, at lines {}; include more surrounding lines \
             in old_string so that it matches once, or set replace_all to true to replace every \
             occurrence",
            matches.len(),
            list_numbers(&lines)
        )));
    }
    let edited = if all {
        content.replace(&old, &new)
    } else {
        content.replacen(&old, &new, 1)
    };
    let summary = match lines.as_slice() {
        [line] => format!("edited {shown}: 1 replacement at line {line}"),
        _ => format!(
            "edited {shown}: {} replacements at lines {}",
            lines.len(),
            list_numbers(&lines)
        ),
    };
    Ok((edited, summary))
}

/// Explains a missing `old_string`, quoting the nearest text of the file.
fn not_found(content: &str, shown: &str, old: &str) -> String {
    let file_lines: Vec<&str> = content.lines().collect();
    let old_lines: Vec<&str> = old.lines().collect();
    let numbered_prefix = |line: &str| {
        let rest = line.trim_start();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        digits > 0 && rest[digits..].starts_with('\t')
    };
    if old_lines.iter().any(|l| !l.trim().is_empty())
        && old_lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .all(|l| numbered_prefix(l))
    {
        return format!(
            "old_string was not found in {shown}; it seems to start its lines with read_file's \
             line numbers, which are not part of the file: leave out the number and the tab \
             before each line"
        );
    }
    // Blank lines at either end of old_string are not worth matching on.
    let start = old_lines.iter().position(|l| !l.trim().is_empty());
    let end = old_lines.iter().rposition(|l| !l.trim().is_empty());
    let (Some(start), Some(end)) = (start, end) else {
        return format!(
            "old_string (only whitespace) was not found in {shown}; give the exact text to \
             replace, with a non-blank line"
        );
    };
    let wanted: Vec<String> = old_lines[start..=end]
        .iter()
        .map(|l| normalize(l))
        .collect();
    let have: Vec<String> = file_lines.iter().map(|l| normalize(l)).collect();
    let n = wanted.len();

    let normalized_matches: Vec<usize> = (0..have.len().saturating_sub(n - 1))
        .filter(|&i| have[i..i + n] == wanted[..])
        .collect();
    if let Some(&first) = normalized_matches.first() {
        let at: Vec<usize> = normalized_matches.iter().map(|i| i + 1).collect();
        return format!(
            "old_string was not found exactly in {shown}, but it matches after normalizing \
             whitespace and indentation at line{} {}. The actual text there is:\n{}\nCopy \
             old_string from it exactly, indentation included.",
            plural(at.len()),
            list_numbers(&at),
            quote(&file_lines, first, n)
        );
    }

    // The window sharing the most lines with old_string, compared after normalizing.
    let mut best: Option<(usize, usize)> = None;
    if have.len() >= n {
        for i in 0..=have.len() - n {
            let score = (0..n)
                .filter(|&j| !wanted[j].is_empty() && have[i + j] == wanted[j])
                .count();
            if score > 0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((i, score));
            }
        }
    }
    // A single line may sit inside a longer one.
    if best.is_none() && n == 1 {
        best = have
            .iter()
            .position(|l| l.contains(&wanted[0]))
            .map(|i| (i, 1));
    }
    match best {
        Some((i, _)) => format!(
            "old_string was not found in {shown}. The closest text, at line {}, is:\n{}\nIf \
             that is the place, copy old_string from it exactly; otherwise read_file {shown} to \
             see its current content.",
            i + 1,
            quote(&file_lines, i, n)
        ),
        None => format!(
            "old_string was not found in {shown}, nor anything close to it; read_file {shown} to \
             see its current content and copy old_string from it exactly (without the line \
             numbers)"
        ),
    }
}

/// Whitespace runs collapsed to one space, ends trimmed.
fn normalize(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `count` lines of `lines` from index `start`, numbered like `read_file`.
fn quote(lines: &[&str], start: usize, count: usize) -> String {
    let end = (start + count.clamp(1, QUOTED_LINES)).min(lines.len());
    let mut out: Vec<String> = (start..end)
        .map(|i| format!("{:>6}\t{}", i + 1, cut_line(lines[i], QUOTED_LINE_CHARS)))
        .collect();
    if start + count > end {
        out.push(format!("  … ({} more lines)", start + count - end));
    }
    out.join("\n")
}

/// The 1-based line of each byte offset, offsets ascending.
fn line_numbers(content: &str, offsets: &[usize]) -> Vec<usize> {
    let mut line = 1;
    let mut from = 0;
    offsets
        .iter()
        .map(|&at| {
            line += content[from..at].matches('\n').count();
            from = at;
            line
        })
        .collect()
}

fn list_numbers(numbers: &[usize]) -> String {
    let mut listed: Vec<String> = numbers
        .iter()
        .take(LISTED_LINES)
        .map(ToString::to_string)
        .collect();
    if numbers.len() > LISTED_LINES {
        listed.push(format!("… ({} more)", numbers.len() - LISTED_LINES));
    }
    listed.join(", ")
}

#[derive(Debug, PartialEq, Eq)]
enum PatchLine {
    Context(String),
    Remove(String),
    Add(String),
}

#[derive(Debug)]
struct Hunk {
    header: String,
    /// The 1-based first old line the header states; `None` for a bare `@@`.
    old_start: Option<usize>,
    lines: Vec<PatchLine>,
}

impl Hunk {
    /// The lines the file must hold: context and removed ones.
    fn old(&self) -> Vec<&str> {
        self.lines
            .iter()
            .filter_map(|l| match l {
                PatchLine::Context(t) | PatchLine::Remove(t) => Some(t.as_str()),
                PatchLine::Add(_) => None,
            })
            .collect()
    }
}

fn parse_patch(patch: &str) -> Result<Vec<Hunk>, ToolError> {
    let mut lines: Vec<&str> = patch.lines().collect();
    // A blank line closing the patch is not context.
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut hunks: Vec<Hunk> = Vec::new();
    for (i, &line) in lines.iter().enumerate() {
        let number = i + 1;
        if line.starts_with("--- ") && lines.get(i + 1).is_some_and(|l| l.starts_with("+++ ")) {
            if !hunks.is_empty() {
                return Err(ToolError::new(
                    "the patch changes more than one file; send one edit_file call per file",
                ));
            }
            continue;
        }
        if line.starts_with("@@") {
            hunks.push(Hunk {
                header: line.to_owned(),
                old_start: parse_hunk_header(line, number)?,
                lines: Vec::new(),
            });
            continue;
        }
        let Some(hunk) = hunks.last_mut() else {
            // Headers (`diff --git`, `index`, `---`, `+++`) and fences before the first hunk.
            continue;
        };
        if line.starts_with("+++ ") && hunk.lines.is_empty() {
            continue;
        }
        match line.chars().next() {
            Some(' ') => hunk.lines.push(PatchLine::Context(line[1..].to_owned())),
            Some('-') => hunk.lines.push(PatchLine::Remove(line[1..].to_owned())),
            Some('+') => hunk.lines.push(PatchLine::Add(line[1..].to_owned())),
            // "\ No newline at end of file": the file keeps its own ending.
            Some('\\') => {}
            // Editors and models drop the space of a blank context line.
            None => hunk.lines.push(PatchLine::Context(String::new())),
            Some(_) if line.starts_with("```") => {}
            Some(_) => {
                return Err(ToolError(format!(
                    "patch line {number} in hunk {} starts with neither ' ', '-' nor '+': \
                     {line:?}; prefix context lines with a space",
                    hunks.len()
                )));
            }
        }
    }
    if hunks.is_empty() {
        return Err(ToolError::new(
            "the patch has no hunks; give a unified diff with hunks starting with \
             `@@ -a,b +c,d @@`, or use old_string/new_string",
        ));
    }
    for (k, hunk) in hunks.iter().enumerate() {
        if !hunk
            .lines
            .iter()
            .any(|l| matches!(l, PatchLine::Remove(_) | PatchLine::Add(_)))
        {
            return Err(ToolError(format!(
                "hunk {} ({}) has no '-' or '+' lines, so it changes nothing; remove it or add \
                 the change",
                k + 1,
                hunk.header
            )));
        }
    }
    Ok(hunks)
}

/// The old start line of `@@ -a,b +c,d @@`; `None` for a header without numbers.
fn parse_hunk_header(line: &str, number: usize) -> Result<Option<usize>, ToolError> {
    let body = line.trim_start_matches('@').trim_start();
    if body.is_empty() || body.starts_with('@') || !body.starts_with('-') {
        return Ok(None);
    }
    let range = body[1..].split_whitespace().next().unwrap_or_default();
    let start = range.split(',').next().unwrap_or_default();
    start.parse::<usize>().map(Some).map_err(|_| {
        ToolError(format!(
            "patch line {number} is not a valid hunk header: {line:?}; write it as \
             `@@ -a,b +c,d @@` with a the first old line"
        ))
    })
}

/// Applies every hunk to `content` or none: the edited content and what to tell the model.
fn apply_hunks(content: &str, shown: &str, hunks: &[Hunk]) -> Result<(String, String), ToolError> {
    let eol = if content.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let ends_with_newline = content.is_empty() || content.ends_with('\n');
    let lines: Vec<&str> = content.lines().collect();

    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    let mut pos = 0usize;
    let mut drift = 0isize;
    let (mut added, mut removed) = (0usize, 0usize);
    let mut moved = Vec::new();
    for (k, hunk) in hunks.iter().enumerate() {
        let old = hunk.old();
        // Where the stated line puts the hunk: a pure insertion `-a,0` goes after line a.
        let base = hunk.old_start.map(|a| {
            if old.is_empty() {
                a
            } else {
                a.saturating_sub(1)
            }
        });
        let expected = usize::try_from(base.unwrap_or(pos) as isize + drift)
            .unwrap_or(0)
            .clamp(pos, lines.len());
        let Some(at) = locate(&lines, &old, pos, expected) else {
            return Err(ToolError(hunk_failure(
                &lines,
                &old,
                shown,
                k,
                hunks.len(),
                hunk,
                expected,
            )));
        };
        if let Some(base) = base {
            drift = at as isize - base as isize;
            if drift != 0 {
                moved.push((k + 1, at + 1, drift));
            }
        }
        out.extend_from_slice(&lines[pos..at]);
        let mut cursor = at;
        for line in &hunk.lines {
            match line {
                // The file's own text: it may differ from the patch in trailing whitespace.
                PatchLine::Context(_) => {
                    out.push(lines[cursor]);
                    cursor += 1;
                }
                PatchLine::Remove(_) => {
                    cursor += 1;
                    removed += 1;
                }
                PatchLine::Add(text) => {
                    out.push(text);
                    added += 1;
                }
            }
        }
        pos = cursor;
    }
    out.extend_from_slice(&lines[pos..]);

    let mut edited = out.join(eol);
    if ends_with_newline && !out.is_empty() {
        edited.push_str(eol);
    }
    let mut summary = format!(
        "applied {} hunk{} to {shown} (+{added} -{removed} lines)",
        hunks.len(),
        plural(hunks.len())
    );
    for (k, line, drift) in moved {
        summary.push_str(&format!(
            "; hunk {k} applied at line {line} ({} lines {} the stated line)",
            drift.unsigned_abs(),
            if drift > 0 { "below" } else { "above" }
        ));
    }
    Ok((edited, summary))
}

/// Where `old` sits in `lines` at or after `from`, nearest to `expected` first: an exact match,
/// else one that differs only in trailing whitespace.
fn locate(lines: &[&str], old: &[&str], from: usize, expected: usize) -> Option<usize> {
    if old.is_empty() {
        return Some(expected);
    }
    let last = lines.len().checked_sub(old.len())?;
    if from > last {
        return None;
    }
    let nearest = |eq: &dyn Fn(&str, &str) -> bool| {
        let expected = expected.clamp(from, last);
        let distance = (expected - from).max(last - expected);
        (0..=distance)
            .flat_map(|d| [expected.checked_sub(d), expected.checked_add(d)])
            .flatten()
            .filter(|&i| i >= from && i <= last)
            .find(|&i| old.iter().enumerate().all(|(j, o)| eq(lines[i + j], o)))
    };
    nearest(&|a, b| a == b).or_else(|| nearest(&|a, b| a.trim_end() == b.trim_end()))
}

fn hunk_failure(
    lines: &[&str],
    old: &[&str],
    shown: &str,
    k: usize,
    total: usize,
    hunk: &Hunk,
    expected: usize,
) -> String {
    let wanted: Vec<String> = old.iter().map(|l| normalize(l)).collect();
    let have: Vec<String> = lines.iter().map(|l| normalize(l)).collect();
    let loose = (0..(have.len() + 1).saturating_sub(wanted.len()))
        .find(|&i| have[i..i + wanted.len()] == wanted[..]);
    let expected_text = old
        .iter()
        .take(QUOTED_LINES)
        .map(|l| format!("\t{}", cut_line(l, QUOTED_LINE_CHARS)))
        .collect::<Vec<_>>()
        .join("\n");
    let actual = if expected < lines.len() {
        format!(
            "actual lines from {}:\n{}",
            expected + 1,
            quote(lines, expected, old.len())
        )
    } else {
        format!("the file has only {} lines", lines.len())
    };
    let hint = match loose {
        Some(i) => format!(
            "\nThese lines match at line {} only after normalizing whitespace and indentation: \
             copy them exactly as the file has them.",
            i + 1
        ),
        None => String::new(),
    };
    format!(
        "hunk {} of {total} ({}) does not match {shown}: its context and '-' lines were not \
         found at line {} or anywhere after the previous hunk.\nexpected:\n{expected_text}\n\
         {actual}{hint}\nNothing was written. read_file those lines and resend the patch with \
         its context copied exactly, or use old_string/new_string.",
        k + 1,
        hunk.header,
        expected + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::files::tests::{TestResult, ctx, fails};

    const CODE: &str = "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n\nfn helper() {\n    let x = 1;\n}\n";

    #[tokio::test]
    async fn exact_edit_replaces_once() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("m.rs"), CODE)?;
        let ctx = ctx(dir.path())?;
        let out = EditFile
            .call(
                &ctx,
                json!({"path": "m.rs", "old_string": "    println!(\"{x}\");", "new_string": "    dbg!(x);"}),
            )
            .await?;
        assert_eq!(out, "edited m.rs: 1 replacement at line 3");
        let text = std::fs::read_to_string(dir.path().join("m.rs"))?;
        assert_eq!(text, CODE.replace("    println!(\"{x}\");", "    dbg!(x);"));
        Ok(())
    }

    #[tokio::test]
    async fn ambiguous_match_lists_lines_and_replace_all_takes_all() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("m.rs"), CODE)?;
        let ctx = ctx(dir.path())?;
        let args = json!({"path": "m.rs", "old_string": "let x = 1;", "new_string": "let x = 2;"});
        let err = fails(&EditFile, &ctx, args).await?;
        assert!(
            err.contains("matches 2 times in m.rs, at lines 2, 7"),
            "{err}"
        );
        assert!(err.contains("replace_all"));
        assert_eq!(std::fs::read_to_string(dir.path().join("m.rs"))?, CODE);

        let out = EditFile
            .call(
                &ctx,
                json!({"path": "m.rs", "old_string": "let x = 1;", "new_string": "let x = 2;", "replace_all": true}),
            )
            .await?;
        assert_eq!(out, "edited m.rs: 2 replacements at lines 2, 7");
        Ok(())
    }

    #[tokio::test]
    async fn missing_match_shows_the_nearest_text() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("m.rs"), CODE)?;
        let ctx = ctx(dir.path())?;

        // Wrong indentation: matches after normalizing whitespace.
        let err = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "fn helper() {\n  let x = 1;\n}", "new_string": "fn helper() {}"}),
        )
        .await?;
        assert!(
            err.contains("matches after normalizing whitespace and indentation at line 6"),
            "{err}"
        );
        assert!(err.contains("     7\t    let x = 1;"), "{err}");

        // One line right, one wrong: the closest window is quoted.
        let err = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "fn helper() {\n    let y = 1;", "new_string": ""}),
        )
        .await?;
        assert!(err.contains("The closest text, at line 6, is:"), "{err}");
        assert!(err.contains("     6\tfn helper() {"), "{err}");

        let err = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "nothing like it", "new_string": ""}),
        )
        .await?;
        assert!(err.contains("nor anything close to it"), "{err}");

        let err = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "     2\t    let x = 1;", "new_string": ""}),
        )
        .await?;
        assert!(err.contains("line numbers"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("m.rs"))?, CODE);
        Ok(())
    }

    #[tokio::test]
    async fn bad_arguments_are_explained() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("m.rs"), CODE)?;
        let ctx = ctx(dir.path())?;
        let empty = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "", "new_string": "x"}),
        )
        .await?;
        assert!(empty.starts_with("old_string is empty"));
        let same = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "fn main", "new_string": "fn main"}),
        )
        .await?;
        assert!(same.contains("are the same"));
        let both = fails(
            &EditFile,
            &ctx,
            json!({"path": "m.rs", "old_string": "a", "new_string": "b", "patch": "@@"}),
        )
        .await?;
        assert!(both.contains("not both"));
        let missing = fails(
            &EditFile,
            &ctx,
            json!({"path": "gone.rs", "old_string": "a", "new_string": "b"}),
        )
        .await?;
        assert!(missing.contains("use write_file to create it"));
        let outside = fails(
            &EditFile,
            &ctx,
            json!({"path": "../x", "old_string": "a", "new_string": "b"}),
        )
        .await?;
        assert!(outside.contains("outside the working directory"));
        Ok(())
    }

    #[tokio::test]
    async fn crlf_files_match_lf_old_strings() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("w.txt"), "one\r\ntwo\r\nthree\r\n")?;
        let ctx = ctx(dir.path())?;
        EditFile
            .call(
                &ctx,
                json!({"path": "w.txt", "old_string": "one\ntwo", "new_string": "1\n2"}),
            )
            .await?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("w.txt"))?,
            "1\r\n2\r\nthree\r\n"
        );
        Ok(())
    }

    fn lines(n: usize) -> String {
        (1..=n).map(|i| format!("line {i}\n")).collect()
    }

    #[tokio::test]
    async fn patch_with_two_hunks_applies_at_an_offset() -> TestResult {
        let dir = tempfile::tempdir()?;
        // Three lines more at the top than the patch was made against.
        let original = format!("extra a\nextra b\nextra c\n{}", lines(30));
        std::fs::write(dir.path().join("f.txt"), &original)?;
        let ctx = ctx(dir.path())?;
        let patch = "--- a/f.txt\n+++ b/f.txt\n@@ -4,3 +4,3 @@\n line 4\n-line 5\n+line five\n line 6\n@@ -20,2 +20,3 @@ fn section\n line 20\n+line 20.5\n line 21\n";
        let out = EditFile
            .call(&ctx, json!({"path": "f.txt", "patch": patch}))
            .await?;
        assert_eq!(
            out,
            "applied 2 hunks to f.txt (+2 -1 lines); hunk 1 applied at line 7 (3 lines below \
             the stated line); hunk 2 applied at line 23 (3 lines below the stated line)"
        );
        let expected = original
            .replace("line 5\n", "line five\n")
            .replace("line 21\n", "line 20.5\nline 21\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("f.txt"))?, expected);
        Ok(())
    }

    #[tokio::test]
    async fn failing_hunk_leaves_the_file_untouched() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("f.txt"), lines(30))?;
        let ctx = ctx(dir.path())?;
        let patch = "@@ -4,3 +4,3 @@\n line 4\n-line 5\n+line five\n line 6\n@@ -20,2 +20,2 @@\n line 20\n-line twenty-one\n+line 21!\n";
        let err = fails(&EditFile, &ctx, json!({"path": "f.txt", "patch": patch})).await?;
        assert!(
            err.starts_with("hunk 2 of 2 (@@ -20,2 +20,2 @@) does not match f.txt"),
            "{err}"
        );
        assert!(
            err.contains("expected:\n\tline 20\n\tline twenty-one\n"),
            "{err}"
        );
        assert!(
            err.contains("actual lines from 20:\n    20\tline 20\n    21\tline 21"),
            "{err}"
        );
        assert!(err.contains("Nothing was written"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.txt"))?,
            lines(30)
        );
        Ok(())
    }

    #[tokio::test]
    async fn patch_insertions_and_bad_patches() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("f.txt"), lines(3))?;
        let ctx = ctx(dir.path())?;
        EditFile
            .call(
                &ctx,
                json!({"path": "f.txt", "patch": "@@ -0,0 +1 @@\n+first\n@@ -3,0 +5 @@\n+last\n"}),
            )
            .await?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f.txt"))?,
            "first\nline 1\nline 2\nline 3\nlast\n"
        );
        let none = fails(
            &EditFile,
            &ctx,
            json!({"path": "f.txt", "patch": "just text"}),
        )
        .await?;
        assert!(none.contains("no hunks"));
        let garbled = fails(
            &EditFile,
            &ctx,
            json!({"path": "f.txt", "patch": "@@ -1 +1 @@\n-line 1\n*line one\n"}),
        )
        .await?;
        assert!(garbled.contains("starts with neither"), "{garbled}");
        let two_files =
            "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n";
        let err = fails(
            &EditFile,
            &ctx,
            json!({"path": "f.txt", "patch": two_files}),
        )
        .await?;
        assert!(err.contains("more than one file"));
        Ok(())
    }

    #[tokio::test]
    async fn patch_tolerates_trailing_spaces_and_hints_at_indentation() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("m.rs"), CODE)?;
        let ctx = ctx(dir.path())?;
        // The model's context lost the file's indentation.
        let patch = "@@ -6,3 +6,3 @@\n fn helper() {\n-let x = 1;\n+let x = 2;\n }\n";
        let err = fails(&EditFile, &ctx, json!({"path": "m.rs", "patch": patch})).await?;
        assert!(
            err.contains("match at line 6 only after normalizing whitespace"),
            "{err}"
        );
        // Trailing whitespace on a context line is forgiven; the file keeps its own text.
        let patch = "@@ -6,3 +6,3 @@\n fn helper() {  \n-    let x = 1;\n+    let x = 2;\n }\n";
        EditFile
            .call(&ctx, json!({"path": "m.rs", "patch": patch}))
            .await?;
        let text = std::fs::read_to_string(dir.path().join("m.rs"))?;
        assert!(
            text.ends_with("fn helper() {\n    let x = 2;\n}\n"),
            "{text}"
        );
        Ok(())
    }
}
