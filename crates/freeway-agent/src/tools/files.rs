//! `read_file` and `write_file`, and what the file tools share: running blocking filesystem work
//! off the async threads, atomic writes and the checks that tell text from binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use freeway_types::ToolDefinition;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::tool::{Tool, ToolContext, ToolError, ToolKind, parse_args};
use crate::workspace::Workspace;

/// Lines `read_file` shows when no limit is given, and the most it shows at once.
const MAX_LINES: usize = 2000;
/// Characters of one line `read_file` shows before cutting it.
const MAX_LINE_CHARS: usize = 2000;
/// Bytes of numbered text one `read_file` call returns at most, whatever the line count.
const MAX_OUTPUT_BYTES: usize = 128 * 1024;
/// How much of a file is sniffed for NUL bytes to call it binary.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;
/// Bytes of one line kept in memory: enough for [`MAX_LINE_CHARS`] characters of any UTF-8.
const KEPT_LINE_BYTES: usize = MAX_LINE_CHARS * 4 + 2;

/// Reads a text file as numbered lines, a window at a time.
pub struct ReadFile;

/// Creates or replaces a whole file.
pub struct WriteFile;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    path: String,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    limit: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    path: String,
    content: String,
}

#[async_trait::async_trait]
impl Tool for ReadFile {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "read_file".into(),
            description: Some(format!(
                "Read a text file of the working directory. Returns its lines numbered like \
                 `cat -n` (line number, a tab, the line); at most {MAX_LINES} lines per call, \
                 lines longer than {MAX_LINE_CHARS} characters are cut. When only part of the \
                 file is shown a footer gives the range and the total: call again with `offset` \
                 to read further. The numbers are not part of the file: leave them out of \
                 edit_file's old_string."
            )),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "File to read, relative to the working directory (or absolute inside it)."
                    },
                    "offset": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "1-based number of the first line to show; default 1."
                    },
                    "limit": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_LINES,
                        "description": format!("Number of lines to show; default and maximum {MAX_LINES}.")
                    }
                },
                "required": ["path"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Read
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: ReadArgs = parse_args("read_file", args)?;
        let workspace = ctx.workspace.clone();
        blocking(move || read_file(&workspace, &args)).await
    }
}

#[async_trait::async_trait]
impl Tool for WriteFile {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition {
            name: "write_file".into(),
            description: Some(
                "Write a whole file of the working directory, creating it and its parent \
                 directories if needed, or replacing all of its content. To change part of an \
                 existing file prefer edit_file."
                    .into(),
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": {
                        "type": "string",
                        "description": "File to write, relative to the working directory (or absolute inside it)."
                    },
                    "content": {
                        "type": "string",
                        "description": "The complete new content of the file."
                    }
                },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
            strict: None,
        }
    }

    fn kind(&self) -> ToolKind {
        ToolKind::Edit
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<String, ToolError> {
        let args: WriteArgs = parse_args("write_file", args)?;
        let workspace = ctx.workspace.clone();
        blocking(move || write_file(&workspace, &args)).await
    }
}

