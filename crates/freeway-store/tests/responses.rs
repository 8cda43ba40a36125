use freeway_store::{NewResponse, Scope, StoreError};

use crate::on_both;
use crate::support::team;

fn new_response(id: &str, team_id: Option<&str>, previous: Option<&str>) -> NewResponse {
    NewResponse {
        id: id.into(),
        team_id: team_id.map(str::to_owned),
        key_id: Some("key_1".into()),
        model: "smart".into(),
        previous_id: previous.map(str::to_owned),
        body: format!(r#"{{"id":"{id}","object":"response"}}"#),
        conversation: r#"[{"role":"user","content":[{"type":"text","text":"hi"}]}]"#.into(),
        input_items: r#"[{"id":"msg_1","type":"message","role":"user"}]"#.into(),
    }
}

#[track_caller]
fn assert_missing<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::NotFound {
            what: "response", ..
        }) => {}
        other => panic!("expected the response to be not found, got {other:?}"),
    }
}

on_both!(responses_are_stored_read_back_and_deleted, |store| {
    let alpha = team(store, "alpha").await;
    let put = store
        .put_response(&new_response("resp_a", Some(&alpha.id), None))
        .await
        .unwrap();
    assert!(put.created_ms > 0);
    let got = store
        .response(Scope::Team(&alpha.id), "resp_a")
        .await
        .unwrap();
    assert_eq!(got, put);
    assert_eq!(got.body, r#"{"id":"resp_a","object":"response"}"#);
    assert!(got.conversation.contains("\"hi\""));
    assert!(got.input_items.contains("msg_1"));
    assert_eq!(store.response(Scope::All, "resp_a").await.unwrap(), put);

    let next = store
        .put_response(&new_response("resp_b", Some(&alpha.id), Some("resp_a")))
        .await
        .unwrap();
    assert_eq!(next.previous_id.as_deref(), Some("resp_a"));

    // Ids are the client's handle: a second write under one id is refused, not merged.
    match store
        .put_response(&new_response("resp_a", Some(&alpha.id), None))
        .await
    {
        Err(StoreError::Conflict {
            what: "response", ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }

    store
        .delete_response(Scope::Team(&alpha.id), "resp_a")
        .await
        .unwrap();
    assert_missing(store.response(Scope::All, "resp_a").await);
    assert_missing(store.delete_response(Scope::All, "resp_a").await);
    // The continuation keeps its own copy of the turns.
    assert_eq!(store.response(Scope::All, "resp_b").await.unwrap(), next);
    assert_missing(store.response(Scope::All, "resp_none").await);
});

on_both!(
    a_team_never_reads_or_deletes_another_teams_response,
    |store| {
        let alpha = team(store, "alpha").await;
        let beta = team(store, "beta").await;
        store
            .put_response(&new_response("resp_alpha", Some(&alpha.id), None))
            .await
            .unwrap();
        store
            .put_response(&new_response("resp_master", None, None))
            .await
            .unwrap();
        assert_missing(store.response(Scope::Team(&beta.id), "resp_alpha").await);
        assert_missing(
            store
                .delete_response(Scope::Team(&beta.id), "resp_alpha")
                .await,
        );
        // A response made without a team is the master's alone.
        assert_missing(store.response(Scope::Team(&alpha.id), "resp_master").await);
        assert!(store.response(Scope::All, "resp_master").await.is_ok());
        assert!(
            store
                .response(Scope::Team(&alpha.id), "resp_alpha")
                .await
                .is_ok()
        );
    }
);

on_both!(
    a_response_for_a_team_that_does_not_exist_is_refused,
    |store| {
        assert!(matches!(
            store
                .put_response(&new_response("resp_x", Some("team_missing"), None))
                .await,
            Err(StoreError::NotFound { what: "team", .. })
        ));
    }
);
