use std::time::Duration;

use freeway_store::{
    NewItem, NewSession, Scope, Session, SessionChange, SessionQuery, SessionStatus, SessionUsage,
    Store, StoreError,
};
use sqlx::Row;

use crate::on_both;
use crate::support::team;

fn new_session(team_id: Option<&str>, agent: &str) -> NewSession {
    NewSession {
        team_id: team_id.map(str::to_owned),
        key_id: Some("key_1".into()),
        agent: agent.into(),
        model: "smart".into(),
        working_directory: "/work/repo".into(),
        title: Some("fix the build".into()),
    }
}

fn item(kind: &str, data: &str) -> NewItem {
    NewItem {
        kind: kind.into(),
        data: data.into(),
    }
}

fn messages(n: usize) -> Vec<NewItem> {
    (1..=n)
        .map(|i| item("message", &format!(r#"{{"n":{i}}}"#)))
        .collect()
}

#[track_caller]
fn assert_missing<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound {
            what: "session", ..
        }) => {}
        other => panic!("expected the session to be not found, got {other:?}"),
    }
}

async fn item_rows(store: &Store, session_id: &str) -> i64 {
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM session_items WHERE session_id = $1")
        .bind(session_id)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// Timestamps are milliseconds; a pause keeps "newest first" unambiguous.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id.as_str()).collect()
}

