use freeway_store::{
    KeyUpdate, NewKey, NewTeam, Role, Scope, StoreError, TeamUpdate, hash_secret, now_ms,
};
use sqlx::Row;

use crate::on_both;
use crate::support::{key, team};

on_both!(migrations_apply_once_from_an_empty_database, |store| {
    let rows = sqlx::query("SELECT version FROM freeway_migrations")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 6);
    for table in [
        "teams",
        "api_keys",
        "usage_ledger",
        "audit_log",
        "audit_head",
        "sessions",
        "session_items",
        "responses",
    ] {
        sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(store.pool())
            .await
            .unwrap();
    }
});

on_both!(keys_are_hashed_at_rest, |store| {
    team(store, "alpha").await;
    let (record, secret) = key(store, "alpha", Role::Developer).await;
    assert!(secret.starts_with("fw-") && secret.len() == 43, "{secret}");
    assert!(secret.starts_with(&record.prefix));
    // No text column of the table holds the secret; the hash column holds its SHA-256.
    let row = sqlx::query(
        "SELECT id, team_id, name, role, hash, prefix, models FROM api_keys WHERE id = $1",
    )
    .bind(&record.id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    for i in 0..7 {
        let v: Option<String> = row.try_get(i).unwrap();
        assert!(
            !v.unwrap_or_default().contains(&secret[3..]),
            "column {i} holds the secret"
        );
    }
    let hash: String = row.try_get("hash").unwrap();
    assert_eq!(hash, hash_secret(&secret));
});

on_both!(a_key_authenticates_until_revoked, |store| {
    team(store, "alpha").await;
    let (record, secret) = key(store, "alpha", Role::Admin).await;
    let p = store.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(p.key.id, record.id);
    assert_eq!(p.team.name, "alpha");
    assert_eq!(p.key.role, Role::Admin);
    assert!(store.authenticate("fw-not-a-key").await.unwrap().is_none());

    let revoked = store.revoke_key(Scope::All, &record.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(store.authenticate(&secret).await.unwrap().is_none());
    assert!(store.keys(Scope::All, false).await.unwrap().is_empty());
    assert_eq!(store.keys(Scope::All, true).await.unwrap().len(), 1);
    // A revoked key cannot be brought back by rotating it.
    let e = store
        .rotate_key(Scope::All, &record.id, None)
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
});

on_both!(
    rotation_replaces_the_secret_with_an_optional_grace_period,
    |store| {
        team(store, "alpha").await;
        let (record, old) = key(store, "alpha", Role::Developer).await;
        let (rotated, new) = store
            .rotate_key(Scope::All, &record.id, None)
            .await
            .unwrap();
        assert_eq!(rotated.id, record.id, "the id and its history stay");
        assert_ne!(old, new);
        assert!(store.authenticate(&old).await.unwrap().is_none());
        assert_eq!(
            store.authenticate(&new).await.unwrap().unwrap().key.id,
            record.id
        );

        let (_, newer) = store
            .rotate_key(Scope::All, &record.id, Some(60_000))
            .await
            .unwrap();
        assert!(
            store.authenticate(&new).await.unwrap().is_some(),
            "still in its grace period"
        );
        assert!(store.authenticate(&newer).await.unwrap().is_some());
    }
);

on_both!(expired_keys_do_not_authenticate, |store| {
    team(store, "alpha").await;
    let (record, secret) = key(store, "alpha", Role::Developer).await;
    store
        .update_key(
            Scope::All,
            &record.id,
            KeyUpdate {
                expires_at: Some(Some(now_ms() - 1)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(store.authenticate(&secret).await.unwrap().is_none());
});

on_both!(updates_keep_what_they_do_not_name, |store| {
    let t = store
        .create_team(NewTeam {
            name: "alpha".into(),
            models: Some(vec!["openai/*".into()]),
            tools: Some(vec!["read_file".into(), "mcp__gh__*".into()]),
            limits: freeway_store::Limits {
                rpm: Some(60),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    let (record, secret) = key(store, &t.id, Role::Developer).await;
    let updated = store
        .update_key(
            Scope::Team(&t.id),
            &record.id,
            KeyUpdate {
                role: Some(Role::Viewer),
                tpm: Some(Some(1000)),
                models: Some(Some(vec!["openai/gpt-4.1".into()])),
                tools: Some(Some(vec!["read_file".into(), "mcp__gh__issues".into()])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.role, Role::Viewer);
    assert_eq!(updated.name.as_deref(), Some("k"));
    let p = store.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!(p.key.limits.tpm, Some(1000));
    assert_eq!(p.team.limits.rpm, Some(60));
    assert_eq!(p.team.models.as_deref(), Some(&["openai/*".to_owned()][..]));
    assert!(p.may_use_model("openai/gpt-4.1") && !p.may_use_model("openai/gpt-4o"));
    assert_eq!(p.team.tools.as_ref().map(Vec::len), Some(2));
    assert!(p.may_use_tool("read_file") && p.may_use_tool("mcp__gh__issues"));
    assert!(!p.may_use_tool("bash") && !p.may_use_tool("mcp__gh__merge"));
    // A team update that does not name the tools keeps them; `Some(None)` lifts them.
    let t = store
        .update_team(
            Scope::All,
            &t.id,
            TeamUpdate {
                rpm: Some(Some(30)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.tools.as_ref().map(Vec::len), Some(2));
    let t = store
        .update_team(
            Scope::All,
            &t.id,
            TeamUpdate {
                tools: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(t.tools, None);
});

on_both!(teams_are_unique_by_name, |store| {
    team(store, "alpha").await;
    let e = store
        .create_team(NewTeam {
            name: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
    let e = store
        .create_team(NewTeam {
            name: "x".into(),
            limits: freeway_store::Limits {
                on_exceed: Some("cheap".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("route:<name>"), "{e}");
});

on_both!(a_team_never_sees_or_touches_another_teams_keys, |store| {
    let a = team(store, "alpha").await;
    let b = team(store, "beta").await;
    let (ka, _) = key(store, &a.id, Role::Admin).await;
    let (kb, secret_b) = key(store, &b.id, Role::Developer).await;
    let scope = Scope::Team(&a.id);

    let listed: Vec<_> = store
        .keys(scope, true)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, vec![ka.id.clone()]);
    for result in [
        store.key(scope, &kb.id).await.map(|_| ()),
        store.revoke_key(scope, &kb.id).await.map(|_| ()),
        store.rotate_key(scope, &kb.id, None).await.map(|_| ()),
        store
            .update_key(
                scope,
                &kb.id,
                KeyUpdate {
                    role: Some(Role::Admin),
                    ..Default::default()
                },
            )
            .await
            .map(|_| ()),
        store.team(scope, &b.id).await.map(|_| ()),
        store.team(scope, "beta").await.map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(StoreError::NotFound { .. })),
            "{result:?}"
        );
    }
    let e = store
        .create_key(
            scope,
            NewKey {
                team: b.id.clone(),
                role: Role::Admin,
                name: None,
                models: None,
                tools: None,
                limits: Default::default(),
                expires_at: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    // Team B's key is untouched.
    assert!(store.authenticate(&secret_b).await.unwrap().is_some());
    assert_eq!(store.teams(scope).await.unwrap().len(), 1);
    assert_eq!(store.teams(Scope::All).await.unwrap().len(), 2);
});