fn read_file(workspace: &Workspace, args: &ReadArgs) -> Result<String, ToolError> {
    let path = workspace.resolve(&args.path)?;
    let shown = workspace.display(&path);
    let limit = match args.limit {
        Some(0) => return Err(ToolError::new("limit must be at least 1")),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(MAX_LINES),
        None => MAX_LINES,
    };
    // Line numbers are 1-based; a 0 is read as "from the start".
    let first = usize::try_from(args.offset.unwrap_or(1).max(1)).unwrap_or(usize::MAX);

    let file = open_regular_file(&path, &shown)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    if reader
        .fill_buf()
        .map_err(|e| io_error("read", &shown, &e))?
        .iter()
        .take(BINARY_SNIFF_BYTES)
        .any(|&b| b == 0)
    {
        return Err(ToolError(format!(
            "{shown} is a binary file (it contains NUL bytes); read_file shows text files only"
        )));
    }

    let mut out = String::new();
    let mut total = 0usize;
    let mut last_shown = 0usize;
    let mut cut_for_size = false;
    let mut kept = Vec::new();
    while let Some(len) =
        next_line(&mut reader, &mut kept).map_err(|e| io_error("read", &shown, &e))?
    {
        total += 1;
        if total < first || total >= first.saturating_add(limit) || cut_for_size {
            continue;
        }
        let text = String::from_utf8_lossy(trim_line_end(&kept));
        let text = match text.char_indices().nth(MAX_LINE_CHARS) {
            None if len <= kept.len() => text,
            None => format!("{text}… [line cut; {len} bytes in all]").into(),
            Some((end, _)) => format!("{}… [line cut; {len} bytes in all]", &text[..end]).into(),
        };
        let numbered = format!("{total:>6}\t{text}\n");
        if out.len() + numbered.len() > MAX_OUTPUT_BYTES && last_shown > 0 {
            cut_for_size = true;
            continue;
        }
        out.push_str(&numbered);
        last_shown = total;
    }

    if total == 0 {
        return Ok(format!("{shown} is empty (0 bytes)"));
    }
    if first > total {
        return Err(ToolError(format!(
            "offset {first} is past the end of {shown}, which has {total} line{}; use an offset \
             from 1 to {total}",
            plural(total)
        )));
    }
    if first > 1 || last_shown < total {
        out.push_str(&format!(
            "({}lines {first}-{last_shown} of {total}; use offset to read more)\n",
            if cut_for_size {
                "output size limit reached; "
            } else {
                ""
            }
        ));
    }
    Ok(out)
}

fn write_file(workspace: &Workspace, args: &WriteArgs) -> Result<String, ToolError> {
    let path = workspace.resolve(&args.path)?;
    let shown = workspace.display(&path);
    let existed = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => {
            return Err(ToolError(format!(
                "{shown} is a directory; give the path of a file to write"
            )));
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_error("inspect", &shown, &e)),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            ToolError(format!(
                "cannot create the directories of {shown}: {e}; check that no parent is a file"
            ))
        })?;
    }
    write_atomic(&path, args.content.as_bytes()).map_err(|e| io_error("write", &shown, &e))?;
    let bytes = args.content.len();
    let verb = if existed { "overwrote" } else { "created" };
    Ok(format!("{verb} {shown} ({bytes} byte{})", plural(bytes)))
}

/// Opens `path` for reading, explaining a missing file or a directory for the model.
pub(super) fn open_regular_file(path: &Path, shown: &str) -> Result<std::fs::File, ToolError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(ToolError(format!(
                "{shown} is a directory, not a file; use list to see its entries"
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ToolError(format!(
                "{shown} does not exist; use list or glob to find the right path"
            )));
        }
        Err(e) => return Err(io_error("inspect", shown, &e)),
    }
    std::fs::File::open(path).map_err(|e| io_error("open", shown, &e))
}

/// Reads a whole text file for editing: UTF-8, no NUL bytes.
pub(super) fn read_text(path: &Path, shown: &str) -> Result<String, ToolError> {
    let mut file = open_regular_file(path, shown)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error("read", shown, &e))?;
    let head = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
    if head.contains(&0) {
        return Err(ToolError(format!(
            "{shown} is a binary file (it contains NUL bytes); only text files can be edited"
        )));
    }
    String::from_utf8(bytes).map_err(|_| {
        ToolError(format!(
            "{shown} is not valid UTF-8 text; only UTF-8 files can be edited, rewrite it whole \
             with write_file if you must"
        ))
    })
}

