//! `freeway teams`: `/admin/teams`.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::Client;
use super::format::{self, Table};
use crate::cli::{TeamField, TeamUpdateArgs, TeamsAction, TeamsArgs};
use crate::output;

pub async fn run(args: TeamsArgs) -> anyhow::Result<ExitCode> {
    let (team, verb, json) = match args.action {
        TeamsAction::Create(create) => {
            let client = Client::connect(&create.server.connection)?;
            let mut body = super::limit_fields(&create.limits)?;
            body.insert("name".into(), json!(create.name));
            let team = client.post(&["teams"], &Value::Object(body)).await?;
            (team, "created", create.server.json)
        }
        TeamsAction::List(list) => {
            let client = Client::connect(&list.server.connection)?;
            let doc = client.get(&["teams"], &[]).await?;
            if list.server.json {
                output::line(&doc.to_string());
            } else {
                print_list(&doc);
            }
            return Ok(ExitCode::SUCCESS);
        }
        TeamsAction::Show(show) => {
            let client = Client::connect(&show.server.connection)?;
            let team = client.get(&["teams", &show.team], &[]).await?;
            (team, "", show.server.json)
        }
        TeamsAction::Update(update) => {
            let body = update_body(&update)?;
            let client = Client::connect(&update.server.connection)?;
            let team = client
                .patch(&["teams", &update.team], &Value::Object(body))
                .await?;
            (team, "updated", update.server.json)
        }
    };
    if json {
        output::line(&team.to_string());
    } else {
        if !verb.is_empty() {
            output::line(&format!("{verb} team {}", format::text(&team["name"])));
            output::line("");
        }
        print_team(&team);
    }
    Ok(ExitCode::SUCCESS)
}

fn update_body(update: &TeamUpdateArgs) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut body = super::limit_fields(&update.limits)?;
    if let Some(name) = &update.name {
        body.insert("name".into(), json!(name));
    }
    super::clear_fields(
        &mut body,
        update.clear.iter().map(|field| match field {
            TeamField::Models => ("models", "models"),
            TeamField::Tools => ("tools", "tools"),
            TeamField::Budget => ("budget", "budget_usd"),
            TeamField::Rpm => ("rpm", "rpm"),
            TeamField::Tpm => ("tpm", "tpm"),
            TeamField::OnExceed => ("on-exceed", "on_exceed"),
        }),
    )?;
    if body.is_empty() {
        anyhow::bail!(
            "nothing to change: give a new value (e.g. --budget-usd 100) or --clear a setting"
        );
    }
    Ok(body)
}

fn print_list(doc: &Value) {
    let teams = doc["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if teams.is_empty() {
        output::line("no teams yet: create one with `freeway teams create <NAME>`");
        return;
    }
    let mut table = Table::new(&["NAME", "ID", "MODELS", "LIMITS", "CREATED"]);
    for team in teams {
        table.row(vec![
            format::text(&team["name"]),
            format::text(&team["id"]),
            format::models(&team["models"], "all"),
            format::limits(team),
            format::time_secs(&team["created_at"], "-"),
        ]);
    }
    table.print();
}

pub fn print_team(team: &Value) {
    let mut pairs = vec![
        ("name", format::text(&team["name"])),
        ("id", format::text(&team["id"])),
        ("models", format::models(&team["models"], "all")),
        ("tools", format::models(&team["tools"], "all")),
        ("budget", format::budget(team)),
    ];
    if team["budget_usd"].is_number() || team["on_exceed"].is_string() {
        pairs.push(("past budget", format::on_exceed(team)));
    }
    pairs.extend([
        ("requests", format::rate(&team["rpm"], "per minute")),
        ("tokens", format::rate(&team["tpm"], "per minute")),
        ("created", format::time_secs(&team["created_at"], "-")),
    ]);
    format::fields(&pairs);
}
