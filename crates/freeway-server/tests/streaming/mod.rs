//! The server over real sockets: streaming behaviour that needs a live connection.

use std::sync::Arc;
use std::time::Duration;

use freeway_gateway::Gateway;
use freeway_providers::openai::{OpenAiProvider, Quirks};
use freeway_providers::{Auth, HttpSettings, Timeouts};
use freeway_server::{AppState, router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves the app on a free loopback port.
async fn serve(upstream: &str, keep_alive: Duration) -> String {
    let settings = HttpSettings {
        provider: "up".into(),
        base_url: format!("{upstream}/v1"),
        auth: Auth::None,
        headers: Vec::new(),
        timeouts: Timeouts::default(),
    };
    let provider = Arc::new(OpenAiProvider::new(&settings, Quirks::default()).unwrap());
    let gateway = Gateway::builder()
        .provider(provider, vec!["m".into()], false)
        .build()
        .unwrap();
    let mut state = AppState::new(Arc::new(gateway), None);
    state.keep_alive = keep_alive;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(Arc::new(state)))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

/// A raw upstream: answers one request with SSE headers and one chunk, then stays silent and
/// reports when the gateway closes the connection.
async fn silent_upstream() -> (String, tokio::sync::oneshot::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let mut seen = Vec::new();
        // Read the request head and body (small, one or two reads).
        while !String::from_utf8_lossy(&seen).contains("\"messages\"") {
            let n = socket.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        let chunk = r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#;
        let body = format!("data: {chunk}\n\n");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        // Nothing more is sent; a read returning 0 means the gateway hung up.
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = closed_tx.send(());
    });
    (format!("http://{addr}"), closed_rx)
}

fn chat_body() -> &'static str {
    r#"{"model":"up/m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let (upstream, closed) = silent_upstream().await;
    let base = serve(&upstream, Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let mut response = client
        .post(format!("{base}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(chat_body())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Hel"));
    drop(response);
    drop(client);
    // The upstream sees its connection closed long before any timeout would fire.
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the upstream connection stayed open after the client left")
        .unwrap();
}

#[tokio::test]
async fn a_silent_upstream_gets_keep_alive_comments_to_the_client() {
    let (upstream, _closed) = silent_upstream().await;
    let base = serve(&upstream, Duration::from_millis(100)).await;
    let mut response = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .body(chat_body())
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains(": keep-alive") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk())
            .await
            .expect("no keep-alive arrived")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("data: "), "{seen}");
}