/// Reads the next line, keeping at most [`KEPT_LINE_BYTES`] of it in `kept` (its `\n` included
/// when kept), so that one giant line cannot fill memory. Returns the line's whole length in
/// bytes without the `\n`, or `None` at the end of the file.
fn next_line(reader: &mut impl BufRead, kept: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    kept.clear();
    let mut len = 0usize;
    let mut started = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(started.then_some(len));
        }
        started = true;
        let (used, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = KEPT_LINE_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..used.min(room)]);
        len += used;
        reader.consume(used);
        if newline {
            return Ok(Some(len - 1));
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader never sees half a file. An existing file keeps its permissions.
pub(super) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let permissions = std::fs::metadata(path).ok().map(|m| m.permissions());
    let (temp, mut file) = create_temp(dir, &name)?;
    let written = (|| {
        file.write_all(bytes)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mut attempt = 0u32;
    loop {
        let temp = dir.join(format!(
            ".{name}.{}.{seed:x}{attempt}.tmp",
            std::process::id()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs blocking filesystem work on Tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ToolError(format!("the tool stopped unexpectedly: {e}")))?
}

/// Fails once the step is aborted, for loops over many files.
pub(super) fn check_cancelled(cancel: &CancellationToken) -> Result<(), ToolError> {
    if cancel.is_cancelled() {
        Err(ToolError::new("cancelled"))
    } else {
        Ok(())
    }
}

pub(super) fn io_error(action: &str, shown: &str, error: &std::io::Error) -> ToolError {
    ToolError(format!("cannot {action} {shown}: {error}"))
}

/// `line` without its `\n` or `\r\n`.
pub(super) fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `text` cut to `max` characters, with a marker saying how long it was.
pub(super) fn cut_line(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!(
            "{}… [line cut, {} characters in all]",
            &text[..end],
            text.chars().count()
        )
        .into(),
    }
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::Arc;

    use freeway_sandbox::{Isolation, OnMissing, Sandbox, SandboxConfig};

    pub(in crate::tools) type TestResult = Result<(), Box<dyn std::error::Error>>;

    pub(in crate::tools) fn ctx(dir: &Path) -> Result<ToolContext, Box<dyn std::error::Error>> {
        let config = SandboxConfig {
            workspace: dir.to_path_buf(),
            on_missing: OnMissing::Degrade,
            ..SandboxConfig::default()
        };
        Ok(ToolContext {
            workspace: Workspace::new(dir)?,
            sandbox: Arc::new(Sandbox::new(config)?),
            isolation: Isolation::WorkspaceWrite,
            output: None,
            cancel: CancellationToken::new(),
        })
    }

    /// The error message of a call that must fail.
    pub(in crate::tools) async fn fails(
        tool: &dyn Tool,
        ctx: &ToolContext,
        args: Value,
    ) -> Result<String, Box<dyn std::error::Error>> {
        match tool.call(ctx, args).await {
            Ok(out) => Err(format!("expected an error, got: {out}").into()),
            Err(e) => Ok(e.0),
        }
    }

    fn numbered(lines: usize) -> String {
        (1..=lines).map(|i| format!("line {i}\n")).collect()
    }

    #[tokio::test]
    async fn reads_numbered_lines_with_offset_and_limit() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.txt"), numbered(240))?;
        let ctx = ctx(dir.path())?;

        let out = ReadFile
            .call(&ctx, json!({"path": "a.txt", "offset": 10, "limit": 50}))
            .await?;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.first(), Some(&"    10\tline 10"));
        assert_eq!(lines.get(49), Some(&"    59\tline 59"));
        assert_eq!(
            lines.last(),
            Some(&"(lines 10-59 of 240; use offset to read more)")
        );
        assert_eq!(lines.len(), 51);

        let whole = ReadFile.call(&ctx, json!({"path": "a.txt"})).await?;
        assert_eq!(whole.lines().count(), 240);
        assert!(!whole.contains("use offset"));
        Ok(())
    }

    #[tokio::test]
    async fn read_caps_lines_and_cuts_long_ones() -> TestResult {
        let dir = tempfile::tempdir()?;
        let mut text = numbered(2500);
        text.insert_str(0, &format!("{}\n", "x".repeat(3000)));
        std::fs::write(dir.path().join("big.txt"), text)?;
        let ctx = ctx(dir.path())?;
        let out = ReadFile.call(&ctx, json!({"path": "big.txt"})).await?;
        assert!(out.contains("… [line cut; 3000 bytes in all]"), "{out}");
        assert!(out.ends_with("(lines 1-2000 of 2501; use offset to read more)\n"));
        Ok(())
    }

    #[tokio::test]
    async fn read_explains_each_failure() -> TestResult {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("src"))?;
        std::fs::write(dir.path().join("blob.bin"), b"abc\0def")?;
        std::fs::write(dir.path().join("short.txt"), "one\ntwo\nthree")?;
        std::fs::write(dir.path().join("empty.txt"), "")?;
        let ctx = ctx(dir.path())?;

        let missing = fails(&ReadFile, &ctx, json!({"path": "nope.rs"})).await?;
        assert_eq!(
            missing,
            "nope.rs does not exist; use list or glob to find the right path"
        );
        let directory = fails(&ReadFile, &ctx, json!({"path": "src"})).await?;
        assert!(directory.contains("is a directory") && directory.contains("use list"));
        let binary = fails(&ReadFile, &ctx, json!({"path": "blob.bin"})).await?;
        assert!(binary.contains("binary file"));
        let past = fails(&ReadFile, &ctx, json!({"path": "short.txt", "offset": 9})).await?;
        assert!(past.contains("which has 3 lines"), "{past}");
        let outside = fails(&ReadFile, &ctx, json!({"path": "../x"})).await?;
        assert!(outside.contains("outside the working directory"));
        let unknown = fails(&ReadFile, &ctx, json!({"path": "short.txt", "lines": 3})).await?;
        assert!(unknown.contains("invalid arguments for read_file"));

        let empty = ReadFile.call(&ctx, json!({"path": "empty.txt"})).await?;
        assert_eq!(empty, "empty.txt is empty (0 bytes)");
        Ok(())
    }

    #[tokio::test]
    async fn writes_create_dirs_and_report_overwrites() -> TestResult {
        let dir = tempfile::tempdir()?;
        let ctx = ctx(dir.path())?;
        let created = WriteFile
            .call(&ctx, json!({"path": "new/deep/f.txt", "content": "hello"}))
            .await?;
        assert_eq!(created, "created new/deep/f.txt (5 bytes)");
        let overwrote = WriteFile
            .call(&ctx, json!({"path": "new/deep/f.txt", "content": "hi\n"}))
            .await?;
        assert_eq!(overwrote, "overwrote new/deep/f.txt (3 bytes)");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("new/deep/f.txt"))?,
            "hi\n"
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path().join("new/deep"))?.count(), 1);

        let outside = fails(&WriteFile, &ctx, json!({"path": "../x", "content": "no"})).await?;
        assert!(outside.contains("outside the working directory"));
        let onto_dir = fails(&WriteFile, &ctx, json!({"path": "new", "content": "no"})).await?;
        assert!(onto_dir.contains("is a directory"));
        Ok(())
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn overwriting_keeps_permissions() -> TestResult {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n")?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let ctx = ctx(dir.path())?;
        WriteFile
            .call(
                &ctx,
                json!({"path": "run.sh", "content": "#!/bin/sh\necho hi\n"}),
            )
            .await?;
        assert_eq!(
            std::fs::metadata(&script)?.permissions().mode() & 0o777,
            0o755
        );
        Ok(())
    }

    #[test]
    fn schemas_are_closed_objects_with_described_properties() -> TestResult {
        let tools = crate::tools::file_tools();
        let mut names: Vec<String> = tools.iter().map(|t| t.definition().name).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "edit_file",
                "glob",
                "grep",
                "list",
                "read_file",
                "write_file"
            ]
        );
        for tool in tools {
            let definition = tool.definition();
            let schema = &definition.parameters;
            assert_eq!(schema["type"], "object", "{}", definition.name);
            assert_eq!(schema["additionalProperties"], false, "{}", definition.name);
            let properties = schema["properties"]
                .as_object()
                .ok_or("properties is not an object")?;
            for (name, property) in properties {
                assert!(
                    property["description"].is_string(),
                    "{}.{name} has no description",
                    definition.name
                );
            }
            for required in schema["required"].as_array().into_iter().flatten() {
                let required = required
                    .as_str()
                    .ok_or("a required entry is not a string")?;
                assert!(properties.contains_key(required), "{}", definition.name);
            }
        }
        Ok(())
    }
}
