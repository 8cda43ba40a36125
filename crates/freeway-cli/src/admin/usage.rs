//! `freeway usage`: `GET /admin/usage`, a row per group and a total.

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::Value;

use super::client::Client;
use super::format::{self, Table};
use crate::cli::{GroupBy, UsageArgs};
use crate::output;

pub async fn run(args: UsageArgs) -> anyhow::Result<ExitCode> {
    let now = format::now_secs();
    let mut query = vec![("group_by", args.group_by.as_str().to_owned())];
    if let Some(since) = &args.since {
        query.push((
            "since",
            format::when(since, now).map_err(|e| anyhow::anyhow!("--since: {e}"))?,
        ));
    }
    if let Some(until) = &args.until {
        query.push((
            "until",
            format::when(until, now).map_err(|e| anyhow::anyhow!("--until: {e}"))?,
        ));
    }
    let client = Client::connect(&args.server.connection)?;
    let doc = client.get(&["usage"], &query).await?;
    if args.server.json {
        output::line(&doc.to_string());
    } else {
        // Ids mean little to a reader: show team names and key labels where the key may see them.
        let names = match args.group_by {
            GroupBy::Team => client.team_names().await,
            GroupBy::Key => client.key_names().await,
            GroupBy::Model | GroupBy::Provider | GroupBy::Day => HashMap::new(),
        };
        print_table(&doc, args.group_by, &names);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(doc: &Value, group_by: GroupBy, names: &HashMap<String, String>) {
    let span = span(doc);
    let rows = doc["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if rows.is_empty() {
        output::line(&format!(
            "no requests recorded {}",
            span.as_deref().unwrap_or("yet")
        ));
        return;
    }
    output::line(&format!(
        "usage by {}, {}",
        group_by.as_str(),
        span.as_deref().unwrap_or("all time")
    ));
    output::line("");
    let header = [
        match group_by {
            GroupBy::Model => "MODEL",
            GroupBy::Key => "KEY",
            GroupBy::Team => "TEAM",
            GroupBy::Provider => "PROVIDER",
            GroupBy::Day => "DAY",
        },
        ">REQUESTS",
        ">ERRORS",
        ">INPUT TOKENS",
        ">OUTPUT TOKENS",
        ">CACHED TOKENS",
        ">COST",
    ];
    let mut table = Table::new(&header);
    let cells = |group: String, r: &Value| {
        vec![
            group,
            format::count(&r["requests"]),
            format::count(&r["errors"]),
            format::count(&r["input_tokens"]),
            format::count(&r["output_tokens"]),
            format::count(&r["cached_tokens"]),
            format::money(&r["cost_usd"]),
        ]
    };
    for row in rows {
        let group = format::text(&row["group"]);
        let group = names.get(&group).cloned().unwrap_or(group);
        table.row(cells(group, row));
    }
    table.row(cells("TOTAL".to_owned(), &doc["total"]));
    table.print();
}

/// `since 2025-06-01 00:00 UTC`, `from … to …`; `None` for all time.
fn span(doc: &Value) -> Option<String> {
    Some(match (doc["since"].as_i64(), doc["until"].as_i64()) {
        (Some(since), Some(until)) => {
            format!("from {} to {} UTC", format::utc(since), format::utc(until))
        }
        (Some(since), None) => format!("since {} UTC", format::utc(since)),
        (None, Some(until)) => format!("until {} UTC", format::utc(until)),
        (None, None) => return None,
    })
}
