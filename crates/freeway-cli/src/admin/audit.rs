//! `freeway audit`: `GET /admin/audit` and `/admin/audit/verify`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::client::Client;
use super::format::{self, Table};
use crate::cli::{AuditAction, AuditArgs, AuditExportArgs, AuditListArgs};
use crate::output;

/// Entries per request of `audit export`.
const EXPORT_PAGE: u32 = 1000;
/// The server's page size when `--limit` is not given.
const DEFAULT_LIMIT: u32 = 100;
/// The longest `detail` a table cell shows.
const DETAIL_CHARS: usize = 60;

pub async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        AuditAction::List(list) => {
            let client = Client::connect(&list.server.connection)?;
            list_entries(&client, &list, list.server.json).await
        }
        AuditAction::Verify(verify) => {
            let client = Client::connect(&verify.server.connection)?;
            self::verify(&client, verify.server.json).await
        }
        AuditAction::Export(export) => {
            let client = Client::connect(&export.connection)?;
            self::export(&client, &export).await
        }
    }
}

async fn list_entries(
    client: &Client,
    list: &AuditListArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let order = if list.oldest_first { "asc" } else { "desc" };
    let mut query = vec![("order", order.to_owned())];
    if let Some(limit) = list.limit {
        query.push(("limit", limit.to_string()));
    }
    if let Some(action) = &list.action {
        query.push(("action", action.clone()));
    }
    if let Some(after) = list.after {
        query.push(("after", after.to_string()));
    }
    let doc = client.get(&["audit"], &query).await?;
    if json {
        output::line(&doc.to_string());
        return Ok(ExitCode::SUCCESS);
    }
    let entries = doc["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if entries.is_empty() {
        let what = list
            .action
            .as_ref()
            .map_or_else(String::new, |a| format!(" {a}"));
        output::line(&format!("no{what} audit entries"));
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[">SEQ", "TIME (UTC)", "ACTOR", "ACTION", "TARGET", "DETAIL"]);
    for entry in entries {
        table.row(vec![
            format::text(&entry["seq"]),
            format::time_ms(&entry["at"]),
            format::text(&entry["actor"]),
            format::text(&entry["action"]),
            format::text(&entry["target"]),
            detail(&entry["detail"]),
        ]);
    }
    table.print();
    if list.oldest_first {
        if let Some(next) = doc["next_after"].as_u64() {
            output::note(&format!(
                "more entries follow: freeway audit list --oldest-first --after {next}"
            ));
        }
    } else if entries.len() as u64 == u64::from(list.limit.unwrap_or(DEFAULT_LIMIT)) {
        output::note(
            "older entries may exist: raise --limit, or `freeway audit export` for all of them",
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The detail object on one line, cut to fit a table.
fn detail(v: &Value) -> String {
    let text = match v {
        Value::Null => return "-".to_owned(),
        Value::Object(map) if map.is_empty() => return "-".to_owned(),
        other => other.to_string(),
    };
    if text.chars().count() <= DETAIL_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(DETAIL_CHARS - 1).collect();
    cut.push('…');
    cut
}

async fn verify(client: &Client, json: bool) -> anyhow::Result<ExitCode> {
    let doc = client.get(&["audit", "verify"], &[]).await?;
    let ok = doc["ok"]
        .as_bool()
        .with_context(|| format!("the verification has no `ok` field: {doc}"))?;
    if json {
        output::line(&doc.to_string());
    } else if ok {
        output::line(&format!(
            "the audit log is intact: {} entries, head hash {}",
            format::count(&doc["entries"]),
            format::text(&doc["head_hash"]),
        ));
    } else {
        let at = match doc["first_bad_seq"].as_i64() {
            Some(seq) => format!("at entry {seq}"),
            None => "somewhere".to_owned(),
        };
        output::error(&format!(
            "the audit log's hash chain is broken {at}: {}",
            doc["problem"].as_str().unwrap_or("no reason given")
        ));
        output::note(&format!(
            "{} entries before it check out; it and every entry after it cannot be trusted. \
             Compare with an export or a backup taken earlier.",
            format::count(&doc["entries"]),
        ));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn export(client: &Client, export: &AuditExportArgs) -> anyhow::Result<ExitCode> {
    let mut sink = match &export.output {
        Some(path) => Sink::file(path)?,
        None => Sink::Stdout,
    };
    let mut after: Option<u64> = None;
    let mut written: u64 = 0;
    loop {
        let mut query = vec![
            ("order", "asc".to_owned()),
            ("limit", EXPORT_PAGE.to_string()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_string()));
        }
        let doc = client.get(&["audit"], &query).await?;
        let entries = doc["data"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut page = String::new();
        for entry in entries {
            page.push_str(&entry.to_string());
            page.push('\n');
        }
        sink.write(&page)?;
        written += entries.len() as u64;
        match doc["next_after"].as_u64() {
            Some(next) if after.is_none_or(|a| next > a) && !entries.is_empty() => {
                after = Some(next);
            }
            Some(next) => anyhow::bail!(
                "the server sent next_after {next} again: stopping after {written} entries"
            ),
            None => break,
        }
    }
    sink.finish(written)?;
    Ok(ExitCode::SUCCESS)
}

/// Where an export goes. A file is written beside its destination and moved there at the
/// end, so that a failed export leaves no truncated file behind.
enum Sink {
    Stdout,
    File {
        out: std::io::BufWriter<std::fs::File>,
        partial: Partial,
        path: PathBuf,
    },
}

/// The file being written; removed on drop unless it was moved into place first.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Sink {
    fn file(path: &Path) -> anyhow::Result<Self> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = Partial(PathBuf::from(partial));
        let file = std::fs::File::create(&partial.0)
            .with_context(|| format!("cannot write {}", partial.0.display()))?;
        Ok(Sink::File {
            out: std::io::BufWriter::new(file),
            partial,
            path: path.to_owned(),
        })
    }

    fn write(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Sink::Stdout => output::stdout_raw(text),
            Sink::File { out, partial, .. } => out
                .write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", partial.0.display()))?,
        }
        Ok(())
    }

    fn finish(self, written: u64) -> anyhow::Result<()> {
        match self {
            Sink::Stdout => {}
            Sink::File { out, partial, path } => {
                let cannot = || format!("cannot write {}", partial.0.display());
                let file = out
                    .into_inner()
                    .map_err(|e| anyhow::anyhow!("{}: {}", cannot(), e.error()))?;
                file.sync_all().with_context(cannot)?;
                std::fs::rename(&partial.0, &path).with_context(|| {
                    format!("cannot move {} to {}", partial.0.display(), path.display())
                })?;
                output::note(&format!(
                    "wrote {written} audit entries to {}",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}
