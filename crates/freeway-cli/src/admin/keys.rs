//! `freeway keys`: `/admin/keys`. A secret is printed the one time the server sends it.

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::{Map, Value, json};

use super::client::Client;
use super::format::{self, Table};
use crate::cli::{
    KeyCreateArgs, KeyField, KeyListArgs, KeyUpdateArgs, KeysAction, KeysArgs, ServerArgs,
};
use crate::output;

pub async fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        KeysAction::Create(create) => {
            let body = create_body(&create, format::now_secs())?;
            let (client, json) = connect(&create.server)?;
            let key = client.post(&["keys"], &Value::Object(body)).await?;
            if json {
                output::line(&key.to_string());
            } else {
                output::line(&format!(
                    "created key {} for team {}, role {}",
                    format::text(&key["id"]),
                    create.team,
                    format::text(&key["role"]),
                ));
                print_secret(&key);
            }
        }
        KeysAction::List(list) => {
            let (client, json) = connect(&list.server)?;
            let doc = client.get(&["keys"], &list_query(&list)).await?;
            if json {
                output::line(&doc.to_string());
            } else {
                print_list(&doc, &client.team_names().await, &list);
            }
        }
        KeysAction::Show(show) => {
            let (client, json) = connect(&show.server)?;
            let key = client.get(&["keys", &show.id], &[]).await?;
            if json {
                output::line(&key.to_string());
            } else {
                print_key(&key, &client.team_names().await);
            }
        }
        KeysAction::Update(update) => {
            let body = update_body(&update, format::now_secs())?;
            let (client, json) = connect(&update.server)?;
            let key = client
                .patch(&["keys", &update.id], &Value::Object(body))
                .await?;
            if json {
                output::line(&key.to_string());
            } else {
                output::line(&format!("updated key {}", format::text(&key["id"])));
                output::line("");
                print_key(&key, &client.team_names().await);
            }
        }
        KeysAction::Rotate(rotate) => {
            let mut body = Map::new();
            let grace = match &rotate.grace {
                Some(grace) => Some(format::duration_secs(grace)?),
                None => None,
            };
            let (client, json) = connect(&rotate.server)?;
            if let Some(secs) = grace {
                body.insert("grace_secs".into(), json!(secs));
            }
            let key = client
                .post(&["keys", &rotate.id, "rotate"], &Value::Object(body))
                .await?;
            if json {
                output::line(&key.to_string());
            } else {
                output::line(&format!(
                    "rotated key {}: the new secret is",
                    format::text(&key["id"])
                ));
                print_secret(&key);
                if let Some(secs) = grace.filter(|s| *s > 0) {
                    output::note(&format!(
                        "the previous secret keeps working until {} UTC",
                        format::utc(format::now_secs() + secs)
                    ));
                }
            }
        }
        KeysAction::Revoke(revoke) => {
            let (client, json) = connect(&revoke.server)?;
            let key = client.delete(&["keys", &revoke.id]).await?;
            if json {
                output::line(&key.to_string());
            } else {
                output::line(&format!(
                    "revoked key {} ({}) at {} UTC: requests with it now get 401",
                    format::text(&key["id"]),
                    format::text(&key["prefix"]),
                    format::time_secs(&key["revoked_at"], "-"),
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn connect(server: &ServerArgs) -> anyhow::Result<(Client, bool)> {
    Ok((Client::connect(&server.connection)?, server.json))
}

fn create_body(create: &KeyCreateArgs, now: i64) -> anyhow::Result<Map<String, Value>> {
    let mut body = super::limit_fields(&create.limits)?;
    body.insert("team".into(), json!(create.team));
    body.insert("role".into(), json!(create.role.as_str()));
    if let Some(name) = &create.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(span) = &create.expires_in {
        body.insert("expires_at".into(), json!(expires_at(span, now)?));
    }
    Ok(body)
}

fn update_body(update: &KeyUpdateArgs, now: i64) -> anyhow::Result<Map<String, Value>> {
    let mut body = super::limit_fields(&update.limits)?;
    if let Some(name) = &update.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(role) = update.role {
        body.insert("role".into(), json!(role.as_str()));
    }
    if let Some(span) = &update.expires_in {
        body.insert("expires_at".into(), json!(expires_at(span, now)?));
    }
    super::clear_fields(
        &mut body,
        update.clear.iter().map(|field| match field {
            KeyField::Name => ("name", "name"),
            KeyField::Models => ("models", "models"),
            KeyField::Tools => ("tools", "tools"),
            KeyField::Budget => ("budget", "budget_usd"),
            KeyField::Rpm => ("rpm", "rpm"),
            KeyField::Tpm => ("tpm", "tpm"),
            KeyField::OnExceed => ("on-exceed", "on_exceed"),
            KeyField::Expires => ("expires", "expires_at"),
        }),
    )?;
    if body.is_empty() {
        anyhow::bail!("nothing to change: give a new value (e.g. --rpm 60) or --clear a setting");
    }
    Ok(body)
}

fn expires_at(span: &str, now: i64) -> anyhow::Result<i64> {
    let secs = format::duration_secs(span).map_err(|e| anyhow::anyhow!("--expires-in: {e}"))?;
    if secs == 0 {
        anyhow::bail!("--expires-in 0 would expire the key at once: revoke it instead");
    }
    Ok(now.saturating_add(secs))
}

fn list_query(list: &KeyListArgs) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(team) = &list.team {
        query.push(("team", team.clone()));
    }
    if list.all {
        query.push(("include_revoked", "true".to_owned()));
    }
    query
}

/// The secret, alone on its line so that it is easy to copy, and the reminder that it is the
/// only time it shows.
fn print_secret(key: &Value) {
    output::line("");
    output::line(&format!("    {}", format::text(&key["key"])));
    output::line("");
    output::warning(
        "this secret is shown only now: the server keeps just its hash and cannot show it again. \
         Store it in your secret manager; a lost secret can only be rotated.",
    );
}

fn team(key: &Value, names: &HashMap<String, String>) -> String {
    let id = format::text(&key["team_id"]);
    names.get(&id).cloned().unwrap_or(id)
}

fn status(key: &Value, now: i64) -> &'static str {
    if key["revoked_at"].is_number() {
        "revoked"
    } else if key["expires_at"].as_i64().is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

fn print_list(doc: &Value, names: &HashMap<String, String>, list: &KeyListArgs) {
    let keys = doc["data"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if keys.is_empty() {
        let scope = list
            .team
            .as_ref()
            .map_or_else(String::new, |t| format!(" for team {t}"));
        let revoked = if list.all { "" } else { " active" };
        output::line(&format!(
            "no{revoked} keys{scope}: create one with `freeway keys create --team <TEAM> --role developer`"
        ));
        return;
    }
    let now = format::now_secs();
    let mut table = Table::new(&[
        "ID", "PREFIX", "TEAM", "NAME", "ROLE", "LIMITS", "EXPIRES", "STATUS",
    ]);
    for key in keys {
        table.row(vec![
            format::text(&key["id"]),
            format::text(&key["prefix"]),
            team(key, names),
            format::text(&key["name"]),
            format::text(&key["role"]),
            format::limits(key),
            format::time_secs(&key["expires_at"], "never"),
            status(key, now).to_owned(),
        ]);
    }
    table.print();
}

fn print_key(key: &Value, names: &HashMap<String, String>) {
    let mut pairs = vec![
        ("id", format::text(&key["id"])),
        ("prefix", format::text(&key["prefix"])),
        ("team", team(key, names)),
        ("name", format::text(&key["name"])),
        ("role", format::text(&key["role"])),
        ("status", status(key, format::now_secs()).to_owned()),
        (
            "models",
            format::models(&key["models"], "what the team allows"),
        ),
        (
            "tools",
            format::models(&key["tools"], "what the team allows"),
        ),
        ("budget", format::budget(key)),
    ];
    if key["budget_usd"].is_number() || key["on_exceed"].is_string() {
        pairs.push(("past budget", format::on_exceed(key)));
    }
    pairs.extend([
        ("requests", format::rate(&key["rpm"], "per minute")),
        ("tokens", format::rate(&key["tpm"], "per minute")),
        ("created", format::time_secs(&key["created_at"], "-")),
        ("rotated", format::time_secs(&key["rotated_at"], "never")),
        ("expires", format::time_secs(&key["expires_at"], "never")),
    ]);
    if key["revoked_at"].is_number() {
        pairs.push(("revoked", format::time_secs(&key["revoked_at"], "-")));
    }
    format::fields(&pairs);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{AdminCommand, Cli, TopCommand};

    fn keys(argv: &[&str]) -> KeysAction {
        let cli =
            Cli::try_parse_from(std::iter::once("freeway").chain(argv.iter().copied())).unwrap();
        match cli.command {
            TopCommand::Admin(AdminCommand::Keys(args)) => args.action,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_sends_the_contract_fields() {
        let KeysAction::Create(create) = keys(&[
            "keys",
            "create",
            "--team",
            "research",
            "--role",
            "developer",
            "--models",
            "a, b",
            "--budget-usd",
            "2.5",
            "--period",
            "day",
            "--rpm",
            "60",
            "--expires-in",
            "1d",
        ]) else {
            panic!()
        };
        let body = create_body(&create, 1_000).unwrap();
        assert_eq!(
            Value::Object(body),
            json!({"team": "research", "role": "developer", "models": ["a", "b"],
                   "budget_usd": 2.5, "budget_period": "day", "rpm": 60,
                   "expires_at": 1_000 + 86_400})
        );
    }

    #[test]
    fn clear_sends_null_and_refuses_contradictions() {
        let KeysAction::Update(update) = keys(&[
            "keys",
            "update",
            "key_x",
            "--rpm",
            "5",
            "--clear",
            "budget,expires",
        ]) else {
            panic!()
        };
        assert_eq!(
            Value::Object(update_body(&update, 0).unwrap()),
            json!({"rpm": 5, "budget_usd": null, "expires_at": null})
        );
        let KeysAction::Update(update) =
            keys(&["keys", "update", "key_x", "--rpm", "5", "--clear", "rpm"])
        else {
            panic!()
        };
        assert!(update_body(&update, 0).is_err());
        let KeysAction::Update(update) = keys(&["keys", "update", "key_x"]) else {
            panic!()
        };
        assert!(update_body(&update, 0).is_err(), "nothing to change");
    }
}
