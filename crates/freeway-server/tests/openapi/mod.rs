//! The OpenAPI document stays true to the router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use freeway_gateway::Gateway;
use freeway_server::{AppState, OPENAPI, router};
use tower::ServiceExt;

#[tokio::test]
async fn every_documented_path_is_routed_and_served_document_parses() {
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    let app = router(Arc::new(AppState::new(
        Arc::new(Gateway::builder().build().unwrap()),
        None,
    )));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 8);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let uri = path
                .replace("{model}", "p/m")
                .replace("{id}", "x")
                .replace("{call_id}", "c");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .body(Body::from("{}"))
                .unwrap();
            let status = app.clone().oneshot(request).await.unwrap().status();
            // Routed: the handler answered (possibly with a 4xx about the body), not the
            // unknown-route or wrong-method fallbacks.
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
            if status == StatusCode::NOT_FOUND {
                assert_eq!(path, "/v1/models/{model}", "{method} {path} answered 404");
            }
        }
    }
    let served = app
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
}
