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
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            // Routed: the handler answered (possibly with a 4xx about the body), not the
            // unknown-route or wrong-method fallbacks.
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
            if status == StatusCode::NOT_FOUND {
                // A handler may say its resource is missing, never the unknown-route fallback.
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                let body = String::from_utf8_lossy(&body);
                assert!(
                    !body.contains("No such route"),
                    "{method} {path} is documented but not routed: {body}"
                );
            }
        }
    }
    let served = app
        .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
}
