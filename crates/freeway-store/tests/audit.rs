use freeway_store::{AuditEvent, AuditQuery, Scope, Store};
use serde_json::json;

use crate::on_both;
use crate::support::team;

fn event(team: Option<&str>, action: &str, n: i64) -> AuditEvent {
    AuditEvent {
        actor: "master".into(),
        team_id: team.map(str::to_owned),
        action: action.into(),
        target: Some(format!("thing-{n}")),
        detail: json!({ "n": n, "note": "ünïcode and \"quotes\"" }),
    }
}

async fn fill(store: &Store) -> (String, String) {
    let a = team(store, "alpha").await.id;
    let b = team(store, "beta").await.id;
    for n in 0..5 {
        store
            .append_audit(vec![
                event(Some(&a), "key.create", n),
                event(Some(&b), "key.revoke", n),
            ])
            .await
            .unwrap();
    }
    (a, b)
}

on_both!(an_untouched_chain_verifies, |store| {
    let empty = store.verify_audit().await.unwrap();
    assert!(empty.ok && empty.entries == 0, "{empty:?}");
    fill(store).await;
    let v = store.verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 10);
    let last = store
        .audit(
            Scope::All,
            &AuditQuery {
                newest_first: true,
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(last[0].hash, v.head_hash);
    assert_eq!(last[0].seq, 10);
});

on_both!(an_edited_row_is_found, |store| {
    fill(store).await;
    sqlx::query("UPDATE audit_log SET detail = $1 WHERE seq = 4")
        .bind(r#"{"n":99}"#)
        .execute(store.pool())
        .await
        .unwrap();
    let v = store.verify_audit().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_seq, Some(4), "{v:?}");
    assert!(v.problem.unwrap().contains("changed"));
});

on_both!(a_removed_row_is_found, |store| {
    fill(store).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 6")
        .execute(store.pool())
        .await
        .unwrap();
    let v = store.verify_audit().await.unwrap();
    assert_eq!(v.first_bad_seq, Some(6), "{v:?}");
    assert!(v.problem.unwrap().contains("missing"));
});

on_both!(a_truncated_tail_is_found, |store| {
    fill(store).await;
    sqlx::query("DELETE FROM audit_log WHERE seq >= 9")
        .execute(store.pool())
        .await
        .unwrap();
    let v = store.verify_audit().await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.entries, 8);
    assert!(
        v.problem.unwrap().contains("removed"),
        "the head still says 10"
    );
});

on_both!(a_rehashed_row_breaks_the_next_link, |store| {
    // Someone who edits a row and recomputes its hash still breaks the link to the next one.
    fill(store).await;
    sqlx::query("UPDATE audit_log SET hash = $1 WHERE seq = 3")
        .bind("0".repeat(64))
        .execute(store.pool())
        .await
        .unwrap();
    let v = store.verify_audit().await.unwrap();
    assert_eq!(v.first_bad_seq, Some(3), "{v:?}");
});

on_both!(teams_read_only_their_own_audit_entries, |store| {
    let (a, _) = fill(store).await;
    let mine = store
        .audit(Scope::Team(&a), &AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(mine.len(), 5);
    assert!(
        mine.iter()
            .all(|e| e.team_id.as_deref() == Some(a.as_str()))
    );
    assert!(mine.windows(2).all(|w| w[0].seq < w[1].seq));
    let page = store
        .audit(
            Scope::All,
            &AuditQuery {
                after: Some(8),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![9, 10]);
    let revokes = store
        .audit(
            Scope::All,
            &AuditQuery {
                action: Some("key.revoke".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(revokes.len(), 5);
    assert_eq!(revokes[0].detail["note"], "ünïcode and \"quotes\"");
});

on_both!(concurrent_appends_keep_one_chain, |store| {
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                store
                    .append_audit(vec![event(None, "x", n * 10 + i)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = store.verify_audit().await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.entries, 40);
});