on_both!(
    sessions_are_created_read_listed_updated_and_deleted,
    |store| {
        let alpha = team(store, "alpha").await;
        let scope = Scope::Team(&alpha.id);
        let first = store
            .create_session(&new_session(Some(&alpha.id), "build"))
            .await
            .unwrap();
        assert!(first.id.starts_with("ses_"), "{}", first.id);
        assert_eq!(first.status, SessionStatus::Idle);
        assert_eq!((first.last_seq, first.usage), (0, SessionUsage::default()));
        assert_eq!(first.parent_id, None);
        assert_eq!(store.session(scope, &first.id).await.unwrap(), first);
        assert_eq!(store.session(Scope::All, &first.id).await.unwrap(), first);

        tick().await;
        let second = store
            .create_session(&new_session(Some(&alpha.id), "plan"))
            .await
            .unwrap();
        let all = SessionQuery::default();
        let listed = store.list_sessions(scope, &all).await.unwrap();
        assert_eq!(ids(&listed), [second.id.as_str(), first.id.as_str()]);

        tick().await;
        let change = SessionChange {
            title: Some("fix the tests".into()),
            add: SessionUsage {
                steps: 1,
                input_tokens: 100,
                output_tokens: 20,
                cost_nanos: 5_000,
            },
            ..Default::default()
        };
        let updated = store
            .update_session(scope, &first.id, &change)
            .await
            .unwrap();
        let updated = store
            .update_session(scope, &updated.id, &change)
            .await
            .unwrap();
        assert_eq!(
            updated.status,
            SessionStatus::Idle,
            "only a lease makes it running"
        );
        assert_eq!(updated.title.as_deref(), Some("fix the tests"));
        assert_eq!(updated.model, "smart", "a field left out stays");
        assert_eq!(
            updated.usage,
            SessionUsage {
                steps: 2,
                input_tokens: 200,
                output_tokens: 40,
                cost_nanos: 10_000,
            }
        );
        assert!(updated.updated_ms > first.updated_ms);
        assert_eq!(updated.created_ms, first.created_ms);
        assert_eq!(store.session(scope, &first.id).await.unwrap(), updated);
        let model = SessionChange {
            model: Some("fast".into()),
            ..Default::default()
        };
        let switched = store
            .update_session(scope, &first.id, &model)
            .await
            .unwrap();
        assert_eq!(switched.model, "fast");
        assert_eq!(switched.title, updated.title);
        assert_eq!(switched.usage, updated.usage);

        // The update moved the first session to the top; filters and limits narrow the list.
        let listed = store.list_sessions(scope, &all).await.unwrap();
        assert_eq!(ids(&listed), [first.id.as_str(), second.id.as_str()]);
        let plan = SessionQuery {
            agent: Some("plan".into()),
            ..Default::default()
        };
        let listed = store.list_sessions(scope, &plan).await.unwrap();
        assert_eq!(ids(&listed), [second.id.as_str()]);
        let one = SessionQuery {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(store.list_sessions(scope, &one).await.unwrap().len(), 1);

        store
            .append_items(scope, &first.id, &messages(3))
            .await
            .unwrap();
        assert_eq!(item_rows(store, &first.id).await, 3);
        store.delete_session(scope, &first.id).await.unwrap();
        assert_missing(store.session(scope, &first.id).await);
        assert_missing(store.delete_session(scope, &first.id).await);
        assert_eq!(item_rows(store, &first.id).await, 0, "items go too");
        let listed = store.list_sessions(scope, &all).await.unwrap();
        assert_eq!(ids(&listed), [second.id.as_str()]);
    }
);

on_both!(a_session_for_an_unknown_team_is_refused, |store| {
    let e = store
        .create_session(&new_session(Some("team_missing"), "build"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound { what: "team", .. }),
        "{e}"
    );
});

on_both!(items_append_and_read_back_after_a_seq, |store| {
    let alpha = team(store, "alpha").await;
    let scope = Scope::Team(&alpha.id);
    let s = store
        .create_session(&new_session(Some(&alpha.id), "build"))
        .await
        .unwrap();
    assert!(store.items(scope, &s.id, 0, None).await.unwrap().is_empty());

    let batch = [
        item("message", r#"{"role":"user","text":"hi"}"#),
        item("tool_call", r#"{"name":"read","args":{"path":"a.rs"}}"#),
    ];
    assert_eq!(
        store.append_items(scope, &s.id, &batch).await.unwrap(),
        [1, 2]
    );
    assert_eq!(
        store
            .append_items(scope, &s.id, &messages(3))
            .await
            .unwrap(),
        [3, 4, 5]
    );
    assert!(
        store
            .append_items(scope, &s.id, &[])
            .await
            .unwrap()
            .is_empty()
    );
    let after = store.session(scope, &s.id).await.unwrap();
    assert_eq!(after.last_seq, 5);
    assert!(after.updated_ms >= s.updated_ms);

    let all = store.items(scope, &s.id, 0, None).await.unwrap();
    assert_eq!(
        all.iter().map(|i| i.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(all[1].kind, "tool_call");
    assert_eq!(all[1].data, batch[1].data, "data is stored as given");
    assert!(all.iter().all(|i| i.created_ms >= s.created_ms));

    let later = store.items(scope, &s.id, 2, None).await.unwrap();
    assert_eq!(later.iter().map(|i| i.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(later[0].data, r#"{"n":1}"#);
    let page = store.items(scope, &s.id, 1, Some(2)).await.unwrap();
    assert_eq!(page.iter().map(|i| i.seq).collect::<Vec<_>>(), [2, 3]);
    assert!(store.items(scope, &s.id, 5, None).await.unwrap().is_empty());
});

on_both!(concurrent_appends_get_distinct_consecutive_seqs, |store| {
    let alpha = team(store, "alpha").await;
    let s = store
        .create_session(&new_session(Some(&alpha.id), "build"))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..20_usize {
        let (store, team_id, id) = (store.clone(), alpha.id.clone(), s.id.clone());
        tasks.spawn(async move {
            let items: Vec<NewItem> = (0..=task % 3)
                .map(|n| item("message", &format!(r#"{{"task":{task},"n":{n}}}"#)))
                .collect();
            let seqs = store
                .append_items(Scope::Team(&team_id), &id, &items)
                .await
                .unwrap();
            (seqs, items)
        });
    }
    let mut reserved = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (seqs, items) = joined.unwrap();
        assert_eq!(seqs.len(), items.len());
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "one append's seqs are consecutive: {seqs:?}"
        );
        reserved.push((seqs, items));
    }
    let mut all_seqs: Vec<i64> = reserved.iter().flat_map(|(s, _)| s.clone()).collect();
    all_seqs.sort_unstable();
    let total = i64::try_from(all_seqs.len()).unwrap();
    assert_eq!(all_seqs, (1..=total).collect::<Vec<_>>(), "no seq twice");

    let scope = Scope::Team(&alpha.id);
    assert_eq!(store.session(scope, &s.id).await.unwrap().last_seq, total);
    let stored = store.items(scope, &s.id, 0, None).await.unwrap();
    assert_eq!(stored.len(), all_seqs.len());
    for (seqs, items) in &reserved {
        for (seq, item) in seqs.iter().zip(items) {
            let at = usize::try_from(seq - 1).unwrap();
            assert_eq!(stored[at].seq, *seq);
            assert_eq!(
                stored[at].data, item.data,
                "seq {seq} holds its own append's item"
            );
        }
    }
});

on_both!(
    a_fork_copies_items_up_to_a_seq_and_names_its_parent,
    |store| {
        let alpha = team(store, "alpha").await;
        let scope = Scope::Team(&alpha.id);
        let source = store
            .create_session(&new_session(Some(&alpha.id), "build"))
            .await
            .unwrap();
        store
            .append_items(scope, &source.id, &messages(5))
            .await
            .unwrap();
        let lease = store
            .take_lease(scope, &source.id, Duration::from_secs(30))
            .await
            .unwrap();
        let busy = SessionChange {
            add: SessionUsage {
                steps: 3,
                input_tokens: 10,
                output_tokens: 5,
                cost_nanos: 7,
            },
            ..Default::default()
        };
        let source = store
            .update_session(scope, &source.id, &busy)
            .await
            .unwrap();
        assert_eq!(source.status, SessionStatus::Running);
        assert_eq!(source.lease_until_ms, Some(lease.until_ms));

        let fork = store
            .fork_session(scope, &source.id, Some(3))
            .await
            .unwrap();
        assert_ne!(fork.id, source.id);
        assert!(fork.id.starts_with("ses_"));
        assert_eq!(fork.parent_id.as_deref(), Some(source.id.as_str()));
        assert_eq!(fork.title.as_deref(), Some("fork of fix the build"));
        assert_eq!(
            (&fork.team_id, &fork.key_id, &fork.agent, &fork.model),
            (
                &source.team_id,
                &source.key_id,
                &source.agent,
                &source.model
            )
        );
        assert_eq!(fork.working_directory, source.working_directory);
        assert_eq!(fork.status, SessionStatus::Idle);
        assert_eq!(fork.usage, SessionUsage::default());
        assert_eq!(fork.last_seq, 3);
        assert_eq!(store.session(scope, &fork.id).await.unwrap(), fork);

        let original = store.items(scope, &source.id, 0, None).await.unwrap();
        let copied = store.items(scope, &fork.id, 0, None).await.unwrap();
        assert_eq!(copied, original[..3]);
        // The fork goes on from its own last seq; the source is untouched.
        assert_eq!(
            store
                .append_items(scope, &fork.id, &messages(1))
                .await
                .unwrap(),
            [4]
        );
        assert_eq!(store.session(scope, &source.id).await.unwrap(), source);
        assert_eq!(
            store.items(scope, &source.id, 0, None).await.unwrap().len(),
            5
        );

        // All items by default; an untitled session's fork is named after its id.
        let untitled = store
            .create_session(&NewSession {
                title: None,
                ..new_session(Some(&alpha.id), "build")
            })
            .await
            .unwrap();
        store
            .append_items(scope, &untitled.id, &messages(2))
            .await
            .unwrap();
        let whole = store.fork_session(scope, &untitled.id, None).await.unwrap();
        assert_eq!(
            whole.title.as_deref(),
            Some(format!("fork of {}", untitled.id).as_str())
        );
        assert_eq!(whole.last_seq, 2);
        assert_eq!(
            store.items(scope, &whole.id, 0, None).await.unwrap().len(),
            2
        );
        let empty = store
            .fork_session(scope, &untitled.id, Some(0))
            .await
            .unwrap();
        assert_eq!(empty.last_seq, 0);
        assert!(
            store
                .items(scope, &empty.id, 0, None)
                .await
                .unwrap()
                .is_empty()
        );

        // A fork outlives its parent (once the parent's turn is over).
        assert!(store.release_lease(&lease).await.unwrap());
        store.delete_session(scope, &source.id).await.unwrap();
        assert_eq!(
            store.items(scope, &fork.id, 0, None).await.unwrap().len(),
            4
        );
    }
);

on_both!(another_teams_scope_cannot_reach_a_session, |store| {
    let alpha = team(store, "alpha").await;
    let beta = team(store, "beta").await;
    let (a, b) = (Scope::Team(&alpha.id), Scope::Team(&beta.id));
    let s = store
        .create_session(&new_session(Some(&alpha.id), "build"))
        .await
        .unwrap();
    store.append_items(a, &s.id, &messages(2)).await.unwrap();
    let theirs = store
        .create_session(&new_session(Some(&beta.id), "build"))
        .await
        .unwrap();

    assert_missing(store.session(b, &s.id).await);
    let listed = store
        .list_sessions(b, &SessionQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(&listed), [theirs.id.as_str()]);
    assert_missing(store.append_items(b, &s.id, &messages(1)).await);
    assert_missing(store.append_items(b, &s.id, &[]).await);
    assert_missing(store.items(b, &s.id, 0, None).await);
    assert_missing(store.fork_session(b, &s.id, None).await);
    let change = SessionChange {
        title: Some("mine now".into()),
        ..Default::default()
    };
    assert_missing(store.update_session(b, &s.id, &change).await);
    assert_missing(store.delete_session(b, &s.id).await);
    // The answer for another team's session is the answer for one that never was.
    let e = store.session(b, &s.id).await.unwrap_err();
    let never = store.session(b, "ses_nothing").await.unwrap_err();
    assert_eq!(
        e.to_string().replace(&s.id, "ses_nothing"),
        never.to_string()
    );

    // Nothing changed for the owner.
    let kept = store.session(a, &s.id).await.unwrap();
    assert_eq!(kept.title.as_deref(), Some("fix the build"));
    assert_eq!(kept.last_seq, 2);
    assert_eq!(store.items(a, &s.id, 0, None).await.unwrap().len(), 2);
    let listed = store
        .list_sessions(Scope::All, &SessionQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "no fork was made");
});

on_both!(a_teamless_session_is_visible_only_to_all, |store| {
    let alpha = team(store, "alpha").await;
    let a = Scope::Team(&alpha.id);
    let open = store
        .create_session(&new_session(None, "build"))
        .await
        .unwrap();
    assert_eq!(open.team_id, None);

    assert_missing(store.session(a, &open.id).await);
    assert!(
        store
            .list_sessions(a, &SessionQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_missing(store.append_items(a, &open.id, &messages(1)).await);
    assert_missing(store.items(a, &open.id, 0, None).await);
    assert_missing(store.fork_session(a, &open.id, None).await);
    assert_missing(
        store
            .update_session(a, &open.id, &SessionChange::default())
            .await,
    );
    assert_missing(store.delete_session(a, &open.id).await);

    assert_eq!(
        store
            .append_items(Scope::All, &open.id, &messages(2))
            .await
            .unwrap(),
        [1, 2]
    );
    let listed = store
        .list_sessions(Scope::All, &SessionQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(&listed), [open.id.as_str()]);
    let fork = store
        .fork_session(Scope::All, &open.id, None)
        .await
        .unwrap();
    assert_eq!(fork.team_id, None);
    assert_missing(store.session(a, &fork.id).await);
    store.delete_session(Scope::All, &open.id).await.unwrap();
});

on_both!(a_teams_sessions_go_with_the_team, |store| {
    let alpha = team(store, "alpha").await;
    let s = store
        .create_session(&new_session(Some(&alpha.id), "build"))
        .await
        .unwrap();
    store
        .append_items(Scope::All, &s.id, &messages(2))
        .await
        .unwrap();
    sqlx::query("DELETE FROM teams WHERE id = $1")
        .bind(&alpha.id)
        .execute(store.pool())
        .await
        .unwrap();
    assert_missing(store.session(Scope::All, &s.id).await);
    assert_eq!(item_rows(store, &s.id).await, 0);
});

#[track_caller]
fn assert_busy<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Busy {
            what: "session", ..
        }) => {}
        other => panic!("expected the session to be busy, got {other:?}"),
    }
}

on_both!(a_lease_holds_a_session_for_one_turn_at_a_time, |store| {
    let alpha = team(store, "alpha").await;
    let beta = team(store, "beta").await;
    let scope = Scope::Team(&alpha.id);
    let session = store
        .create_session(&new_session(Some(&alpha.id), "build"))
        .await
        .unwrap();
    let ttl = Duration::from_secs(30);

    let mut first = store.take_lease(scope, &session.id, ttl).await.unwrap();
    assert_eq!(first.session_id, session.id);
    let held = store.session(scope, &session.id).await.unwrap();
    assert_eq!(held.status, SessionStatus::Running);
    // A second turn, from this instance or another one, is refused while the lease lives,
    // and so is deleting the session under it.
    assert_busy(store.take_lease(scope, &session.id, ttl).await);
    assert_busy(store.take_lease(Scope::All, &session.id, ttl).await);
    assert_busy(store.delete_session(scope, &session.id).await);
    // Another team's caller learns nothing: the session is missing, not busy.
    assert_missing(
        store
            .take_lease(Scope::Team(&beta.id), &session.id, ttl)
            .await,
    );
    assert_missing(store.take_lease(scope, "ses_nope", ttl).await);

    let before = first.until_ms;
    tick().await;
    assert!(store.renew_lease(&mut first, ttl).await.unwrap());
    assert!(first.until_ms > before, "renewing moves the deadline");

    // Released: idle, and the next turn may take it.
    assert!(store.release_lease(&first).await.unwrap());
    let idle = store.session(scope, &session.id).await.unwrap();
    assert_eq!(
        (idle.status, idle.lease_until_ms),
        (SessionStatus::Idle, None)
    );
    let mut second = store.take_lease(scope, &session.id, ttl).await.unwrap();
    assert_ne!(second.token, first.token);
    // The old holder can neither renew nor release the new holder's lease.
    assert!(!store.renew_lease(&mut first, ttl).await.unwrap());
    assert!(!store.release_lease(&first).await.unwrap());
    assert_eq!(
        store.session(scope, &session.id).await.unwrap().status,
        SessionStatus::Running
    );
    assert!(store.renew_lease(&mut second, ttl).await.unwrap());
    assert!(store.release_lease(&second).await.unwrap());
    store.delete_session(scope, &session.id).await.unwrap();
});

on_both!(
    a_lapsed_lease_frees_the_session_of_a_holder_that_died,
    |store| {
        let session = store
            .create_session(&new_session(None, "build"))
            .await
            .unwrap();
        // The holder takes a short lease and is never heard from again.
        let mut dead = store
            .take_lease(Scope::All, &session.id, Duration::from_millis(20))
            .await
            .unwrap();
        assert_busy(
            store
                .take_lease(Scope::All, &session.id, Duration::from_secs(30))
                .await,
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        let lapsed = store.session(Scope::All, &session.id).await.unwrap();
        assert_eq!(
            lapsed.status,
            SessionStatus::Idle,
            "a lapsed lease is not running"
        );
        let taken = store
            .take_lease(Scope::All, &session.id, Duration::from_secs(30))
            .await
            .unwrap();
        // The holder that came back finds its lease gone and must stop.
        assert!(
            !store
                .renew_lease(&mut dead, Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(!store.release_lease(&dead).await.unwrap());
        assert!(store.release_lease(&taken).await.unwrap());
    }
);

// Of many instances racing for one session, exactly one wins.
on_both!(racing_takers_get_one_lease, |store| {
    let session = store
        .create_session(&new_session(None, "build"))
        .await
        .unwrap();
    let racers = (0..8).map(|_| {
        let store = store.clone();
        let id = session.id.clone();
        tokio::spawn(async move {
            store
                .take_lease(Scope::All, &id, Duration::from_secs(30))
                .await
        })
    });
    let mut won = 0;
    for racer in racers.collect::<Vec<_>>() {
        match racer.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Busy { .. }) => {}
            Err(e) => panic!("a racer failed: {e}"),
        }
    }
    assert_eq!(won, 1);
});
