//! What a request with a virtual key pays before and after the model call, in process:
//! authenticating a (cached) key, admitting it against its key's and team's rpm, tpm and
//! budget, settling its tokens and cost, and pricing its usage.
//!
//! `cargo bench -p freeway-bench --bench tenancy`

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmarks")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use freeway_gateway::limits::{Limiter, Subject};
use freeway_gateway::pricing::PriceTable;
use freeway_server::tenancy::Tenancy;
use freeway_store::{Limits, NewKey, NewTeam, Role, Scope, SpendOwner, Store, now_ms};
use freeway_types::Usage;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("freeway-bench-{}", std::process::id()));
    let (tenancy, secret) = rt.block_on(async {
        let store = Store::open(&format!("sqlite://{}/bench.db", dir.display()))
            .await
            .unwrap();
        store
            .create_team(NewTeam {
                name: "bench".into(),
                ..NewTeam::default()
            })
            .await
            .unwrap();
        let (_, secret) = store
            .create_key(
                Scope::All,
                NewKey {
                    team: "bench".into(),
                    role: Role::Developer,
                    name: None,
                    models: None,
                    tools: None,
                    limits: Limits::default(),
                    expires_at: None,
                },
            )
            .await
            .unwrap();
        let tenancy = Tenancy::new(
            store.clone(),
            Limiter::memory(Some(store)),
            PriceTable::builtin().unwrap(),
        );
        tenancy.authenticate(&secret).await.unwrap().unwrap();
        (tenancy, secret)
    });

    c.bench_function("auth/cached_virtual_key", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(tenancy.authenticate(black_box(&secret)).await.unwrap()) });
    });

    let limits = Limits {
        budget_nanos: Some(1_000_000_000_000_000),
        rpm: Some(u64::MAX / 4),
        tpm: Some(u64::MAX / 4),
        ..Limits::default()
    };
    let subjects = [
        Subject {
            id: "key:bench",
            owner: SpendOwner::Key("bench"),
            limits: &limits,
        },
        Subject {
            id: "team:bench",
            owner: SpendOwner::Team("bench"),
            limits: &limits,
        },
    ];
    let limiter = Limiter::memory(None);
    c.bench_function("limits/admit_key_and_team_memory", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(limiter.admit(black_box(&subjects), now_ms()).await) });
    });
    c.bench_function("limits/settle_key_and_team_memory", |b| {
        b.iter(|| limiter.settle(black_box(&subjects), 1_000, 12_345, now_ms()));
    });

    // The same against Redis on loopback, when one answers (what several instances share).
    let redis = Limiter::redis("redis://127.0.0.1:6379/", None).unwrap();
    rt.block_on(redis.admit(&subjects, now_ms()));
    if redis.errors() == 0 {
        // Decisions are local; the counts reach Redis from a background task every 10 ms.
        c.bench_function("limits/admit_key_and_team_redis", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(redis.admit(black_box(&subjects), now_ms()).await) });
        });
        c.bench_function("limits/settle_key_and_team_redis", |b| {
            b.iter(|| redis.settle(black_box(&subjects), 1_000, 12_345, now_ms()));
        });
        // What the background task does each interval for two active subjects.
        c.bench_function("limits/sync_two_subjects_redis", |b| {
            b.to_async(&rt).iter(|| async {
                redis.settle(&subjects, 1, 1, now_ms());
                redis.sync(now_ms()).await;
            });
        });
    }

    let prices = PriceTable::builtin().unwrap();
    let usage = Usage {
        input_tokens: 1_234,
        output_tokens: 567,
        cache_read_tokens: 200,
        cache_write_tokens: 0,
    };
    c.bench_function("pricing/lookup_and_cost_dated_snapshot", |b| {
        b.iter(|| black_box(prices.cost_of(black_box("openai/gpt-4.1-2025-04-14"), &usage)));
    });

    drop(tenancy);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(tenancy, benches);
criterion_main!(tenancy);
