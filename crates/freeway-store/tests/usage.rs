use freeway_store::{GroupBy, Scope, SpendOwner, UsageQuery, UsageRecord, now_ms};

use crate::on_both;
use crate::support::team;

fn record(
    team: &str,
    key: &str,
    target: &str,
    cost_nanos: i64,
    at: i64,
    status: u16,
) -> UsageRecord {
    UsageRecord {
        at,
        request_id: format!("req-{at}-{cost_nanos}"),
        team_id: Some(team.into()),
        key_id: Some(key.into()),
        endpoint: "chat",
        model: "smart".into(),
        target: Some(target.into()),
        status,
        input_tokens: 100,
        output_tokens: 20,
        cached_tokens: 10,
        cost_nanos,
        estimated: false,
        cache_hit: false,
        latency_ms: 12,
    }
}

const DAY: i64 = 86_400_000;

on_both!(reports_group_and_sum, |store| {
    let a = team(store, "alpha").await.id;
    let b = team(store, "beta").await.id;
    let now = now_ms();
    store
        .record_usage(&[
            record(&a, "k1", "openai/gpt-4.1", 1_000, now, 200),
            record(&a, "k1", "claude/claude-sonnet-4-5", 3_000, now, 200),
            record(&a, "k2", "openai/gpt-4.1", 500, now - DAY, 502),
            record(&b, "k3", "openai/gpt-4.1", 7_000, now, 200),
        ])
        .await
        .unwrap();

    let by_model = store
        .usage(
            Scope::All,
            &UsageQuery {
                group_by: GroupBy::Model,
                since_ms: None,
                until_ms: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(by_model[0].group, "openai/gpt-4.1");
    assert_eq!(by_model[0].requests, 3);
    assert_eq!(by_model[0].cost_nanos, 8_500);
    assert_eq!(by_model[0].errors, 1);
    assert_eq!(by_model[0].input_tokens, 300);
    assert_eq!(by_model[1].group, "claude/claude-sonnet-4-5");

    let by_provider = store
        .usage(
            Scope::All,
            &UsageQuery {
                group_by: GroupBy::Provider,
                since_ms: None,
                until_ms: None,
            },
        )
        .await
        .unwrap();
    let groups: Vec<_> = by_provider
        .iter()
        .map(|r| (r.group.as_str(), r.cost_nanos))
        .collect();
    assert_eq!(groups, vec![("openai", 8_500), ("claude", 3_000)]);

    // Team A sees its own rows only.
    let by_key = store
        .usage(
            Scope::Team(&a),
            &UsageQuery {
                group_by: GroupBy::Key,
                since_ms: None,
                until_ms: None,
            },
        )
        .await
        .unwrap();
    let groups: Vec<_> = by_key
        .iter()
        .map(|r| (r.group.as_str(), r.requests))
        .collect();
    assert_eq!(groups, vec![("k1", 2), ("k2", 1)]);

    let by_day = store
        .usage(
            Scope::Team(&a),
            &UsageQuery {
                group_by: GroupBy::Day,
                since_ms: Some(now - DAY / 2),
                until_ms: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(by_day.len(), 1);
    assert_eq!(by_day[0].requests, 2);
    assert_eq!(by_day[0].group.len(), 10, "{}", by_day[0].group);

    assert_eq!(
        store.spend_since(SpendOwner::Key("k1"), 0).await.unwrap(),
        4_000
    );
    assert_eq!(
        store
            .spend_since(SpendOwner::Team(&a), now - DAY / 2)
            .await
            .unwrap(),
        4_000
    );
    assert_eq!(
        store
            .spend_since(SpendOwner::Team("nobody"), 0)
            .await
            .unwrap(),
        0
    );
});

on_both!(each_request_is_also_in_the_audit_chain, |store| {
    let a = team(store, "alpha").await.id;
    store
        .record_usage(&[record(&a, "k1", "openai/gpt-4.1", 1_000, now_ms(), 200)])
        .await
        .unwrap();
    let entries = store
        .audit(Scope::Team(&a), &freeway_store::AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, "request");
    assert_eq!(entries[0].actor, "key:k1");
    assert_eq!(entries[0].detail["served_by"], "openai/gpt-4.1");
    assert!(store.verify_audit().await.unwrap().ok);
});

on_both!(
    a_large_batch_is_written_whole_and_chained_in_order,
    |store| {
        let a = team(store, "alpha").await.id;
        let now = now_ms();
        // More rows than one multi-row INSERT takes (50): the chunks must join into one chain.
        let batch: Vec<UsageRecord> = (0..123)
            .map(|i| record(&a, &format!("k{i}"), "openai/gpt-4.1", 10 + i, now, 200))
            .collect();
        store.record_usage(&batch).await.unwrap();
        store.record_usage(&batch[..1]).await.unwrap();
        let by_key = store
            .usage(
                Scope::All,
                &UsageQuery {
                    group_by: GroupBy::Key,
                    since_ms: None,
                    until_ms: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(by_key.len(), 123);
        let total: i64 = by_key.iter().map(|r| r.requests).sum();
        assert_eq!(total, 124);
        let entries = store
            .audit(
                Scope::All,
                &freeway_store::AuditQuery {
                    limit: Some(500),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let audited: Vec<String> = entries
            .iter()
            .filter(|e| e.action == "request")
            .map(|e| e.actor.clone())
            .collect();
        let expected: Vec<String> = (0..123).chain([0]).map(|i| format!("key:k{i}")).collect();
        assert_eq!(audited, expected, "one entry per row, in the batch's order");
        let verified = store.verify_audit().await.unwrap();
        assert!(verified.ok, "{verified:?}");
    }
);

#[tokio::test]
async fn reopening_a_sqlite_file_keeps_its_rows() {
    let fresh = crate::support::sqlite().await;
    let url = {
        let t = team(&fresh.store, "alpha").await;
        assert!(!t.id.is_empty());
        let row: (String,) =
            sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(fresh.store.pool())
                .await
                .unwrap();
        format!("sqlite://{}", row.0)
    };
    let again = freeway_store::Store::open(&url).await.unwrap();
    assert_eq!(again.teams(Scope::All).await.unwrap().len(), 1);
    again.close().await;
    fresh.finish().await;
}
